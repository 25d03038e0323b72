/* test_mock.c — the mock upstream: answers, x-mock, faults, and the server end to end.
 *
 * The pure parts (answer plan, frames, option parsing, fault decisions, the rpm window)
 * are checked byte for byte without sockets. The server tests run sl_mock on a libuv
 * loop in this thread and drive it with libcurl from a second thread; the loop must
 * end with no live handles after sl_mock_free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/mock.h>

#include "apps/mock/answer.h"
#include "apps/mock/fault.h"
#include "base/buf.h"
#include "base/json.h"

/* ---- helpers ---- */

/* Parse a (chat or text) body, format the non-streamed answer, return it parsed. */
static json_t *complete(int kind, const char *body, uint64_t seed, int chunks)
{
    sl_mock_answer a;
    sl_mock_err e;
    sl_buf out;
    sl__mock_answer_init(&a);
    sl__buf_init(&out, 0);
    assert_int_equal(sl__mock_answer_parse(&a, kind, body, strlen(body), seed, chunks, &e), 0);
    assert_int_equal(sl__mock_completion(&out, &a, "chatcmpl-mock-1", 1700000000), 0);
    json_t *v = NULL;
    assert_int_equal(sl__json_parse(out.data, out.len, 0, &v, NULL, 0), 0);
    sl__buf_free(&out);
    sl__mock_answer_free(&a);
    return v;
}

static const char *content_of(const json_t *completion)
{
    json_t *c0 = json_array_get(json_object_get(completion, "choices"), 0);
    json_t *msg = json_object_get(c0, "message");
    return msg ? sl__json_str(msg, "content") : sl__json_str(c0, "text");
}

static const char *finish_of(const json_t *completion)
{
    return sl__json_str(json_array_get(json_object_get(completion, "choices"), 0), "finish_reason");
}

static long usage_of(const json_t *completion, const char *key)
{
    return (long)sl__json_int(json_object_get(completion, "usage"), key, -1);
}

/* Format every SSE chunk of an answer and reassemble the content. */
static void stream_text(const char *body, uint64_t seed, int chunks, sl_buf *text, int *events,
                        sl_buf *raw)
{
    sl_mock_answer a;
    sl_mock_err e;
    sl_buf head;
    sl__mock_answer_init(&a);
    sl__buf_init(&head, 0);
    assert_int_equal(sl__mock_answer_parse(&a, SL_MOCK_CHAT, body, strlen(body), seed, chunks, &e),
                     0);
    assert_int_equal(sl__mock_chunk_head(&head, &a, "chatcmpl-mock-1", 1700000000), 0);
    uint64_t rng = a.words;
    *events = 0;
    for (int i = 0; i < a.n; i++) {
        sl_buf one;
        sl__buf_init(&one, 0);
        assert_int_equal(sl__mock_chunk(&one, &a, head.data, head.len, i, &rng), 0);
        assert_true(one.len > 8);
        assert_memory_equal(one.data, "data: ", 6);
        assert_memory_equal(one.data + one.len - 2, "\n\n", 2);
        assert_null(memchr(one.data, '\n', one.len - 2)); /* one line */
        json_t *v = NULL;
        assert_int_equal(sl__json_parse(one.data + 6, one.len - 8, 0, &v, NULL, 0), 0);
        json_t *c0 = json_array_get(json_object_get(v, "choices"), 0);
        json_t *delta = json_object_get(c0, "delta");
        const char *piece = sl__json_str(delta, "content");
        assert_non_null(piece);
        assert_int_equal(sl__buf_append(text, piece, strlen(piece)), 0);
        if (i == 0)
            assert_string_equal(sl__json_str(delta, "role"), "assistant");
        else
            assert_null(json_object_get(delta, "role"));
        if (i == a.n - 1)
            assert_non_null(sl__json_str(c0, "finish_reason"));
        else
            assert_true(json_is_null(json_object_get(c0, "finish_reason")));
        json_decref(v);
        if (raw)
            sl__buf_append(raw, one.data, one.len);
        sl__buf_free(&one);
        (*events)++;
    }
    sl__buf_free(&head);
    sl__mock_answer_free(&a);
}

/* ---- pure parts ---- */

