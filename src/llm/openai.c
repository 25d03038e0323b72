/* openai.c — the OpenAI-compatible adapter (see openai.h).
 *
 * Streamed text is accumulated in sl_bufs (appending to jansson strings would copy the
 * whole answer at every token) and turned into JSON once, at the end. Everything the
 * provider sends that we do not interpret is kept: top-level fields, choice fields,
 * message fields (strings are concatenated across chunks, other values: last wins). */
#include "llm/openai.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/jsontok.h"
#include "base/jsonw.h"
#include "io/sse.h"
#include "llm/request.h"

#define DEFAULT_MAX_EVENT (8u << 20)

sl_openai_kind sl__openai_kind(const char *endpoint)
{
    if (!strcmp(endpoint, "/chat/completions"))
        return SL_OPENAI_CHAT;
    if (!strcmp(endpoint, "/completions"))
        return SL_OPENAI_COMPLETIONS;
    if (!strcmp(endpoint, "/embeddings"))
        return SL_OPENAI_EMBEDDINGS;
    return SL_OPENAI_OTHER;
}

/* ---- the request ------------------------------------------------------------------ */

static int has_crlf(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

static char *str_printf(const char *fmt, const char *a, const char *b)
{
    sl_buf x;
    sl__buf_init(&x, 0);
    if (sl__buf_printf(&x, fmt, a, b) != 0) {
        sl__buf_free(&x);
        return NULL;
    }
    return sl__buf_steal(&x);
}

void sl__openai_http_free(sl_openai_http *h)
{
    free(h->url);
    free(h->body);
    for (size_t i = 0; i < h->nheaders; i++)
        free(h->headers[i]);
    memset(h, 0, sizeof *h);
}

int sl__openai_headers(const char *api_key, const char *user_agent, int stream, char *out[4],
                       size_t *n)
{
    *n = 0;
    if (has_crlf(api_key) || has_crlf(user_agent))
        return SL_EINVAL;
    if (api_key && *api_key) {
        if (!(out[(*n)++] = str_printf("Authorization: Bearer %s%s", api_key, "")))
            goto nomem;
    }
    if (!(out[(*n)++] = strdup("Content-Type: application/json")))
        goto nomem;
    if (!(out[(*n)++] = strdup(stream ? "Accept: text/event-stream" : "Accept: application/json")))
        goto nomem;
    if (!(out[(*n)++] =
              str_printf("User-Agent: %s%s", user_agent ? user_agent : "sluice/" SL_VERSION, "")))
        goto nomem;
    return 0;
nomem:
    while (*n)
        free(out[--*n]);
    return SL_ENOMEM;
}

int sl__openai_build(const char *base_url, const char *api_key, const char *user_agent,
                     const sl_request *req, sl_openai_http *out)
{
    memset(out, 0, sizeof *out);
    if (has_crlf(api_key) || has_crlf(user_agent))
        return SL_EINVAL;
    int rc = sl__openai_build_body(base_url, req, out);
    if (!rc &&
        (rc = sl__openai_headers(api_key, user_agent, out->stream, out->headers, &out->nheaders)))
        sl__openai_http_free(out);
    return rc;
}

int sl__openai_build_body(const char *base_url, const sl_request *req, sl_openai_http *out)
{
    memset(out, 0, sizeof *out);
    if (!base_url || !req || has_crlf(base_url))
        return SL_EINVAL;
    const char *ep = sl_request_endpoint(req);
    size_t n = strlen(base_url);
    while (n && base_url[n - 1] == '/')
        n--;
    sl_buf url;
    sl__buf_init(&url, 0);
    if (sl__buf_append(&url, base_url, n) || sl__buf_append_str(&url, ep))
        goto nomem;
    out->url = sl__buf_steal(&url);
    out->kind = sl__openai_kind(ep);
    out->stream = sl_request_stream(req);
    out->body = sl__request_wire_body(req, &out->body_len);
    if (!out->body || !out->url)
        goto nomem;
    return 0;
nomem:
    sl__buf_free(&url);
    sl__openai_http_free(out);
    return SL_ENOMEM;
}

/* ---- error messages ----------------------------------------------------------------- */

/* Copy (s, n) into out as one printable line. */
static void printable(char *out, size_t cap, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    /* do not end in the middle of a UTF-8 sequence */
    if (j + 1 >= cap && j < n)
        while (j && ((unsigned char)out[j - 1] & 0xc0) == 0x80)
            j--;
    if (j && ((unsigned char)out[j - 1] & 0xc0) == 0xc0)
        j--;
    out[j] = '\0';
}

/* The message of an error value: {"message": ..} or a string. */
static const char *error_text(const json_t *err)
{
    if (json_is_string(err))
        return json_string_value(err);
    const char *m = sl__json_str(err, "message");
    if (m)
        return m;
    return NULL;
}

int sl__openai_error_message(const char *body, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    json_t *v = NULL;
    const char *msg = NULL;
    if (len && sl__json_parse(body, len, 0, &v, NULL, 0) == 0 && json_is_object(v)) {
        msg = error_text(json_object_get(v, "error"));
        if (!msg)
            msg = sl__json_str(v, "message");
        if (!msg)
            msg = sl__json_str(v, "detail");
        if (msg)
            printable(out, cap, msg, strlen(msg));
    }
    json_decref(v);
    if (msg)
        return 1;
    /* not JSON: the first non-empty line */
    size_t i = 0;
    while (i < len && (body[i] == '\r' || body[i] == '\n' || body[i] == ' '))
        i++;
    size_t e = i;
    while (e < len && body[e] != '\r' && body[e] != '\n')
        e++;
    if (e == i)
        return 0;
    printable(out, cap < 201 ? cap : 201, body + i, e - i);
    return 1;
}

/* ---- answer assembly ------------------------------------------------------------------ */

typedef struct tool_acc {
    int present;
    sl_buf id;
    sl_buf type;
    sl_buf name;
    sl_buf args;
} tool_acc;

typedef struct str_field {
    char *key;
    sl_buf val;
} str_field;

/* A top-level field other than choices and usage: its name and the JSON text of its last
 * non-null value, both kept in the parser's headtext (the name NUL-terminated there). */
typedef struct head_field {
    size_t key, keylen, val, vallen; /* offsets and lengths in headtext */
    int order;                       /* its index in head_order, or -1 */
    int verbatim;                    /* the value is written back as it is */
} head_field;

/* The top-level fields that come first in the final object, in this order. */
static const char *const head_order[] = {"id", "object", "created", "model", "system_fingerprint"};
static const char *const head_order_q[] = {
    "\"id\":", "\"object\":", "\"created\":", "\"model\":", "\"system_fingerprint\":"};
#define NORDER 5

typedef struct choice_acc {
    int present;
    sl_buf role;
    sl_buf content;
    int has_content;
    sl_buf reasoning;
    const char *reasoning_key; /* the name the provider uses, once seen */
    tool_acc *tools;
    int ntools;
    str_field *sx; /* other string fields of the message: concatenated */
    int nsx;
    json_t *mx;           /* other message fields: last wins */
    sl_buf finish_reason; /* the JSON text of the last non-null one */
    int has_finish_reason;
    int fr_verbatim; /* that text is written back as it is */
    json_t *logprobs;
    json_t *extra; /* other choice fields */
} choice_acc;

/* A string of the last chunk whose text may differ in the next one (see "chunks like the
 * last one" below): a content or reasoning text, or one that is not read (HOLE_IGNORE). */
#define MAX_HOLES   4
#define HOLE_IGNORE (-1)
typedef struct hole {
    uint32_t start, len; /* the string in the template, quotes included */
    int kind;            /* SL_DELTA_CONTENT, SL_DELTA_REASONING or HOLE_IGNORE */
    int choice;
} hole;

/* SCRATCH_* name the buffers that hold unescaped strings while they are in use. */
enum { SCRATCH_TEXT = 0, SCRATCH_NAME, SCRATCH_ARGS, NSCRATCH };

struct sl_openai_parser {
    /* What every chunk touches comes first, together (a parser is cold in the cache by
     * the time its next chunk arrives: each line it touches costs). */
    int failed;
    int cb_rc;      /* non-zero: on_delta stopped us */
    int tmpl_valid; /* tmpl holds a template (see "chunks like the last one") */
    int nholes;
    sl_openai_delta_cb on_delta;
    void *user;
    choice_acc *choices;
    size_t assembled; /* bytes of text held */
    int saw_done;     /* as out.saw_done */
    const char *tail; /* where the last text went: the next piece goes there too */
    int shortcut;     /* templates are used (tests turn them off to compare) */
    size_t shortcuts; /* chunks read through one */
    /* The last chunk, when it can serve as a template: its text, and its holes in the
     * order reading it used them (by_place: the same, by place in the text). */
    sl_buf tmpl;
    uint8_t by_place[MAX_HOLES];
    int reading_ok; /* while a chunk is read: it can still serve as a template */
    hole holes[MAX_HOLES];
    sl_sse_parser sse;
    /* the rest: */
    sl_openai_kind kind;
    size_t max_event;
    int nchoices;
    int capchoices; /* entries made (their buffers kept when the parser is reused) */
    /* Top-level fields other than choices and usage, each as the JSON text of its last
     * non-null value (the same in nearly every chunk: compared, not parsed), in the order
     * they first came. Turned into JSON values once, at the end. */
    head_field *head;
    int nhead, headcap;
    int head_at[NORDER]; /* the index of each of head_order, or -1 */
    sl_buf headtext;     /* their names and values */
    size_t headwaste;    /* bytes of headtext no field uses any more */
    sl_buf usage;        /* the JSON text of the provider's last usage object */
    int has_usage;       /* and its numbers: */
    sl_usage usage_n;
    sl_buf finish_out;                 /* choice 0's finish_reason as a C string, for out */
    sl_jtoks toks;                     /* the chunk being read */
    sl_jmembers mtop, mchoice, mdelta; /* the members of the objects being read */
    sl_buf scratch[NSCRATCH];
    sl_buf error_body;
    char *message;  /* out.message once failed */
    json_t *parsed; /* non-streamed: the body */
    sl_buf body;
    sl_openai_parser *next_spare;
    sl_openai_out out;
};

static void choice_init(choice_acc *c)
{
    memset(c, 0, sizeof *c);
    sl__buf_init(&c->role, 64);
    sl__buf_init(&c->content, 0);
    sl__buf_init(&c->reasoning, 0);
    sl__buf_init(&c->finish_reason, 0);
}

/* Parts of a choice that are rare (tool calls, other fields, logprobs). */
static void choice_free_rare(choice_acc *c)
{
    for (int i = 0; i < c->ntools; i++) {
        sl__buf_free(&c->tools[i].id);
        sl__buf_free(&c->tools[i].type);
        sl__buf_free(&c->tools[i].name);
        sl__buf_free(&c->tools[i].args);
    }
    free(c->tools);
    for (int i = 0; i < c->nsx; i++) {
        free(c->sx[i].key);
        sl__buf_free(&c->sx[i].val);
    }
    free(c->sx);
    json_decref(c->mx);
    json_decref(c->logprobs);
    json_decref(c->extra);
}

static void choice_free(choice_acc *c)
{
    choice_free_rare(c);
    sl__buf_free(&c->role);
    sl__buf_free(&c->content);
    sl__buf_free(&c->reasoning);
    sl__buf_free(&c->finish_reason);
}

/* Buffers a reused parser keeps: up to this much memory each. */
#define KEEP_CAP (16u << 10)

static void recycle(sl_buf *b)
{
    if (b->cap > KEEP_CAP)
        sl__buf_free(b);
    else
        sl__buf_reset(b);
}

/* The choice as choice_init leaves it, keeping its common buffers. */
static void choice_clear(choice_acc *c)
{
    choice_free_rare(c);
    sl_buf keep[4] = {c->role, c->content, c->reasoning, c->finish_reason};
    memset(c, 0, sizeof *c);
    c->role = keep[0];
    c->content = keep[1];
    c->reasoning = keep[2];
    c->finish_reason = keep[3];
    recycle(&c->role);
    recycle(&c->content);
    recycle(&c->reasoning);
    recycle(&c->finish_reason);
}

static int on_event(void *user, const sl_sse_event *ev);

/* Everything a new parser starts with, over p's memory (zeroed, or kept from an earlier
 * use by reset). */
static void parser_start(sl_openai_parser *p, sl_openai_kind kind, size_t max_event,
                         sl_openai_delta_cb on_delta, void *user)
{
    p->kind = kind;
    p->max_event = max_event ? max_event : DEFAULT_MAX_EVENT;
    p->on_delta = on_delta;
    p->user = user;
    sl__sse_init(&p->sse, p->max_event, p->max_event, on_event, p);
    p->error_body.max = p->max_event;
    p->tmpl.max = p->max_event;
    for (int i = 0; i < NORDER; i++)
        p->head_at[i] = -1;
    p->shortcut = 1;
    memset(&p->out, 0, sizeof p->out);
    p->saw_done = 0;
    p->out.message = "";
    p->out.usage.prompt_tokens = -1;
    p->out.usage.completion_tokens = -1;
    p->out.usage.total_tokens = -1;
}

sl_openai_parser *sl__openai_parser_new(sl_openai_kind kind, size_t max_event,
                                        sl_openai_delta_cb on_delta, void *user)
{
    sl_openai_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    sl__jtoks_init(&p->toks);
    sl__jmembers_init(&p->mtop);
    sl__jmembers_init(&p->mchoice);
    sl__jmembers_init(&p->mdelta);
    for (int i = 0; i < NSCRATCH; i++)
        sl__buf_init(&p->scratch[i], 0);
    sl__buf_init(&p->error_body, 0);
    sl__buf_init(&p->body, 0);
    sl__buf_init(&p->usage, 0);
    sl__buf_init(&p->finish_out, 0);
    sl__buf_init(&p->tmpl, 0);
    sl__buf_init(&p->headtext, 0);
    parser_start(p, kind, max_event, on_delta, user);
    return p;
}

void sl__openai_parser_free(sl_openai_parser *p)
{
    if (!p)
        return;
    sl__sse_free(&p->sse);
    free(p->head);
    sl__buf_free(&p->headtext);
    sl__buf_free(&p->usage);
    sl__buf_free(&p->finish_out);
    for (int i = 0; i < p->capchoices; i++)
        choice_free(&p->choices[i]);
    free(p->choices);
    sl__jtoks_free(&p->toks);
    sl__jmembers_free(&p->mtop);
    sl__jmembers_free(&p->mchoice);
    sl__jmembers_free(&p->mdelta);
    for (int i = 0; i < NSCRATCH; i++)
        sl__buf_free(&p->scratch[i]);
    sl__buf_free(&p->error_body);
    free(p->message);
    json_decref(p->parsed);
    sl__buf_free(&p->body);
    sl__buf_free(&p->tmpl);
    free(p);
}

void sl__openai_parser_shortcut(sl_openai_parser *p, int on)
{
    p->shortcut = on;
    p->tmpl_valid = 0;
}

size_t sl__openai_parser_shortcuts(const sl_openai_parser *p)
{
    return p->shortcuts;
}

/* Back to what sl__openai_parser_new makes, keeping the memory of the buffers (within
 * KEEP_CAP each), the token arrays and the choices. */
static void parser_reset(sl_openai_parser *p)
{
    sl__sse_free(&p->sse);
    p->failed = 0;
    p->cb_rc = 0;
    p->nhead = 0;
    recycle(&p->headtext);
    p->headwaste = 0;
    recycle(&p->usage);
    p->has_usage = 0;
    memset(&p->usage_n, 0, sizeof p->usage_n);
    recycle(&p->finish_out);
    for (int i = 0; i < p->nchoices; i++)
        choice_clear(&p->choices[i]);
    p->nchoices = 0;
    p->assembled = 0;
    p->tail = NULL;
    if (p->toks.cap > 4096)
        sl__jtoks_free(&p->toks);
    for (int i = 0; i < NSCRATCH; i++)
        recycle(&p->scratch[i]);
    recycle(&p->error_body);
    free(p->message);
    p->message = NULL;
    json_decref(p->parsed);
    p->parsed = NULL;
    recycle(&p->body);
    recycle(&p->tmpl);
    p->tmpl_valid = 0;
    p->reading_ok = 0;
    p->nholes = 0;
    p->shortcuts = 0;
}

struct sl_openai_spares {
    sl_openai_parser *first;
    size_t n, max;
    size_t out; /* parsers taken and not given back */
    int closed;
};

sl_openai_spares *sl__openai_spares_new(size_t max)
{
    sl_openai_spares *s = calloc(1, sizeof *s);
    if (s)
        s->max = max;
    return s;
}

static void spares_empty(sl_openai_spares *s)
{
    while (s->first) {
        sl_openai_parser *p = s->first;
        s->first = p->next_spare;
        sl__openai_parser_free(p);
    }
    s->n = 0;
}

void sl__openai_spares_close(sl_openai_spares *s)
{
    if (!s)
        return;
    spares_empty(s);
    s->closed = 1;
    if (!s->out)
        free(s);
}

sl_openai_parser *sl__openai_parser_take(sl_openai_spares *s, sl_openai_kind kind, size_t max_event,
                                         sl_openai_delta_cb on_delta, void *user)
{
    sl_openai_parser *p;
    if (s && s->first) {
        p = s->first;
        s->first = p->next_spare;
        s->n--;
        p->next_spare = NULL;
        parser_start(p, kind, max_event, on_delta, user);
    } else if (!(p = sl__openai_parser_new(kind, max_event, on_delta, user))) {
        return NULL;
    }
    if (s)
        s->out++;
    return p;
}

void sl__openai_parser_give(sl_openai_spares *s, sl_openai_parser *p)
{
    if (!p)
        return;
    if (!s) {
        sl__openai_parser_free(p);
        return;
    }
    s->out--;
    if (s->closed || s->n >= s->max) {
        sl__openai_parser_free(p);
        if (s->closed && !s->out)
            free(s);
        return;
    }
    parser_reset(p);
    p->next_spare = s->first;
    s->first = p;
    s->n++;
}

const sl_openai_out *sl__openai_out(const sl_openai_parser *p)
{
    return &p->out;
}

void sl__openai_swap_body(sl_openai_parser *p, sl_buf *b)
{
    sl_buf t = p->body;
    p->body = *b;
    *b = t;
    sl__buf_reset(&p->body);
    p->out.body = (sl_str){"", 0};
}

static int fail(sl_openai_parser *p, int err, const char *fmt, const char *arg)
{
    if (!p->out.error) {
        p->out.error = err;
        /* at most 511 bytes, as the fixed buffer this replaced */
        char *m = malloc(512);
        if (m)
            snprintf(m, 512, fmt, arg);
        p->message = m;
        p->out.message = m ? m : sl_strerror(err);
    }
    p->failed = 1;
    return err;
}

static int nomem(sl_openai_parser *p)
{
    return fail(p, SL_ENOMEM, "%s", "out of memory");
}

static int emit(sl_openai_parser *p, const sl_delta *in)
{
    if (!p->on_delta)
        return 0;
    /* empty strings point at "" rather than NULL, for the consumer's memcpy */
    sl_delta d = *in;
    if (!d.text.ptr)
        d.text.ptr = "";
    if (!d.tool_id.ptr)
        d.tool_id.ptr = "";
    if (!d.tool_name.ptr)
        d.tool_name.ptr = "";
    int rc = p->on_delta(p->user, &d);
    if (rc)
        p->cb_rc = rc;
    return rc;
}

/* Append text to an accumulator, counted against the assembled cap. */
static int grow(sl_openai_parser *p, sl_buf *b, const char *s, size_t n)
{
    if (n > SL_OPENAI_MAX_ASSEMBLED - p->assembled) {
        char cap[32];
        snprintf(cap, sizeof cap, "%u", SL_OPENAI_MAX_ASSEMBLED);
        return fail(p, SL_ELIMIT, "answer over %s bytes", cap);
    }
    p->assembled += n;
    if (sl__buf_append(b, s, n))
        return nomem(p);
    p->tail = b->data + b->len;
    return 0;
}

static int set_or_keep(json_t *obj, const char *key, json_t *v)
{
    if (json_is_null(v) && json_object_get(obj, key))
        return 0; /* null does not erase what an earlier chunk said */
    return json_object_set(obj, key, v);
}

/* logprobs objects are concatenated array by array ({"content":[..]} for chat,
 * {"tokens":[..],"token_logprobs":[..],..} for completions). */
static int merge_logprobs(choice_acc *c, json_t *lp)
{
    if (json_is_null(lp))
        return 0;
    if (!json_is_object(c->logprobs) || !json_is_object(lp)) {
        json_decref(c->logprobs);
        c->logprobs = json_deep_copy(lp);
        return c->logprobs ? 0 : -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(lp, k, v)
    {
        json_t *old = json_object_get(c->logprobs, k);
        if (json_is_array(old) && json_is_array(v)) {
            if (json_array_extend(old, v))
                return -1;
        } else if (set_or_keep(c->logprobs, k, v)) {
            return -1;
        }
    }
    return 0;
}

static choice_acc *get_choice(sl_openai_parser *p, json_int_t idx)
{
    if (idx < 0 || idx >= SL_OPENAI_MAX_CHOICES)
        return NULL;
    if (idx >= p->capchoices) {
        /* entries past nchoices are always as choice_init (or choice_clear) left them */
        choice_acc *n = realloc(p->choices, (size_t)(idx + 1) * sizeof *n);
        if (!n)
            return NULL;
        for (json_int_t i = p->capchoices; i <= idx; i++)
            choice_init(&n[i]);
        p->choices = n;
        p->capchoices = (int)idx + 1;
    }
    if (idx >= p->nchoices)
        p->nchoices = (int)idx + 1;
    p->choices[idx].present = 1;
    return &p->choices[idx];
}

static tool_acc *get_tool(choice_acc *c, json_int_t idx)
{
    if (idx < 0 || idx >= SL_OPENAI_MAX_TOOL_CALLS)
        return NULL;
    if (idx >= c->ntools) {
        tool_acc *n = realloc(c->tools, (size_t)(idx + 1) * sizeof *n);
        if (!n)
            return NULL;
        memset(n + c->ntools, 0, (size_t)(idx + 1 - c->ntools) * sizeof *n);
        for (json_int_t i = c->ntools; i <= idx; i++) {
            sl__buf_init(&n[i].id, 1024);
            sl__buf_init(&n[i].type, 64);
            sl__buf_init(&n[i].name, 1024);
            sl__buf_init(&n[i].args, 0);
        }
        c->tools = n;
        c->ntools = (int)idx + 1;
    }
    c->tools[idx].present = 1;
    return &c->tools[idx];
}

static str_field *get_sx(choice_acc *c, const char *key)
{
    for (int i = 0; i < c->nsx; i++)
        if (!strcmp(c->sx[i].key, key))
            return &c->sx[i];
    if (c->nsx >= SL_OPENAI_MAX_EXTRA_FIELDS)
        return NULL;
    str_field *n = realloc(c->sx, (size_t)(c->nsx + 1) * sizeof *n);
    if (!n)
        return NULL;
    c->sx = n;
    n[c->nsx].key = strdup(key);
    if (!n[c->nsx].key)
        return NULL;
    sl__buf_init(&n[c->nsx].val, 0);
    return &n[c->nsx++];
}

/* ---- reading a chunk ---------------------------------------------------------------------
 * A chunk is read as tokens (base/jsontok), which point into the event's data. Members are
 * looked up as jansson's tree would answer (the last of repeated names); values kept as
 * they are become jansson values (unknown fields, logprobs), or are kept as their JSON
 * text (top-level fields, finish_reason, usage) and written back by base/jsontok, which
 * happens about once per answer. */

#define GET(obj, lit) SL_JTOK_GET(&p->toks, (obj), (lit))

static int tok_type(const sl_openai_parser *p, uint32_t i)
{
    return i ? p->toks.v[i].type : -1; /* -1: absent */
}

/* String token i unescaped, into scratch buffer `which` if it has escapes. */
static int tok_str(sl_openai_parser *p, uint32_t i, int which, sl_str *out)
{
    int rc = sl__jtok_str(&p->toks, i, &p->scratch[which], out);
    return rc ? nomem(p) : 0;
}

/* Name token i as a C string in scratch (jansson keys are NUL-terminated, and object
 * names from the tokenizer never contain NUL). */
static int tok_key(sl_openai_parser *p, uint32_t i, const char **out)
{
    sl_str s;
    int rc = tok_str(p, i, SCRATCH_TEXT, &s);
    if (rc)
        return rc;
    if (s.ptr != p->scratch[SCRATCH_TEXT].data) {
        sl__buf_reset(&p->scratch[SCRATCH_TEXT]);
        if (sl__buf_append(&p->scratch[SCRATCH_TEXT], s.ptr, s.len))
            return nomem(p);
    }
    *out = p->scratch[SCRATCH_TEXT].data;
    return 0;
}

/* A new jansson value for token i. */
static json_t *tok_json(sl_openai_parser *p, uint32_t i)
{
    json_t *v = sl__jtok_json(&p->toks, i);
    if (!v)
        nomem(p);
    return v;
}

/* Names a reader knows, with their lengths. */
typedef struct known_name {
    const char *s;
    size_t n;
} known_name;
#define NAME(lit)                                                                                  \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

/* Fill m with the members of obj; the value of each known name goes to slot[i] (0 when
 * absent) and its member's val is cleared, so that what is left are the others. */
static int classify(sl_openai_parser *p, uint32_t obj, sl_jmembers *m, const known_name *names,
                    int count, uint32_t *slot)
{
    for (int i = 0; i < count; i++)
        slot[i] = 0;
    if (sl__jtok_members(&p->toks, obj, m))
        return nomem(p);
    for (uint32_t i = 0; i < m->n; i++) {
        const sl_jtok *k = &p->toks.v[m->v[i].key];
        const char *ks = p->toks.src + k->start + 1;
        size_t kn = k->len - 2;
        for (int j = 0; j < count; j++) {
            if (k->esc ? sl__jtok_str_is(&p->toks, m->v[i].key, names[j].s, names[j].n)
                       : kn == names[j].n && !memcmp(ks, names[j].s, kn)) {
                slot[j] = m->v[i].val;
                m->v[i].val = 0;
                break;
            }
        }
    }
    return 0;
}

/* An integer member, or -1 (as sl__json_int with -1). */
static long int_member(sl_openai_parser *p, uint32_t obj, const char *key)
{
    uint32_t i = sl__jtok_get(&p->toks, obj, key, strlen(key));
    return tok_type(p, i) == SL_JTOK_INT ? (long)sl__jtok_int(&p->toks, i) : -1;
}

static json_int_t index_of(sl_openai_parser *p, uint32_t obj, size_t pos)
{
    uint32_t i = GET(obj, "index");
    return tok_type(p, i) == SL_JTOK_INT ? sl__jtok_int(&p->toks, i) : (json_int_t)pos;
}

/* A string of this chunk that a template may let differ. */
static void add_hole(sl_openai_parser *p, uint32_t tok, int kind, int choice)
{
    if (!p->reading_ok)
        return;
    if (p->nholes == MAX_HOLES) {
        p->reading_ok = 0;
        return;
    }
    p->holes[p->nholes++] = (hole){p->toks.v[tok].start, p->toks.v[tok].len, kind, choice};
}

static int text_delta(sl_openai_parser *p, sl_delta_kind kind, int choice, sl_buf *acc, uint32_t s)
{
    sl_str t;
    add_hole(p, s, (int)kind, choice);
    int rc = tok_str(p, s, SCRATCH_TEXT, &t);
    if (rc || !t.len)
        return rc;
    if ((rc = grow(p, acc, t.ptr, t.len)))
        return rc;
    sl_delta d = {.kind = kind, .choice = choice, .text = t};
    return emit(p, &d);
}

static int tool_deltas(sl_openai_parser *p, choice_acc *c, int choice, uint32_t calls)
{
    size_t pos = 0;
    for (uint32_t tc = calls + 1; tc < p->toks.v[calls].next; tc = p->toks.v[tc].next, pos++) {
        if (tok_type(p, tc) != SL_JTOK_OBJECT)
            return fail(p, SL_EPROTO, "%s", "stream chunk: tool_calls entry is not an object");
        json_int_t idx = index_of(p, tc, pos);
        tool_acc *t = get_tool(c, idx);
        if (!t)
            return fail(p, SL_EPROTO, "%s", "stream chunk: tool call index out of range");
        sl_delta d = {.kind = SL_DELTA_TOOL_CALL, .choice = choice, .tool_index = (int)idx};
        uint32_t id = GET(tc, "id");
        uint32_t type = GET(tc, "type");
        uint32_t fn = GET(tc, "function");
        uint32_t name = GET(fn, "name");
        uint32_t args = GET(fn, "arguments");
        sl_str s;
        int rc = 0;
        /* id and name are reported with the piece that brings them, once */
        if (tok_type(p, id) == SL_JTOK_STRING && !t->id.len) {
            if ((rc = tok_str(p, id, SCRATCH_TEXT, &s)))
                return rc;
            if (s.len) {
                if (sl__buf_append(&t->id, s.ptr, s.len))
                    return fail(p, SL_ELIMIT, "%s", "stream chunk: tool call id too long");
                d.tool_id = (sl_str){t->id.data, t->id.len};
            }
        }
        if (tok_type(p, type) == SL_JTOK_STRING && !t->type.len) {
            if ((rc = tok_str(p, type, SCRATCH_TEXT, &s)))
                return rc;
            sl__buf_append(&t->type, s.ptr, s.len);
        }
        if (tok_type(p, name) == SL_JTOK_STRING) {
            if ((rc = tok_str(p, name, SCRATCH_NAME, &s)))
                return rc;
            if (s.len && !(t->name.len == s.len && !memcmp(t->name.data, s.ptr, s.len))) {
                if (sl__buf_append(&t->name, s.ptr, s.len))
                    return fail(p, SL_ELIMIT, "%s", "stream chunk: tool name too long");
                d.tool_name = s;
            }
        }
        if (tok_type(p, args) == SL_JTOK_STRING) {
            if ((rc = tok_str(p, args, SCRATCH_ARGS, &s)))
                return rc;
            if ((rc = grow(p, &t->args, s.ptr, s.len)))
                return rc;
            d.text = s;
        }
        if (d.text.len || d.tool_id.len || d.tool_name.len) {
            rc = emit(p, &d);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int chat_delta(sl_openai_parser *p, choice_acc *c, int ci, uint32_t delta)
{
    enum { ROLE, CONTENT, REASONING_CONTENT, REASONING, TOOL_CALLS, NKNOWN };
    static const known_name known[NKNOWN] = {NAME("role"), NAME("content"),
                                             NAME("reasoning_content"), NAME("reasoning"),
                                             NAME("tool_calls")};
    uint32_t slot[NKNOWN];
    sl_jmembers *m = &p->mdelta;
    int rc = classify(p, delta, m, known, NKNOWN, slot);
    if (rc)
        return rc;
    sl_str s;
    if (tok_type(p, slot[ROLE]) == SL_JTOK_STRING && !c->role.len) {
        if ((rc = tok_str(p, slot[ROLE], SCRATCH_TEXT, &s)))
            return rc;
        sl__buf_append(&c->role, s.ptr, s.len);
    }
    /* Some providers send reasoning under both names: follow the first one seen. */
    const char *rk = c->reasoning_key;
    if (!rk) {
        if (tok_type(p, slot[REASONING_CONTENT]) == SL_JTOK_STRING)
            rk = "reasoning_content";
        else if (tok_type(p, slot[REASONING]) == SL_JTOK_STRING)
            rk = "reasoning";
    }
    uint32_t r = !rk ? 0 : strcmp(rk, "reasoning") ? slot[REASONING_CONTENT] : slot[REASONING];
    if (tok_type(p, r) == SL_JTOK_STRING) {
        c->reasoning_key = rk;
        if ((rc = text_delta(p, SL_DELTA_REASONING, ci, &c->reasoning, r)))
            return rc;
    }
    if (tok_type(p, slot[CONTENT]) == SL_JTOK_STRING) {
        c->has_content = 1;
        if ((rc = text_delta(p, SL_DELTA_CONTENT, ci, &c->content, slot[CONTENT])))
            return rc;
    }
    uint32_t calls = slot[TOOL_CALLS];
    if (tok_type(p, calls) == SL_JTOK_ARRAY) {
        p->reading_ok = 0; /* tool pieces are not read as holes */
        if ((rc = tool_deltas(p, c, ci, calls)))
            return rc;
    }
    for (uint32_t i = 0; i < m->n; i++) {
        uint32_t k = m->v[i].key, v = m->v[i].val;
        if (!v || tok_type(p, v) == SL_JTOK_NULL)
            continue;      /* a known name, or null */
        p->reading_ok = 0; /* strings here are concatenated: reading it again would not do */
        const char *key;
        if ((rc = tok_key(p, k, &key)))
            return rc;
        if (tok_type(p, v) == SL_JTOK_STRING) {
            str_field *f = get_sx(c, key);
            if (!f)
                return fail(p, SL_ELIMIT, "%s", "stream chunk: too many message fields");
            if ((rc = tok_str(p, v, SCRATCH_ARGS, &s)) || (rc = grow(p, &f->val, s.ptr, s.len)))
                return rc;
        } else {
            if (!c->mx && !(c->mx = json_object()))
                return nomem(p);
            if (json_object_size(c->mx) >= SL_OPENAI_MAX_EXTRA_FIELDS &&
                !json_object_get(c->mx, key))
                return fail(p, SL_ELIMIT, "%s", "stream chunk: too many message fields");
            json_t *jv = tok_json(p, v);
            if (!jv)
                return SL_ENOMEM;
            json_object_set_new(c->mx, key, jv);
        }
    }
    return 0;
}

static int keep_extra(sl_openai_parser *p, json_t **obj, uint32_t k, uint32_t v)
{
    const char *key;
    int rc = tok_key(p, k, &key);
    if (rc)
        return rc;
    if (!*obj && !(*obj = json_object()))
        return nomem(p);
    if (json_object_size(*obj) >= SL_OPENAI_MAX_EXTRA_FIELDS && !json_object_get(*obj, key))
        return fail(p, SL_ELIMIT, "%s", "stream chunk: too many fields");
    json_t *jv = tok_json(p, v);
    if (!jv)
        return SL_ENOMEM;
    set_or_keep(*obj, key, jv);
    json_decref(jv);
    return 0;
}

/* Whether a value token is written back exactly as it is: a string without escapes, an
 * integer but "-0", a literal (sl__jtok_write would write the same bytes). */
static int verbatim(const sl_openai_parser *p, const sl_jtok *v)
{
    const char *t = p->toks.src + v->start;
    switch (v->type) {
    case SL_JTOK_STRING:
        return !v->esc;
    case SL_JTOK_INT:
        return !(v->len == 2 && t[0] == '-' && t[1] == '0');
    case SL_JTOK_NULL:
    case SL_JTOK_TRUE:
    case SL_JTOK_FALSE:
        return 1;
    }
    return 0;
}

/* headtext without the bytes no field uses. */
static int compact_head(sl_openai_parser *p)
{
    sl_buf n;
    sl__buf_init(&n, 0);
    if (sl__buf_reserve(&n, p->headtext.len - p->headwaste))
        return nomem(p);
    for (int i = 0; i < p->nhead; i++) {
        head_field *f = &p->head[i];
        size_t k = n.len;
        sl__buf_append(&n, p->headtext.data + f->key, f->keylen + 1);
        size_t v = n.len;
        sl__buf_append(&n, p->headtext.data + f->val, f->vallen);
        f->key = k;
        f->val = v;
    }
    sl__buf_free(&p->headtext);
    p->headtext = n;
    p->headwaste = 0;
    return 0;
}

/* A new value text for field f: in place if it fits, else at the end. */
static int set_head(sl_openai_parser *p, head_field *f, const char *text, size_t len)
{
    if (len <= f->vallen) {
        memcpy(p->headtext.data + f->val, text, len);
        p->headwaste += f->vallen - len;
    } else {
        size_t at = p->headtext.len;
        if (sl__buf_append(&p->headtext, text, len))
            return nomem(p);
        p->headwaste += f->vallen;
        f->val = at;
    }
    f->vallen = len;
    if (p->headwaste > 4096 && p->headwaste > p->headtext.len / 2)
        return compact_head(p);
    return 0;
}

/* A top-level field: its last non-null value is kept as JSON text. Chunks name their
 * fields in the same order, so the search starts where the last one was found. */
static int keep_head(sl_openai_parser *p, uint32_t k, uint32_t v, uint32_t *hint)
{
    const sl_jtok *vt = &p->toks.v[v];
    const char *text = p->toks.src + vt->start;
    head_field *f = NULL;
    for (int n = 0; n < p->nhead && !f; n++) {
        int i = (int)((*hint + (uint32_t)n) % (uint32_t)p->nhead);
        if (sl__jtok_str_is(&p->toks, k, p->headtext.data + p->head[i].key, p->head[i].keylen)) {
            f = &p->head[i];
            *hint = (uint32_t)i + 1;
        }
    }
    if (!f) {
        if (p->nhead >= SL_OPENAI_MAX_EXTRA_FIELDS)
            return fail(p, SL_ELIMIT, "%s", "stream chunk: too many fields");
        const char *key;
        int rc = tok_key(p, k, &key);
        if (rc)
            return rc;
        if (p->nhead == p->headcap) {
            int cap = p->headcap ? p->headcap * 2 : 8;
            head_field *n = realloc(p->head, (size_t)cap * sizeof *n);
            if (!n)
                return nomem(p);
            p->head = n;
            p->headcap = cap;
        }
        size_t klen = strlen(key), at = p->headtext.len;
        if (sl__buf_append(&p->headtext, key, klen + 1))
            return nomem(p);
        f = &p->head[p->nhead];
        *f = (head_field){.key = at, .keylen = klen, .val = p->headtext.len, .order = -1};
        for (int i = 0; i < NORDER; i++) {
            if (!strcmp(key, head_order[i])) {
                f->order = i;
                p->head_at[i] = p->nhead;
            }
        }
        p->nhead++;
    } else if (vt->type == SL_JTOK_NULL) {
        return 0; /* null does not erase what an earlier chunk said */
    } else if (f->vallen == vt->len && !memcmp(p->headtext.data + f->val, text, vt->len)) {
        return 0;
    }
    f->verbatim = verbatim(p, vt);
    return set_head(p, f, text, vt->len);
}

static void usage_from(sl_usage *u, const json_t *usage)
{
    u->prompt_tokens = (long)sl__json_int(usage, "prompt_tokens", -1);
    u->completion_tokens = (long)sl__json_int(usage, "completion_tokens", -1);
    u->total_tokens = (long)sl__json_int(usage, "total_tokens", -1);
}

/* An {"error": ...} object inside a 2xx answer. */
static int provider_error(sl_openai_parser *p, const json_t *err, const char *data, size_t len)
{
    const char *m = error_text(err);
    char msg[400];
    if (m)
        printable(msg, sizeof msg, m, strlen(m));
    else
        sl__openai_error_message(data, len, msg, sizeof msg);
    json_t *code = json_object_get(err, "code");
    if (!json_is_integer(code))
        code = json_object_get(err, "status");
    if (json_is_integer(code) && json_integer_value(code) >= 400 && json_integer_value(code) <= 599)
        p->out.error_status = (int)json_integer_value(code);
    sl__buf_reset(&p->error_body);
    sl__buf_append(&p->error_body, data, len < p->error_body.max ? len : p->error_body.max);
    p->out.error_body = (sl_str){p->error_body.data, p->error_body.len};
    return fail(p, SL_EHTTP, "provider error: %s", msg);
}

/* A chunk's "error" member is not null: read it as jansson would. */
static int chunk_error(sl_openai_parser *p, const char *data, size_t len)
{
    json_t *obj = NULL;
    if (sl__json_parse(data, len, 0, &obj, NULL, 0))
        return nomem(p); /* the tokenizer accepted it: only memory can fail */
    int rc = provider_error(p, json_object_get(obj, "error"), data, len);
    json_decref(obj);
    return rc;
}

static int choice_chunk(sl_openai_parser *p, uint32_t ch, size_t pos)
{
    enum { INDEX, DELTA, FINISH_REASON, LOGPROBS, TEXT, MESSAGE, NKNOWN };
    static const known_name known[NKNOWN] = {NAME("index"),    NAME("delta"), NAME("finish_reason"),
                                             NAME("logprobs"), NAME("text"),  NAME("message")};
    uint32_t slot[NKNOWN];
    int rc;
    if (tok_type(p, ch) != SL_JTOK_OBJECT)
        return fail(p, SL_EPROTO, "%s", "stream chunk: choice is not an object");
    sl_jmembers *m = &p->mchoice;
    if ((rc = classify(p, ch, m, known, NKNOWN, slot)))
        return rc;
    json_int_t idx = tok_type(p, slot[INDEX]) == SL_JTOK_INT ? sl__jtok_int(&p->toks, slot[INDEX])
                                                             : (json_int_t)pos;
    choice_acc *c = get_choice(p, idx);
    if (!c)
        return fail(p, SL_EPROTO, "%s", "stream chunk: choice index out of range");
    if (p->kind == SL_OPENAI_COMPLETIONS) {
        if (tok_type(p, slot[TEXT]) == SL_JTOK_STRING) {
            c->has_content = 1;
            if ((rc = text_delta(p, SL_DELTA_CONTENT, (int)idx, &c->content, slot[TEXT])))
                return rc;
        }
    } else if (tok_type(p, slot[DELTA]) == SL_JTOK_OBJECT) {
        if ((rc = chat_delta(p, c, (int)idx, slot[DELTA])))
            return rc;
    }
    uint32_t fr = slot[FINISH_REASON];
    if (fr && tok_type(p, fr) != SL_JTOK_NULL) {
        sl__buf_reset(&c->finish_reason);
        c->fr_verbatim = verbatim(p, &p->toks.v[fr]);
        if (sl__buf_append(&c->finish_reason, p->toks.src + p->toks.v[fr].start, p->toks.v[fr].len))
            return nomem(p);
        c->has_finish_reason = 1;
    }
    uint32_t lp = slot[LOGPROBS];
    if (lp && tok_type(p, lp) != SL_JTOK_NULL) {
        p->reading_ok = 0; /* logprobs are concatenated */
        json_t *v = tok_json(p, lp);
        rc = v ? merge_logprobs(c, v) : -1;
        json_decref(v);
        if (rc)
            return nomem(p);
    }
    for (uint32_t i = 0; i < m->n; i++) {
        if (!m->v[i].val)
            continue;
        p->reading_ok = 0; /* kept as jansson values: not worth a template */
        if ((rc = keep_extra(p, &c->extra, m->v[i].key, m->v[i].val)))
            return rc;
    }
    return 0;
}

static int chunk(sl_openai_parser *p, const char *data, size_t len)
{
    enum { CHOICES, USAGE, ERROR, OBFUSCATION, NKNOWN };
    static const known_name known[NKNOWN] = {NAME("choices"), NAME("usage"), NAME("error"),
                                             NAME("obfuscation")};
    uint32_t slot[NKNOWN];
    sl_jmembers *m = &p->mtop;
    int rc = classify(p, 0, m, known, NKNOWN, slot);
    if (rc)
        return rc;
    if (slot[ERROR] && tok_type(p, slot[ERROR]) != SL_JTOK_NULL)
        return chunk_error(p, data, len);
    if (tok_type(p, slot[OBFUSCATION]) == SL_JTOK_STRING)
        add_hole(p, slot[OBFUSCATION], HOLE_IGNORE, 0); /* random padding, never read */
    for (uint32_t i = 0, hint = 0; i < m->n; i++)
        if (m->v[i].val && (rc = keep_head(p, m->v[i].key, m->v[i].val, &hint)))
            return rc;
    uint32_t usage = slot[USAGE];
    if (tok_type(p, usage) == SL_JTOK_OBJECT) {
        sl__buf_reset(&p->usage);
        if (sl__buf_append(&p->usage, p->toks.src + p->toks.v[usage].start, p->toks.v[usage].len))
            return nomem(p);
        p->has_usage = 1;
        p->usage_n.prompt_tokens = int_member(p, usage, "prompt_tokens");
        p->usage_n.completion_tokens = int_member(p, usage, "completion_tokens");
        p->usage_n.total_tokens = int_member(p, usage, "total_tokens");
    }
    uint32_t choices = slot[CHOICES];
    int ct = tok_type(p, choices);
    if (ct == SL_JTOK_ARRAY) {
        size_t pos = 0;
        for (uint32_t ch = choices + 1; ch < p->toks.v[choices].next; ch = p->toks.v[ch].next)
            if ((rc = choice_chunk(p, ch, pos++)))
                return rc;
    } else if (choices && ct != SL_JTOK_NULL) {
        return fail(p, SL_EPROTO, "%s", "stream chunk: choices is not an array");
    }
    return 0;
}

/* ---- chunks like the last one -------------------------------------------------------
 * A provider's chunks are alike: the same id, model, fields and order, with only the text
 * of the delta changing. When reading a chunk did nothing but take the texts of some
 * strings (the holes: content, reasoning, obfuscation) and set what any chunk repeating it
 * sets to the same (the top-level fields, usage, role, finish_reason), the chunk is kept.
 * A next chunk that has its bytes outside the holes, and a valid JSON string in each hole,
 * is valid JSON exactly when the kept one was, and reading it would only take the holes'
 * new texts, in the same order: that is all that is done for it. Anything else (tool
 * calls, logprobs, other fields, another layout) is read in full and makes a new template
 * or none. */

static void keep_template(sl_openai_parser *p, const char *d, size_t n)
{
    sl__buf_reset(&p->tmpl);
    if (n >= UINT32_MAX || sl__buf_append(&p->tmpl, d, n))
        return;
    /* holes by place: a few, insertion sort */
    for (int i = 0; i < p->nholes; i++) {
        int j = i;
        while (j > 0 && p->holes[p->by_place[j - 1]].start > p->holes[i].start) {
            p->by_place[j] = p->by_place[j - 1];
            j--;
        }
        p->by_place[j] = (uint8_t)i;
    }
    p->tmpl_valid = 1;
}

/* Read (d, n) through the template if it fits it (*hit 1). Returns 0 or the error or
 * callback value a full read would have returned. */
static int like_last(sl_openai_parser *p, const char *d, size_t n, int *hit)
{
    const char *t = p->tmpl.data;
    size_t tn = p->tmpl.len, pt = 0, pd = 0;
    uint32_t at[MAX_HOLES], len[MAX_HOLES];
    int esc[MAX_HOLES];
    *hit = 0;
    if (n >= UINT32_MAX)
        return 0;
    for (int j = 0; j < p->nholes; j++) {
        int h = p->by_place[j];
        size_t seg = p->holes[h].start + 1 - pt; /* up to its opening quote, included */
        if (n - pd < seg || memcmp(d + pd, t + pt, seg))
            return 0;
        pd += seg;
        size_t end = sl__jtok_scan_string(d, n, pd - 1, &esc[h]);
        if (!end)
            return 0;
        at[h] = (uint32_t)(pd - 1);
        len[h] = (uint32_t)(end - (pd - 1));
        pd = end - 1; /* the closing quotes compare equal */
        pt = p->holes[h].start + p->holes[h].len - 1;
    }
    if (n - pd != tn - pt || memcmp(d + pd, t + pt, tn - pt))
        return 0;
    *hit = 1;
    p->shortcuts++;
    for (int h = 0; h < p->nholes; h++) {
        const hole *ho = &p->holes[h];
        if (ho->kind == HOLE_IGNORE)
            continue;
        sl_str s = {d + at[h] + 1, len[h] - 2};
        if (esc[h]) {
            sl_buf *sc = &p->scratch[SCRATCH_TEXT];
            sl__buf_reset(sc);
            if (sl__buf_reserve(sc, s.len))
                return nomem(p);
            sc->len = sl__jtok_unescape(s.ptr, s.len, sc->data);
            sc->data[sc->len] = '\0';
            s = (sl_str){sc->data, sc->len};
        }
        if (!s.len)
            continue;
        choice_acc *c = &p->choices[ho->choice];
        int rc =
            grow(p, ho->kind == SL_DELTA_REASONING ? &c->reasoning : &c->content, s.ptr, s.len);
        if (rc)
            return rc;
        sl_delta dl = {.kind = (sl_delta_kind)ho->kind, .choice = ho->choice, .text = s};
        if ((rc = emit(p, &dl)))
            return rc;
    }
    return 0;
}

static int on_event(void *user, const sl_sse_event *ev)
{
    sl_openai_parser *p = user;
    if (p->saw_done)
        return 0; /* nothing counts after [DONE] */
    const char *d = ev->data.ptr;
    size_t n = ev->data.len;
    int is_error = ev->type.len == 5 && !memcmp(ev->type.ptr, "error", 5);
    if (!is_error && !(ev->type.len == 7 && !memcmp(ev->type.ptr, "message", 7)))
        return 0; /* "event: ping" and the like */
    while (n && (*d == ' ' || *d == '\t' || *d == '\r' || *d == '\n'))
        d++, n--;
    while (n && (d[n - 1] == ' ' || d[n - 1] == '\t' || d[n - 1] == '\r' || d[n - 1] == '\n'))
        n--;
    if (!n)
        return 0;
    if (!is_error && n == 6 && !memcmp(d, "[DONE]", 6)) {
        p->saw_done = p->out.saw_done = 1;
        return 0;
    }
    int rc, hit;
    if (!is_error && p->tmpl_valid && ((rc = like_last(p, d, n, &hit)) || hit))
        return rc;
    p->tmpl_valid = 0;
    json_t *obj = NULL;
    char err[160];
    if (is_error) {
        /* "event: error": whatever the data says is the provider's message */
        sl__json_parse(d, n, 0, &obj, NULL, 0);
        json_t *e = json_is_object(obj) ? json_object_get(obj, "error") : NULL;
        rc = provider_error(p, e ? e : obj, d, n);
        json_decref(obj);
        return rc;
    }
    rc = sl__jtok_parse(&p->toks, d, n, 0);
    if (rc == SL_ENOMEM)
        return nomem(p);
    if (rc) {
        /* jansson rejects the same texts: its words make the message */
        if (sl__json_parse(d, n, 0, &obj, err, sizeof err) == 0)
            snprintf(err, sizeof err, "%s", "unreadable JSON");
        json_decref(obj);
        char what[240];
        char head[41];
        printable(head, sizeof head, d, n);
        snprintf(what, sizeof what, "%s in data \"%s\"", err, head);
        return fail(p, SL_EPROTO, "invalid JSON in stream event: %s", what);
    }
    if (p->toks.v[0].type != SL_JTOK_OBJECT)
        return fail(p, SL_EPROTO, "%s", "stream event is not a JSON object");
    p->reading_ok = p->shortcut;
    p->nholes = 0;
    rc = chunk(p, d, n);
    if (!rc && p->reading_ok)
        keep_template(p, d, n);
    return rc;
}

/* Ask for what reading a chunk will touch, all at once rather than one miss after the
 * other: the rest of the parser's hot part, the template and choice 0. */
static void prefetch_hot(const sl_openai_parser *p)
{
    const char *h = (const char *)p;
    for (size_t at = 64; at < offsetof(sl_openai_parser, kind); at += 64)
        __builtin_prefetch(h + at); /* the hot fields and the SSE parser */
    if (p->tmpl_valid)
        for (size_t i = 0; i < p->tmpl.len; i += 64)
            __builtin_prefetch(p->tmpl.data + i);
    if (p->choices) {
        __builtin_prefetch(p->choices);
        __builtin_prefetch((const char *)p->choices + 64);
    }
    if (p->tail)
        __builtin_prefetch(p->tail);
}

int sl__openai_feed(sl_openai_parser *p, const char *data, size_t len)
{
    prefetch_hot(p);
    if (p->failed)
        return p->out.error ? p->out.error : SL_EPROTO;
    if (p->cb_rc)
        return p->cb_rc;
    int rc = sl__sse_feed(&p->sse, data, len);
    if (rc && !p->out.error && !p->cb_rc) {
        char cap[32];
        snprintf(cap, sizeof cap, "%zu", p->max_event);
        return fail(p, rc, "stream event or line over %s bytes", cap);
    }
    return rc;
}

/* ---- the final object ----------------------------------------------------------------
 * Written straight into the body, in the order and the form the jansson object it stands
 * for would have under sl__json_write: id, object, created, model, system_fingerprint,
 * choices, usage, then the other top-level fields as they first came. */

static int put(sl_buf *b, const char *s, size_t n)
{
    return sl__buf_append(b, s, n);
}
#define PUT(b, lit) put((b), (lit), sizeof(lit) - 1)

static int put_str(sl_buf *b, const char *s, size_t n)
{
    return sl__json_write_string(b, s ? s : "", n);
}

static int put_buf(sl_buf *b, const sl_buf *v)
{
    return put_str(b, v->data, v->len);
}

/* Text kept as JSON that is written back as it is. */
static int put_buf_raw(sl_buf *b, const sl_buf *v)
{
    return put(b, v->data, v->len);
}

/* A name that needs no escape, given quoted and with its colon (without the comma for
 * the first member). */
static int put_lit_key(sl_buf *b, int *first, const char *quoted, size_t n)
{
    int rc = *first ? 0 : PUT(b, ",");
    *first = 0;
    return rc ? rc : put(b, quoted, n);
}
#define PUT_KEY(b, first, lit) put_lit_key((b), (first), "\"" lit "\":", sizeof(lit) + 2)

/* ",\"key\":" (without the comma for the first member). */
static int put_key(sl_buf *b, int *first, const char *key)
{
    int rc = *first ? 0 : PUT(b, ",");
    *first = 0;
    if (!rc)
        rc = put_str(b, key, strlen(key));
    return rc ? rc : PUT(b, ":");
}

/* A value kept as JSON text, written as jansson would write it. */
static int put_textn(sl_openai_parser *p, const char *text, size_t len)
{
    int rc = sl__jtok_parse(&p->toks, text ? text : "", len, 0);
    return rc ? rc : sl__jtok_write(&p->body, &p->toks, 0);
}

static int put_text(sl_openai_parser *p, const sl_buf *text)
{
    return put_textn(p, text->data, text->len);
}

/* A top-level field's value. */
static int put_head(sl_openai_parser *p, const head_field *f)
{
    const char *v = p->headtext.data + f->val;
    return f->verbatim ? put(&p->body, v, f->vallen) : put_textn(p, v, f->vallen);
}

static int put_json(sl_buf *b, const json_t *v)
{
    return v ? sl__json_write(b, v) : PUT(b, "null");
}

/* The members of a jansson object, but those named in skip (count of them). */
static int put_members(sl_buf *b, const json_t *obj, const str_field *skip, int count)
{
    const char *k;
    json_t *v;
    int rc;
    json_object_foreach((json_t *)obj, k, v)
    {
        int dup = 0;
        for (int i = 0; i < count && !dup; i++)
            dup = !strcmp(skip[i].key, k);
        if (dup)
            continue;
        int first = 0;
        if ((rc = put_key(b, &first, k)) || (rc = put_json(b, v)))
            return rc;
    }
    return 0;
}

static int put_tool(sl_buf *b, const tool_acc *t)
{
    int rc = PUT(b, "{\"id\":");
    if (!rc)
        rc = put_buf(b, &t->id);
    if (!rc)
        rc = PUT(b, ",\"type\":");
    if (!rc)
        rc = t->type.len ? put_buf(b, &t->type) : PUT(b, "\"function\"");
    if (!rc)
        rc = PUT(b, ",\"function\":{\"name\":");
    if (!rc)
        rc = put_buf(b, &t->name);
    if (!rc)
        rc = PUT(b, ",\"arguments\":");
    if (!rc)
        rc = put_buf(b, &t->args);
    return rc ? rc : PUT(b, "}}");
}

static int put_message(sl_buf *b, const choice_acc *c)
{
    int rc = PUT(b, "{\"role\":");
    if (!rc)
        rc = c->role.len ? put_buf(b, &c->role) : PUT(b, "\"assistant\"");
    if (!rc)
        rc = PUT(b, ",\"content\":");
    if (!rc)
        rc = c->has_content ? put_buf(b, &c->content) : PUT(b, "null");
    int first = 0;
    if (!rc && c->reasoning_key && !(rc = put_key(b, &first, c->reasoning_key)))
        rc = put_buf(b, &c->reasoning);
    if (!rc && c->ntools) {
        rc = PUT(b, ",\"tool_calls\":[");
        int n = 0;
        for (int i = 0; !rc && i < c->ntools; i++) {
            if (!c->tools[i].present)
                continue;
            if (n++)
                rc = PUT(b, ",");
            if (!rc)
                rc = put_tool(b, &c->tools[i]);
        }
        if (!rc)
            rc = PUT(b, "]");
    }
    for (int i = 0; !rc && i < c->nsx; i++)
        if (!(rc = put_key(b, &first, c->sx[i].key)))
            rc = put_buf(b, &c->sx[i].val);
    /* a name that was a string in some chunk is there already */
    if (!rc && c->mx)
        rc = put_members(b, c->mx, c->sx, c->nsx);
    return rc ? rc : PUT(b, "}");
}

static int put_choice(sl_openai_parser *p, const choice_acc *c, int idx)
{
    sl_buf *b = &p->body;
    int rc = PUT(b, "{\"index\":");
    if (!rc)
        rc = sl__buf_append_int(b, idx);
    if (!rc)
        rc = PUT(b, ",");
    if (!rc && p->kind == SL_OPENAI_COMPLETIONS) {
        if (!(rc = PUT(b, "\"text\":")))
            rc = put_buf(b, &c->content);
    } else if (!rc) {
        if (!(rc = PUT(b, "\"message\":")))
            rc = put_message(b, c);
    }
    if (!rc)
        rc = PUT(b, ",\"logprobs\":");
    if (!rc)
        rc = put_json(b, c->logprobs);
    if (!rc)
        rc = PUT(b, ",\"finish_reason\":");
    if (!rc)
        rc = !c->has_finish_reason ? PUT(b, "null")
             : c->fr_verbatim      ? put_buf_raw(b, &c->finish_reason)
                                   : put_text(p, &c->finish_reason);
    if (!rc && c->extra)
        rc = put_members(b, c->extra, NULL, 0);
    return rc ? rc : PUT(b, "}");
}

/* The field head_order[i], or NULL. */
static const head_field *head_field_at(const sl_openai_parser *p, int i)
{
    return p->head_at[i] < 0 ? NULL : &p->head[p->head_at[i]];
}

/* The "object" of the whole answer: what the chunks say, unless they name a chunk. */
static int put_object_type(sl_openai_parser *p)
{
    const char *whole = p->kind == SL_OPENAI_COMPLETIONS ? "text_completion" : "chat.completion";
    const head_field *f = head_field_at(p, 1);
    sl_str s = {whole, strlen(whole)};
    const char *v = f ? p->headtext.data + f->val : NULL;
    if (f && f->verbatim && v[0] == '"') {
        /* a string without escapes: its text is between the quotes, without NUL */
        s = (sl_str){v + 1, f->vallen - 2};
        if ((s.len == 21 && !memcmp(s.ptr, "chat.completion.chunk", 21)) ||
            (s.len == 15 && !memcmp(s.ptr, "text_completion", 15)))
            s = (sl_str){whole, strlen(whole)};
    } else if (f) {
        int rc = sl__jtok_parse(&p->toks, v, f->vallen, 0);
        if (!rc && p->toks.v[0].type == SL_JTOK_STRING)
            rc = sl__jtok_str(&p->toks, 0, &p->scratch[SCRATCH_TEXT], &s);
        if (rc)
            return rc;
        if (p->toks.v[0].type != SL_JTOK_STRING) {
            s = (sl_str){whole, strlen(whole)};
        } else {
            /* read as a C string, the way it was compared and kept before */
            const char *nul = memchr(s.ptr, '\0', s.len);
            if (nul)
                s.len = (size_t)(nul - s.ptr);
            if ((s.len == 21 && !memcmp(s.ptr, "chat.completion.chunk", 21)) ||
                (s.len == 15 && !memcmp(s.ptr, "text_completion", 15)))
                s = (sl_str){whole, strlen(whole)};
        }
    }
    return put_str(&p->body, s.ptr, s.len);
}

static int write_body(sl_openai_parser *p)
{
    sl_buf *b = &p->body;
    int first = 1;
    /* about the size it will have: the text and the fields around it */
    int rc = sl__buf_reserve(b, p->assembled + 512);
    if (!rc)
        rc = PUT(b, "{");
    for (int i = 0; !rc && i < NORDER; i++) {
        const head_field *f = head_field_at(p, i);
        if (i == 1) {
            if (!(rc = PUT_KEY(b, &first, "object")))
                rc = put_object_type(p);
        } else if (f && !(rc = put_lit_key(b, &first, head_order_q[i], strlen(head_order_q[i])))) {
            rc = put_head(p, f);
        }
    }
    if (!rc)
        rc = PUT_KEY(b, &first, "choices");
    if (!rc)
        rc = PUT(b, "[");
    for (int i = 0, n = 0; !rc && i < p->nchoices; i++) {
        if (!p->choices[i].present)
            continue;
        if (n++)
            rc = PUT(b, ",");
        if (!rc)
            rc = put_choice(p, &p->choices[i], i);
    }
    if (!rc)
        rc = PUT(b, "]");
    if (!rc && p->has_usage && !(rc = PUT_KEY(b, &first, "usage")))
        rc = put_text(p, &p->usage);
    for (int i = 0; !rc && i < p->nhead; i++) {
        const head_field *f = &p->head[i];
        if (f->order < 0 && !(rc = put_key(b, &first, p->headtext.data + f->key)))
            rc = put_head(p, f);
    }
    if (!rc)
        rc = PUT(b, "}");
    return rc ? nomem(p) : 0;
}

/* The result fields for sl_openai_out, once the body is written. */
static int fill_out(sl_openai_parser *p)
{
    sl_openai_out *o = &p->out;
    o->body = (sl_str){p->body.data, p->body.len};
    if (p->has_usage)
        o->usage = p->usage_n;
    if (!p->nchoices || !p->choices[0].present)
        return 0;
    choice_acc *c = &p->choices[0];
    o->text = (sl_str){c->content.data, c->content.len};
    o->reasoning = (sl_str){c->reasoning.data, c->reasoning.len};
    if (c->has_finish_reason && c->fr_verbatim) {
        /* a string without escapes is its text between the quotes; else not a string */
        const sl_buf *f = &c->finish_reason;
        if (f->data[0] == '"') {
            if (sl__buf_append(&p->finish_out, f->data + 1, f->len - 2))
                return nomem(p);
            o->finish_reason = p->finish_out.data;
        }
    } else if (c->has_finish_reason) {
        /* a string one, as a C string */
        sl_str s;
        if (sl__jtok_parse(&p->toks, c->finish_reason.data, c->finish_reason.len, 0))
            return nomem(p);
        if (p->toks.v[0].type == SL_JTOK_STRING) {
            if (sl__jtok_str(&p->toks, 0, &p->scratch[SCRATCH_TEXT], &s) ||
                sl__buf_append(&p->finish_out, s.ptr, s.len))
                return nomem(p);
            o->finish_reason = p->finish_out.data;
        }
    }
    return 0;
}

int sl__openai_finish(sl_openai_parser *p)
{
    if (p->failed)
        return p->out.error;
    if (p->cb_rc)
        return p->cb_rc;
    sl__sse_finish(&p->sse);
    int finished = 0;
    for (int i = 0; i < p->nchoices; i++)
        finished |= p->choices[i].has_finish_reason;
    if (!p->out.saw_done && !finished)
        return fail(p, SL_EPROTO, "%s", "stream ended before [DONE]");
    int rc = write_body(p);
    return rc ? rc : fill_out(p);
}

/* ---- non-streamed answers ------------------------------------------------------------ */

static int body_deltas(sl_openai_parser *p, json_t *choices)
{
    int rc;
    for (size_t i = 0; i < json_array_size(choices); i++) {
        json_t *ch = json_array_get(choices, i);
        json_t *ji = json_object_get(ch, "index");
        int idx = (int)(json_is_integer(ji) ? json_integer_value(ji) : (json_int_t)i);
        if (p->kind == SL_OPENAI_COMPLETIONS) {
            json_t *t = json_object_get(ch, "text");
            if (json_is_string(t) && json_string_length(t)) {
                sl_delta d = {.kind = SL_DELTA_CONTENT,
                              .choice = idx,
                              .text = {json_string_value(t), json_string_length(t)}};
                if ((rc = emit(p, &d)))
                    return rc;
            }
            continue;
        }
        json_t *m = json_object_get(ch, "message");
        json_t *r = json_object_get(m, "reasoning_content");
        if (!json_is_string(r))
            r = json_object_get(m, "reasoning");
        json_t *c = json_object_get(m, "content");
        sl_delta d = {.choice = idx};
        if (json_is_string(r) && json_string_length(r)) {
            d.kind = SL_DELTA_REASONING;
            d.text = (sl_str){json_string_value(r), json_string_length(r)};
            if ((rc = emit(p, &d)))
                return rc;
        }
        if (json_is_string(c) && json_string_length(c)) {
            d.kind = SL_DELTA_CONTENT;
            d.text = (sl_str){json_string_value(c), json_string_length(c)};
            if ((rc = emit(p, &d)))
                return rc;
        }
        json_t *calls = json_object_get(m, "tool_calls");
        for (size_t j = 0; j < json_array_size(calls); j++) {
            json_t *tc = json_array_get(calls, j);
            json_t *fn = json_object_get(tc, "function");
            const char *id = sl__json_str(tc, "id");
            const char *name = sl__json_str(fn, "name");
            json_t *args = json_object_get(fn, "arguments");
            sl_delta t = {.kind = SL_DELTA_TOOL_CALL, .choice = idx, .tool_index = (int)j};
            t.tool_id = (sl_str){id ? id : "", id ? strlen(id) : 0};
            t.tool_name = (sl_str){name ? name : "", name ? strlen(name) : 0};
            if (json_is_string(args))
                t.text = (sl_str){json_string_value(args), json_string_length(args)};
            if ((rc = emit(p, &t)))
                return rc;
        }
    }
    return 0;
}

int sl__openai_parse_body(sl_openai_parser *p, const char *body, size_t len)
{
    if (p->failed)
        return p->out.error;
    if (len > p->max_event) {
        char cap[32];
        snprintf(cap, sizeof cap, "%zu", p->max_event);
        return fail(p, SL_ELIMIT, "response body over %s bytes", cap);
    }
    if (sl__buf_append(&p->body, body, len))
        return fail(p, SL_ENOMEM, "%s", "out of memory");
    json_t *v = NULL;
    char err[160];
    if (sl__json_parse(body, len, 0, &v, err, sizeof err))
        return fail(p, SL_EPROTO, "invalid JSON in response: %s", err);
    p->parsed = v;
    if (!json_is_object(v))
        return fail(p, SL_EPROTO, "%s", "response is not a JSON object");
    json_t *e = json_object_get(v, "error");
    if (e && !json_is_null(e))
        return provider_error(p, e, body, len);
    sl_openai_out *o = &p->out;
    o->body = (sl_str){p->body.data, p->body.len};
    usage_from(&o->usage, json_object_get(v, "usage"));
    json_t *choices = json_object_get(v, "choices");
    json_t *c0 = json_array_get(choices, 0);
    if (p->kind == SL_OPENAI_COMPLETIONS) {
        json_t *t = json_object_get(c0, "text");
        if (json_is_string(t))
            o->text = (sl_str){json_string_value(t), json_string_length(t)};
    } else {
        json_t *m = json_object_get(c0, "message");
        json_t *t = json_object_get(m, "content");
        if (json_is_string(t))
            o->text = (sl_str){json_string_value(t), json_string_length(t)};
        t = json_object_get(m, "reasoning_content");
        if (!json_is_string(t))
            t = json_object_get(m, "reasoning");
        if (json_is_string(t))
            o->reasoning = (sl_str){json_string_value(t), json_string_length(t)};
    }
    o->finish_reason = sl__json_str(c0, "finish_reason");
    return body_deltas(p, choices);
}
