/* fuzz_request_json.c — sl_request_from_json, the builders, to_json and the token
 * estimate on arbitrary bytes: no crash, no leak, and what to_json writes reads back
 * to an equal object. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "llm/request.h"

static void check_roundtrip(const sl_request *r)
{
    char *s = sl_request_to_json(r);
    if (!s)
        return;
    json_t *back = json_loads(s, JSON_ALLOW_NUL, NULL);
    if (!back || !json_equal(back, (json_t *)sl__request_body(r)))
        abort();
    json_decref(back);
    free(s);
    size_t len = 0;
    char *w = sl__request_wire_body(r, &len);
    if (w) {
        json_t *wv = json_loadb(w, len, JSON_ALLOW_NUL, NULL);
        if (!json_is_object(wv))
            abort();
        json_decref(wv);
        free(w);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_request *r = NULL;
    if (sl_request_from_json((const char *)data, size, &r) != 0) {
        if (r)
            abort();
        return 0;
    }
    (void)sl_request_estimate_tokens(r);
    (void)sl_request_stream(r);
    (void)sl_request_max_tokens(r);
    (void)sl_request_model(r);
    check_roundtrip(r);
    sl_request_default_model(r, "m");
    sl_request_set_system(r, "s");
    sl_request_add_message(r, "user", (const char *)data, size > 64 ? 64 : size);
    sl_request_set_max_tokens(r, 16);
    (void)sl_request_estimate_tokens(r);
    check_roundtrip(r);
    sl_request *c = sl__request_copy(r);
    if (c) {
        check_roundtrip(c);
        sl_request_free(c);
    }
    sl_request_free(r);
    return 0;
}
