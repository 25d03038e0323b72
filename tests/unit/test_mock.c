/* test_mock.c — the mock upstream: answers, x-mock, faults, and the server end to end.
 *
 * The pure parts (answer plan, frames, option parsing, fault decisions, the rpm window)
 * are checked byte for byte without sockets. The server tests run sl_mock on a libuv
 * loop in a second thread and drive it with libcurl (and raw sockets) from the test's
 * thread; the loop must end with no live handles after sl_mock_free. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>

#include <sluice/mock.h>

#include "apps/mock/answer.h"
#include "apps/mock/fault.h"
#include "apps/mock/pace.h"
#include "base/buf.h"
#include "base/json.h"
#include "io/sse.h"

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
        /* the same bytes as the project's SSE writer makes of the JSON */
        sl_buf w;
        sl__buf_init(&w, 0);
        assert_int_equal(sl__sse_write(&w, NULL, NULL, one.data + 6, one.len - 8), 0);
        assert_int_equal(w.len, one.len);
        assert_memory_equal(w.data, one.data, one.len);
        sl__buf_free(&w);
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
    const char *body2 = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello!\"}]}";
    const char *body3 = "{\"stream\":true, \"max_tokens\":99,\"messages\":[{\"role\":\"user\","
                        "\"content\":\"hello\"}]}";
    json_t *a = complete(SL_MOCK_CHAT, body, 7, 20);
    json_t *b = complete(SL_MOCK_CHAT, body, 7, 20);
    json_t *c = complete(SL_MOCK_CHAT, body, 8, 20);
    json_t *d = complete(SL_MOCK_CHAT, body2, 7, 20);
    assert_string_equal(content_of(a), content_of(b));
    assert_string_not_equal(content_of(a), content_of(c));
    assert_string_not_equal(content_of(a) + 5, content_of(d) + 6); /* the prompt counts */
    json_t *f = complete(SL_MOCK_CHAT, body3, 7, 20);              /* stream, spacing do not */
    assert_string_equal(content_of(a), content_of(f));
    json_decref(f);
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
    assert_int_equal(sl__json_escape(&b, "a\"b\\c\n\x1f\0z\xc3\xa9", 11, NULL), 0);
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
    /* bytes that are not UTF-8 (a client's path, a message cut mid-character) */
    sl__buf_reset(&b);
    assert_int_equal(sl__mock_error_body(&b, "a\xff\xc3\xa9\xed\xa0\x80\xe2\x82", "t", NULL, NULL),
                     0);
    assert_string_equal(b.data, "{\"error\":{\"message\":\"a?\xc3\xa9???\?\?\",\"type\":\"t\","
                                "\"param\":null,\"code\":null}}");
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

/* Chunks due, and the wait until the next one, for p at now. */
static int due_at(const sl_mock_pace *p, double now, uint64_t *wait)
{
    *wait = 12345;
    return sl__mock_pace_due(p, now, wait);
}

