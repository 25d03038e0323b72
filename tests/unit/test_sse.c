/* test_sse.c — the SSE parser under every split of its input, its caps, and the writer.
 *
 * Each parser case is fed whole, one byte at a time, at every split point, in seeded
 * random chunks, and again with the callback stopping at every event and the feed
 * resumed from sl_sse_parser.consumed: the events must be exactly the expected ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/sse.h"
#include <sluice/common.h>

#define STOP_RC    7
#define MAX_EVENTS 32

typedef struct rec {
    char *type, *data, *id;
    size_t type_len, data_len, id_len;
    long retry;
} rec;

typedef struct sink {
    rec ev[MAX_EVENTS];
    int n;
    int stop_every; /* callback returns STOP_RC for each event */
    int stops;
} sink;

static char *memdup0(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static int on_event(void *user, const sl_sse_event *ev)
{
    sink *s = user;
    assert_true(s->n < MAX_EVENTS);
    rec *r = &s->ev[s->n++];
    r->type = memdup0(ev->type.ptr, ev->type.len);
    r->type_len = ev->type.len;
    r->data = memdup0(ev->data.ptr, ev->data.len);
    r->data_len = ev->data.len;
    r->id = memdup0(ev->id.ptr, ev->id.len);
    r->id_len = ev->id.len;
    r->retry = ev->retry_ms;
    if (s->stop_every) {
        s->stops++;
        return STOP_RC;
    }
    return 0;
}

static void sink_clear(sink *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->ev[i].type);
        free(s->ev[i].data);
        free(s->ev[i].id);
    }
    s->n = 0;
    s->stops = 0;
}

/* Feeds in[0..n) cut at cuts[0..ncuts) (ascending), resuming after each stop. Returns
 * 0 or the first error (feeding stops there). */
static int feed_cuts(sl_sse_parser *p, sink *s, const char *in, size_t n, const size_t *cuts,
                     size_t ncuts)
{
    size_t from = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        do {
            int rc = sl__sse_feed(p, in + from, to - from);
            if (rc == STOP_RC && s->stop_every) {
                assert_true(p->consumed <= to - from);
                from += p->consumed;
                continue;
            }
            if (rc)
                return rc;
            assert_int_equal(p->consumed, to - from);
            from = to;
        } while (from < to);
    }
    return sl__sse_finish(p);
}

typedef struct exp_ev {
    const char *type, *data, *id;
    long retry;
} exp_ev;

typedef struct sse_case {
    const char *name;
    const char *in;
    size_t len;
    exp_ev ev[8];
    int n;
} sse_case;

static void check_events(const sse_case *c, const sink *s, const char *how)
{
    if (s->n != c->n)
        fail_msg("%s (%s): %d events, want %d", c->name, how, s->n, c->n);
    for (int i = 0; i < c->n; i++) {
        const rec *r = &s->ev[i];
        const exp_ev *e = &c->ev[i];
        if (r->type_len != strlen(e->type) || memcmp(r->type, e->type, r->type_len) ||
            r->data_len != strlen(e->data) || memcmp(r->data, e->data, r->data_len) ||
            r->id_len != strlen(e->id) || memcmp(r->id, e->id, r->id_len) || r->retry != e->retry)
            fail_msg("%s (%s): event %d is {%s, \"%s\", %s, %ld}, want {%s, \"%s\", %s, %ld}",
                     c->name, how, i, r->type, r->data, r->id, r->retry, e->type, e->data, e->id,
                     e->retry);
    }
    if (s->stop_every && s->stops != c->n)
        fail_msg("%s (%s): %d stops, want %d", c->name, how, s->stops, c->n);
}

static void run_one(const sse_case *c, const size_t *cuts, size_t ncuts, int stop_every,
                    const char *how)
{
    sl_sse_parser p;
    sink s = {.stop_every = stop_every};
    sl__sse_init(&p, 0, 0, on_event, &s);
    int rc = feed_cuts(&p, &s, c->in, c->len, cuts, ncuts);
    if (rc)
        fail_msg("%s (%s): feed returned %d", c->name, how, rc);
    check_events(c, &s, how);
    sink_clear(&s);
    sl__sse_free(&p);
}

