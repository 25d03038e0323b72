/* answer.c — request bodies in, response bytes out, for the mock (see answer.h).
 *
 * Requests are parsed with jansson under the depth cap of base/json; every shape a
 * client may send (content as a string, as parts, null, a number) is read without
 * crashing, and only what the OpenAI API itself rejects becomes a 400. Responses are
 * assembled by appending constant pieces and escaped client strings to an sl_buf: the
 * mock is a benchmark upstream and must cost far less than what it measures. */
#include "apps/mock/answer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/common.h>

#include "apps/mock/fault.h"
#include "base/json.h"

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)
#define LIT(out, s) sl__buf_append((out), (s), sizeof(s) - 1)

/* 32 plain words: no byte needs JSON escaping, none holds whitespace. */
static const char *const vocab[32] = {
    "the",    "river", "flows",  "through", "a",      "narrow", "gate",  "and",
    "water",  "rises", "slowly", "over",    "stone",  "while",  "light", "falls",
    "on",     "quiet", "banks",  "where",   "reeds",  "bend",   "in",    "wind",
    "stream", "turns", "toward", "open",    "fields", "under",  "grey",  "sky",
};

const char *sl__mock_word(uint64_t draw)
{
    return vocab[draw >> 59];
}

void sl__mock_answer_init(sl_mock_answer *a)
{
    memset(a, 0, sizeof *a);
    sl__buf_init(&a->model, 0);
    sl__buf_init(&a->prompt, 0);
}

void sl__mock_answer_free(sl_mock_answer *a)
{
    sl__buf_free(&a->model);
    sl__buf_free(&a->prompt);
}

long sl__mock_count_words(const char *s, size_t n)
{
    long words = 0;
    int in = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
        if (!space && !in)
            words++;
        in = !space;
    }
    return words;
}