static void test_pace_due(void **state)
{
    uint64_t w;
    /* received at 1000, first chunk at 1200, then one every 5 ms */
    sl_mock_pace p = {.t0_ms = 1000, .ttft_ms = 200, .interval_ms = 5, .n = 20};
    assert_int_equal(due_at(&p, 1000, &w), 0);
    assert_int_equal(w, 200);
    assert_int_equal(due_at(&p, 1198.5, &w), 0);
    assert_int_equal(w, 2);
    assert_int_equal(due_at(&p, 1199, &w), 0); /* 1 ms ahead is not due */
    assert_int_equal(w, 1);
    assert_int_equal(due_at(&p, 1199.25, &w), 1); /* less than 1 ms ahead is */
    assert_int_equal(w, 6);                       /* 1205 - 1199.25, rounded up */
    assert_int_equal(due_at(&p, 1200, &w), 1);
    assert_int_equal(w, 5);
    assert_int_equal(due_at(&p, 1204.5, &w), 2);
    assert_int_equal(w, 6);
    /* a loop that is late finds several due; the next keeps its time (no drift) */
    assert_int_equal(due_at(&p, 1213.7, &w), 3);
    assert_int_equal(w, 2);
    assert_int_equal(due_at(&p, 1260, &w), 13);
    assert_int_equal(w, 5);
    assert_int_equal(due_at(&p, 1294.2, &w), 20); /* the last, 1295 */
    assert_int_equal(w, 0);
    assert_int_equal(due_at(&p, 1e9, &w), 20);
    assert_int_equal(w, 0);
    assert_int_equal(due_at(&p, 0, &w), 0); /* a clock before t0 */
    assert_int_equal(w, 1200);

    /* interval 0: everything with chunk 0 */
    p = (sl_mock_pace){.t0_ms = 0, .ttft_ms = 10, .interval_ms = 0, .n = 5};
    assert_int_equal(due_at(&p, 8.5, &w), 0);
    assert_int_equal(w, 2);
    assert_int_equal(due_at(&p, 9.5, &w), 5);
    assert_int_equal(w, 0);
    p.ttft_ms = 0;
    assert_int_equal(due_at(&p, 0, &w), 5);
    assert_int_equal(w, 0);
    /* a delayed whole answer is one chunk */
    p = (sl_mock_pace){.t0_ms = 500, .ttft_ms = 300, .n = 1};
    assert_int_equal(due_at(&p, 700, &w), 0);
    assert_int_equal(w, 100);
    assert_int_equal(due_at(&p, 799.5, &w), 1);
    assert_int_equal(w, 0);
    /* a fractional interval */
    p = (sl_mock_pace){.t0_ms = 0, .ttft_ms = 0, .interval_ms = 2.5, .n = 4};
    assert_int_equal(due_at(&p, 0, &w), 1);
    assert_int_equal(w, 3);
    assert_int_equal(due_at(&p, 1.6, &w), 2);
    assert_int_equal(w, 4);
    assert_int_equal(due_at(&p, 6.6, &w), 4);
    assert_int_equal(w, 0);
    /* the largest values the options allow */
    p = (sl_mock_pace){.t0_ms = 0, .ttft_ms = 3600000, .interval_ms = 3600000, .n = 100000};
    assert_int_equal(due_at(&p, 0, &w), 0);
    assert_int_equal(w, 3600000);
    assert_int_equal(due_at(&p, 3600000.0 * 50000, &w), 50000);
    assert_int_equal(w, 3600000);
    assert_int_equal(due_at(&p, 3600000.0 * 100001, &w), 100000);
    /* an interval far below a millisecond: thousands due at once, counted in one step */
    p = (sl_mock_pace){.t0_ms = 0, .ttft_ms = 0, .interval_ms = 1e-6, .n = 100000};
    assert_int_equal(due_at(&p, 0.05, &w), 100000);
    p.n = 0;
    assert_int_equal(due_at(&p, 5, &w), 0);
    assert_int_equal(w, 0);

    /* The rules, over a range of clocks: the first k chunks are due (less than 1 ms
     * ahead), chunk k is not; the wait reaches chunk k's time within 1 ms; and a timer
     * that wakes up to 0.999 ms before the wait is over (libuv truncates its clock) still
     * finds chunk k due, so a wake-up is never wasted. */
    const double intervals[] = {0, 0.3, 1, 2.5, 5, 7.25};
    for (size_t i = 0; i < sizeof intervals / sizeof intervals[0]; i++) {
        p = (sl_mock_pace){.t0_ms = 1000.4, .ttft_ms = 3.3, .interval_ms = intervals[i], .n = 9};
        int last = 0;
        for (double now = 990; now < 1080; now += 0.05) {
            int k = due_at(&p, now, &w);
            assert_true(k >= last && k <= p.n);
            last = k;
            if (k > 0)
                assert_true(p.t0_ms + p.ttft_ms + (k - 1) * p.interval_ms < now + 1 + 1e-9);
            if (k == p.n) {
                assert_int_equal(w, 0);
                continue;
            }
            double due = p.t0_ms + p.ttft_ms + k * p.interval_ms;
            assert_true(due >= now + 1 - 1e-9);
            assert_true(w >= 1 && (double)w >= due - now && (double)w < due - now + 1);
            uint64_t w2;
            assert_true(sl__mock_pace_due(&p, now + (double)w - 0.999, &w2) > k);
        }
        assert_int_equal(last, p.n);
    }
}

/* ---- the server, driven by libcurl from a second thread ---- */

typedef struct resp {
    long status;
    int curl_rc;
    sl_buf body;
    sl_buf headers;
} resp;

typedef struct harness harness;
typedef void (*script_fn)(harness *h);

struct harness {
    int port;
    uv_async_t done;
    sl_mock *mock;
    sl_mock_stats stats; /* taken when the script has finished */
    CURL *curl;
    void *data; /* for the script */
};

static size_t on_curl_data(char *p, size_t size, size_t n, void *user)
{
    sl__buf_append(user, p, size * n);
    return size * n;
}

static void resp_free(resp *r)
{
    sl__buf_free(&r->body);
    sl__buf_free(&r->headers);
}

/* One request on the harness's easy handle (connections are reused). */
static void http(harness *h, const char *method, const char *path, const char *xmock,
                 const char *body, long timeout_ms, resp *r)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", h->port, path);
    sl__buf_init(&r->body, 0);
    sl__buf_init(&r->headers, 0);
    CURL *c = h->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_curl_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_curl_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    hl = curl_slist_append(hl, "Content-Type: application/json");
    char xh[256];
    if (xmock) {
        snprintf(xh, sizeof xh, "x-mock: %s", xmock);
        hl = curl_slist_append(hl, xh);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    r->curl_rc = (int)curl_easy_perform(c);
    r->status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
}

/* Value of a response header (first occurrence, case-insensitive name), or NULL. The
 * result is valid until the next call. */
static const char *header(const resp *r, const char *name)
{
    static char value[256];
    const char *p = r->headers.data;
    size_t n = strlen(name);
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > n && !strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t k = (size_t)(eol - v) < sizeof value - 1 ? (size_t)(eol - v) : sizeof value - 1;
            memcpy(value, v, k);
            value[k] = '\0';
            return value;
        }
        p = eol + 2;
    }
    return NULL;
}

static json_t *json_of(const resp *r)
{
    json_t *v = NULL;
    assert_int_equal(sl__json_parse(r->body.data ? r->body.data : "", r->body.len, 0, &v, NULL, 0),
                     0);
    return v;
}

/* A parsed SSE body: content chunks, their text, and what came after them. */
typedef struct sse_view {
    int events;  /* every data: event */
    int content; /* chat chunks with a choice */
    int usage;   /* chunks with "choices": [] and usage */
    int garbage; /* data that is not JSON */
    int done;    /* [DONE] seen (must be last) */
    int after_done;
    char finish[16];
    long completion_tokens;
    sl_buf text;
} sse_view;

