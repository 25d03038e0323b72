/* test_openai.c — the OpenAI adapter without I/O: request building, a stream fed in
 * every split giving the same deltas and body, several choices, caps, error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "llm/openai.h"

/* Deltas rendered as "kind/choice/tool/id/name/text|". */
typedef struct sink {
    sl_buf log;
    int stop_at; /* return 99 at this delta (1-based) */
    int n;
} sink;

static int on_delta(void *user, const sl_delta *d)
{
    sink *s = user;
    s->n++;
    assert_non_null(d->text.ptr);
    assert_non_null(d->tool_id.ptr);
    assert_non_null(d->tool_name.ptr);
    sl__buf_printf(&s->log, "%d/%d/%d/%.*s/%.*s/%.*s|", d->kind, d->choice, d->tool_index,
                   (int)d->tool_id.len, d->tool_id.ptr, (int)d->tool_name.len, d->tool_name.ptr,
                   (int)d->text.len, d->text.ptr);
    return s->n == s->stop_at ? 99 : 0;
}

static void test_build(void **state)
{
    sl_request *r;
    assert_int_equal(sl_request_new(&r), 0);
    sl_openai_http h;
    assert_int_equal(sl__openai_build("http://h:1/v1//", "sk-1", "ua/1", r, &h), 0);
    assert_string_equal(h.url, "http://h:1/v1/chat/completions");
    assert_int_equal(h.nheaders, 4);
    assert_string_equal(h.headers[0], "Authorization: Bearer sk-1");
    assert_string_equal(h.headers[1], "Content-Type: application/json");
    assert_string_equal(h.headers[2], "Accept: text/event-stream");
    assert_string_equal(h.headers[3], "User-Agent: ua/1");
    assert_int_equal(h.stream, 1);
    assert_int_equal(h.kind, SL_OPENAI_CHAT);
    assert_string_equal(
        h.body, "{\"messages\":[],\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    assert_int_equal(h.body_len, strlen(h.body));
    sl__openai_http_free(&h);

    assert_int_equal(sl_request_set_endpoint(r, "/embeddings"), 0);
    assert_int_equal(sl__openai_build("https://api.example.com/v1", NULL, NULL, r, &h), 0);
    assert_string_equal(h.url, "https://api.example.com/v1/embeddings");
    assert_int_equal(h.nheaders, 3); /* no key: no Authorization */
    assert_string_equal(h.headers[1], "Accept: application/json");
    assert_true(!strncmp(h.headers[2], "User-Agent: sluice/", 19));
    assert_int_equal(h.kind, SL_OPENAI_EMBEDDINGS);
    sl__openai_http_free(&h);

    assert_int_equal(sl__openai_build("http://h", "k\r\nX: y", NULL, r, &h), SL_EINVAL);
    assert_null(h.url);
    sl_request_free(r);
    assert_int_equal(sl__openai_kind("/completions"), SL_OPENAI_COMPLETIONS);
    assert_int_equal(sl__openai_kind("/responses"), SL_OPENAI_OTHER);
}

static const char stream[] =
    "\xef\xbb\xbf: hello\r\n\r\n"
    "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning\":\"hm\"}},"
    "{\"index\":1,\"delta\":{\"role\":\"assistant\",\"content\":\"B\"}}]}\r\n\r\n"
    "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\\u00e9\","
    "\"tool_calls\":[{\"index\":0,\"id\":\"t0\",\"type\":\"function\",\"function\":{\"name\":"
    "\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n"
    "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
    "\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"},{\"index\":1,"
    "\"delta\":{\"content\":\"C\"},\"finish_reason\":\"stop\"}]}\r"
    "\r"
    "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,"
    "\"total_tokens\":3}}\n\ndata: [DONE]\n\n"
    "data: {\"this\": is ignored after DONE\n\n";

static const char want_log[] = "2/0/0///hm|1/1/0///B|1/0/0///A\xc3\xa9|3/0/0/t0/f/{\"a\"|"
                               "3/0/0///:1}|1/1/0///C|";
static const char want_body[] =
    "{\"id\":\"x\",\"object\":\"chat.completion\",\"created\":5,\"model\":\"m\",\"choices\":[{"
    "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"A\xc3\xa9\",\"reasoning\":"
    "\"hm\",\"tool_calls\":[{\"id\":\"t0\",\"type\":\"function\",\"function\":{\"name\":\"f\","
    "\"arguments\":\"{\\\"a\\\":1}\"}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"},{"
    "\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":\"BC\"},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,"
    "\"total_tokens\":3}}";

static void check_split(size_t a, size_t b)
{
    size_t n = sizeof stream - 1;
    sink s = {0};
    sl__buf_init(&s.log, 0);
    sl_openai_parser *p = sl__openai_parser_new(SL_OPENAI_CHAT, 0, on_delta, &s);
    assert_int_equal(sl__openai_feed(p, stream, a), 0);
    assert_int_equal(sl__openai_feed(p, stream + a, b - a), 0);
    assert_int_equal(sl__openai_feed(p, stream + b, n - b), 0);
    assert_int_equal(sl__openai_finish(p), 0);
    assert_string_equal(s.log.data, want_log);
    const sl_openai_out *o = sl__openai_out(p);
    assert_int_equal(o->error, 0);
    assert_true(o->saw_done);
    assert_int_equal(o->body.len, strlen(want_body));
    assert_memory_equal(o->body.ptr, want_body, o->body.len);
    assert_int_equal(o->text.len, 3);
    assert_memory_equal(o->text.ptr, "A\xc3\xa9", 3);
    assert_memory_equal(o->reasoning.ptr, "hm", 2);
    assert_string_equal(o->finish_reason, "tool_calls");
    assert_int_equal(o->usage.completion_tokens, 2);
    sl__openai_parser_free(p);
    sl__buf_free(&s.log);
}

static void test_every_split(void **state)
{
    size_t n = sizeof stream - 1;
    for (size_t a = 0; a <= n; a++)
        check_split(a, a);
    for (size_t a = 0; a <= n; a += 7)
        for (size_t b = a; b <= n; b += 11)
            check_split(a, b);
    /* one byte at a time */
    sink s = {0};
    sl__buf_init(&s.log, 0);
    sl_openai_parser *p = sl__openai_parser_new(SL_OPENAI_CHAT, 0, on_delta, &s);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sl__openai_feed(p, stream + i, 1), 0);
    assert_int_equal(sl__openai_finish(p), 0);
    assert_string_equal(s.log.data, want_log);
    sl__openai_parser_free(p);
    sl__buf_free(&s.log);
}

