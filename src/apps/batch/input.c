/* input.c — the streaming JSONL reader of sluice batch (see input.h).
 *
 * Line assembly and the cap live in lines.c; this file turns one line into one item.
 * Every check names the line; no input can make it abort or read more than one line
 * into memory. */
#include "apps/batch/input.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/common.h>

#include "apps/batch/lines.h"
#include "apps/batch/text.h"
#include "base/buf.h"
#include "base/json.h"

struct sl_batch_input {
    sl_batch_lines lines;
    int fd; /* opened here (closed by free), or -1 */
    char *default_model;
    sl_batch_idset ids;
    uint64_t items;
    int done;
    char errmsg[256];
};

static const char BOM[3] = {'\xef', '\xbb', '\xbf'};

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* ---- opening -------------------------------------------------------------------------- */

static int input_new(FILE *f, int fd, const void *mem, size_t len, const sl_batch_input_opts *o,
                     sl_batch_input **out)
{
    *out = NULL;
    sl_batch_input *in = calloc(1, sizeof *in);
    if (!in)
        return SL_ENOMEM;
    in->fd = -1;
    sl__batch_idset_init(&in->ids);
    int rc = sl__batch_lines_init(&in->lines, f, fd, mem, len, o ? o->max_line : 0);
    if (!rc && o && o->default_model) {
        in->default_model = strdup(o->default_model);
        if (!in->default_model)
            rc = SL_ENOMEM;
    }
    if (rc) {
        sl__batch_input_free(in);
        return rc;
    }
    *out = in;
    return 0;
}

int sl__batch_input_open(const char *path, const sl_batch_input_opts *o, sl_batch_input **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    if (strcmp(path, "-") == 0)
        return input_new(NULL, STDIN_FILENO, NULL, 0, o, out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errlen)
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return SL_EIO;
    }
    int rc = input_new(NULL, fd, NULL, 0, o, out);
    if (rc) {
        close(fd);
        if (errlen)
            snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
        return rc;
    }
    (*out)->fd = fd;
    return 0;
}

int sl__batch_input_open_file(FILE *f, const sl_batch_input_opts *o, sl_batch_input **out)
{
    return input_new(f, -1, NULL, 0, o, out);
}

int sl__batch_input_open_mem(const void *data, size_t len, const sl_batch_input_opts *o,
                             sl_batch_input **out)
{
    /* an empty buffer still needs a non-NULL pointer to count as a memory source */
    return input_new(NULL, -1, data ? data : "", data ? len : 0, o, out);
}

void sl__batch_input_free(sl_batch_input *in)
{
    if (!in)
        return;
    sl__batch_lines_free(&in->lines);
    if (in->fd >= 0)
        close(in->fd);
    free(in->default_model);
    sl__batch_idset_free(&in->ids);
    free(in);
}

void sl__batch_item_clear(sl_batch_item *item)
{
    free(item->id);
    json_decref(item->body);
    free(item->error);
    memset(item, 0, sizeof *item);
}

/* ---- one line -> one item ------------------------------------------------------------- */

/* Make item an error: "line N: " + the formatted text. The id (if any) stays. */
__attribute__((format(printf, 3, 4))) static int fail(sl_batch_item *item, const char *code,
                                                      const char *fmt, ...)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    int rc = sl__buf_printf(&b, "line %" PRIu64 ": ", item->line_no);
    va_list ap;
    va_start(ap, fmt);
    if (!rc)
        rc = sl__buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc) {
        sl__buf_free(&b);
        return SL_ENOMEM;
    }
    json_decref(item->body);
    item->body = NULL;
    item->endpoint = NULL;
    item->error_code = code;
    free(item->error);
    item->error = sl__buf_steal(&b);
    return 0;
}

/* The id quoted as a JSON string, for messages (so a newline in an id stays visible). */
static char *quoted(const char *id)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    if (sl__batch_json_quote(&b, id, strlen(id))) {
        sl__buf_free(&b);
        return NULL;
    }
    return sl__buf_steal(&b);
}

/* Take id (malloc'd) for the item unless another line already has it. Returns 0 (the
 * item has its id, or is now a duplicate_id error without one) or SL_ENOMEM. */
static int claim_id(sl_batch_input *in, sl_batch_item *item, char *id)
{
    uint64_t first = 0;
    int rc = sl__batch_idset_add(&in->ids, id, strlen(id), item->line_no, &first);
    if (rc < 0) {
        free(id);
        return rc;
    }
    if (rc == 1) {
        item->id = id;
        return 0;
    }
    char *q = quoted(id);
    free(id);
    if (!q)
        return SL_ENOMEM;
    rc = fail(item, "duplicate_id", "duplicate id %s (first on line %" PRIu64 ")", q, first);
    free(q);
    return rc;
}