static void sse_parse(const resp *r, sse_view *v)
{
    memset(v, 0, sizeof *v);
    sl__buf_init(&v->text, 0);
    const char *p = r->body.data ? r->body.data : "";
    const char *end = p + r->body.len;
    while (p < end) {
        const char *e = strstr(p, "\n\n");
        assert_non_null(e);
        assert_memory_equal(p, "data: ", 6);
        const char *d = p + 6;
        size_t dl = (size_t)(e - d);
        v->events++;
        if (v->done)
            v->after_done++;
        if (dl == 6 && !memcmp(d, "[DONE]", 6)) {
            v->done = 1;
        } else {
            json_t *j = NULL;
            if (sl__json_parse(d, dl, 0, &j, NULL, 0)) {
                v->garbage++;
            } else {
                json_t *choices = json_object_get(j, "choices");
                json_t *c0 = json_array_get(choices, 0);
                if (c0) {
                    v->content++;
                    json_t *delta = json_object_get(c0, "delta");
                    const char *t =
                        delta ? sl__json_str(delta, "content") : sl__json_str(c0, "text");
                    assert_non_null(t);
                    sl__buf_append(&v->text, t, strlen(t));
                    const char *f = sl__json_str(c0, "finish_reason");
                    if (f)
                        snprintf(v->finish, sizeof v->finish, "%s", f);
                } else {
                    assert_int_equal(json_array_size(choices), 0);
                    v->usage++;
                    v->completion_tokens =
                        (long)sl__json_int(json_object_get(j, "usage"), "completion_tokens", -1);
                }
                json_decref(j);
            }
        }
        p = e + 2;
    }
}

static void *loop_main(void *arg)
{
    uv_run(arg, UV_RUN_DEFAULT);
    return NULL;
}

static void on_script_done(uv_async_t *a)
{
    harness *h = a->data;
    sl_mock_get_stats(h->mock, &h->stats);
    uv_close((uv_handle_t *)a, NULL);
    sl_mock_free(h->mock);
    h->mock = NULL;
}

/* Run script (in this thread, so its assertions report) against a fresh mock with opts
 * (NULL: defaults) whose loop runs in a second thread. On return the loop has closed with
 * no live handle and h->stats holds the final counters. */
static void run(harness *h, const sl_mock_opts *opts, script_fn script)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(sl_mock_new(&loop, opts, "127.0.0.1", 0, &h->mock), 0);
    h->port = sl_mock_port(h->mock);
    assert_true(h->port > 0);
    assert_int_equal(uv_async_init(&loop, &h->done, on_script_done), 0);
    h->done.data = h;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, loop_main, &loop), 0);
    h->curl = curl_easy_init();
    script(h);
    curl_easy_cleanup(h->curl);
    uv_async_send(&h->done);
    pthread_join(t, NULL);
    assert_int_equal(uv_loop_close(&loop), 0); /* no live handles */
}

#define CHAT_BODY                                                                                  \
    "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},"                \
    "{\"role\":\"user\",\"content\":\"Why is the sky blue?\"}]"

static void script_chat(harness *h)
{
    resp a, b, c;
    http(h, "POST", "/v1/chat/completions", "chunks=5", CHAT_BODY "}", 0, &a);
    assert_int_equal(a.curl_rc, 0);
    assert_int_equal(a.status, 200);
    assert_string_equal(header(&a, "x-request-id"), "req-mock-1");
    assert_non_null(strstr(header(&a, "content-type"), "application/json"));
    json_t *v = json_of(&a);
    assert_string_equal(sl__json_str(v, "id"), "chatcmpl-mock-1");
    assert_string_equal(sl__json_str(v, "object"), "chat.completion");
    assert_string_equal(sl__json_str(v, "model"), "gpt-x");
    const char *text = content_of(v);
    assert_memory_equal(text, "Why is the sky blue? ", 21);
    assert_string_equal(finish_of(v), "stop");
    assert_int_equal(usage_of(v, "prompt_tokens"), 6);
    assert_int_equal(usage_of(v, "completion_tokens"), 9);

    http(h, "POST", "/x/v1/chat/completions", "chunks=5",
         CHAT_BODY ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}", 0, &b);
    assert_int_equal(b.curl_rc, 0);
    assert_int_equal(b.status, 200);
    assert_string_equal(header(&b, "x-request-id"), "req-mock-2");
    assert_non_null(strstr(header(&b, "content-type"), "text/event-stream"));
    sse_view s;
    sse_parse(&b, &s);
    assert_int_equal(s.content, 5);
    assert_int_equal(s.usage, 1);
    assert_int_equal(s.garbage, 0);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.after_done, 0);
    assert_int_equal(s.events, 7);
    assert_string_equal(s.finish, "stop");
    assert_int_equal(s.completion_tokens, 9);
    assert_string_equal(s.text.data, text); /* the same answer */
    sl__buf_free(&s.text);

    /* no include_usage: no usage chunk; max_tokens: "length" */
    http(h, "POST", "/v1/chat/completions", "chunks=5",
         CHAT_BODY ",\"stream\":true,\"max_tokens\":2}", 0, &c);
    sse_parse(&c, &s);
    assert_int_equal(s.content, 2);
    assert_int_equal(s.usage, 0);
    assert_int_equal(s.done, 1);
    assert_string_equal(s.finish, "length");
    assert_memory_equal(s.text.data, text, s.text.len);
    sl__buf_free(&s.text);
    json_decref(v);
    resp_free(&a);
    resp_free(&b);
    resp_free(&c);
}

