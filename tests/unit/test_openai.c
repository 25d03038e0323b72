/* test_openai.c — the OpenAI adapter without I/O: request building, a stream fed in
 * every split giving the same deltas and body, several choices, caps, error bodies, and
 * chunks read through the last one exactly as when read in full. */
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

    /* the legacy completions API reports usage in a last chunk too */
    assert_int_equal(sl_request_set_endpoint(r, "/completions"), 0);
    assert_int_equal(sl__openai_build("http://h:1/v1", NULL, NULL, r, &h), 0);
    assert_string_equal(
        h.body, "{\"messages\":[],\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
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

/* ---- chunks read through the last one ----------------------------------------------- */

/* One reading of a stream: every feed's value, the deltas and the result. */
typedef struct reading {
    sink s;
    sl_buf rcs;
    int finish_rc;
    size_t shortcuts;
    sl_openai_out out;
    char *body, *message, *text, *reasoning, *finish_reason;
} reading;

static char *dup_str(sl_str s)
{
    char *d = malloc(s.len + 1);
    assert_non_null(d);
    if (s.len)
        memcpy(d, s.ptr, s.len);
    d[s.len] = '\0';
    return d;
}

/* spares: where the parser comes from and goes back to (NULL: a new one, freed) */
static void read_from(reading *r, sl_openai_spares *spares, sl_openai_kind kind, size_t max_event,
                      const char *text, size_t n, size_t step, int shortcut, int stop_at)
{
    memset(r, 0, sizeof *r);
    sl__buf_init(&r->s.log, 0);
    sl__buf_init(&r->rcs, 0);
    r->s.stop_at = stop_at;
    sl_openai_parser *p = sl__openai_parser_take(spares, kind, max_event, on_delta, &r->s);
    sl__openai_parser_shortcut(p, shortcut);
    for (size_t i = 0; i < n; i += step) {
        int rc = sl__openai_feed(p, text + i, n - i < step ? n - i : step);
        sl__buf_printf(&r->rcs, "%d,", rc);
    }
    r->finish_rc = sl__openai_finish(p);
    r->shortcuts = sl__openai_parser_shortcuts(p);
    r->out = *sl__openai_out(p);
    r->body = dup_str(r->out.body);
    r->message = dup_str((sl_str){r->out.message, strlen(r->out.message)});
    r->text = dup_str(r->out.text);
    r->reasoning = dup_str(r->out.reasoning);
    r->finish_reason = r->out.finish_reason ? strdup(r->out.finish_reason) : NULL;
    sl__openai_parser_give(spares, p);
}

static void read_stream(reading *r, sl_openai_kind kind, const char *text, size_t n, size_t step,
                        int shortcut, int stop_at)
{
    read_from(r, NULL, kind, 0, text, n, step, shortcut, stop_at);
}

static void same_reading(const reading *a, const reading *b)
{
    assert_string_equal(a->s.log.data ? a->s.log.data : "", b->s.log.data ? b->s.log.data : "");
    assert_string_equal(a->rcs.data, b->rcs.data);
    assert_int_equal(a->finish_rc, b->finish_rc);
    assert_int_equal(a->out.error, b->out.error);
    assert_string_equal(a->message, b->message);
    assert_int_equal(a->out.error_status, b->out.error_status);
    assert_string_equal(a->body, b->body);
    assert_string_equal(a->text, b->text);
    assert_string_equal(a->reasoning, b->reasoning);
    if (a->finish_reason || b->finish_reason)
        assert_string_equal(a->finish_reason ? a->finish_reason : "-",
                            b->finish_reason ? b->finish_reason : "-");
    assert_memory_equal(&a->out.usage, &b->out.usage, sizeof a->out.usage);
    assert_int_equal(a->out.saw_done, b->out.saw_done);
}

static void reading_free(reading *r)
{
    sl__buf_free(&r->s.log);
    sl__buf_free(&r->rcs);
    free(r->body);
    free(r->message);
    free(r->text);
    free(r->reasoning);
    free(r->finish_reason);
}

/* The stream read with and without templates, in several splits: the same in every way.
 * Returns how many chunks went through a template when fed whole. */
static size_t same_both_ways(sl_openai_kind kind, const char *text, int stop_at)
{
    size_t n = strlen(text), used = 0;
    static const size_t steps[] = {0, 1, 7, 64};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        size_t step = steps[k] ? steps[k] : n;
        reading a, b;
        read_stream(&a, kind, text, n, step, 1, stop_at);
        read_stream(&b, kind, text, n, step, 0, stop_at);
        assert_int_equal(b.shortcuts, 0);
        same_reading(&a, &b);
        if (k == 0)
            used = a.shortcuts;
        reading_free(&a);
        reading_free(&b);
    }
    return used;
}

