/* fuzz_mock.c — libFuzzer target for the mock's parsers of untrusted input.
 *
 * The first byte picks what the rest is: an x-mock header value, or a chat, legacy or
 * embeddings request body. Whatever the input, parsing returns 0 or an error with a
 * status and a message, and on success every formatted answer is valid JSON (SSE chunks
 * too) whose text begins with what the request said. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/mock.h>

#include "apps/mock/answer.h"
#include "apps/mock/fault.h"
#include "base/buf.h"
#include "base/json.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_json(const char *p, size_t n)
{
    json_t *v = NULL;
    check(sl__json_parse(p, n, 0, &v, NULL, 0) == 0);
    json_decref(v);
}

static void fuzz_xmock(const char *p, size_t n)
{
    sl_mock_opts o;
    char err[128];
    sl_mock_opts_init(&o);
    err[0] = '\0';
    int rc = sl__mock_xmock_parse(&o, p, n, err, sizeof err);
    check(rc == 0 || (rc == SL_EINVAL && !strncmp(err, "x-mock: ", 8)));
    check(o.chunks >= 1 && o.chunks <= SL_MOCK_MAX_CHUNKS);
    check(o.fail_rate >= 0 && o.fail_rate <= 1);
    check(o.ttft_ms >= 0 && o.interval_ms >= 0 && o.slow_read_ms >= 0);
    check(o.fail_status >= 400 && o.fail_status <= 599);
}

static void fuzz_answer(int kind, const char *p, size_t n)
{
    sl_mock_answer a;
    sl_mock_err e;
    sl_buf out, head;
    sl__mock_answer_init(&a);
    sl__buf_init(&out, 0);
    sl__buf_init(&head, 0);
    int rc = sl__mock_answer_parse(&a, kind, p, n, 1, 4, &e);
    if (rc) {
        check(e.status == 400 || e.status == 500);
        check(e.message[0] != '\0');
        sl__buf_reset(&out);
        check(sl__mock_error_body(&out, e.message, "invalid_request_error", e.param, NULL) == 0);
        check_json(out.data, out.len);
        goto out;
    }
    check(a.n >= 1 && a.n <= 4);
    check(a.completion_tokens >= a.n - 1 && a.prompt_tokens >= 0);
    check(sl__mock_completion(&out, &a, "id-1", 0) == 0);
    check_json(out.data, out.len);
    check(sl__mock_chunk_head(&head, &a, "id-1", 0) == 0);
    uint64_t rng = a.words;
    for (int i = 0; i < a.n; i++) {
        sl__buf_reset(&out);
        check(sl__mock_chunk(&out, &a, head.data, head.len, i, &rng) == 0);
        check(out.len > 8 && !memcmp(out.data, "data: ", 6));
        check(!memchr(out.data, '\n', out.len - 2)); /* one SSE line */
        check_json(out.data + 6, out.len - 8);
    }
    sl__buf_reset(&out);
    check(sl__mock_usage_chunk(&out, &a, head.data, head.len) == 0);
    check_json(out.data + 6, out.len - 8);
out:
    sl__buf_free(&out);
    sl__buf_free(&head);
    sl__mock_answer_free(&a);
}

static void fuzz_embeddings(const char *p, size_t n)
{
    sl_buf out;
    sl_mock_err e;
    sl__buf_init(&out, 0);
    int rc = sl__mock_embeddings(&out, p, n, 1, &e);
    if (rc)
        check(e.status == 400 || e.status == 500);
    else
        check_json(out.data, out.len);
    sl__buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0:
        fuzz_xmock(p, n);
        break;
    case 1:
        fuzz_answer(SL_MOCK_CHAT, p, n);
        break;
    case 2:
        fuzz_answer(SL_MOCK_TEXT, p, n);
        break;
    default:
        fuzz_embeddings(p, n);
        break;
    }
    return 0;
}
