/* fuzz_openai_stream.c — arbitrary bytes as a streamed answer (fed in pieces whose sizes
 * come from the input) and as a non-streamed body: no crash, no leak, and a successful
 * stream always yields a body that is a JSON object. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "llm/openai.h"

static int on_delta(void *user, const sl_delta *d)
{
    size_t *total = user;
    *total += d->text.len + d->tool_id.len + d->tool_name.len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t total = 0;
    sl_openai_kind kind = data[0] & 1 ? SL_OPENAI_COMPLETIONS : SL_OPENAI_CHAT;
    size_t step = 1 + data[1] % 64;
    const char *p = (const char *)data + 2;
    size_t n = size - 2;

    sl_openai_parser *ps = sl__openai_parser_new(kind, 4096, on_delta, &total);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i += step)
        rc = sl__openai_feed(ps, p + i, n - i < step ? n - i : step);
    if (!rc && sl__openai_finish(ps) == 0) {
        const sl_openai_out *o = sl__openai_out(ps);
        json_t *v = json_loadb(o->body.ptr, o->body.len, JSON_ALLOW_NUL, NULL);
        if (!json_is_object(v))
            abort();
        json_decref(v);
    }
    sl__openai_parser_free(ps);

    sl_openai_parser *pb = sl__openai_parser_new(kind, 1 << 16, on_delta, &total);
    sl__openai_parse_body(pb, p, n);
    sl__openai_parser_free(pb);

    char msg[128];
    sl__openai_error_message(p, n, msg, sizeof msg);
    return 0;
}