static int feed_all(sl_openai_parser *p, const char *s)
{
    return sl__openai_feed(p, s, strlen(s));
}

static void test_errors_and_caps(void **state)
{
    sink s = {0};
    sl__buf_init(&s.log, 0);
    sl_openai_parser *p = sl__openai_parser_new(SL_OPENAI_CHAT, 0, on_delta, &s);
    assert_int_equal(feed_all(p, "data: {\"choices\":[{\"index\":500,\"delta\":{}}]}\n\n"),
                     SL_EPROTO);
    assert_string_equal(sl__openai_out(p)->message, "stream chunk: choice index out of range");
    assert_int_equal(feed_all(p, "data: [DONE]\n\n"), SL_EPROTO); /* refuses after an error */
    sl__openai_parser_free(p);

    p = sl__openai_parser_new(SL_OPENAI_CHAT, 64, on_delta, &s);
    assert_int_equal(feed_all(p, "data: 0123456789012345678901234567890123456789012345678901234567"
                                 "89012345678901234567890123456789\n\n"),
                     SL_ELIMIT);
    assert_string_equal(sl__openai_out(p)->message, "stream event or line over 64 bytes");
    sl__openai_parser_free(p);

    /* a stream without [DONE] nor finish_reason */
    p = sl__openai_parser_new(SL_OPENAI_CHAT, 0, on_delta, &s);
    assert_int_equal(feed_all(p, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"
                                 "data: {\"choices\":[{\"delta\":{\"content\":\"y\"}}]}"),
                     0);
    assert_int_equal(sl__openai_finish(p), SL_EPROTO);
    assert_string_equal(sl__openai_out(p)->message, "stream ended before [DONE]");
    sl__openai_parser_free(p);

    /* an "event: error" */
    p = sl__openai_parser_new(SL_OPENAI_CHAT, 0, on_delta, &s);
    assert_int_equal(feed_all(p, "event: error\ndata: {\"error\":{\"message\":\"boom\","
                                 "\"status\":529}}\n\n"),
                     SL_EHTTP);
    assert_string_equal(sl__openai_out(p)->message, "provider error: boom");
    assert_int_equal(sl__openai_out(p)->error_status, 529);
    sl__openai_parser_free(p);

    /* on_delta stopping the parser: its value comes back, no error recorded */
    sink t = {0};
    sl__buf_init(&t.log, 0);
    t.stop_at = 1;
    p = sl__openai_parser_new(SL_OPENAI_CHAT, 0, on_delta, &t);
    assert_int_equal(feed_all(p, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"
                                 "data: {\"choices\":[{\"delta\":{\"content\":\"y\"}}]}\n\n"),
                     99);
    assert_int_equal(t.n, 1);
    assert_int_equal(sl__openai_out(p)->error, 0);
    sl__openai_parser_free(p);
    sl__buf_free(&t.log);
    sl__buf_free(&s.log);
}

/* Chunks are read as jansson reads them: a repeated name counts once, with its last value,
 * in the place it first had; names may be escaped; a NUL byte right after a number is
 * skipped. */