/* Read a string id field into *out (malloc'd). Returns 0 with *out set, 0 with *out NULL
 * and the item failed (the reason), or SL_ENOMEM. */
static int string_id(sl_batch_item *item, const char *field, json_t *v, char **out)
{
    *out = NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0)
        return fail(item, "invalid_field", "\"%s\" is empty", field);
    if (n > SL_BATCH_MAX_ID)
        return fail(item, "invalid_field", "\"%s\" is longer than %u bytes", field,
                    SL_BATCH_MAX_ID);
    if (strlen(s) != n)
        return fail(item, "invalid_field", "\"%s\" contains a NUL character", field);
    *out = strdup(s);
    return *out ? 0 : SL_ENOMEM;
}

static int set_default_model(sl_batch_input *in, json_t *body)
{
    json_t *m = json_object_get(body, "model");
    if (!in->default_model || (m && !json_is_null(m)))
        return 0;
    return json_object_set_new(body, "model", json_string(in->default_model)) ? SL_ENOMEM : 0;
}

static const char *endpoint_of(const char *url)
{
    static const char *const known[] = {"/chat/completions", "/completions", "/embeddings"};
    if (strncmp(url, "/v1/", 4) == 0)
        url += 3;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(url, known[i]) == 0)
            return known[i];
    return NULL;
}

static int batch_line(sl_batch_input *in, sl_batch_item *item, json_t *obj)
{
    item->format = SL_BATCH_FORMAT_BATCH;
    json_t *cid = json_object_get(obj, "custom_id");
    if (!cid)
        return fail(item, "missing_field", "missing \"custom_id\"");
    if (!json_is_string(cid))
        return fail(item, "invalid_field", "\"custom_id\" must be a string");
    char *id;
    int rc = string_id(item, "custom_id", cid, &id);
    if (rc || !id)
        return rc;
    rc = claim_id(in, item, id);
    if (rc || item->error)
        return rc;

    json_t *method = json_object_get(obj, "method");
    if (method && !(json_is_string(method) && strcmp(json_string_value(method), "POST") == 0))
        return fail(item, "invalid_method", "\"method\" must be \"POST\"");
    const char *endpoint = "/chat/completions";
    json_t *url = json_object_get(obj, "url");
    if (url) {
        if (!json_is_string(url))
            return fail(item, "invalid_field", "\"url\" must be a string");
        endpoint = endpoint_of(json_string_value(url));
        if (!endpoint) {
            char *q = quoted(json_string_value(url));
            if (!q)
                return SL_ENOMEM;
            rc = fail(item, "unsupported_url",
                      "unsupported url %s (use /v1/chat/completions, /v1/completions or "
                      "/v1/embeddings)",
                      q);
            free(q);
            return rc;
        }
    }
    json_t *body = json_object_get(obj, "body");
    if (!body)
        return fail(item, "missing_field", "missing \"body\"");
    if (!json_is_object(body))
        return fail(item, "invalid_field", "\"body\" must be an object");
    rc = set_default_model(in, body);
    if (rc)
        return rc;
    item->body = json_incref(body);
    item->endpoint = endpoint;
    return 0;
}

static json_t *message(const char *role, json_t *content)
{
    json_t *m = json_object();
    if (!m || json_object_set_new(m, "role", json_string(role)) ||
        json_object_set(m, "content", content)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* The chat body of a short-form line: model, messages, then the other fields in order. */
static json_t *short_body(sl_batch_input *in, json_t *obj, json_t *prompt, json_t *messages,
                          json_t *system)
{
    json_t *body = json_object();
    json_t *msgs = json_array();
    if (!body || !msgs)
        goto fail;
    json_t *model = json_object_get(obj, "model");
    if (model && !json_is_null(model)) {
        if (json_object_set(body, "model", model))
            goto fail;
    } else if (in->default_model) {
        if (json_object_set_new(body, "model", json_string(in->default_model)))
            goto fail;
    }
    if (system && json_array_append_new(msgs, message("system", system)))
        goto fail;
    if (prompt && json_array_append_new(msgs, message("user", prompt)))
        goto fail;
    if (messages && json_array_extend(msgs, messages))
        goto fail;
    if (json_object_set_new(body, "messages", msgs)) {
        msgs = NULL;
        goto fail;
    }
    msgs = NULL;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "id") == 0 || strcmp(key, "prompt") == 0 || strcmp(key, "system") == 0 ||
            strcmp(key, "messages") == 0 || strcmp(key, "model") == 0)
            continue;
        if (json_object_set(body, key, v))
            goto fail;
    }
    return body;
fail:
    json_decref(msgs);
    json_decref(body);
    return NULL;
}

static char *line_id(uint64_t line_no)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRIu64, line_no);
    return strdup(tmp);
}