static void test_answer_begins_with_prompt(void **state)
{
    const char *body = "{\"model\":\"m1\",\"messages\":[{\"role\":\"system\",\"content\":\"be "
                       "brief\"},{\"role\":\"user\",\"content\":\"first q\"},{\"role\":"
                       "\"assistant\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"say "
                       "\\\"hi\\\"\\n\\u0001 now\"}]}";
    json_t *v = complete(SL_MOCK_CHAT, body, 1, 5);
    const char *text = content_of(v);
    const char *prompt = "say \"hi\"\n\001 now";
    assert_memory_equal(text, prompt, strlen(prompt));
    /* then exactly 4 words, each " " + a vocabulary word */
    const char *p = text + strlen(prompt);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(*p, ' ');
        p++;
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        assert_true(n > 0);
        p += n;
    }
    assert_int_equal(*p, '\0');
    assert_string_equal(sl__json_str(v, "object"), "chat.completion");
    assert_string_equal(sl__json_str(v, "model"), "m1");
    assert_string_equal(sl__json_str(v, "id"), "chatcmpl-mock-1");
    assert_int_equal(sl__json_int(v, "created", 0), 1700000000);
    assert_string_equal(finish_of(v), "stop");
    /* token rule: prompt = words of every message (2 + 2 + 1 + 4), completion = words
     * of the answer (4 of the prompt + 4) */
    assert_int_equal(usage_of(v, "prompt_tokens"), 9);
    assert_int_equal(usage_of(v, "completion_tokens"), 8);
    assert_int_equal(usage_of(v, "total_tokens"), 17);
    json_decref(v);
}

static void test_answer_deterministic(void **state)
{
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}";
    const char *body2 = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}] }";
    json_t *a = complete(SL_MOCK_CHAT, body, 7, 20);
    json_t *b = complete(SL_MOCK_CHAT, body, 7, 20);
    json_t *c = complete(SL_MOCK_CHAT, body, 8, 20);
    json_t *d = complete(SL_MOCK_CHAT, body2, 7, 20);
    assert_string_equal(content_of(a), content_of(b));
    assert_string_not_equal(content_of(a), content_of(c));
    assert_string_not_equal(content_of(a), content_of(d)); /* the body's hash counts */
    assert_memory_equal(content_of(c), "hello ", 6);
    assert_string_equal(sl__json_str(a, "model"), "mock-model");
    assert_int_equal(usage_of(a, "completion_tokens"), 20);
    assert_int_equal(usage_of(a, "prompt_tokens"), 1);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
}