static void test_server_chat(void **state)
{
    harness h = {0};
    run(&h, NULL, script_chat);
    assert_int_equal(h.stats.connections, 1);
    assert_int_equal(h.stats.requests, 3);
    assert_int_equal(h.stats.streams, 2);
    assert_int_equal(h.stats.faults, 0);
    assert_int_equal(h.stats.client_aborts, 0);
}

static void script_routes(harness *h)
{
    resp r;
    http(h, "POST", "/v1/completions", NULL, "{\"prompt\":\"Hello\",\"stream\":true}", 0, &r);
    assert_int_equal(r.status, 200);
    sse_view s;
    sse_parse(&r, &s);
    assert_int_equal(s.content, 3); /* chunks=3 from the options */
    assert_int_equal(s.done, 1);
    assert_memory_equal(s.text.data, "Hello ", 6);
    sl__buf_free(&s.text);
    resp_free(&r);

    http(h, "POST", "/v1/completions", NULL, "{\"prompt\":\"Hello\"}", 0, &r);
    json_t *v = json_of(&r);
    assert_string_equal(sl__json_str(v, "object"), "text_completion");
    assert_memory_equal(content_of(v), "Hello ", 6);
    json_decref(v);
    resp_free(&r);

    http(h, "GET", "/v1/models", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    v = json_of(&r);
    assert_string_equal(sl__json_str(json_array_get(json_object_get(v, "data"), 0), "id"),
                        "mock-model");
    json_decref(v);
    resp_free(&r);

    http(h, "POST", "/v1/embeddings", NULL, "{\"input\":[\"a\",\"b\"],\"dimensions\":16}", 0, &r);
    assert_int_equal(r.status, 200);
    v = json_of(&r);
    json_t *d = json_object_get(v, "data");
    assert_int_equal(json_array_size(d), 2);
    json_t *e0 = json_object_get(json_array_get(d, 0), "embedding");
    assert_int_equal(json_array_size(e0), 16);
    assert_true(fabs(norm_of(e0) - 1.0) < 1e-6);
    resp r2;
    http(h, "POST", "/v1/embeddings", NULL, "{\"input\":\"a\",\"dimensions\":16}", 0, &r2);
    json_t *v2 = json_of(&r2);
    assert_true(json_equal(
        e0, json_object_get(json_array_get(json_object_get(v2, "data"), 0), "embedding")));
    json_decref(v);
    json_decref(v2);
    resp_free(&r);
    resp_free(&r2);

    http(h, "GET", "/health", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "ok");
    assert_non_null(header(&r, "x-request-id"));
    resp_free(&r);

    struct {
        const char *method, *path, *xmock, *body;
        long status;
        const char *needle;
    } bad[] = {
        {"GET", "/v1/nothing", NULL, NULL, 404, "not found: GET /v1/nothing"},
        {"GET", "/v1/chat/completions", NULL, NULL, 405, "use POST"},
        {"POST", "/v1/models", NULL, "{}", 405, "use GET"},
        {"POST", "/health", NULL, "{}", 405, "use GET"},
        {"POST", "/v1/chat/completions", NULL, "{\"messages\":[", 400, "invalid JSON"},
        {"POST", "/v1/chat/completions", NULL, "{\"model\":\"m\"}", 400, "'messages'"},
        {"POST", "/v1/chat/completions", "chunks=2; colour=blue", "{}", 400, "'colour'"},
        {"POST", "/v1/embeddings", NULL, "{\"input\":\"a\",\"dimensions\":0}", 400, "dimensions"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http(h, bad[i].method, bad[i].path, bad[i].xmock, bad[i].body, 0, &r);
        assert_int_equal(r.status, bad[i].status);
        assert_non_null(header(&r, "x-request-id"));
        v = json_of(&r);
        const char *msg = sl__json_str(json_object_get(v, "error"), "message");
        assert_non_null(msg);
        assert_non_null(strstr(msg, bad[i].needle));
        assert_non_null(sl__json_str(json_object_get(v, "error"), "type"));
        json_decref(v);
        resp_free(&r);
    }

    http(h, "GET", "/stats", NULL, NULL, 0, &r);
    v = json_of(&r);
    assert_int_equal(sl__json_int(v, "requests", -1), 12);
    assert_int_equal(sl__json_int(v, "streams", -1), 1);
    assert_int_equal(sl__json_int(v, "faults", -1), 0);
    assert_int_equal(sl__json_int(v, "client_aborts", -1), 0);
    assert_true(sl__json_int(v, "connections", -1) >= 1);
    json_decref(v);
    resp_free(&r);
}

static void test_server_routes(void **state)
{
    sl_mock_opts o;
    sl_mock_opts_init(&o);
    o.chunks = 3;
    harness h = {0};
    run(&h, &o, script_routes);
    assert_int_equal(h.stats.requests, 12); /* /health and /stats not counted */
}

static void script_faults(harness *h)
{
    resp r;
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}";
    const char *stream = "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}";

    http(h, "POST", "/v1/chat/completions", "fail-rate=1", chat, 0, &r);
    assert_int_equal(r.status, 500);
    json_t *v = json_of(&r);
    assert_string_equal(sl__json_str(json_object_get(v, "error"), "message"),
                        "mock upstream injected failure");
    assert_string_equal(sl__json_str(json_object_get(v, "error"), "type"), "server_error");
    assert_null(header(&r, "retry-after"));
    json_decref(v);
    resp_free(&r);

    http(h, "POST", "/v1/chat/completions", "fail-rate=1; fail-status=429", chat, 0, &r);
    assert_int_equal(r.status, 429);
    assert_string_equal(header(&r, "retry-after"), "1");
    assert_string_equal(header(&r, "retry-after-ms"), "1000");
    resp_free(&r);
    http(h, "POST", "/v1/chat/completions", "fail-rate=1; fail-status=429; retry-after-ms=2500",
         chat, 0, &r);
    assert_string_equal(header(&r, "retry-after"), "3");
    assert_string_equal(header(&r, "retry-after-ms"), "2500");
    resp_free(&r);

    /* rpm=2: the third request in the minute is refused */
    for (int i = 0; i < 3; i++) {
        http(h, "POST", "/v1/chat/completions", "rpm=2", chat, 0, &r);
        assert_int_equal(r.status, i < 2 ? 200 : 429);
        assert_string_equal(header(&r, "x-ratelimit-limit-requests"), "2");
        assert_string_equal(header(&r, "x-ratelimit-remaining-requests"), i == 0 ? "1" : "0");
        const char *reset = header(&r, "x-ratelimit-reset-requests");
        assert_non_null(reset);
        assert_int_equal(reset[strlen(reset) - 1], 's');
        if (i == 2) {
            long secs = strtol(header(&r, "retry-after"), NULL, 10);
            assert_true(secs >= 1 && secs <= 60);
            assert_non_null(header(&r, "retry-after-ms"));
            v = json_of(&r);
            assert_string_equal(sl__json_str(json_object_get(v, "error"), "code"),
                                "rate_limit_exceeded");
            json_decref(v);
        } else {
            assert_null(header(&r, "retry-after"));
        }
        resp_free(&r);
    }

    /* cut-after=3: three chunks, then the connection closes: no end, no [DONE] */
    http(h, "POST", "/v1/chat/completions", "chunks=6; cut-after=3", stream, 0, &r);
    assert_int_not_equal(r.curl_rc, 0);
    sse_view s;
    sse_parse(&r, &s);
    assert_int_equal(s.content, 3);
    assert_int_equal(s.done, 0);
    sl__buf_free(&s.text);
    resp_free(&r);

    /* garbage-after=2: a non-JSON event after the second chunk, then the rest */
    http(h, "POST", "/v1/chat/completions", "chunks=4; garbage-after=2", stream, 0, &r);
    assert_int_equal(r.curl_rc, 0);
    sse_parse(&r, &s);
    assert_int_equal(s.content, 4);
    assert_int_equal(s.garbage, 1);
    assert_int_equal(s.done, 1);
    assert_non_null(strstr(r.body.data, "\n\ndata: @@ garbage {\"not json\n\ndata: {"));
    /* it sits after the second content chunk */
    const char *g = strstr(r.body.data, "@@ garbage");
    int before = 0;
    for (const char *p = r.body.data; p < g; p++)
        before += !strncmp(p, "\"content\"", 9);
    assert_int_equal(before, 2);
    sl__buf_free(&s.text);
    resp_free(&r);
}

static void test_server_faults(void **state)
{
    harness h = {0};
    run(&h, NULL, script_faults);
    assert_int_equal(h.stats.requests, 8);
    assert_int_equal(h.stats.streams, 2);
    /* 3 injected failures, 1 rpm refusal, 1 cut, 1 garbage event */
    assert_int_equal(h.stats.faults, 6);
    assert_int_equal(h.stats.client_aborts, 0);
}

/* fail-rate decisions follow the documented rule: request k fails iff
 * splitmix64(seed + k) / 2^64 < rate, k counting requests that reached the decision. */
static void script_fail_rule(harness *h)
{
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}";
    int fails = 0;
    for (uint64_t k = 0; k < 16; k++) {
        resp r;
        http(h, "POST", "/v1/chat/completions", "fail-rate=0.5; seed=42; chunks=1", chat, 0, &r);
        int expect = sl__mock_should_fail(42, k, 0.5);
        fails += expect;
        assert_int_equal(r.status, expect ? 500 : 200);
        resp_free(&r);
        /* requests refused before the decision do not take a number */
        http(h, "POST", "/v1/chat/completions", "fail-rate=0.5; seed=42", "{", 0, &r);
        assert_int_equal(r.status, 400);
        resp_free(&r);
    }
    assert_true(fails > 0 && fails < 16);
    *(int *)h->data = fails;
}