#define HEAD                                                                                       \
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\","
#define CH(delta, fr)                                                                              \
    HEAD "\"choices\":[{\"index\":0,\"delta\":" delta ",\"logprobs\":null,\"finish_reason\":" fr   \
         "}]}\n\n"

static void test_templates(void **state)
{
    /* the usual stream: role first, then texts (escaped ones too), then the end */
    const char *usual = CH("{\"role\":\"assistant\",\"content\":\"\"}", "null")
        CH("{\"content\":\"Hel\"}", "null") CH("{\"content\":\"lo\"}", "null")
            CH("{\"content\":\"\"}", "null") CH("{\"content\":\", \\\"w\\u00e9\\\"\\n\"}", "null")
                CH("{\"content\":\"\\\",\\\"logprobs\\\":1}]}\"}", "null")
                    CH("{\"content\":\"\\ud83d\\ude00\"}", "null") CH("{}", "\"stop\"") HEAD
        "\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":"
        "6,\"total_tokens\":7}}\n\ndata: [DONE]\n\n";
    assert_int_equal(same_both_ways(SL_OPENAI_CHAT, usual, 0), 5);
    for (int stop = 1; stop <= 6; stop++) /* the consumer stops at each delta */
        same_both_ways(SL_OPENAI_CHAT, usual, stop);

    /* a hole that is not a string, not a valid one, or a layout that changes: read in full,
     * with the errors a full reading gives */
    const char *bad[] = {
        CH("{\"content\":\"a\"}", "null") CH("{\"content\":\"b\\q\"}", "null"),
        CH("{\"content\":\"a\"}", "null") CH("{\"content\":\"b\x01\"}", "null"),
        CH("{\"content\":\"a\"}", "null") CH("{\"content\":\"\xc3\"}", "null"),
        CH("{\"content\":\"a\"}", "null") CH("{\"content\":\"b\"\"}", "null"),
        CH("{\"content\":\"a\"}", "null") CH("{\"content\":\"b\"}", "null") "data: [DONE]\n\n",
        CH("{\"content\":\"a\"}", "null") CH("{\"content\":\"b\"}", "null")
            CH("{\"content\":\"c\"}", "\"length\"")
                CH("{\"content\":\"d\"}", "null") "data: [DONE]\n\n",
        /* another model, then back: the field follows the last chunk */
        CH("{\"content\":\"a\"}", "null")
            CH("{\"content\":\"b\"}",
               "null") "data: {\"id\":\"c1\",\"model\":\"m2\",\"choices\":[{\"index\":0,\"delta\":{"
                       "\"content\":\"x\"}}]}\n\n" CH("{\"content\":\"c\"}", "null")
                           CH("{\"content\":\"d\"}", "\"stop\""),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        same_both_ways(SL_OPENAI_CHAT, bad[i], 0);

    /* reasoning and content in one chunk: reasoning goes first, whatever the order */
    const char *both = CH("{\"content\":\"a\",\"reasoning_content\":\"r\"}", "null")
        CH("{\"content\":\"b\",\"reasoning_content\":\"s\"}", "null")
            CH("{\"content\":\"c\",\"reasoning_content\":\"\"}", "null")
                CH("{\"content\":\"\",\"reasoning_content\":\"t\",\"reasoning\":\"u\"}", "null")
                    CH("{\"content\":\"d\",\"reasoning_content\":\"v\",\"reasoning\":\"w\"}",
                       "\"stop\"");
    assert_true(same_both_ways(SL_OPENAI_CHAT, both, 0) >= 2);
    for (int stop = 1; stop <= 8; stop++)
        same_both_ways(SL_OPENAI_CHAT, both, stop);

    /* two choices, repeated names, obfuscation padding, text completions */
    const char *two =
        "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"x\"}},{\"index\":0,\"delta\":"
        "{\"content\":\"y\",\"content\":\"z\"}}],\"obfuscation\":\"ab\"}\n\n"
        "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"1\"}},{\"index\":0,\"delta\":"
        "{\"content\":\"y\",\"content\":\"3\"}}],\"obfuscation\":\"abcdef\"}\n\n"
        "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"4\"}},{\"index\":0,\"delta\":"
        "{\"content\":\"y\",\"content\":\"6\"}}],\"obfuscation\":\"\"}\n\n"
        "data: [DONE]\n\n";
    assert_int_equal(same_both_ways(SL_OPENAI_CHAT, two, 0), 2);
    const char *text = "data: {\"choices\":[{\"text\":\"a\",\"index\":0,\"logprobs\":null}]}\n\n"
                       "data: {\"choices\":[{\"text\":\"b\",\"index\":0,\"logprobs\":null}]}\n\n"
                       "data: {\"choices\":[{\"text\":\"c\",\"index\":0,\"logprobs\":null,"
                       "\"finish_reason\":\"stop\"}]}\n\n";
    assert_int_equal(same_both_ways(SL_OPENAI_COMPLETIONS, text, 0), 1);

    /* what a template does not cover: logprobs, tool calls, other fields, the same
     * chunk again */
    const char *other[] = {
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"logprobs\":{\"content\":[1]}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"b\"},\"logprobs\":{\"content\":[2]}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"c\"},\"logprobs\":{\"content\":[3]}}]}\n\n"
        "data: [DONE]\n\n",
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
        "\"{\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
        "\"}\"}}]}}]}\n\n"
        "data: [DONE]\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\",\"refusal\":\"r\"},\"seed\":1}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"b\",\"refusal\":\"s\"},\"seed\":1}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"c\",\"refusal\":\"t\"},\"seed\":2}]}\n\n"
        "data: [DONE]\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
        "data: [DONE]\n\n",
    };
    assert_int_equal(same_both_ways(SL_OPENAI_CHAT, other[0], 0), 0);
    assert_int_equal(same_both_ways(SL_OPENAI_CHAT, other[1], 0), 0);
    assert_int_equal(same_both_ways(SL_OPENAI_CHAT, other[2], 0), 0);
    assert_int_equal(same_both_ways(SL_OPENAI_CHAT, other[3], 0), 2);
}

/* A parser given back and taken again reads exactly as a new one, whatever it read
 * before (an error, other choices and fields, a large answer, another kind). */
static void test_reuse(void **state)
{
    static char big[80000];
    if (!big[0]) {
        /* one chunk with 60000 bytes of text: over what a reused parser keeps */
        size_t n = (size_t)snprintf(big, sizeof big,
                                    "data: {\"x\":1,\"choices\":[{\"delta\":{"
                                    "\"content\":\"");
        memset(big + n, 'z', 60000);
        n += 60000;
        snprintf(big + n, sizeof big - n, "\"}}],\"model\":\"q\"}\n\ndata: [DONE]\n\n");
    }
    static const struct {
        sl_openai_kind kind;
        size_t max_event;
        const char *text;
    } uses[] = {
        {SL_OPENAI_CHAT, 0, stream},
        {SL_OPENAI_CHAT, 0,
         CH("{\"content\":\"a\"}", "null") CH("{\"content\":\"b\"}", "\"stop\"")},
        {SL_OPENAI_CHAT, 0, "data: {\"choices\":[{\"index\":500,\"delta\":{}}]}\n\n"},
        {SL_OPENAI_CHAT, 64,
         "data: {\"choices\":[{\"delta\":{\"content\":\"a much longer text "
         "than sixty-four bytes can hold\"}}]}\n\n"},
        {SL_OPENAI_CHAT, 0, "event: error\ndata: {\"error\":{\"message\":\"boom\"}}\n\n"},
        {SL_OPENAI_COMPLETIONS, 0,
         "data: {\"choices\":[{\"text\":\"t\",\"index\":2,\"logprobs\":"
         "{\"tokens\":[\"t\"]},\"finish_reason\":\"length\"}],\"id\":\"q"
         "\"}\n\n"},
        {SL_OPENAI_CHAT, 0, big},
        {SL_OPENAI_CHAT, 0, "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"y\"}}]}"},
    };
    size_t nuses = sizeof uses / sizeof uses[0];
    sl_openai_spares *sp = sl__openai_spares_new(1);
    assert_non_null(sp);
    for (size_t i = 0; i < nuses; i++) {
        for (size_t j = 0; j < nuses; j++) {
            reading before, a, b;
            read_from(&before, sp, uses[i].kind, uses[i].max_event, uses[i].text,
                      strlen(uses[i].text), 13, 1, 0);
            read_from(&a, sp, uses[j].kind, uses[j].max_event, uses[j].text, strlen(uses[j].text),
                      13, 1, 0);
            read_from(&b, NULL, uses[j].kind, uses[j].max_event, uses[j].text, strlen(uses[j].text),
                      13, 1, 0);
            same_reading(&a, &b);
            reading_free(&before);
            reading_free(&a);
            reading_free(&b);
        }
    }
    /* closed while a parser is out: freed when it comes back */
    sl_openai_parser *p = sl__openai_parser_take(sp, SL_OPENAI_CHAT, 0, NULL, NULL);
    assert_non_null(p);
    sl__openai_spares_close(sp);
    sl__openai_parser_give(sp, p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build),           cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_errors_and_caps), cmocka_unit_test(test_jansson_reading),
        cmocka_unit_test(test_non_stream),      cmocka_unit_test(test_error_message),
        cmocka_unit_test(test_templates),       cmocka_unit_test(test_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