static int short_line(sl_batch_input *in, sl_batch_item *item, json_t *obj, int recognised)
{
    item->format = recognised ? SL_BATCH_FORMAT_SHORT : SL_BATCH_FORMAT_NONE;
    json_t *jid = json_object_get(obj, "id");
    char *id = NULL;
    int rc;
    if (json_is_string(jid)) {
        rc = string_id(item, "id", jid, &id);
        if (rc || !id)
            return rc;
    } else if (json_is_integer(jid)) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(jid));
        id = strdup(tmp);
    } else if ((!jid || json_is_null(jid)) && recognised) {
        id = line_id(item->line_no);
    } else if (jid && !json_is_null(jid)) {
        return fail(item, "invalid_field", "\"id\" must be a string or an integer");
    }
    if (recognised && !id)
        return SL_ENOMEM;
    if (id) {
        rc = claim_id(in, item, id);
        if (rc || item->error)
            return rc;
    }
    if (!recognised)
        return fail(item, "unrecognized_line",
                    "expected a Batch API line (\"custom_id\", \"body\") or a short form "
                    "(\"prompt\" or \"messages\")");

    json_t *prompt = json_object_get(obj, "prompt");
    json_t *messages = json_object_get(obj, "messages");
    json_t *system = json_object_get(obj, "system");
    json_t *v;
    if (prompt && messages)
        return fail(item, "invalid_field", "give \"prompt\" or \"messages\", not both");
    if (prompt && !json_is_string(prompt))
        return fail(item, "invalid_field", "\"prompt\" must be a string");
    if (messages && !(json_is_array(messages) && json_array_size(messages) > 0))
        return fail(item, "invalid_field", "\"messages\" must be a non-empty array");
    if (system && !json_is_string(system))
        return fail(item, "invalid_field", "\"system\" must be a string");
    if ((v = json_object_get(obj, "model")) && !json_is_string(v) && !json_is_null(v))
        return fail(item, "invalid_field", "\"model\" must be a string");
    if ((v = json_object_get(obj, "max_tokens")) && !json_is_integer(v))
        return fail(item, "invalid_field", "\"max_tokens\" must be an integer");
    if ((v = json_object_get(obj, "temperature")) && !json_is_number(v))
        return fail(item, "invalid_field", "\"temperature\" must be a number");
    item->body = short_body(in, obj, prompt, messages, system);
    if (!item->body)
        return SL_ENOMEM;
    item->endpoint = "/chat/completions";
    return 0;
}

static int json_line(sl_batch_input *in, sl_batch_item *item, const char *p, size_t n)
{
    json_t *obj = NULL;
    char why[200];
    int rc = sl__json_parse(p, n, 0, &obj, why, sizeof why);
    if (rc == SL_ENOMEM)
        return rc;
    if (rc)
        return fail(item, "invalid_json", "%s", why);
    if (!json_is_object(obj)) {
        /* cannot happen for a line starting with '{' that parsed, but cost nothing */
        json_decref(obj);
        return fail(item, "invalid_json", "expected a JSON object");
    }
    if (json_object_get(obj, "custom_id") || json_object_get(obj, "body") ||
        json_object_get(obj, "method") || json_object_get(obj, "url"))
        rc = batch_line(in, item, obj);
    else
        rc = short_line(in, item, obj,
                        json_object_get(obj, "prompt") || json_object_get(obj, "messages"));
    json_decref(obj);
    return rc;
}

static int text_line(sl_batch_input *in, sl_batch_item *item, const char *p, size_t n)
{
    item->format = SL_BATCH_FORMAT_TEXT;
    char *id = line_id(item->line_no);
    if (!id)
        return SL_ENOMEM;
    int rc = claim_id(in, item, id);
    if (rc || item->error)
        return rc;
    if (!sl__batch_utf8_valid(p, n))
        return fail(item, "invalid_utf8", "not valid UTF-8");
    json_t *content = json_stringn(p, n);
    json_t *body = json_object();
    json_t *msgs = json_array();
    json_t *m = content ? message("user", content) : NULL;
    json_decref(content);
    if (!body || !msgs || !m || json_array_append_new(msgs, m)) {
        json_decref(m);
        goto nomem;
    }
    m = NULL;
    if (in->default_model && json_object_set_new(body, "model", json_string(in->default_model)))
        goto nomem;
    if (json_object_set_new(body, "messages", msgs)) {
        msgs = NULL;
        goto nomem;
    }
    item->body = body;
    item->endpoint = "/chat/completions";
    return 0;
nomem:
    json_decref(msgs);
    json_decref(body);
    return SL_ENOMEM;
}