static void test_server_fail_rule(void **state)
{
    harness h = {0};
    int fails = 0;
    h.data = &fails;
    run(&h, NULL, script_fail_rule);
    assert_int_equal(h.stats.faults, (uint64_t)fails);
    assert_int_equal(h.stats.requests, 32);
}

/* Poll /stats (not counted as a request) until client_aborts reaches n. */
static void wait_aborts(harness *h, long n)
{
    for (int i = 0; i < 2000; i++) {
        resp r;
        http(h, "GET", "/stats", NULL, NULL, 0, &r);
        json_t *v = json_of(&r);
        long got = (long)sl__json_int(v, "client_aborts", -1);
        json_decref(v);
        resp_free(&r);
        if (got == n)
            return;
        assert_true(got < n);
        usleep(1000);
    }
    fail_msg("client_aborts never reached %ld", n);
}

static void script_stall(harness *h)
{
    resp r;
    http(h, "POST", "/v1/chat/completions", "stall=1",
         "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", 200, &r);
    assert_int_equal(r.curl_rc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.body.len, 0);
    assert_int_equal(r.headers.len, 0); /* not even a status line */
    resp_free(&r);
    wait_aborts(h, 1);
    /* a stream whose client goes away mid-way: the timer stops */
    http(h, "POST", "/v1/chat/completions", "chunks=100000; interval-ms=20",
         "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", 100, &r);
    assert_int_equal(r.curl_rc, CURLE_OPERATION_TIMEDOUT);
    resp_free(&r);
    wait_aborts(h, 2);
    /* a delayed answer whose client goes away */
    http(h, "POST", "/v1/chat/completions", "ttft-ms=100000",
         "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", 50, &r);
    assert_int_equal(r.curl_rc, CURLE_OPERATION_TIMEDOUT);
    resp_free(&r);
    wait_aborts(h, 3);
}