static uint64_t rng_state;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void check_case(const sse_case *c)
{
    size_t n = c->len;
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    assert_non_null(cuts);
    char how[64];
    for (int stop = 0; stop <= 1; stop++) {
        run_one(c, NULL, 0, stop, "whole");
        for (size_t i = 1; i < n; i++)
            cuts[i - 1] = i;
        run_one(c, cuts, n ? n - 1 : 0, stop, "byte by byte");
        for (size_t i = 0; i <= n; i++) {
            snprintf(how, sizeof how, "split at %zu, stop %d", i, stop);
            run_one(c, &i, 1, stop, how);
        }
        rng_state = 0x9e3779b97f4a7c15ull;
        for (int t = 0; t < 100; t++) {
            size_t k = 0, at = 0;
            for (;;) {
                at += 1 + rng() % 9;
                if (at >= n)
                    break;
                cuts[k++] = at;
            }
            snprintf(how, sizeof how, "random chunking %d, stop %d", t, stop);
            run_one(c, cuts, k, stop, how);
        }
    }
    free(cuts);
}

#define IN(s) s, sizeof(s) - 1
#define M     "message"

static const sse_case cases[] = {
    {"openai",
     IN("data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
        "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
        "data: [DONE]\n\n"),
     {{M, "{\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}", "", -1},
      {M, "{\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}", "", -1},
      {M, "[DONE]", "", -1}},
     3},
    {"crlf",
     IN("event: a\r\ndata: x\r\ndata: y\r\n\r\ndata: z\r\n\r\n"),
     {{"a", "x\ny", "", -1}, {M, "z", "", -1}},
     2},
    {"cr only",
     IN("data: x\rdata: y\r\rid: 7\rdata: z\r\r"),
     {{M, "x\ny", "", -1}, {M, "z", "7", -1}},
     2},
    {"mixed endings",
     IN("data: a\r\ndata: b\rdata: c\n\r\n"
        "data: d\n\r"
        "data: e\r\r\n"
        "data: f\n\rdata: g\n\n"),
     {{M, "a\nb\nc", "", -1},
      {M, "d", "", -1},
      {M, "e", "", -1},
      {M, "f", "", -1},
      {M, "g", "", -1}},
     5},
    {"bom",
     IN("\xEF\xBB\xBF"
        "data: bom\n\n"),
     {{M, "bom", "", -1}},
     1},
    /* Only the first BOM is skipped: the second makes "\xEF\xBB\xBF" "data" an unknown field. */
    {"bom once",
     IN("\xEF\xBB\xBF"
        "data: a\n\n\xEF\xBB\xBF"
        "data: b\n\n"),
     {{M, "a", "", -1}},
     1},
    /* A partial BOM is not skipped: its bytes stay in the first field name. */
    {"partial bom",
     IN("\xEF\xBB"
        "data: x\n\ndata: y\n\n"),
     {{M, "y", "", -1}},
     1},
    {"bom alone", IN("\xEF\xBB\xBF"), {{0}}, 0},
    {"bom then crlf", IN("\xEF\xBB\xBF\r\ndata: z\r\n\r\n"), {{M, "z", "", -1}}, 1},
    {"comments and keep-alives",
     IN(": keep-alive\n\n: ping\ndata: a\n: mid\ndata: b\n\n:\n\n:data: no\n\n"),
     {{M, "a\nb", "", -1}},
     1},
    {"multi-line data",
     IN("data: line1\ndata: line2\ndata:\ndata: line4\n\n"),
     {{M, "line1\nline2\n\nline4", "", -1}},
     1},
    {"event id retry",
     IN("event: add\nid: 1\nretry: 1500\ndata: x\n\n"
        "data: y\n\n"
        "id\ndata: z\n\n"
        "event: e2\nid: 3\n\n"
        "data: w\n\n"),
     {{"add", "x", "1", 1500}, {M, "y", "1", -1}, {M, "z", "", -1}, {M, "w", "3", -1}},
     4},
    {"retry carried to the next event",
     IN("retry: 2000\n\ndata: a\n\ndata: b\n\n"),
     {{M, "a", "", 2000}, {M, "b", "", -1}},
     2},
    {"field without colon",
     IN("data\n\ndata\ndata\n\nevent\ndata: x\n\n"),
     {{M, "", "", -1}, {M, "\n", "", -1}, {M, "x", "", -1}},
     3},
    {"data without space",
     IN("data:x\ndata:  two\ndata: a:b: c\n\n"),
     {{M, "x\n two\na:b: c", "", -1}},
     1},
    {"empty data event",
     IN("\n\n\ndata:\n\ndata: \n\nevent: e\n\n"),
     {{M, "", "", -1}, {M, "", "", -1}},
     2},
    {"id with nul ignored",
     IN("id: 5\ndata: a\n\nid: 6\0x\ndata: b\n\n"),
     {{M, "a", "5", -1}, {M, "b", "5", -1}},
     2},
    {"bad retry ignored",
     IN("retry: 12a\ndata: a\n\nretry: -5\ndata: b\n\nretry:\ndata: c\n\n"
        "retry:  7\ndata: d\n\nretry: 0\ndata: e\n\n"
        "retry: 99999999999999999999999999\ndata: f\n\n"
        "retry: 5\nretry: x\ndata: g\n\n"),
     {{M, "a", "", -1},
      {M, "b", "", -1},
      {M, "c", "", -1},
      {M, "d", "", -1},
      {M, "e", "", 0},
      {M, "f", "", LONG_MAX},
      {M, "g", "", 5}},
     7},
    {"unknown fields ignored",
     IN("foo: bar\nData: x\ndata : y\ndata: z\n\n"),
     {{M, "z", "", -1}},
     1},
    {"trailing incomplete event (lf)", IN("data: a\n\ndata: b\n"), {{M, "a", "", -1}}, 1},
    {"trailing incomplete event (cr)", IN("data: a\n\ndata: b\r"), {{M, "a", "", -1}}, 1},
    {"trailing incomplete line", IN("data: a\r\n\r\ndata: b"), {{M, "a", "", -1}}, 1},
    {"empty input", "", 0, {{0}}, 0},
};