static void test_jansson_reading(void **state)
{
    static const char s[] =
        "data: {\"id\":\"a\",\"id\":\"b\",\"x\":1,\"x\":null,\"choices\":[{\"index\":0,"
        "\"delta\":{\"content\":\"one\",\"content\":\"two\",\"refusal\":\"r\",\"refusal\":"
        "\"s\"},\"seed\":1,\"seed\":2}]}\n\n"
        "data: {\"\\u0069d\":\"c\",\"choices\":[{\"delta\":{\"cont\\u0065nt\":\"!\"},"
        "\"finish_reason\":\"stop\"}],\"n\":7\0}\n\n"
        "data: [DONE]\n\n";
    static const char body_read[] =
        "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{"
        "\"role\":\"assistant\",\"content\":\"two!\",\"refusal\":\"s\"},\"logprobs\":null,"
        "\"finish_reason\":\"stop\",\"seed\":2}],\"x\":null,\"n\":7}";
    sink k = {0};
    sl__buf_init(&k.log, 0);
    sl_openai_parser *p = sl__openai_parser_new(SL_OPENAI_CHAT, 0, on_delta, &k);
    assert_int_equal(sl__openai_feed(p, s, sizeof s - 1), 0);
    assert_int_equal(sl__openai_finish(p), 0);
    assert_string_equal(k.log.data, "1/0/0///two|1/0/0///!|");
    const sl_openai_out *o = sl__openai_out(p);
    assert_int_equal(o->body.len, strlen(body_read));
    assert_memory_equal(o->body.ptr, body_read, o->body.len);
    sl__openai_parser_free(p);

    /* invalid JSON: jansson's words in the message */
    p = sl__openai_parser_new(SL_OPENAI_CHAT, 0, on_delta, &k);
    assert_int_equal(feed_all(p, "data: {\"choices\":[1,]}\n\n"), SL_EPROTO);
    assert_string_equal(sl__openai_out(p)->message,
                        "invalid JSON in stream event: invalid JSON at column 15: unexpected "
                        "token near ']' in data \"{\"choices\":[1,]}\"");
    sl__openai_parser_free(p);
    sl__buf_free(&k.log);
}

static void test_non_stream(void **state)
{
    sink s = {0};
    sl__buf_init(&s.log, 0);
    const char *body =
        "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "null,\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{"
        "\"name\":\"g\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}";
    sl_openai_parser *p = sl__openai_parser_new(SL_OPENAI_CHAT, 0, on_delta, &s);
    assert_int_equal(sl__openai_parse_body(p, body, strlen(body)), 0);
    assert_string_equal(s.log.data, "3/0/0/c/g/{}|");
    const sl_openai_out *o = sl__openai_out(p);
    assert_int_equal(o->text.len, 0);
    assert_string_equal(o->finish_reason, "tool_calls");
    assert_int_equal(o->usage.prompt_tokens, -1);
    assert_memory_equal(o->body.ptr, body, strlen(body));
    sl__openai_parser_free(p);

    p = sl__openai_parser_new(SL_OPENAI_CHAT, 8, on_delta, &s);
    assert_int_equal(sl__openai_parse_body(p, body, strlen(body)), SL_ELIMIT);
    assert_string_equal(sl__openai_out(p)->message, "response body over 8 bytes");
    sl__openai_parser_free(p);
    sl__buf_free(&s.log);
}

static void test_error_message(void **state)
{
    char m[64];
#define EM(s) sl__openai_error_message(s, strlen(s), m, sizeof m)
    assert_int_equal(EM("{\"error\":{\"message\":\"bad key\",\"type\":\"x\"}}"), 1);
    assert_string_equal(m, "bad key");
    assert_int_equal(EM("{\"error\":\"plain\"}"), 1);
    assert_string_equal(m, "plain");
    assert_int_equal(EM("{\"message\":\"top\"}"), 1);
    assert_string_equal(m, "top");
    assert_int_equal(EM("{\"detail\":\"Not Found\"}"), 1);
    assert_string_equal(m, "Not Found");
    assert_int_equal(EM("\r\n<html>\n<body>"), 1);
    assert_string_equal(m, "<html>");
    assert_int_equal(EM("{\"error\":{\"message\":\"multi\\nline\\ttab\"}}"), 1);
    assert_string_equal(m, "multi line tab");
    assert_int_equal(EM(""), 0);
    assert_string_equal(m, "");
    assert_int_equal(EM("{\"unrelated\":1}"), 1); /* not a known shape: the body's line */
    assert_string_equal(m, "{\"unrelated\":1}");
    /* cut to fit, never inside a UTF-8 sequence */
    char small[6];
    const char *two = "{\"error\":\"ab\xc3\xa9\xc3\xa9\"}";
    assert_int_equal(sl__openai_error_message(two, strlen(two), small, sizeof small), 1);
    assert_string_equal(small, "ab\xc3\xa9");
#undef EM
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build),           cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_errors_and_caps), cmocka_unit_test(test_jansson_reading),
        cmocka_unit_test(test_non_stream),      cmocka_unit_test(test_error_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