int sl__batch_input_next(sl_batch_input *in, sl_batch_item *item)
{
    memset(item, 0, sizeof *item);
    if (in->done)
        return 0;
    for (;;) {
        sl_batch_line_view v;
        int rc = sl__batch_lines_next(&in->lines, &v);
        if (rc == SL_EIO) {
            snprintf(in->errmsg, sizeof in->errmsg, "read error after line %" PRIu64 ": %s",
                     in->lines.line_no, strerror(in->lines.err));
            in->done = 1;
            return rc;
        }
        if (rc <= 0) {
            in->done = 1;
            return rc;
        }
        item->line_no = v.line_no;
        item->bytes = v.raw_len;
        if (v.too_long) {
            in->items++;
            rc = fail(item, "line_too_long", "longer than %zu bytes", in->lines.max_line);
            return rc ? rc : 1;
        }
        const char *p = v.p;
        size_t n = v.len;
        if (v.line_no == 1 && n >= 3 && memcmp(p, BOM, 3) == 0) {
            p += 3;
            n -= 3;
        }
        if (n && p[n - 1] == '\r')
            n--;
        size_t i = 0;
        while (i < n && is_space(p[i]))
            i++;
        if (i == n)
            continue; /* blank line */
        in->items++;
        if (p[i] == '{')
            rc = json_line(in, item, p, n);
        else
            rc = text_line(in, item, p, n);
        if (rc) {
            sl__batch_item_clear(item);
            return rc;
        }
        return 1;
    }
}

uint64_t sl__batch_input_fingerprint(const sl_batch_input *in)
{
    return in->lines.fingerprint;
}

uint64_t sl__batch_input_lines(const sl_batch_input *in)
{
    return in->lines.line_no;
}

uint64_t sl__batch_input_bytes(const sl_batch_input *in)
{
    return in->lines.bytes;
}

uint64_t sl__batch_input_items(const sl_batch_input *in)
{
    return in->items;
}

const sl_batch_idset *sl__batch_input_ids(const sl_batch_input *in)
{
    return &in->ids;
}

const char *sl__batch_input_error(const sl_batch_input *in)
{
    return in->errmsg;
}

/* ---- the first pass ------------------------------------------------------------------- */

typedef struct scan_state {
    sl_batch_scan *out;
    size_t max_line;
    uint64_t line_len; /* bytes of the current line so far, '\n' excluded */
    int nonblank;
    int first; /* the next bytes are the input's first */
} scan_state;

static void scan_bytes(scan_state *s, const unsigned char *p, size_t n)
{
    s->out->fingerprint = sl__batch_fnv1a(s->out->fingerprint, p, n);
    s->out->bytes += n;
    size_t i = 0;
    if (s->first) {
        s->first = 0;
        /* the reader drops a BOM at the start; a chunk is never shorter than 3 bytes
           unless the whole input is */
        if (n >= 3 && memcmp(p, BOM, 3) == 0) {
            s->line_len = 3;
            i = 3;
        }
    }
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\n') {
            s->out->lines++;
            if (s->nonblank || s->line_len > s->max_line)
                s->out->items++;
            s->line_len = 0;
            s->nonblank = 0;
        } else {
            s->line_len++;
            if (!is_space((char)c))
                s->nonblank = 1;
        }
    }
}

static void scan_end(scan_state *s)
{
    if (s->line_len > 0) {
        s->out->lines++;
        if (s->nonblank || s->line_len > s->max_line)
            s->out->items++;
    }
}

static void scan_init(scan_state *s, sl_batch_scan *out, size_t max_line)
{
    memset(out, 0, sizeof *out);
    out->fingerprint = SL_BATCH_FNV_OFFSET;
    s->out = out;
    s->max_line = max_line ? max_line : SL_BATCH_MAX_LINE;
    s->line_len = 0;
    s->nonblank = 0;
    s->first = 1;
}

void sl__batch_input_scan_mem(const void *data, size_t len, size_t max_line, sl_batch_scan *out)
{
    scan_state s;
    scan_init(&s, out, max_line);
    const unsigned char *p = data;
    /* same windows as the reader, so the BOM rule sees the same first chunk */
    while (len) {
        size_t n = len < SL_BATCH_CHUNK ? len : SL_BATCH_CHUNK;
        scan_bytes(&s, p, n);
        p += n;
        len -= n;
    }
    scan_end(&s);
}

int sl__batch_input_scan(const char *path, size_t max_line, sl_batch_scan *out, char *err,
                         size_t errlen)
{
    scan_state s;
    scan_init(&s, out, max_line);
    int rc = 0;
    unsigned char *chunk = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errlen)
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return SL_EIO;
    }
    chunk = malloc(SL_BATCH_CHUNK);
    if (!chunk) {
        rc = SL_ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t k = read(fd, chunk, SL_BATCH_CHUNK);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            if (errlen)
                snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            rc = SL_EIO;
            goto out;
        }
        if (k == 0)
            break;
        scan_bytes(&s, chunk, (size_t)k);
    }
    scan_end(&s);
out:
    free(chunk);
    close(fd);
    return rc;
}