static void test_answer_max_tokens(void **state)
{
    json_t *v = complete(
        SL_MOCK_CHAT, "{\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":\"a b\"}]}",
        1, 10);
    assert_string_equal(finish_of(v), "length");
    assert_int_equal(usage_of(v, "completion_tokens"), 4); /* "a b" + 2 words */
    json_decref(v);
    v = complete(SL_MOCK_CHAT,
                 "{\"max_tokens\":50,\"max_completion_tokens\":2,\"messages\":[{\"role\":\"user\","
                 "\"content\":\"x\"}]}",
                 1, 10);
    assert_string_equal(finish_of(v), "length");
    assert_int_equal(usage_of(v, "completion_tokens"), 2);
    json_decref(v);
    /* not smaller than chunks: "stop" */
    v = complete(SL_MOCK_CHAT,
                 "{\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 1, 10);
    assert_string_equal(finish_of(v), "stop");
    assert_int_equal(usage_of(v, "completion_tokens"), 10);
    json_decref(v);
}

static void test_answer_content_shapes(void **state)
{
    /* parts: text parts joined with '\n', images ignored */
    json_t *v =
        complete(SL_MOCK_CHAT,
                 "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
                 "\"look\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},{"
                 "\"type\":\"text\",\"text\":\"at this\"}]}]}",
                 1, 1);
    assert_string_equal(content_of(v), "look\nat this");
    assert_int_equal(usage_of(v, "prompt_tokens"), 3);
    assert_int_equal(usage_of(v, "completion_tokens"), 3);
    json_decref(v);
    /* weird contents do not crash; no user message: the answer starts empty */
    v = complete(SL_MOCK_CHAT,
                 "{\"messages\":[{\"role\":\"system\",\"content\":5},{\"role\":\"assistant\","
                 "\"content\":null,\"tool_calls\":[]},{\"role\":\"tool\",\"content\":{\"a\":1}}]}",
                 1, 3);
    const char *t = content_of(v);
    assert_int_equal(t[0], ' ');
    assert_int_equal(usage_of(v, "prompt_tokens"), 0);
    assert_int_equal(usage_of(v, "completion_tokens"), 2);
    json_decref(v);
    /* a user content of parts with junk entries */
    v = complete(SL_MOCK_CHAT,
                 "{\"messages\":[{\"role\":\"user\",\"content\":[1,null,{\"type\":\"text\"},{"
                 "\"text\":7},\"bare\"]}]}",
                 1, 1);
    assert_string_equal(content_of(v), "bare");
    json_decref(v);
}

static void test_answer_legacy(void **state)
{
    json_t *v = complete(SL_MOCK_TEXT, "{\"model\":\"t\",\"prompt\":\"Once upon\"}", 1, 4);
    assert_string_equal(sl__json_str(v, "object"), "text_completion");
    assert_memory_equal(content_of(v), "Once upon ", 10);
    assert_int_equal(usage_of(v, "prompt_tokens"), 2);
    assert_int_equal(usage_of(v, "completion_tokens"), 5);
    json_decref(v);
    v = complete(SL_MOCK_TEXT, "{\"prompt\":[\"one two\",\"three\"]}", 1, 1);
    assert_string_equal(content_of(v), "three");
    assert_int_equal(usage_of(v, "prompt_tokens"), 3);
    json_decref(v);
}

static void expect_error(int kind, const char *body, const char *param, const char *needle)
{
    sl_mock_answer a;
    sl_mock_err e;
    sl__mock_answer_init(&a);
    assert_int_equal(sl__mock_answer_parse(&a, kind, body, strlen(body), 1, 5, &e), SL_EINVAL);
    assert_int_equal(e.status, 400);
    if (param)
        assert_string_equal(e.param, param);
    else
        assert_null(e.param);
    assert_non_null(strstr(e.message, needle));
    sl__mock_answer_free(&a);
}

static void test_answer_errors(void **state)
{
    expect_error(SL_MOCK_CHAT, "{\"messages\":", NULL, "invalid JSON body");
    expect_error(SL_MOCK_CHAT, "[1]", NULL, "JSON object");
    expect_error(SL_MOCK_CHAT, "{}", "messages", "required");
    expect_error(SL_MOCK_CHAT, "{\"messages\":[]}", "messages", "non-empty");
    expect_error(SL_MOCK_CHAT, "{\"messages\":\"hi\"}", "messages", "non-empty");
    expect_error(SL_MOCK_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "messages", "role");
    expect_error(SL_MOCK_CHAT, "{\"messages\":[1]}", "messages", "role");
    expect_error(SL_MOCK_CHAT, "{\"max_tokens\":0,\"messages\":[{\"role\":\"user\"}]}",
                 "max_tokens", "at least 1");
    expect_error(SL_MOCK_TEXT, "{}", "prompt", "required");
    expect_error(SL_MOCK_TEXT, "{\"prompt\":5}", "prompt", "string");
}

static void test_stream_frames(void **state)
{
    const char *body = "{\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":"
                       "[{\"role\":\"user\",\"content\":\"tell me\"}]}";
    sl_buf text;
    sl__buf_init(&text, 0);
    int events = 0;
    stream_text(body, 3, 6, &text, &events, NULL);
    assert_int_equal(events, 6);
    json_t *v = complete(SL_MOCK_CHAT, body, 3, 6);
    assert_string_equal(text.data, content_of(v));
    json_decref(v);
    sl__buf_free(&text);

    /* byte-exact frames of a 2-chunk answer */
    sl_mock_answer a;
    sl_mock_err e;
    sl_buf out, head;
    sl__mock_answer_init(&a);
    sl__buf_init(&out, 0);
    sl__buf_init(&head, 0);
    assert_int_equal(sl__mock_answer_parse(&a, SL_MOCK_CHAT, body, strlen(body), 3, 2, &e), 0);
    assert_true(a.stream);
    assert_true(a.include_usage);
    assert_int_equal(sl__mock_chunk_head(&head, &a, "chatcmpl-mock-9", 5), 0);
    uint64_t rng = a.words, r2 = a.words;
    assert_int_equal(sl__mock_chunk(&out, &a, head.data, head.len, 0, &rng), 0);
    assert_int_equal(sl__mock_chunk(&out, &a, head.data, head.len, 1, &rng), 0);
    assert_int_equal(sl__mock_usage_chunk(&out, &a, head.data, head.len), 0);
    char expect[2048];
    const char *h = "data: {\"id\":\"chatcmpl-mock-9\",\"object\":\"chat.completion.chunk\","
                    "\"created\":5,\"model\":\"mock-model\",\"system_fingerprint\":\"fp_mock\","
                    "\"choices\":[";
    snprintf(expect, sizeof expect,
             "%s{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"tell me\"},"
             "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
             "%s{\"index\":0,\"delta\":{\"content\":\" %s\"},\"logprobs\":null,"
             "\"finish_reason\":\"stop\"}]}\n\n"
             "%s],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}"
             "\n\n",
             h, h, sl__mock_word(sl__mock_rand(&r2)), h);
    assert_string_equal(out.data, expect);
    sl__buf_free(&out);
    sl__buf_free(&head);
    sl__mock_answer_free(&a);
}

static void test_text_frames(void **state)
{
    const char *body = "{\"prompt\":\"p\",\"stream\":true}";
    sl_mock_answer a;
    sl_mock_err e;
    sl_buf out, head;
    sl__mock_answer_init(&a);
    sl__buf_init(&out, 0);
    sl__buf_init(&head, 0);
    assert_int_equal(sl__mock_answer_parse(&a, SL_MOCK_TEXT, body, strlen(body), 1, 1, &e), 0);
    assert_false(a.include_usage);
    assert_int_equal(sl__mock_chunk_head(&head, &a, "cmpl-mock-2", 0), 0);
    uint64_t rng = a.words;
    assert_int_equal(sl__mock_chunk(&out, &a, head.data, head.len, 0, &rng), 0);
    assert_string_equal(
        out.data, "data: {\"id\":\"cmpl-mock-2\",\"object\":\"text_completion\",\"created\":0,"
                  "\"model\":\"mock-model\",\"system_fingerprint\":\"fp_mock\",\"choices\":[{"
                  "\"text\":\"p\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"stop\"}]}"
                  "\n\n");
    sl__buf_free(&out);
    sl__buf_free(&head);
    sl__mock_answer_free(&a);
}

static void test_escape_and_words(void **state)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__mock_json_escape(&b, "a\"b\\c\n\x1f\0z\xc3\xa9", 11), 0);
    assert_string_equal(b.data, "a\\\"b\\\\c\\n\\u001f\\u0000z\xc3\xa9");
    sl__buf_free(&b);
    assert_int_equal(sl__mock_count_words("", 0), 0);
    assert_int_equal(sl__mock_count_words("  a  b\tc\n", 9), 3);
    assert_int_equal(sl__mock_count_words("word", 4), 1);
}