static void test_server_stall(void **state)
{
    harness h = {0};
    run(&h, NULL, script_stall);
    assert_int_equal(h.stats.requests, 3);
    assert_int_equal(h.stats.streams, 1);
    assert_int_equal(h.stats.faults, 1);
    assert_int_equal(h.stats.client_aborts, 3);
}

static void script_timers(harness *h)
{
    resp r;
    /* timers on every path: ttft before the stream, interval between chunks */
    http(h, "POST", "/v1/chat/completions", "ttft-ms=2; interval-ms=1; chunks=4",
         "{\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":"
         "\"user\",\"content\":\"q\"}]}",
         0, &r);
    sse_view s;
    sse_parse(&r, &s);
    assert_int_equal(s.content, 4);
    assert_int_equal(s.usage, 1);
    assert_int_equal(s.done, 1);
    sl__buf_free(&s.text);
    resp_free(&r);
    http(h, "POST", "/v1/chat/completions", "ttft-ms=1",
         "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", 0, &r);
    assert_int_equal(r.status, 200);
    json_t *v = json_of(&r);
    assert_memory_equal(content_of(v), "q ", 2);
    json_decref(v);
    resp_free(&r);
    http(h, "POST", "/v1/embeddings", "ttft-ms=1", "{\"input\":\"q\",\"dimensions\":2}", 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* interval 0 but too long to go as one response: chunked, batched writes; the
     * same events and the same text as the non-streamed answer */
    const char *q = "{\"messages\":[{\"role\":\"user\",\"content\":\"long one\"}]}";
    const char *qs = "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"long "
                     "one\"}]}";
    http(h, "POST", "/v1/chat/completions", "chunks=300", qs, 0, &r);
    assert_int_equal(r.curl_rc, 0);
    assert_non_null(strstr(header(&r, "transfer-encoding"), "chunked"));
    sse_parse(&r, &s);
    assert_int_equal(s.content, 300);
    assert_int_equal(s.done, 1);
    resp r2;
    http(h, "POST", "/v1/chat/completions", "chunks=300", q, 0, &r2);
    v = json_of(&r2);
    assert_string_equal(s.text.data, content_of(v));
    json_decref(v);
    sl__buf_free(&s.text);
    resp_free(&r);
    resp_free(&r2);
    /* a short one goes as one response with a Content-Length */
    http(h, "POST", "/v1/chat/completions", "chunks=3", qs, 0, &r);
    assert_null(header(&r, "transfer-encoding"));
    assert_int_equal(strtol(header(&r, "content-length"), NULL, 10), (long)r.body.len);
    sse_parse(&r, &s);
    assert_int_equal(s.content, 3);
    assert_int_equal(s.done, 1);
    sl__buf_free(&s.text);
    resp_free(&r);

    /* slow reader: the body still arrives whole */
    char body[3000];
    int n = snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    memset(body + n, 'x', 2000);
    snprintf(body + n + 2000, sizeof body - (size_t)n - 2000, "\"}]}");
    http(h, "POST", "/v1/chat/completions", "slow-read-ms=1; chunks=1", body, 0, &r);
    assert_int_equal(r.status, 200);
    v = json_of(&r);
    assert_int_equal(strlen(content_of(v)), 2000);
    json_decref(v);
    resp_free(&r);
}

static void test_server_timers(void **state)
{
    harness h = {0};
    run(&h, NULL, script_timers);
    assert_int_equal(h.stats.requests, 7);
    assert_int_equal(h.stats.streams, 3);
    assert_int_equal(h.stats.client_aborts, 0);
}

/* Backpressure: a client that does not read while a large stream is produced, then
 * reads everything: every chunk arrives, in order, once. */
static void script_backpressure(harness *h)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *body = "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-mock: chunks=20000\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    assert_int_equal(write(fd, req, (size_t)n), n);
    usleep(50000); /* let the server fill the socket and block (the test holds either way) */
    sl_buf all;
    sl__buf_init(&all, 0);
    char buf[65536];
    ssize_t k;
    while ((k = read(fd, buf, sizeof buf)) > 0)
        sl__buf_append(&all, buf, (size_t)k);
    close(fd);
    /* count events across chunked framing: every event is one chunk */
    long content = 0, done = 0;
    /* memmem, not strstr: ASan's strstr measures the whole rest of the buffer each call */
    const char *end = all.data + all.len;
    for (const char *p = all.data; (p = memmem(p, (size_t)(end - p), "data: ", 6)); p += 6) {
        if (end - p >= 12 && !memcmp(p + 6, "[DONE]", 6))
            done++;
        else
            content++;
    }
    assert_int_equal(content, 20000);
    assert_int_equal(done, 1);
    sl__buf_free(&all);
}

static void test_server_backpressure(void **state)
{
    harness h = {0};
    run(&h, NULL, script_backpressure);
    assert_int_equal(h.stats.streams, 1);
    assert_int_equal(h.stats.client_aborts, 0);
}

