/* request.c — sl_request: an OpenAI-compatible request body and its endpoint.
 *
 * The body is a jansson object that keeps every field sluice does not know (tools,
 * response_format, seed, ...) and sends it back unchanged: numbers keep their digits
 * (base/jsonw), keys their order. The builders only touch the fields they name. */
#include "llm/request.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/jsonw.h"

static sl_request *request_alloc(json_t *body)
{
    sl_request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->endpoint = strdup("/chat/completions");
    if (!r->endpoint) {
        free(r);
        return NULL;
    }
    r->body = body;
    return r;
}

int sl_request_new(sl_request **out)
{
    *out = NULL;
    json_t *body = json_object();
    if (!body || json_object_set_new(body, "messages", json_array()) ||
        json_object_set_new(body, "stream", json_true())) {
        json_decref(body);
        return SL_ENOMEM;
    }
    sl_request *r = request_alloc(body);
    if (!r) {
        json_decref(body);
        return SL_ENOMEM;
    }
    *out = r;
    return 0;
}

int sl_request_from_json(const char *json, size_t len, sl_request **out)
{
    *out = NULL;
    if (!json)
        return SL_EINVAL;
    json_t *v = NULL;
    char err[160];
    int rc = sl__json_parse(json, len, 0, &v, err, sizeof err);
    if (rc)
        return rc;
    if (!json_is_object(v)) {
        json_decref(v);
        return SL_EPARSE;
    }
    sl_request *r = request_alloc(v);
    if (!r) {
        json_decref(v);
        return SL_ENOMEM;
    }
    *out = r;
    return 0;
}

void sl_request_free(sl_request *r)
{
    if (!r)
        return;
    json_decref(r->body);
    free(r->endpoint);
    free(r);
}

sl_request *sl__request_copy(const sl_request *r)
{
    json_t *body = json_deep_copy(r->body);
    if (!body)
        return NULL;
    sl_request *c = request_alloc(body);
    if (!c) {
        json_decref(body);
        return NULL;
    }
    char *ep = strdup(r->endpoint);
    if (!ep) {
        sl_request_free(c);
        return NULL;
    }
    free(c->endpoint);
    c->endpoint = ep;
    return c;
}

const json_t *sl__request_body(const sl_request *r)
{
    return r->body;
}

int sl_request_set_endpoint(sl_request *r, const char *path)
{
    if (!r || !path || path[0] != '/')
        return SL_EINVAL;
    size_t n = strlen(path);
    if (n > SL_REQUEST_MAX_ENDPOINT)
        return SL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)path[i] <= ' ' || (unsigned char)path[i] >= 0x7f)
            return SL_EINVAL; /* no spaces, controls (header injection) or non-ASCII */
    char *ep = strdup(path);
    if (!ep)
        return SL_ENOMEM;
    free(r->endpoint);
    r->endpoint = ep;
    return 0;
}

const char *sl_request_endpoint(const sl_request *r)
{
    return r->endpoint;
}

static int set_string(sl_request *r, const char *key, const char *value)
{
    if (!r || !value)
        return SL_EINVAL;
    json_t *s = json_string(value);
    if (!s)
        return SL_EINVAL; /* not UTF-8 */
    return json_object_set_new(r->body, key, s) ? SL_ENOMEM : 0;
}

int sl_request_set_model(sl_request *r, const char *model)
{
    return set_string(r, "model", model);
}

int sl_request_default_model(sl_request *r, const char *model)
{
    if (r && json_is_string(json_object_get(r->body, "model")))
        return 0;
    return set_string(r, "model", model);
}

const char *sl_request_model(const sl_request *r)
{
    return sl__json_str(r->body, "model");
}

/* The messages array, created when absent. NULL if the body has a non-array there. */
static json_t *messages(sl_request *r)
{
    json_t *m = json_object_get(r->body, "messages");
    if (m)
        return json_is_array(m) ? m : NULL;
    m = json_array();
    if (!m || json_object_set_new(r->body, "messages", m))
        return NULL;
    return m;
}

static json_t *message(const char *role, const char *content, size_t len)
{
    json_t *text = json_stringn(content, len);
    if (!text)
        return NULL;
    return json_pack("{s:s, s:o}", "role", role, "content", text);
}

int sl_request_set_system(sl_request *r, const char *text)
{
    if (!r || !text)
        return SL_EINVAL;
    json_t *m = messages(r);
    if (!m)
        return SL_EINVAL;
    json_t *first = json_array_get(m, 0);
    const char *role = sl__json_str(first, "role");
    if (role && !strcmp(role, "system")) {
        json_t *s = json_string(text);
        if (!s)
            return SL_EINVAL;
        return json_object_set_new(first, "content", s) ? SL_ENOMEM : 0;
    }
    json_t *msg = message("system", text, strlen(text));
    if (!msg)
        return SL_EINVAL;
    return json_array_insert_new(m, 0, msg) ? SL_ENOMEM : 0;
}

int sl_request_add_message(sl_request *r, const char *role, const char *content, size_t len)
{
    if (!r || !role || (!content && len))
        return SL_EINVAL;
    json_t *m = messages(r);
    if (!m)
        return SL_EINVAL;
    json_t *msg = message(role, content ? content : "", len);
    if (!msg)
        return SL_EINVAL;
    return json_array_append_new(m, msg) ? SL_ENOMEM : 0;
}

