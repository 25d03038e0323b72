/* openai.c — the OpenAI-compatible adapter (see openai.h).
 *
 * Streamed text is accumulated in sl_bufs (appending to jansson strings would copy the
 * whole answer at every token) and turned into JSON once, at the end. Everything the
 * provider sends that we do not interpret is kept: top-level fields, choice fields,
 * message fields (strings are concatenated across chunks, other values: last wins). */
#include "llm/openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
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

int sl__openai_build(const char *base_url, const char *api_key, const char *user_agent,
                     const sl_request *req, sl_openai_http *out)
{
    memset(out, 0, sizeof *out);
    if (!base_url || !req || has_crlf(api_key) || has_crlf(user_agent) || has_crlf(base_url))
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
    if (api_key && *api_key) {
        if (!(out->headers[out->nheaders++] =
                  str_printf("Authorization: Bearer %s%s", api_key, "")))
            goto nomem;
    }
    if (!(out->headers[out->nheaders++] = strdup("Content-Type: application/json")))
        goto nomem;
    if (!(out->headers[out->nheaders++] =
              strdup(out->stream ? "Accept: text/event-stream" : "Accept: application/json")))
        goto nomem;
    if (!(out->headers[out->nheaders++] =
              str_printf("User-Agent: %s%s", user_agent ? user_agent : "sluice/" SL_VERSION, "")))
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
    json_t *mx; /* other message fields: last wins */
    json_t *finish_reason;
    json_t *logprobs;
    json_t *extra; /* other choice fields */
} choice_acc;

struct sl_openai_parser {
    sl_openai_kind kind;
    size_t max_event;
    sl_openai_delta_cb on_delta;
    void *user;
    sl_sse_parser sse;
    int failed;
    int cb_rc;     /* non-zero: on_delta stopped us */
    json_t *head;  /* top-level fields other than choices and usage */
    json_t *usage; /* the provider's usage object */
    choice_acc *choices;
    int nchoices;
    size_t assembled; /* bytes of text held */
    sl_buf error_body;
    json_t *parsed; /* non-streamed: the body */
    sl_buf body;
    sl_openai_out out;
};

static void choice_free(choice_acc *c)
{
    sl__buf_free(&c->role);
    sl__buf_free(&c->content);
    sl__buf_free(&c->reasoning);
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
    json_decref(c->finish_reason);
    json_decref(c->logprobs);
    json_decref(c->extra);
}

static int on_event(void *user, const sl_sse_event *ev);

sl_openai_parser *sl__openai_parser_new(sl_openai_kind kind, size_t max_event,
                                        sl_openai_delta_cb on_delta, void *user)
{
    sl_openai_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->kind = kind;
    p->max_event = max_event ? max_event : DEFAULT_MAX_EVENT;
    p->on_delta = on_delta;
    p->user = user;
    p->head = json_object();
    if (!p->head) {
        free(p);
        return NULL;
    }
    sl__sse_init(&p->sse, p->max_event, p->max_event, on_event, p);
    sl__buf_init(&p->error_body, p->max_event);
    sl__buf_init(&p->body, 0);
    p->out.usage.prompt_tokens = -1;
    p->out.usage.completion_tokens = -1;
    p->out.usage.total_tokens = -1;
    return p;
}

void sl__openai_parser_free(sl_openai_parser *p)
{
    if (!p)
        return;
    sl__sse_free(&p->sse);
    json_decref(p->head);
    json_decref(p->usage);
    for (int i = 0; i < p->nchoices; i++)
        choice_free(&p->choices[i]);
    free(p->choices);
    sl__buf_free(&p->error_body);
    json_decref(p->parsed);
    sl__buf_free(&p->body);
    free(p);
}

const sl_openai_out *sl__openai_out(const sl_openai_parser *p)
{
    return &p->out;
}