/* The bytes a stream of (kind, body) with these options must carry, built with the
 * answer formatters and the id and created time of its first event: garbage before chunk
 * garbage_after, a cut before chunk cut_after (no end), else usage (if asked) and
 * [DONE]. The server's rules, restated: the test of its chunk order. */
static void expected_stream(sl_buf *out, int kind, const char *body, int chunks, int garbage_after,
                            int cut_after, const char *first, size_t first_len)
{
    assert_true(first_len > 8);
    json_t *ev = NULL;
    const char *nl = memchr(first, '\n', first_len);
    assert_non_null(nl);
    assert_int_equal(sl__json_parse(first + 6, (size_t)(nl - first - 6), 0, &ev, NULL, 0), 0);
    sl_mock_answer a;
    sl_mock_err e;
    sl_buf head;
    sl__mock_answer_init(&a);
    sl__buf_init(&head, 0);
    assert_int_equal(sl__mock_answer_parse(&a, kind, body, strlen(body), 1, chunks, &e), 0);
    assert_int_equal(sl__mock_chunk_head(&head, &a, sl__json_str(ev, "id"),
                                         (long long)sl__json_int(ev, "created", -1)),
                     0);
    json_decref(ev);
    uint64_t rng = a.words;
    const char *garbage = "data: @@ garbage {\"not json\n\n";
    for (int i = 0;; i++) {
        if (i == garbage_after)
            sl__buf_append_str(out, garbage);
        if (i == cut_after)
            break;
        if (i == a.n) {
            if (a.include_usage)
                assert_int_equal(sl__mock_usage_chunk(out, &a, head.data, head.len), 0);
            sl__buf_append_str(out, "data: [DONE]\n\n");
            break;
        }
        assert_int_equal(sl__mock_chunk(out, &a, head.data, head.len, i, &rng), 0);
    }
    sl__buf_free(&head);
    sl__mock_answer_free(&a);
}

/* A timed stream: its body is exactly what the formatters make, in order, once. */
static void expect_paced(harness *h, const char *path, int kind, const char *xmock,
                         const char *body, int chunks, int garbage_after, int cut_after)
{
    resp r;
    http(h, "POST", path, xmock, body, 0, &r);
    assert_int_equal(r.status, 200);
    if (cut_after >= 0 && cut_after <= chunks)
        assert_int_not_equal(r.curl_rc, 0); /* no terminating chunk */
    else
        assert_int_equal(r.curl_rc, 0);
    assert_non_null(strstr(header(&r, "transfer-encoding"), "chunked"));
    const char *first = r.body.data;
    if (garbage_after == 0) /* the garbage event comes first: the head is in the next */
        first += strlen("data: @@ garbage {\"not json\n\n");
    sl_buf want;
    sl__buf_init(&want, 0);
    expected_stream(&want, kind, body, chunks, garbage_after, cut_after, first,
                    r.body.len - (size_t)(first - r.body.data));
    assert_int_equal(r.body.len, want.len);
    assert_memory_equal(r.body.data, want.data, want.len);
    sl__buf_free(&want);
    resp_free(&r);
}