static void test_error_body(void **state)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__mock_error_body(&b, "bad \"x\"", "invalid_request_error", "x", NULL), 0);
    assert_string_equal(b.data, "{\"error\":{\"message\":\"bad \\\"x\\\"\",\"type\":"
                                "\"invalid_request_error\",\"param\":\"x\",\"code\":null}}");
    sl__buf_free(&b);
}

static void embed(const char *body, uint64_t seed, json_t **out)
{
    sl_buf b;
    sl_mock_err e;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__mock_embeddings(&b, body, strlen(body), seed, &e), 0);
    assert_int_equal(sl__json_parse(b.data, b.len, 0, out, NULL, 0), 0);
    sl__buf_free(&b);
}

static double norm_of(const json_t *vec)
{
    double s = 0;
    size_t i;
    json_t *x;
    json_array_foreach(vec, i, x) s += json_real_value(x) * json_real_value(x);
    return sqrt(s);
}

static void test_embeddings(void **state)
{
    json_t *a, *b, *c;
    embed("{\"input\":[\"alpha\",\"beta\",\"alpha\"],\"dimensions\":8}", 1, &a);
    embed("{\"input\":\"alpha\",\"dimensions\":8,\"model\":\"e\"}", 1, &b);
    embed("{\"input\":\"alpha\",\"dimensions\":8}", 2, &c);
    json_t *data = json_object_get(a, "data");
    assert_int_equal(json_array_size(data), 3);
    json_t *v0 = json_object_get(json_array_get(data, 0), "embedding");
    json_t *v1 = json_object_get(json_array_get(data, 1), "embedding");
    json_t *v2 = json_object_get(json_array_get(data, 2), "embedding");
    assert_int_equal(sl__json_int(json_array_get(data, 2), "index", -1), 2);
    assert_int_equal(json_array_size(v0), 8);
    assert_true(fabs(norm_of(v0) - 1.0) < 1e-6);
    assert_true(json_equal(v0, v2));  /* same string, same vector */
    assert_false(json_equal(v0, v1)); /* different string */
    json_t *b0 = json_object_get(json_array_get(json_object_get(b, "data"), 0), "embedding");
    json_t *c0 = json_object_get(json_array_get(json_object_get(c, "data"), 0), "embedding");
    assert_true(json_equal(v0, b0));
    assert_false(json_equal(v0, c0)); /* the seed counts */
    assert_string_equal(sl__json_str(b, "model"), "e");
    assert_string_equal(sl__json_str(a, "model"), "mock-embedding");
    assert_int_equal(sl__json_int(json_object_get(a, "usage"), "prompt_tokens", -1), 3);
    json_decref(a);
    json_decref(b);
    json_decref(c);

    embed("{\"input\":\"x\"}", 1, &a);
    v0 = json_object_get(json_array_get(json_object_get(a, "data"), 0), "embedding");
    assert_int_equal(json_array_size(v0), 1536);
    json_decref(a);
    /* base64: 4 float32 = 16 bytes = 24 characters */
    embed("{\"input\":\"x\",\"dimensions\":4,\"encoding_format\":\"base64\"}", 1, &a);
    const char *s = sl__json_str(json_array_get(json_object_get(a, "data"), 0), "embedding");
    assert_non_null(s);
    assert_int_equal(strlen(s), 24);
    json_decref(a);

    const char *bad[] = {"{}",
                         "{\"input\":[]}",
                         "{\"input\":5}",
                         "{\"input\":\"x\",\"dimensions\":0}",
                         "{\"input\":\"x\",\"dimensions\":4097}",
                         "{\"input\":\"x\",\"encoding_format\":\"hex\"}",
                         "nope"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_buf o;
        sl_mock_err e;
        sl__buf_init(&o, 0);
        assert_int_equal(sl__mock_embeddings(&o, bad[i], strlen(bad[i]), 1, &e), SL_EINVAL);
        assert_int_equal(e.status, 400);
        sl__buf_free(&o);
    }
}