static int fail(sl_openai_parser *p, int err, const char *fmt, const char *arg)
{
    if (!p->out.error) {
        p->out.error = err;
        snprintf(p->out.message, sizeof p->out.message, fmt, arg);
    }
    p->failed = 1;
    return err;
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
    return sl__buf_append(b, s, n) ? fail(p, SL_ENOMEM, "%s", "out of memory") : 0;
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
    if (idx >= p->nchoices) {
        choice_acc *n = realloc(p->choices, (size_t)(idx + 1) * sizeof *n);
        if (!n)
            return NULL;
        memset(n + p->nchoices, 0, (size_t)(idx + 1 - p->nchoices) * sizeof *n);
        for (json_int_t i = p->nchoices; i <= idx; i++) {
            sl__buf_init(&n[i].role, 64);
            sl__buf_init(&n[i].content, 0);
            sl__buf_init(&n[i].reasoning, 0);
        }
        p->choices = n;
        p->nchoices = (int)idx + 1;
    }
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

static json_int_t index_of(const json_t *obj, size_t pos)
{
    json_t *i = json_object_get(obj, "index");
    return json_is_integer(i) ? json_integer_value(i) : (json_int_t)pos;
}

static int text_delta(sl_openai_parser *p, sl_delta_kind kind, int choice, sl_buf *acc,
                      const json_t *s)
{
    size_t n = json_string_length(s);
    if (!n)
        return 0;
    int rc = grow(p, acc, json_string_value(s), n);
    if (rc)
        return rc;
    sl_delta d = {.kind = kind, .choice = choice, .text = {json_string_value(s), n}};
    return emit(p, &d);
}

static int tool_deltas(sl_openai_parser *p, choice_acc *c, int choice, const json_t *calls)
{
    for (size_t i = 0; i < json_array_size(calls); i++) {
        json_t *tc = json_array_get(calls, i);
        if (!json_is_object(tc))
            return fail(p, SL_EPROTO, "%s", "stream chunk: tool_calls entry is not an object");
        json_int_t idx = index_of(tc, i);
        tool_acc *t = get_tool(c, idx);
        if (!t)
            return fail(p, SL_EPROTO, "%s", "stream chunk: tool call index out of range");
        sl_delta d = {.kind = SL_DELTA_TOOL_CALL, .choice = choice, .tool_index = (int)idx};
        json_t *id = json_object_get(tc, "id");
        json_t *type = json_object_get(tc, "type");
        json_t *fn = json_object_get(tc, "function");
        json_t *name = json_object_get(fn, "name");
        json_t *args = json_object_get(fn, "arguments");
        int rc = 0;
        /* id and name are reported with the piece that brings them, once */
        if (json_is_string(id) && json_string_length(id) && !t->id.len) {
            if (sl__buf_append(&t->id, json_string_value(id), json_string_length(id)))
                return fail(p, SL_ELIMIT, "%s", "stream chunk: tool call id too long");
            d.tool_id = (sl_str){t->id.data, t->id.len};
        }
        if (json_is_string(type) && !t->type.len)
            sl__buf_append(&t->type, json_string_value(type), json_string_length(type));
        if (json_is_string(name) && json_string_length(name)) {
            size_t nl = json_string_length(name);
            const char *ns = json_string_value(name);
            if (!(t->name.len == nl && !memcmp(t->name.data, ns, nl))) {
                if (sl__buf_append(&t->name, ns, nl))
                    return fail(p, SL_ELIMIT, "%s", "stream chunk: tool name too long");
                d.tool_name = (sl_str){ns, nl};
            }
        }
        if (json_is_string(args)) {
            rc = grow(p, &t->args, json_string_value(args), json_string_length(args));
            if (rc)
                return rc;
            d.text = (sl_str){json_string_value(args), json_string_length(args)};
        }
        if (d.text.len || d.tool_id.len || d.tool_name.len) {
            rc = emit(p, &d);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int is_one_of(const char *k, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(k, *list))
            return 1;
    return 0;
}

static int chat_delta(sl_openai_parser *p, choice_acc *c, int ci, json_t *delta)
{
    static const char *const known[] = {"role",      "content",    "reasoning_content",
                                        "reasoning", "tool_calls", NULL};
    int rc;
    json_t *role = json_object_get(delta, "role");
    if (json_is_string(role) && !c->role.len)
        sl__buf_append(&c->role, json_string_value(role), json_string_length(role));
    /* Some providers send reasoning under both names: follow the first one seen. */
    const char *rk = c->reasoning_key;
    if (!rk) {
        if (json_is_string(json_object_get(delta, "reasoning_content")))
            rk = "reasoning_content";
        else if (json_is_string(json_object_get(delta, "reasoning")))
            rk = "reasoning";
    }
    json_t *r = rk ? json_object_get(delta, rk) : NULL;
    if (json_is_string(r)) {
        c->reasoning_key = rk;
        if ((rc = text_delta(p, SL_DELTA_REASONING, ci, &c->reasoning, r)))
            return rc;
    }
    json_t *content = json_object_get(delta, "content");
    if (json_is_string(content)) {
        c->has_content = 1;
        if ((rc = text_delta(p, SL_DELTA_CONTENT, ci, &c->content, content)))
            return rc;
    }
    json_t *calls = json_object_get(delta, "tool_calls");
    if (json_is_array(calls) && (rc = tool_deltas(p, c, ci, calls)))
        return rc;
    const char *k;
    json_t *v;
    json_object_foreach(delta, k, v)
    {
        if (is_one_of(k, known) || json_is_null(v))
            continue;
        if (json_is_string(v)) {
            str_field *f = get_sx(c, k);
            if (!f)
                return fail(p, SL_ELIMIT, "%s", "stream chunk: too many message fields");
            if ((rc = grow(p, &f->val, json_string_value(v), json_string_length(v))))
                return rc;
        } else {
            if (!c->mx && !(c->mx = json_object()))
                return fail(p, SL_ENOMEM, "%s", "out of memory");
            if (json_object_size(c->mx) >= SL_OPENAI_MAX_EXTRA_FIELDS && !json_object_get(c->mx, k))
                return fail(p, SL_ELIMIT, "%s", "stream chunk: too many message fields");
            json_object_set(c->mx, k, v);
        }
    }
    return 0;
}

static int keep_extra(sl_openai_parser *p, json_t **obj, const char *k, json_t *v)
{
    if (!*obj && !(*obj = json_object()))
        return fail(p, SL_ENOMEM, "%s", "out of memory");
    if (json_object_size(*obj) >= SL_OPENAI_MAX_EXTRA_FIELDS && !json_object_get(*obj, k))
        return fail(p, SL_ELIMIT, "%s", "stream chunk: too many fields");
    set_or_keep(*obj, k, v);
    return 0;
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

static int chunk(sl_openai_parser *p, json_t *obj, const char *data, size_t len)
{
    static const char *const top_known[] = {"choices", "usage", "error", "obfuscation", NULL};
    static const char *const choice_known[] = {
        "index", "delta", "finish_reason", "logprobs", "text", "message", NULL};
    json_t *err = json_object_get(obj, "error");
    if (err && !json_is_null(err))
        return provider_error(p, err, data, len);
    const char *k;
    json_t *v;
    int rc;
    json_object_foreach(obj, k, v)
    {
        if (is_one_of(k, top_known))
            continue;
        if (json_object_size(p->head) >= SL_OPENAI_MAX_EXTRA_FIELDS && !json_object_get(p->head, k))
            return fail(p, SL_ELIMIT, "%s", "stream chunk: too many fields");
        set_or_keep(p->head, k, v);
    }
    json_t *usage = json_object_get(obj, "usage");
    if (json_is_object(usage)) {
        json_decref(p->usage);
        p->usage = json_incref(usage);
    }
    json_t *choices = json_object_get(obj, "choices");
    if (choices && !json_is_array(choices) && !json_is_null(choices))
        return fail(p, SL_EPROTO, "%s", "stream chunk: choices is not an array");
    for (size_t i = 0; i < json_array_size(choices); i++) {
        json_t *ch = json_array_get(choices, i);
        if (!json_is_object(ch))
            return fail(p, SL_EPROTO, "%s", "stream chunk: choice is not an object");
        json_int_t idx = index_of(ch, i);
        choice_acc *c = get_choice(p, idx);
        if (!c)
            return fail(p, SL_EPROTO, "%s", "stream chunk: choice index out of range");
        if (p->kind == SL_OPENAI_COMPLETIONS) {
            json_t *text = json_object_get(ch, "text");
            if (json_is_string(text)) {
                c->has_content = 1;
                if ((rc = text_delta(p, SL_DELTA_CONTENT, (int)idx, &c->content, text)))
                    return rc;
            }
        } else {
            json_t *delta = json_object_get(ch, "delta");
            if (json_is_object(delta) && (rc = chat_delta(p, c, (int)idx, delta)))
                return rc;
        }
        json_t *fr = json_object_get(ch, "finish_reason");
        if (fr && !json_is_null(fr)) {
            json_decref(c->finish_reason);
            c->finish_reason = json_incref(fr);
        }
        json_t *lp = json_object_get(ch, "logprobs");
        if (lp && merge_logprobs(c, lp))
            return fail(p, SL_ENOMEM, "%s", "out of memory");
        json_object_foreach(ch, k, v)
        {
            if (!is_one_of(k, choice_known) && (rc = keep_extra(p, &c->extra, k, v)))
                return rc;
        }
    }
    return 0;
}

static int on_event(void *user, const sl_sse_event *ev)
{
    sl_openai_parser *p = user;
    if (p->out.saw_done)
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
        p->out.saw_done = 1;
        return 0;
    }
    json_t *obj = NULL;
    char err[160];
    int rc = sl__json_parse(d, n, 0, &obj, err, sizeof err);
    if (is_error) {
        /* "event: error": whatever the data says is the provider's message */
        json_t *e = json_is_object(obj) ? json_object_get(obj, "error") : NULL;
        rc = provider_error(p, e ? e : obj, d, n);
        json_decref(obj);
        return rc;
    }
    if (rc) {
        char what[240];
        char head[41];
        printable(head, sizeof head, d, n);
        snprintf(what, sizeof what, "%s in data \"%s\"", err, head);
        return fail(p, SL_EPROTO, "invalid JSON in stream event: %s", what);
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        return fail(p, SL_EPROTO, "%s", "stream event is not a JSON object");
    }
    rc = chunk(p, obj, d, n);
    json_decref(obj);
    return rc;
}

int sl__openai_feed(sl_openai_parser *p, const char *data, size_t len)
{
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

/* ---- the final object ---------------------------------------------------------------- */

static json_t *str_json(const sl_buf *b)
{
    return json_stringn(b->data ? b->data : "", b->len);
}

static int add(json_t *obj, const char *k, json_t *v)
{
    return v ? json_object_set_new(obj, k, v) : -1;
}

static json_t *tool_json(const tool_acc *t)
{
    json_t *fn = json_object();
    json_t *o = json_object();
    if (!fn || !o || add(fn, "name", str_json(&t->name)) ||
        add(fn, "arguments", str_json(&t->args)) || add(o, "id", str_json(&t->id)) ||
        add(o, "type", t->type.len ? str_json(&t->type) : json_string("function")) ||
        add(o, "function", json_incref(fn))) {
        json_decref(fn);
        json_decref(o);
        return NULL;
    }
    json_decref(fn);
    return o;
}

static json_t *message_json(const choice_acc *c)
{
    json_t *m = json_object();
    if (!m)
        return NULL;
    int bad = add(m, "role", c->role.len ? str_json(&c->role) : json_string("assistant"));
    bad |= add(m, "content", c->has_content ? str_json(&c->content) : json_null());
    if (c->reasoning_key)
        bad |= add(m, c->reasoning_key, str_json(&c->reasoning));
    if (c->ntools) {
        json_t *calls = json_array();
        bad |= add(m, "tool_calls", calls);
        for (int i = 0; calls && i < c->ntools; i++)
            if (c->tools[i].present)
                bad |= json_array_append_new(calls, tool_json(&c->tools[i]));
    }
    for (int i = 0; i < c->nsx; i++)
        bad |= add(m, c->sx[i].key, str_json(&c->sx[i].val));
    if (c->mx)
        bad |= json_object_update_missing(m, c->mx);
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

static json_t *choice_json(const sl_openai_parser *p, const choice_acc *c, int idx)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = add(o, "index", json_integer(idx));
    if (p->kind == SL_OPENAI_COMPLETIONS)
        bad |= add(o, "text", str_json(&c->content));
    else
        bad |= add(o, "message", message_json(c));
    bad |= add(o, "logprobs", c->logprobs ? json_incref(c->logprobs) : json_null());
    bad |= add(o, "finish_reason", c->finish_reason ? json_incref(c->finish_reason) : json_null());
    if (c->extra)
        bad |= json_object_update_missing(o, c->extra);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int assemble(sl_openai_parser *p)
{
    static const char *const order[] = {"id", "object", "created", "model", "system_fingerprint",
                                        NULL};
    json_t *o = json_object();
    json_t *choices = json_array();
    int bad = !o || !choices;
    for (int i = 0; !bad && order[i]; i++) {
        json_t *v = json_object_get(p->head, order[i]);
        if (i == 1) {
            /* the chunk's type names the object it is a piece of */
            const char *obj = json_string_value(v);
            const char *whole =
                p->kind == SL_OPENAI_COMPLETIONS ? "text_completion" : "chat.completion";
            if (obj && strcmp(obj, "chat.completion.chunk") && strcmp(obj, "text_completion"))
                whole = obj;
            bad |= add(o, "object", json_string(whole));
        } else if (v) {
            bad |= json_object_set(o, order[i], v);
        }
    }
    for (int i = 0; !bad && i < p->nchoices; i++)
        if (p->choices[i].present)
            bad |= json_array_append_new(choices, choice_json(p, &p->choices[i], i));
    if (!bad) {
        bad |= json_object_set(o, "choices", choices);
        if (p->usage)
            bad |= json_object_set(o, "usage", p->usage);
        bad |= json_object_update_missing(o, p->head);
    }
    if (!bad)
        bad = sl__json_write(&p->body, o) != 0;
    json_decref(choices);
    json_decref(o);
    if (bad)
        return fail(p, SL_ENOMEM, "%s", "out of memory");
    return 0;
}

static void fill_out(sl_openai_parser *p)
{
    sl_openai_out *o = &p->out;
    o->body = (sl_str){p->body.data, p->body.len};
    if (p->usage)
        usage_from(&o->usage, p->usage);
    if (p->nchoices && p->choices[0].present) {
        choice_acc *c = &p->choices[0];
        o->text = (sl_str){c->content.data, c->content.len};
        o->reasoning = (sl_str){c->reasoning.data, c->reasoning.len};
        o->finish_reason = json_string_value(c->finish_reason);
    }
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
        finished |= p->choices[i].finish_reason != NULL;
    if (!p->out.saw_done && !finished)
        return fail(p, SL_EPROTO, "%s", "stream ended before [DONE]");
    int rc = assemble(p);
    if (rc)
        return rc;
    fill_out(p);
    return 0;
}

/* ---- non-streamed answers ------------------------------------------------------------ */

static int body_deltas(sl_openai_parser *p, json_t *choices)
{
    int rc;
    for (size_t i = 0; i < json_array_size(choices); i++) {
        json_t *ch = json_array_get(choices, i);
        int idx = (int)index_of(ch, i);
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