static void test_cases(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

static int stop_on_first(void *user, const sl_sse_event *ev)
{
    int *n = user;
    (*n)++;
    return *n == 1 ? -42 : 0;
}

static void test_callback_stops_feed(void **state)
{
    const char in[] = "data: a\r\n\r\ndata: b\n\n";
    int n = 0;
    sl_sse_parser p;
    sl__sse_init(&p, 0, 0, stop_on_first, &n);
    assert_int_equal(sl__sse_feed(&p, in, sizeof in - 1), -42);
    assert_int_equal(n, 1);
    assert_int_equal(p.consumed, 11); /* just after the "\r\n" that dispatched "a" */
    assert_int_equal(sl__sse_feed(&p, in + 11, sizeof in - 1 - 11), 0);
    assert_int_equal(p.consumed, sizeof in - 1 - 11);
    assert_int_equal(n, 2);
    sl__sse_free(&p);

    /* Stopped on a CR at the end of a feed: the LF starting the next one is its pair. */
    n = 0;
    sl__sse_init(&p, 0, 0, stop_on_first, &n);
    assert_int_equal(sl__sse_feed(&p, "data: a\r\r", 9), -42);
    assert_int_equal(p.consumed, 9);
    assert_int_equal(sl__sse_feed(&p, "", 0), 0);
    assert_int_equal(sl__sse_feed(&p, "\ndata: b\n\n", 11), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sl__sse_finish(&p), 0);
    sl__sse_free(&p);
}

static int count_event(void *user, const sl_sse_event *ev)
{
    (*(int *)user)++;
    return 0;
}

static void test_line_cap(void **state)
{
    /* "data: 0123456789" is 16 bytes: exactly the cap. One more is too many. */
    const char ok[] = "data: 0123456789\n\n";
    const char bad[] = "data: 0123456789X\n\ndata: later\n\n";
    for (size_t chunk = 1; chunk <= sizeof bad; chunk++) {
        int n = 0, rc = 0;
        sl_sse_parser p;
        sl__sse_init(&p, 16, 0, count_event, &n);
        assert_int_equal(sl__sse_feed(&p, ok, sizeof ok - 1), 0);
        assert_int_equal(n, 1);
        size_t at = 0;
        while (at < sizeof bad - 1 && rc == 0) {
            size_t k = sizeof bad - 1 - at < chunk ? sizeof bad - 1 - at : chunk;
            rc = sl__sse_feed(&p, bad + at, k);
            at += k;
        }
        assert_int_equal(rc, SL_ELIMIT);
        /* In small feeds the overflow is seen as soon as byte 17 arrives. */
        if (chunk <= 17)
            assert_int_equal(at, ((17 + chunk - 1) / chunk) * chunk);
        assert_int_equal(sl__sse_feed(&p, "data: x\n\n", 9), SL_ELIMIT);
        assert_int_equal(sl__sse_finish(&p), 0);
        assert_int_equal(sl__sse_feed(&p, "data: x\n\n", 9), SL_ELIMIT);
        assert_int_equal(n, 1);
        sl__sse_free(&p);
    }

    /* Comments are lines too. */
    int n = 0;
    sl_sse_parser p;
    sl__sse_init(&p, 8, 0, count_event, &n);
    assert_int_equal(sl__sse_feed(&p, ": 123456789\n", 12), SL_ELIMIT);
    sl__sse_free(&p);

    /* A BOM does not count towards the first line. */
    sl__sse_init(&p, 7, 0, count_event, &n);
    assert_int_equal(sl__sse_feed(&p,
                                  "\xEF\xBB\xBF"
                                  "data: x\n\n",
                                  12),
                     0);
    assert_int_equal(n, 1);
    sl__sse_free(&p);
}

static void test_event_cap(void **state)
{
    for (size_t chunk = 1; chunk <= 64; chunk++) {
        /* 5 + '\n' + 4 = 10 bytes of data: exactly the cap; then 11. */
        const char in[] = "data: 12345\ndata: 1234\n\ndata: 12345\ndata: 12345\n\ndata: z\n\n";
        int n = 0, rc = 0;
        sl_sse_parser p;
        sl__sse_init(&p, 0, 10, count_event, &n);
        size_t at = 0;
        while (at < sizeof in - 1 && rc == 0) {
            size_t k = sizeof in - 1 - at < chunk ? sizeof in - 1 - at : chunk;
            rc = sl__sse_feed(&p, in + at, k);
            at += k;
        }
        assert_int_equal(rc, SL_ELIMIT);
        assert_int_equal(n, 1);
        assert_true(p.data.len <= 10);
        assert_int_equal(sl__sse_feed(&p, "data: x\n\n", 9), SL_ELIMIT);
        assert_int_equal(n, 1);
        sl__sse_free(&p);
    }
}

#define W(s) s, sizeof(s) - 1

static void expect_write(const char *type, const char *id, const char *data, size_t len,
                         const char *want, size_t want_len)
{
    sl_buf out;
    sl__buf_init(&out, 0);
    assert_int_equal(sl__buf_append_str(&out, "prev"), 0);
    assert_int_equal(sl__sse_write(&out, type, id, data, len), 0);
    assert_int_equal(out.len, 4 + want_len);
    assert_memory_equal(out.data, "prev", 4);
    assert_memory_equal(out.data + 4, want, want_len);
    sl__buf_free(&out);
}

static void test_write(void **state)
{
    expect_write(NULL, NULL, "hello", 5, W("data: hello\n\n"));
    expect_write("delta", "42", "a\nb", 3, W("event: delta\nid: 42\ndata: a\ndata: b\n\n"));
    expect_write(NULL, NULL, "", 0, W("data: \n\n"));
    expect_write(NULL, NULL, NULL, 0, W("data: \n\n"));
    expect_write(NULL, "", "x", 1, W("id: \ndata: x\n\n"));
    expect_write(NULL, NULL, "a\r\nb\rc\n", 7, W("data: a\ndata: b\ndata: c\ndata: \n\n"));
    expect_write(NULL, NULL, "\r\r\n\n", 4, W("data: \ndata: \ndata: \ndata: \n\n"));
    expect_write(NULL, NULL, " lead: x", 8, W("data:  lead: x\n\n"));
    expect_write(NULL, NULL, "nul\0in", 6, W("data: nul\0in\n\n"));
    expect_write("", NULL, "x", 1, W("event: \ndata: x\n\n"));

    sl_buf out;
    sl__buf_init(&out, 20);
    assert_int_equal(sl__buf_append_str(&out, "keep"), 0);
    assert_int_equal(sl__sse_write(&out, "a\nb", NULL, "x", 1), SL_EINVAL);
    assert_int_equal(sl__sse_write(&out, NULL, "1\r", "x", 1), SL_EINVAL);
    /* "data: 0123456789\n\n" is 18 bytes, 22 with "keep": over the cap of 20. */
    assert_int_equal(sl__sse_write(&out, NULL, NULL, "0123456789", 10), SL_ELIMIT);
    assert_int_equal(out.len, 4);
    assert_string_equal(out.data, "keep");
    assert_int_equal(sl__sse_write_comment(&out, "0123456789abcdefghij"), SL_ELIMIT);
    assert_string_equal(out.data, "keep");
    sl__buf_free(&out);
}

static void test_write_comment(void **state)
{
    sl_buf out;
    sl__buf_init(&out, 0);
    assert_int_equal(sl__sse_write_comment(&out, "keep-alive"), 0);
    assert_string_equal(out.data, ": keep-alive\n\n");
    sl__buf_reset(&out);
    assert_int_equal(sl__sse_write_comment(&out, "a\ndata: b\r\n"), 0);
    assert_string_equal(out.data, ": a\n: data: b\n: \n\n");
    sl__buf_reset(&out);
    assert_int_equal(sl__sse_write_comment(&out, NULL), 0);
    assert_string_equal(out.data, ": \n\n");

    /* A reader sees no event in any of them. */
    int n = 0;
    sl_sse_parser p;
    sl__sse_init(&p, 0, 0, count_event, &n);
    sl__buf_reset(&out);
    assert_int_equal(sl__sse_write_comment(&out, "a\ndata: b\r\n"), 0);
    assert_int_equal(sl__sse_write_comment(&out, "ping"), 0);
    assert_int_equal(sl__sse_feed(&p, out.data, out.len), 0);
    assert_int_equal(n, 0);
    sl__sse_free(&p);
    sl__buf_free(&out);
}

/* What a reader gets back for data: every CR, LF, CRLF becomes LF. */
static size_t normalize(const char *in, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\r') {
            out[k++] = '\n';
            if (i + 1 < n && in[i + 1] == '\n')
                i++;
        } else {
            out[k++] = in[i];
        }
    }
    return k;
}