int sl_request_set_max_tokens(sl_request *r, long n)
{
    if (!r || n <= 0)
        return SL_EINVAL;
    /* Newer OpenAI models only take max_completion_tokens: keep the name in use. */
    const char *key =
        json_object_get(r->body, "max_completion_tokens") && !json_object_get(r->body, "max_tokens")
            ? "max_completion_tokens"
            : "max_tokens";
    return json_object_set_new(r->body, key, json_integer(n)) ? SL_ENOMEM : 0;
}

long sl_request_max_tokens(const sl_request *r)
{
    long long v = sl__json_int(r->body, "max_tokens", -1);
    if (v < 0)
        v = sl__json_int(r->body, "max_completion_tokens", -1);
    return v < 0 ? -1 : (long)v;
}

int sl_request_set_temperature(sl_request *r, double t)
{
    if (!r || !isfinite(t) || t < 0)
        return SL_EINVAL;
    return json_object_set_new(r->body, "temperature", json_real(t)) ? SL_ENOMEM : 0;
}

int sl_request_set_stream(sl_request *r, int on)
{
    if (!r)
        return SL_EINVAL;
    return json_object_set_new(r->body, "stream", json_boolean(on)) ? SL_ENOMEM : 0;
}

int sl_request_stream(const sl_request *r)
{
    if (!strcmp(r->endpoint, "/embeddings"))
        return 0;
    return json_is_true(json_object_get(r->body, "stream"));
}

char *sl__request_wire_body(const sl_request *r, size_t *len)
{
    int stream = sl_request_stream(r);
    /* both the chat and the legacy completions API report usage in a last chunk when
     * asked to */
    int usage_ok =
        !strcmp(r->endpoint, "/chat/completions") || !strcmp(r->endpoint, "/completions");
    json_t *opts = json_object_get(r->body, "stream_options");
    if ((stream && (!usage_ok || opts)) || (!stream && !opts))
        return sl__json_dump_exact(r->body, len);
    if (stream) {
        /* "stream_options" goes last, where json_object_set_new would put it: written
         * after the body rather than through a copy of it */
        sl_buf b;
        sl__buf_init(&b, 0);
        if (sl__buf_reserve(&b, 256) || sl__json_write(&b, r->body)) {
            sl__buf_free(&b);
            return NULL;
        }
        b.len--; /* the closing brace */
        if (sl__buf_append_str(&b, json_object_size(r->body) ? "," : "") ||
            sl__buf_append_str(&b, "\"stream_options\":{\"include_usage\":true}}")) {
            sl__buf_free(&b);
            return NULL;
        }
        if (len)
            *len = b.len;
        return sl__buf_steal(&b);
    }
    /* a shallow copy: the values are shared, only the top level differs */
    json_t *b = json_copy(r->body);
    if (!b)
        return NULL;
    int rc = json_object_del(b, "stream_options");
    char *s = rc ? NULL : sl__json_dump_exact(b, len);
    json_decref(b);
    return s;
}

char *sl_request_to_json(const sl_request *r)
{
    return sl__json_dump_exact(r->body, NULL);
}

/* ---- token estimate ------------------------------------------------------------------ */

static size_t text_bytes(const json_t *v)
{
    if (json_is_string(v))
        return json_string_length(v);
    size_t n = 0;
    if (json_is_array(v)) {
        /* content parts ({"type":"text","text":...}), or a list of prompts/inputs */
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (json_is_string(e))
                n += json_string_length(e);
            else if (json_is_object(e))
                n += text_bytes(json_object_get(e, "text"));
            else if (json_is_integer(e))
                n += 4; /* a token id */
            else if (json_is_array(e))
                n += 4 * json_array_size(e); /* a list of token ids */
        }
    }
    return n;
}

long sl_request_estimate_tokens(const sl_request *r)
{
    size_t bytes = 0;
    long msgs = 0;
    json_t *m = json_object_get(r->body, "messages");
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *msg = json_array_get(m, i);
        if (!json_is_object(msg))
            continue;
        msgs++;
        bytes += text_bytes(json_object_get(msg, "content"));
        bytes += text_bytes(json_object_get(msg, "name"));
        json_t *calls = json_object_get(msg, "tool_calls");
        for (size_t j = 0; j < json_array_size(calls); j++) {
            json_t *fn = json_object_get(json_array_get(calls, j), "function");
            bytes += text_bytes(json_object_get(fn, "name"));
            bytes += text_bytes(json_object_get(fn, "arguments"));
        }
    }
    bytes += text_bytes(json_object_get(r->body, "prompt"));
    bytes += text_bytes(json_object_get(r->body, "input"));
    json_t *tools = json_object_get(r->body, "tools");
    if (tools) {
        /* tool definitions are part of the prompt too */
        sl_buf b;
        sl__buf_init(&b, 1u << 24);
        if (sl__json_write(&b, tools) == 0)
            bytes += b.len;
        sl__buf_free(&b);
    }
    return (long)((bytes + 3) / 4) + 4 * msgs;
}
