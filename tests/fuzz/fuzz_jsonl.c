/* fuzz_jsonl.c — libFuzzer target for the batch JSONL reader and the result line builder.
 *
 * The input is a whole JSONL file, read from memory (no temp file: fast). Options come
 * from the input's length (size % 4) so every seed is a plain JSONL file: the default cap
 * or a tiny one (64 / 256 bytes, to reach the over-long-line path), with or without a
 * default model. Beyond "no crash, no leak" it checks what must always hold:
 *   - the quick first pass agrees with the reader (fingerprint, lines, items);
 *   - a request has an id, an endpoint and an object body; an error has a message that
 *     names its line;
 *   - a result line built from any id and any body (the raw line bytes) is one line of
 *     JSON that parses back with the same custom_id. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apps/batch/input.h"
#include "apps/batch/output.h"
#include "base/buf.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);                 \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

static void check_line(const char *custom_id, const char *body, size_t blen, int status)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    sl_batch_result r = {custom_id, status, "req", {body, blen}, NULL, NULL, 0, NULL, 0};
    if (!status) {
        r.error_code = "invalid_input";
        r.error_message = body; /* any bytes: they must come out as a valid string */
    }
    CHECK(sl__batch_result_line(&b, "batch_req_0", &r) == 0);
    CHECK(b.len > 0 && b.data[b.len - 1] == '\n');
    CHECK(memchr(b.data, '\n', b.len - 1) == NULL);
    json_error_t je;
    json_t *v = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &je);
    CHECK(v != NULL);
    CHECK(strcmp(json_string_value(json_object_get(v, "custom_id")), custom_id) == 0);
    json_decref(v);
    sl__buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[4] = {0, 64, 256, 0};
    sl_batch_input_opts o = {(size % 4) & 1 ? "fuzz-model" : NULL, caps[size % 4]};
    sl_batch_input *in = NULL;
    if (sl__batch_input_open_mem(data, size, &o, &in))
        return 0;
    sl_batch_item it;
    uint64_t items = 0;
    int rc;
    while ((rc = sl__batch_input_next(in, &it)) == 1) {
        items++;
        CHECK(it.line_no >= 1);
        if (it.error) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "line %llu: ", (unsigned long long)it.line_no);
            CHECK(strncmp(it.error, prefix, strlen(prefix)) == 0);
            CHECK(it.error_code && !it.body && !it.endpoint);
            /* an error line with an id gets an output line */
            if (it.id)
                check_line(it.id, it.error, strlen(it.error), 0);
        } else {
            CHECK(it.id && it.id[0] && it.endpoint && json_is_object(it.body));
            char *body = json_dumps(it.body, JSON_COMPACT);
            CHECK(body != NULL);
            check_line(it.id, body, strlen(body), 200);
            free(body);
        }
        sl__batch_item_clear(&it);
    }
    CHECK(rc == 0);
    sl_batch_scan sc;
    sl__batch_input_scan_mem(data, size, o.max_line, &sc);
    CHECK(sc.fingerprint == sl__batch_input_fingerprint(in));
    CHECK(sc.lines == sl__batch_input_lines(in));
    CHECK(sc.items == items);
    CHECK(sc.bytes == size);
    sl__batch_input_free(in);

    /* the raw bytes as a provider's body, and as an id */
    if (size <= 4096) {
        check_line("x", (const char *)data, size, 502);
        char *id = malloc(size + 1);
        if (id) {
            memcpy(id, data, size);
            id[size] = '\0';
            /* the id goes through quoting; compare after jansson's view of it */
            sl_buf b;
            sl__buf_init(&b, 0);
            sl_batch_result r = {id, 0, NULL, {NULL, 0}, "c", "m", 0, NULL, 0};
            CHECK(sl__batch_result_line(&b, "i", &r) == 0);
            json_t *v = json_loadb(b.data, b.len, JSON_ALLOW_NUL, NULL);
            CHECK(v != NULL && memchr(b.data, '\n', b.len - 1) == NULL);
            json_decref(v);
            sl__buf_free(&b);
            free(id);
        }
    }
    return 0;
}