static void test_opts_set(void **state)
{
    sl_mock_opts o;
    sl_mock_opts_init(&o);
    assert_int_equal(o.chunks, 20);
    assert_int_equal(o.fail_status, 500);
    assert_int_equal(o.cut_after, -1);
    assert_true(o.retry_after_ms == 1000);
    assert_int_equal(sl_mock_opts_set(&o, "ttft-ms", "12.5"), 0);
    assert_true(o.ttft_ms == 12.5);
    assert_int_equal(sl_mock_opts_set(&o, "interval_ms", "3"), 0);
    assert_true(o.interval_ms == 3);
    assert_int_equal(sl_mock_opts_set(&o, "seed", "18446744073709551615"), 0);
    assert_true(o.seed == UINT64_MAX);
    assert_int_equal(sl_mock_opts_set(&o, "max-body", "1024"), 0);
    assert_int_equal(o.max_body, 1024);
    const char *bad[][2] = {
        {"ttft-ms", "-1"}, {"ttft-ms", "abc"}, {"ttft-ms", ""},       {"ttft-ms", "nan"},
        {"chunks", "0"},   {"chunks", "1.5"},  {"fail-rate", "1.01"}, {"fail-status", "200"},
        {"seed", "-1"},    {"rpm", "-5"},      {"cut-after", "-2"},   {"stall", "2"},
        {"ttft", "1"},     {"chunks", "5 "},   {"max-body", "0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sl_mock_opts_set(&o, bad[i][0], bad[i][1]), SL_EINVAL);
    assert_true(o.ttft_ms == 12.5); /* unchanged by the failures */
}

static void test_xmock_parse(void **state)
{
    sl_mock_opts o;
    char err[128];
    sl_mock_opts_init(&o);
    const char *h = " ttft-ms=0; chunks = 5 ;fail-rate=1,fail-status=429;;retry-after-ms=1500; ";
    assert_int_equal(sl__mock_xmock_parse(&o, h, strlen(h), err, sizeof err), 0);
    assert_int_equal(o.chunks, 5);
    assert_true(o.fail_rate == 1);
    assert_int_equal(o.fail_status, 429);
    assert_true(o.retry_after_ms == 1500);
    h = "cut-after=3;garbage-after=2;stall=1;slow-read-ms=20;rpm=2;seed=9;interval-ms=1";
    assert_int_equal(sl__mock_xmock_parse(&o, h, strlen(h), err, sizeof err), 0);
    assert_int_equal(o.cut_after, 3);
    assert_int_equal(o.garbage_after, 2);
    assert_int_equal(o.stall, 1);
    assert_true(o.slow_read_ms == 20);
    assert_int_equal(o.rpm, 2);
    assert_true(o.seed == 9);

    assert_int_equal(sl__mock_xmock_parse(&o, "chunks=5; bogus=1", 17, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "x-mock: unknown key 'bogus'");
    assert_int_equal(sl__mock_xmock_parse(&o, "fail-rate=2", 11, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "x-mock: bad value for 'fail-rate': '2'");
    assert_int_equal(sl__mock_xmock_parse(&o, "stall", 5, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "x-mock: 'stall' has no value (expected key=value)");
    assert_int_equal(sl__mock_xmock_parse(&o, "chunks=", 7, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "x-mock: bad value for 'chunks': ''");
    char longv[200];
    memset(longv, '1', sizeof longv);
    memcpy(longv, "seed=", 5);
    assert_int_equal(sl__mock_xmock_parse(&o, longv, sizeof longv, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "x-mock: bad value for 'seed' (too long)");
    assert_int_equal(sl__mock_xmock_parse(&o, "", 0, err, sizeof err), 0);
}

static void test_fail_decision(void **state)
{
    int fails = 0;
    for (uint64_t k = 0; k < 1000; k++) {
        assert_int_equal(sl__mock_should_fail(5, k, 0.3), sl__mock_should_fail(5, k, 0.3));
        fails += sl__mock_should_fail(5, k, 0.3);
        assert_true(sl__mock_should_fail(5, k, 1.0));
        assert_false(sl__mock_should_fail(5, k, 0.0));
    }
    assert_true(fails > 240 && fails < 360); /* a fixed number for seed 5: about 30% */
    int diff = 0;
    for (uint64_t k = 0; k < 64; k++)
        diff += sl__mock_should_fail(5, k, 0.5) != sl__mock_should_fail(6, k, 0.5);
    assert_true(diff > 0);
}

static void test_rpm_window(void **state)
{
    sl_mock_window w = {0, 0};
    sl_mock_rl rl;
    sl__mock_window_take(&w, 2, 1000, &rl);
    assert_true(rl.allowed);
    assert_int_equal(rl.remaining, 1);
    assert_true(rl.reset_ms == 60000);
    sl__mock_window_take(&w, 2, 2500, &rl);
    assert_true(rl.allowed);
    assert_int_equal(rl.remaining, 0);
    sl__mock_window_take(&w, 2, 59500, &rl);
    assert_false(rl.allowed);
    assert_int_equal(rl.remaining, 0);
    assert_true(rl.reset_ms == 1500);
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__mock_ratelimit_headers(&b, &rl), 0);
    assert_int_equal(sl__mock_retry_headers(&b, rl.reset_ms), 0);
    assert_string_equal(b.data, "x-ratelimit-limit-requests: 2\r\n"
                                "x-ratelimit-remaining-requests: 0\r\n"
                                "x-ratelimit-reset-requests: 1.5s\r\n"
                                "Retry-After: 2\r\nretry-after-ms: 1500\r\n");
    sl__buf_free(&b);
    /* the window closes: a new one opens */
    sl__mock_window_take(&w, 2, 61000, &rl);
    assert_true(rl.allowed);
    assert_int_equal(rl.remaining, 1);
    char s[32];
    sl__mock_fmt_seconds(s, sizeof s, 60000);
    assert_string_equal(s, "60s");
    sl__mock_fmt_seconds(s, sizeof s, 0.2);
    assert_string_equal(s, "0.001s");
    sl__mock_fmt_seconds(s, sizeof s, 1250);
    assert_string_equal(s, "1.25s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_begins_with_prompt),
        cmocka_unit_test(test_answer_deterministic),
        cmocka_unit_test(test_answer_max_tokens),
        cmocka_unit_test(test_answer_content_shapes),
        cmocka_unit_test(test_answer_legacy),
        cmocka_unit_test(test_answer_errors),
        cmocka_unit_test(test_stream_frames),
        cmocka_unit_test(test_text_frames),
        cmocka_unit_test(test_escape_and_words),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_opts_set),
        cmocka_unit_test(test_xmock_parse),
        cmocka_unit_test(test_fail_decision),
        cmocka_unit_test(test_rpm_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