static int append_u(sl_buf *out, unsigned long long v)
{
    char d[24];
    size_t k = sizeof d;
    do {
        d[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return sl__buf_append(out, d + k, sizeof d - k);
}

static int append_i(sl_buf *out, long long v)
{
    if (v < 0) {
        TRY(LIT(out, "-"));
        return append_u(out, 0ull - (unsigned long long)v);
    }
    return append_u(out, (unsigned long long)v);
}

static int err_set(sl_mock_err *e, int status, const char *param, const char *fmt, const char *arg)
{
    e->status = status;
    e->param = param;
    snprintf(e->message, sizeof e->message, fmt, arg);
    return SL_EINVAL;
}

/* Append the text of a message content to raw: a string as it is; an array's text
 * parts ({"type":"text","text":..} or bare strings) joined with '\n'; anything else
 * (null, numbers, images only) adds nothing. */
static int content_text(sl_buf *raw, const json_t *content)
{
    if (json_is_string(content))
        return sl__buf_append(raw, json_string_value(content), json_string_length(content));
    if (!json_is_array(content))
        return 0;
    size_t i;
    json_t *part;
    int first = 1;
    json_array_foreach(content, i, part)
    {
        const json_t *t = NULL;
        if (json_is_string(part))
            t = part;
        else if (json_is_object(part)) {
            const char *type = sl__json_str(part, "type");
            if (!type || !strcmp(type, "text"))
                t = json_object_get(part, "text");
        }
        if (!json_is_string(t))
            continue;
        if (!first)
            TRY(LIT(raw, "\n"));
        first = 0;
        TRY(sl__buf_append(raw, json_string_value(t), json_string_length(t)));
    }
    return 0;
}

/* max_tokens-like member: -1 when absent or null, else an integer >= 1. */
static int max_member(const json_t *root, const char *key, long long *out, sl_mock_err *e)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return err_set(e, 400, key, "'%s' must be an integer of at least 1", key);
    *out = json_integer_value(v);
    return 0;
}

static int parse_chat(sl_mock_answer *a, const json_t *root, sl_buf *raw, uint64_t *h,
                      sl_mock_err *e)
{
    json_t *msgs = json_object_get(root, "messages");
    if (!msgs)
        return err_set(e, 400, "messages", "'%s' is a required property", "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return err_set(e, 400, "messages", "'%s' must be a non-empty array", "messages");
    size_t i, last_user = (size_t)-1;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_is_object(m) ? sl__json_str(m, "role") : NULL;
        if (!role)
            return err_set(e, 400, "messages",
                           "invalid '%s': every message must be an object with a string 'role'",
                           "messages");
        sl__buf_reset(raw);
        TRY(content_text(raw, json_object_get(m, "content")));
        a->prompt_tokens += sl__mock_count_words(raw->data, raw->len);
        *h = sl__mock_hash(role, strlen(role) + 1, *h);
        *h = sl__mock_hash(raw->data ? raw->data : "", raw->len + 1, *h);
        if (!strcmp(role, "user"))
            last_user = i;
    }
    sl__buf_reset(raw);
    if (last_user != (size_t)-1)
        TRY(content_text(raw, json_object_get(json_array_get(msgs, last_user), "content")));
    return 0;
}

static int parse_text(sl_mock_answer *a, const json_t *root, sl_buf *raw, uint64_t *h,
                      sl_mock_err *e)
{
    json_t *p = json_object_get(root, "prompt");
    if (!p)
        return err_set(e, 400, "prompt", "'%s' is a required property", "prompt");
    sl__buf_reset(raw);
    if (json_is_string(p)) {
        TRY(sl__buf_append(raw, json_string_value(p), json_string_length(p)));
        a->prompt_tokens = sl__mock_count_words(raw->data, raw->len);
        *h = sl__mock_hash(raw->data, raw->len + 1, *h);
        return 0;
    }
    if (!json_is_array(p))
        return err_set(e, 400, "prompt", "'%s' must be a string or an array", "prompt");
    /* Several prompts: the answer begins with the last string one; tokens count all. */
    size_t i;
    json_t *x;
    json_array_foreach(p, i, x)
    {
        if (json_is_string(x)) {
            sl__buf_reset(raw);
            TRY(sl__buf_append(raw, json_string_value(x), json_string_length(x)));
            a->prompt_tokens += sl__mock_count_words(raw->data, raw->len);
            *h = sl__mock_hash(raw->data, raw->len + 1, *h);
        } else {
            a->prompt_tokens += json_is_array(x) ? (long)json_array_size(x) : 1;
        }
    }
    return 0;
}

int sl__mock_answer_parse(sl_mock_answer *a, int kind, const char *body, size_t len, uint64_t seed,
                          int chunks, sl_mock_err *e)
{
    sl__buf_reset(&a->model);
    sl__buf_reset(&a->prompt);
    a->kind = kind;
    a->stream = a->include_usage = a->length = 0;
    a->prompt_tokens = a->completion_tokens = 0;
    e->status = 0;
    e->param = NULL;
    e->message[0] = '\0';

    json_t *root = NULL;
    sl_buf raw;
    sl__buf_init(&raw, 0);
    char why[160];
    int rc = sl__json_parse(body, len, 0, &root, why, sizeof why);
    if (rc) {
        rc = err_set(e, 400, NULL, "invalid JSON body: %s", why);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = err_set(e, 400, NULL, "%s", "the request body must be a JSON object");
        goto out;
    }
    const json_t *model = json_object_get(root, "model");
    if (json_is_string(model))
        rc = sl__json_escape(&a->model, json_string_value(model), json_string_length(model), NULL);
    else
        rc = LIT(&a->model, "mock-model");
    if (rc)
        goto out;
    a->stream = json_is_true(json_object_get(root, "stream"));
    a->include_usage =
        json_is_true(json_object_get(json_object_get(root, "stream_options"), "include_usage"));

    long long max = -1;
    uint64_t h = SL_MOCK_HASH_INIT;
    if (kind == SL_MOCK_CHAT) {
        rc = max_member(root, "max_tokens", &max, e);
        if (!rc)
            rc = max_member(root, "max_completion_tokens", &max, e);
        if (!rc)
            rc = parse_chat(a, root, &raw, &h, e);
    } else {
        rc = max_member(root, "max_tokens", &max, e);
        if (!rc)
            rc = parse_text(a, root, &raw, &h, e);
    }
    if (rc)
        goto out;
    if ((rc = sl__json_escape(&a->prompt, raw.data ? raw.data : "", raw.len, NULL)))
        goto out;
    a->n = chunks < 1 ? 1 : chunks;
    if (max >= 1 && max < a->n) {
        a->n = (int)max;
        a->length = 1;
    }
    h = sl__mock_hash(a->model.data, a->model.len, h);
    a->words = seed ^ h;
    /* every word chunk is " " + a word: one new whitespace-separated word each */
    a->completion_tokens = sl__mock_count_words(raw.data, raw.len) + (a->n - 1);
out:
    if (rc == SL_ENOMEM || rc == SL_ELIMIT) {
        e->status = 500;
        snprintf(e->message, sizeof e->message, "mock: %s", sl_strerror(rc));
    }
    json_decref(root);
    sl__buf_free(&raw);
    return rc;
}

int sl__mock_chunk_head(sl_buf *out, const sl_mock_answer *a, const char *id, long long created)
{
    TRY(LIT(out, "data: {\"id\":\""));
    TRY(sl__buf_append_str(out, id));
    if (a->kind == SL_MOCK_CHAT)
        TRY(LIT(out, "\",\"object\":\"chat.completion.chunk\",\"created\":"));
    else
        TRY(LIT(out, "\",\"object\":\"text_completion\",\"created\":"));
    TRY(append_i(out, created));
    TRY(LIT(out, ",\"model\":\""));
    TRY(sl__buf_append(out, a->model.data, a->model.len));
    return LIT(out, "\",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
}

static int finish_json(sl_buf *out, const sl_mock_answer *a)
{
    return a->length ? LIT(out, "\"length\"") : LIT(out, "\"stop\"");
}

int sl__mock_chunk(sl_buf *out, const sl_mock_answer *a, const char *head, size_t head_len, int i,
                   uint64_t *rng)
{
    TRY(sl__buf_append(out, head, head_len));
    if (a->kind == SL_MOCK_CHAT)
        TRY(i == 0 ? LIT(out, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"")
                   : LIT(out, "{\"index\":0,\"delta\":{\"content\":\""));
    else
        TRY(LIT(out, "{\"text\":\""));
    if (i == 0) {
        TRY(sl__buf_append(out, a->prompt.data, a->prompt.len));
    } else {
        TRY(LIT(out, " "));
        TRY(sl__buf_append_str(out, sl__mock_word(sl__mock_rand(rng))));
    }
    if (a->kind == SL_MOCK_CHAT)
        TRY(LIT(out, "\"},\"logprobs\":null,\"finish_reason\":"));
    else
        TRY(LIT(out, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":"));
    if (i == a->n - 1)
        TRY(finish_json(out, a));
    else
        TRY(LIT(out, "null"));
    return LIT(out, "}]}\n\n");
}

static int usage_json(sl_buf *out, const sl_mock_answer *a)
{
    TRY(LIT(out, "\"usage\":{\"prompt_tokens\":"));
    TRY(append_i(out, a->prompt_tokens));
    TRY(LIT(out, ",\"completion_tokens\":"));
    TRY(append_i(out, a->completion_tokens));
    TRY(LIT(out, ",\"total_tokens\":"));
    TRY(append_i(out, a->prompt_tokens + a->completion_tokens));
    return LIT(out, "}");
}

int sl__mock_usage_chunk(sl_buf *out, const sl_mock_answer *a, const char *head, size_t head_len)
{
    TRY(sl__buf_append(out, head, head_len));
    TRY(LIT(out, "],"));
    TRY(usage_json(out, a));
    return LIT(out, "}\n\n");
}

int sl__mock_completion(sl_buf *out, const sl_mock_answer *a, const char *id, long long created)
{
    TRY(LIT(out, "{\"id\":\""));
    TRY(sl__buf_append_str(out, id));
    if (a->kind == SL_MOCK_CHAT)
        TRY(LIT(out, "\",\"object\":\"chat.completion\",\"created\":"));
    else
        TRY(LIT(out, "\",\"object\":\"text_completion\",\"created\":"));
    TRY(append_i(out, created));
    TRY(LIT(out, ",\"model\":\""));
    TRY(sl__buf_append(out, a->model.data, a->model.len));
    TRY(LIT(out, "\",\"system_fingerprint\":\"fp_mock\",\"choices\":[{"));
    if (a->kind == SL_MOCK_CHAT)
        TRY(LIT(out, "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\""));
    else
        TRY(LIT(out, "\"text\":\""));
    TRY(sl__buf_append(out, a->prompt.data, a->prompt.len));
    uint64_t rng = a->words;
    for (int i = 1; i < a->n; i++) {
        TRY(LIT(out, " "));
        TRY(sl__buf_append_str(out, sl__mock_word(sl__mock_rand(&rng))));
    }
    if (a->kind == SL_MOCK_CHAT)
        TRY(LIT(out, "\"},\"logprobs\":null,\"finish_reason\":"));
    else
        TRY(LIT(out, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":"));
    TRY(finish_json(out, a));
    TRY(LIT(out, "}],"));
    TRY(usage_json(out, a));
    return LIT(out, "}");
}

/* ---- embeddings ---- */

static int base64_append(sl_buf *out, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    TRY(sl__buf_reserve(out, (n + 2) / 3 * 4));
    char *w = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *w++ = tab[v >> 18];
        *w++ = tab[(v >> 12) & 63];
        *w++ = tab[(v >> 6) & 63];
        *w++ = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        *w++ = tab[v >> 18];
        *w++ = tab[(v >> 12) & 63];
        *w++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *w++ = '=';
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

/* One input's unit vector: dims draws in [-1, 1) from splitmix64 seeded with
 * FNV-1a(input) ^ seed, divided by their norm. */
static int embedding_append(sl_buf *out, uint64_t h, uint64_t seed, long dims, int b64, float *vec)
{
    uint64_t st = h ^ (seed * 0x9e3779b97f4a7c15ull);
    double norm = 0;
    double tmp[SL_MOCK_MAX_DIMENSIONS];
    for (long d = 0; d < dims; d++) {
        double u = (double)(sl__mock_rand(&st) >> 11) * 0x1.0p-52 - 1.0;
        tmp[d] = u;
        norm += u * u;
    }
    norm = norm > 0 ? sqrt(norm) : 1;
    if (b64) {
        for (long d = 0; d < dims; d++) {
            float f = (float)(tmp[d] / norm);
            memcpy(&vec[d], &f, sizeof f); /* little-endian on every supported host */
        }
        TRY(LIT(out, "\""));
        TRY(base64_append(out, (const unsigned char *)vec, (size_t)dims * sizeof(float)));
        return LIT(out, "\"");
    }
    TRY(LIT(out, "["));
    for (long d = 0; d < dims; d++) {
        TRY(sl__buf_reserve(out, 24));
        int k = snprintf(out->data + out->len, 24, d ? ",%.8g" : "%.8g", tmp[d] / norm);
        out->len += (size_t)k;
    }
    return LIT(out, "]");
}

int sl__mock_embeddings(sl_buf *out, const char *body, size_t len, uint64_t seed, sl_mock_err *e)
{
    json_t *root = NULL;
    float *vec = NULL;
    char why[160];
    e->status = 0;
    e->param = NULL;
    e->message[0] = '\0';
    int rc = sl__json_parse(body, len, 0, &root, why, sizeof why);
    if (rc) {
        rc = err_set(e, 400, NULL, "invalid JSON body: %s", why);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = err_set(e, 400, NULL, "%s", "the request body must be a JSON object");
        goto out;
    }
    json_t *input = json_object_get(root, "input");
    if (!input) {
        rc = err_set(e, 400, "input", "'%s' is a required property", "input");
        goto out;
    }
    size_t count = json_is_array(input) ? json_array_size(input) : 1;
    if (!json_is_string(input) && !(json_is_array(input) && count > 0)) {
        rc = err_set(e, 400, "input", "'%s' must be a string or a non-empty array", "input");
        goto out;
    }
    if (count > SL_MOCK_MAX_INPUTS) {
        rc = err_set(e, 400, "input", "'%s' holds more than 2048 items", "input");
        goto out;
    }
    long long dims = SL_MOCK_DEFAULT_DIMENSIONS;
    json_t *dv = json_object_get(root, "dimensions");
    if (dv && !json_is_null(dv)) {
        if (!json_is_integer(dv) || json_integer_value(dv) < 1 ||
            json_integer_value(dv) > SL_MOCK_MAX_DIMENSIONS) {
            rc = err_set(e, 400, "dimensions", "'%s' must be an integer from 1 to 4096",
                         "dimensions");
            goto out;
        }
        dims = json_integer_value(dv);
    }
    const char *fmt = sl__json_str(root, "encoding_format");
    int b64 = fmt && !strcmp(fmt, "base64");
    if (json_object_get(root, "encoding_format") &&
        !json_is_null(json_object_get(root, "encoding_format")) &&
        !(fmt && (b64 || !strcmp(fmt, "float")))) {
        rc = err_set(e, 400, "encoding_format", "'%s' must be \"float\" or \"base64\"",
                     "encoding_format");
        goto out;
    }
    if (b64 && !(vec = malloc((size_t)dims * sizeof *vec))) {
        rc = SL_ENOMEM;
        goto out;
    }
    long tokens = 0;
    if ((rc = LIT(out, "{\"object\":\"list\",\"data\":[")))
        goto out;
    for (size_t i = 0; i < count; i++) {
        json_t *x = json_is_array(input) ? json_array_get(input, i) : input;
        uint64_t h;
        if (json_is_string(x)) {
            h = sl__mock_hash(json_string_value(x), json_string_length(x), SL_MOCK_HASH_INIT);
            tokens += sl__mock_count_words(json_string_value(x), json_string_length(x));
        } else {
            /* token arrays and other shapes: hash their compact JSON */
            char *js = sl__json_dump(x);
            if (!js) {
                rc = SL_ENOMEM;
                goto out;
            }
            h = sl__mock_hash(js, strlen(js), SL_MOCK_HASH_INIT);
            free(js);
            tokens += json_is_array(x) ? (long)json_array_size(x) : 1;
        }
        if ((i && (rc = LIT(out, ","))) ||
            (rc = LIT(out, "{\"object\":\"embedding\",\"index\":")) || (rc = append_u(out, i)) ||
            (rc = LIT(out, ",\"embedding\":")) ||
            (rc = embedding_append(out, h, seed, (long)dims, b64, vec)) || (rc = LIT(out, "}")))
            goto out;
    }
    const json_t *model = json_object_get(root, "model");
    if ((rc = LIT(out, "],\"model\":\"")))
        goto out;
    if (json_is_string(model))
        rc = sl__json_escape(out, json_string_value(model), json_string_length(model), NULL);
    else
        rc = LIT(out, "mock-embedding");
    if (rc || (rc = LIT(out, "\",\"usage\":{\"prompt_tokens\":")) || (rc = append_i(out, tokens)) ||
        (rc = LIT(out, ",\"total_tokens\":")) || (rc = append_i(out, tokens)) ||
        (rc = LIT(out, "}}")))
        goto out;
out:
    if (rc == SL_ENOMEM || rc == SL_ELIMIT) {
        e->status = 500;
        snprintf(e->message, sizeof e->message, "mock: %s", sl_strerror(rc));
    }
    free(vec);
    json_decref(root);
    return rc;
}

int sl__mock_models(sl_buf *out)
{
    return LIT(out,
               "{\"object\":\"list\",\"data\":["
               "{\"id\":\"mock-model\",\"object\":\"model\",\"created\":0,\"owned_by\":\"mock\"},"
               "{\"id\":\"mock-embedding\",\"object\":\"model\",\"created\":0,"
               "\"owned_by\":\"mock\"}]}");
}

/* A quoted JSON string of s, or null. Messages may quote the client's bytes (a path, a
 * JSON parser's complaint) or be cut mid-character: invalid UTF-8 becomes '?'. */
static int str_or_null(sl_buf *out, const char *s)
{
    if (!s)
        return LIT(out, "null");
    TRY(LIT(out, "\""));
    TRY(sl__json_escape(out, s, strlen(s), "?"));
    return LIT(out, "\"");
}

int sl__mock_error_body(sl_buf *out, const char *message, const char *type, const char *param,
                        const char *code)
{
    TRY(LIT(out, "{\"error\":{\"message\":"));
    TRY(str_or_null(out, message));
    TRY(LIT(out, ",\"type\":"));
    TRY(str_or_null(out, type));
    TRY(LIT(out, ",\"param\":"));
    TRY(str_or_null(out, param));
    TRY(LIT(out, ",\"code\":"));
    TRY(str_or_null(out, code));
    return LIT(out, "}}");
}