static void round_trip(const char *type, const char *id, const char *data, size_t len)
{
    sl_buf out;
    sl__buf_init(&out, 0);
    assert_int_equal(sl__sse_write(&out, type, id, data, len), 0);
    assert_int_equal(sl__sse_write_comment(&out, "between"), 0);
    assert_int_equal(sl__sse_write(&out, NULL, NULL, data, len), 0);
    sink s = {0};
    sl_sse_parser p;
    sl__sse_init(&p, 0, 0, on_event, &s);
    /* Split the written stream in the middle too. */
    assert_int_equal(sl__sse_feed(&p, out.data, out.len / 2), 0);
    assert_int_equal(sl__sse_feed(&p, out.data + out.len / 2, out.len - out.len / 2), 0);
    assert_int_equal(sl__sse_finish(&p), 0);
    char *want = malloc(len + 1);
    assert_non_null(want);
    size_t wlen = normalize(data, len, want);
    assert_int_equal(s.n, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s.ev[i].data_len, wlen);
        assert_memory_equal(s.ev[i].data, want, wlen);
        assert_string_equal(s.ev[i].id, id ? id : "");
    }
    assert_string_equal(s.ev[0].type, type && *type ? type : "message");
    assert_string_equal(s.ev[1].type, "message");
    free(want);
    sink_clear(&s);
    sl__sse_free(&p);
    sl__buf_free(&out);
}

static void test_round_trip(void **state)
{
    round_trip(NULL, NULL, "plain", 5);
    round_trip("delta", "7", "a\nb", 3);
    round_trip(" spaced", " 8", "a\rb", 3);
    round_trip("t", "", "a\r\nb", 4);
    round_trip(NULL, NULL, "\n\r\n\r", 4);
    round_trip(NULL, NULL, "", 0);
    round_trip(NULL, NULL, W(" : data: x\n:y\r\n\r\nz\n"));

    static const char alphabet[] = "a :\r\n";
    char buf[48];
    rng_state = 0x2545f4914f6cdd1dull;
    for (int t = 0; t < 500; t++) {
        size_t n = rng() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = alphabet[rng() % (sizeof alphabet - 1)];
        round_trip(NULL, "id", buf, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),      cmocka_unit_test(test_callback_stops_feed),
        cmocka_unit_test(test_line_cap),   cmocka_unit_test(test_event_cap),
        cmocka_unit_test(test_write),      cmocka_unit_test(test_write_comment),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