static void script_paced(harness *h)
{
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"paced\"}]}";
    const char *stream = "{\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                         "\"messages\":[{\"role\":\"user\",\"content\":\"paced\"}]}";
    const char *bare = "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}";
    expect_paced(h, "/v1/chat/completions", SL_MOCK_CHAT, "ttft-ms=2; interval-ms=0.5; chunks=40",
                 stream, 40, -1, -1);
    expect_paced(h, "/v1/chat/completions", SL_MOCK_CHAT, "interval-ms=1; chunks=3", bare, 3, -1,
                 -1);
    /* faults keep their place in a timed stream */
    expect_paced(h, "/v1/chat/completions", SL_MOCK_CHAT,
                 "interval-ms=1; chunks=6; garbage-after=2; cut-after=4", bare, 6, 2, 4);
    expect_paced(h, "/v1/chat/completions", SL_MOCK_CHAT,
                 "ttft-ms=1; interval-ms=1; chunks=3; garbage-after=0; cut-after=3", stream, 3, 0,
                 3);
    expect_paced(h, "/v1/chat/completions", SL_MOCK_CHAT,
                 "interval-ms=0.25; chunks=5; garbage-after=5", stream, 5, 5, -1);
    expect_paced(h, "/v1/completions", SL_MOCK_TEXT, "interval-ms=1; chunks=4",
                 "{\"prompt\":\"p\",\"stream\":true}", 4, -1, -1);
    /* the non-streamed answer of a timed stream, when that stream would have ended */
    resp r;
    http(h, "POST", "/v1/chat/completions", "ttft-ms=1; interval-ms=0.5; chunks=5", chat, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *v = json_of(&r);
    json_t *want = complete(SL_MOCK_CHAT, chat, 1, 5);
    assert_string_equal(content_of(v), content_of(want));
    json_decref(v);
    json_decref(want);
    resp_free(&r);
}

static void test_server_paced(void **state)
{
    harness h = {0};
    run(&h, NULL, script_paced);
    assert_int_equal(h.stats.requests, 7);
    assert_int_equal(h.stats.streams, 6);
    assert_int_equal(h.stats.faults, 5); /* 3 garbage events, 2 cuts */
    assert_int_equal(h.stats.client_aborts, 0);
}

/* Split a chunked HTTP/1.1 response (headers, chunks, 0-chunk) into its body and the
 * number of SSE events in each HTTP chunk (each write of the mock is one chunk). */
static void dechunk(const sl_buf *raw, sl_buf *body, int *events, int max, int *nchunks)
{
    const char *p = strstr(raw->data, "\r\n\r\n");
    assert_non_null(p);
    p += 4;
    const char *end = raw->data + raw->len;
    *nchunks = 0;
    for (;;) {
        char *eol = NULL;
        long n = strtol(p, &eol, 16);
        assert_true(n >= 0 && eol + 2 <= end);
        assert_memory_equal(eol, "\r\n", 2);
        p = eol + 2;
        if (n == 0)
            break;
        assert_true(p + n + 2 <= end);
        int k = 0;
        for (const char *q = p; q < p + n; q++)
            k += q + 1 < p + n && q[0] == '\n' && q[1] == '\n';
        assert_true(*nchunks < max);
        events[(*nchunks)++] = k;
        sl__buf_append(body, p, (size_t)n);
        p += n;
        assert_memory_equal(p, "\r\n", 2);
        p += 2;
    }
}

/* Chunks due together go out together: an interval far below a millisecond makes at least
 * 1 ms worth of chunks (100) due at the first write, and a client that does not read
 * makes the stream fall behind its schedule, then catch up on drain. Every chunk arrives
 * once, in order, with the formatters' bytes. */
static void script_paced_batches(harness *h)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *body = "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     "x-mock: chunks=20000; interval-ms=0.01\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    assert_int_equal(write(fd, req, (size_t)n), n);
    usleep(50000); /* let the server fill the socket and block (the test holds either way) */
    sl_buf raw, got, want;
    sl__buf_init(&raw, 0);
    sl__buf_init(&got, 0);
    sl__buf_init(&want, 0);
    char buf[65536];
    ssize_t k;
    while ((k = read(fd, buf, sizeof buf)) > 0)
        sl__buf_append(&raw, buf, (size_t)k);
    close(fd);
    assert_true(raw.len > 0);
    static int events[20002];
    int nchunks = 0;
    dechunk(&raw, &got, events, 20002, &nchunks);
    assert_true(events[0] >= 100);
    assert_true(nchunks < 20001); /* some writes carried several events */
    int total = 0;
    for (int i = 0; i < nchunks; i++)
        total += events[i];
    assert_int_equal(total, 20001); /* 20000 chunks and [DONE] */
    expected_stream(&want, SL_MOCK_CHAT, body, 20000, -1, -1, got.data, got.len);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    sl__buf_free(&raw);
    sl__buf_free(&got);
    sl__buf_free(&want);
}

static void test_server_paced_batches(void **state)
{
    harness h = {0};
    run(&h, NULL, script_paced_batches);
    assert_int_equal(h.stats.streams, 1);
    assert_int_equal(h.stats.client_aborts, 0);
}

/* Send a raw request on a new connection; returns the socket. */
static int raw_request(harness *h, const char *xmock, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-mock: %s\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     xmock, strlen(body), body);
    assert_int_equal(write(fd, req, (size_t)n), n);
    return fd;
}

static void wait_requests(harness *h, long n)
{
    for (int i = 0; i < 2000; i++) {
        resp r;
        http(h, "GET", "/stats", NULL, NULL, 0, &r);
        json_t *v = json_of(&r);
        long got = (long)sl__json_int(v, "requests", -1);
        json_decref(v);
        resp_free(&r);
        if (got == n)
            return;
        usleep(1000);
    }
    fail_msg("requests never reached %ld", n);
}

static void script_free_busy(harness *h)
{
    /* a stalled request, a slow stream and a delayed answer are still open when the
     * mock is freed; the sockets close after the loop has ended */
    int *fds = h->data;
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}";
    const char *stream = "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}";
    fds[0] = raw_request(h, "stall=1", chat);
    fds[1] = raw_request(h, "chunks=1000; interval-ms=50", stream);
    fds[2] = raw_request(h, "ttft-ms=100000", chat);
    fds[3] = raw_request(h, "ttft-ms=100000", stream);
    wait_requests(h, 4);
}

static void test_server_free_busy(void **state)
{
    harness h = {0};
    int fds[4];
    h.data = fds;
    run(&h, NULL, script_free_busy); /* asserts the loop ends with no live handles */
    assert_int_equal(h.stats.streams, 2);
    assert_int_equal(h.stats.faults, 1);
    assert_int_equal(h.stats.client_aborts, 0);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
}

static void test_new_errors(void **state)
{
    uv_loop_t loop;
    sl_mock *m = NULL;
    sl_mock_opts o;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_mock_opts_init(&o);
    o.chunks = 0;
    assert_int_equal(sl_mock_new(&loop, &o, "127.0.0.1", 0, &m), SL_EINVAL);
    assert_int_equal(sl_mock_new(&loop, NULL, "127.0.0.1", 70000, &m), SL_EINVAL);
    assert_int_equal(sl_mock_new(&loop, NULL, "256.0.0.1", 0, &m), SL_EADDR);
    assert_null(m);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
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
        cmocka_unit_test(test_pace_due),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_server_chat),
        cmocka_unit_test(test_server_routes),
        cmocka_unit_test(test_server_faults),
        cmocka_unit_test(test_server_fail_rule),
        cmocka_unit_test(test_server_stall),
        cmocka_unit_test(test_server_timers),
        cmocka_unit_test(test_server_backpressure),
        cmocka_unit_test(test_server_paced),
        cmocka_unit_test(test_server_paced_batches),
        cmocka_unit_test(test_server_free_busy),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
