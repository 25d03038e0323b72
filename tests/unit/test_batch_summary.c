/* test_batch_summary.c — outcomes, latency percentiles within the documented precision,
 * the bounded failure list, and the text and JSON summaries byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "apps/batch/summary.h"
#include "base/buf.h"
#include <sluice/common.h>

static void test_hist_exact_small_values(void **state)
{
    sl_batch_hist h;
    sl__batch_hist_init(&h);
    assert_true(sl__batch_hist_percentile(&h, 50) == 0);
    /* 1..127 us are kept exactly */
    for (int us = 127; us >= 1; us--)
        sl__batch_hist_add(&h, us / 1000.0);
    assert_int_equal(h.count, 127);
    assert_true(fabs(sl__batch_hist_percentile(&h, 50) - 0.064) < 1e-12);
    assert_true(fabs(sl__batch_hist_percentile(&h, 90) - 0.115) < 1e-12);
    assert_true(fabs(sl__batch_hist_percentile(&h, 99) - 0.126) < 1e-12);
    assert_true(fabs(sl__batch_hist_percentile(&h, 100) - 0.127) < 1e-12);
    assert_true(fabs(sl__batch_hist_percentile(&h, 0.1) - 0.001) < 1e-12);
    /* negative and NaN samples are ignored */
    sl__batch_hist_add(&h, -1);
    sl__batch_hist_add(&h, NAN);
    assert_int_equal(h.count, 127);
}

static void test_hist_known_samples(void **state)
{
    sl_batch_hist h;
    sl__batch_hist_init(&h);
    for (int ms = 1; ms <= 1000; ms++)
        sl__batch_hist_add(&h, ms);
    /* nearest rank: p50 is the 500th value (500 ms), p90 900 ms, p99 990 ms; each reported
       as the middle of its bucket, e.g. 500000 us lies in [499712, 503807] */
    double p50 = sl__batch_hist_percentile(&h, 50);
    double p90 = sl__batch_hist_percentile(&h, 90);
    double p99 = sl__batch_hist_percentile(&h, 99);
    assert_true(p50 == 501.7595);
    assert_true(p90 == 897.0235);
    assert_true(p99 == 987.1355);
    assert_true(fabs(p50 - 500) <= 500 / 128.0);
    assert_true(fabs(p90 - 900) <= 900 / 128.0);
    assert_true(fabs(p99 - 990) <= 990 / 128.0);
    assert_true(sl__batch_hist_percentile(&h, 100) == 1000);
    assert_true(h.max_ms == 1000 && h.min_ms == 1);

    /* one sample: every percentile is it, exactly (clamped to min and max) */
    sl__batch_hist_init(&h);
    sl__batch_hist_add(&h, 1234.567);
    assert_true(sl__batch_hist_percentile(&h, 50) == 1234.567);
    assert_true(sl__batch_hist_percentile(&h, 99) == 1234.567);

    /* the precision bound over the whole range: {1 us, v}, p100 is v's bucket */
    for (double v = 0.2; v < 4e9; v *= 1.37) {
        sl__batch_hist_init(&h);
        sl__batch_hist_add(&h, 0.001);
        sl__batch_hist_add(&h, v);
        double got = sl__batch_hist_percentile(&h, 100);
        assert_true(fabs(got - v) <= v / 128.0 + 0.0005);
    }
    /* beyond the range: clamped into the last bucket, max still exact */
    sl__batch_hist_init(&h);
    sl__batch_hist_add(&h, 1e12);
    sl__batch_hist_add(&h, 1e13);
    assert_true(h.max_ms == 1e13);
    assert_true(sl__batch_hist_percentile(&h, 50) == 1e12);
}

static void test_outcomes(void **state)
{
    assert_int_equal(sl__batch_outcome_of(0, 200), SL_BATCH_OK);
    assert_int_equal(sl__batch_outcome_of(SL_EHTTP, 400), SL_BATCH_HTTP_4XX);
    assert_int_equal(sl__batch_outcome_of(SL_EHTTP, 429), SL_BATCH_HTTP_4XX);
    assert_int_equal(sl__batch_outcome_of(SL_EHTTP, 503), SL_BATCH_HTTP_5XX);
    assert_int_equal(sl__batch_outcome_of(SL_EHTTP, 302), SL_BATCH_OTHER);
    assert_int_equal(sl__batch_outcome_of(SL_ETIMEDOUT, 0), SL_BATCH_TIMEOUT);
    assert_int_equal(sl__batch_outcome_of(SL_ETRANSPORT, 0), SL_BATCH_TRANSPORT);
    assert_int_equal(sl__batch_outcome_of(SL_EPROTO, 200), SL_BATCH_PROTOCOL);
    assert_int_equal(sl__batch_outcome_of(SL_EDIVERGED, 200), SL_BATCH_PROTOCOL);
    assert_int_equal(sl__batch_outcome_of(SL_ELIMIT, 200), SL_BATCH_PROTOCOL);
    assert_int_equal(sl__batch_outcome_of(SL_EBUSY, 0), SL_BATCH_CIRCUIT);
    assert_string_equal(sl__batch_outcome_name(SL_BATCH_CIRCUIT), "circuit_open");
    assert_int_equal(sl__batch_outcome_of(SL_ECANCELED, 0), SL_BATCH_OTHER);
    assert_string_equal(sl__batch_outcome_name(SL_BATCH_HTTP_5XX), "http_5xx");
    assert_string_equal(sl__batch_outcome_name(SL_BATCH_INVALID), "invalid");
    assert_string_equal(sl__batch_outcome_name((sl_batch_outcome)99), "other");
}

/* A run: 3 ok, 3 failed requests, 2 invalid lines, 5 skipped; 3 failures kept. */
static void fill(sl_batch_summary *s)
{
    sl__batch_summary_init(s, 3);
    const sl_batch_record recs[] = {
        {NULL, 12, SL_BATCH_INVALID, 0, "line 12: invalid JSON at column 3: x", -1, 0, -1, -1},
        {"r1", 1, SL_BATCH_OK, 200, NULL, 100, 1, 10, 5},
        {"r4", 4, SL_BATCH_HTTP_4XX, 429, "Rate limit reached\nretry later", 400, 3, 10, -1},
        {"q\nx", 13, SL_BATCH_INVALID, 0, "line 13: missing \"body\"", -1, 0, -1, -1},
        {"r2", 2, SL_BATCH_OK, 200, NULL, 200, 2, 10, 5},
        {"r5", 5, SL_BATCH_HTTP_5XX, 503, "upstream down", 500, 1, -1, -1},
        {"r6", 6, SL_BATCH_TIMEOUT, 0, "no first byte in 30s", 30000, 1, -1, -1},
        {"r3", 3, SL_BATCH_OK, 200, NULL, 300, 1, 10, 5},
    };
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
        assert_int_equal(sl__batch_summary_add(s, &recs[i]), 0);
    s->skipped = 5;
    s->wall_ms = 83000;
}

static void test_text_summary(void **state)
{
    sl_batch_summary s;
    fill(&s);
    assert_int_equal(sl__batch_summary_failed(&s), 5);
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__batch_summary_text(&s, &b), 0);
    assert_string_equal(b.data,
                        "batch: 13 items: 3 ok, 3 failed, 2 invalid lines, 5 skipped (already in "
                        "the output)\n"
                        "  failed: http 4xx 1, http 5xx 1, timeout 1\n"
                        "  time: 1m23s, 0.1 req/s, 1 tok/s\n"
                        "  tokens: 40 prompt + 15 completion = 55; retries: 3\n"
                        "  latency: p50 301ms, p90 30.00s, p99 30.00s, max 30.00s (6 requests)\n"
                        "failures:\n"
                        "  line 12: invalid JSON at column 3: x\n"
                        "  r4: http 429: Rate limit reached retry later\n"
                        "  \"q\\nx\": invalid: line 13: missing \"body\"\n"
                        "  ... and 2 more (each one with an id has its line in the output file)\n");
    sl__buf_free(&b);

    /* a stream cut after its 200 is a transport failure, not "http 200" */
    sl__batch_summary_free(&s);
    sl__batch_summary_init(&s, 10);
    const sl_batch_record cut = {"c1", 7, SL_BATCH_TRANSPORT, 200, "connection closed", 5, 2,
                                 -1,   -1};
    assert_int_equal(sl__batch_summary_add(&s, &cut), 0);
    sl__buf_reset(&b);
    assert_int_equal(sl__batch_summary_text(&s, &b), 0);
    assert_non_null(strstr(b.data, "failures:\n  c1: transport: connection closed\n"));
    sl__buf_free(&b);

    /* a run cut short, nothing sent yet */
    sl__batch_summary_free(&s);
    sl__batch_summary_init(&s, 0);
    s.unfinished = 3;
    s.wall_ms = 4.25;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__batch_summary_text(&s, &b), 0);
    assert_string_equal(b.data, "batch: 3 items: 0 ok, 0 failed, 3 not finished (run again with "
                                "--resume)\n"
                                "  time: 4.2ms, 0.0 req/s, 0 tok/s\n"
                                "  tokens: 0 prompt + 0 completion = 0; retries: 0\n");
    sl__buf_free(&b);

    /* one item, a failure without a message, a small latency */
    sl_batch_record r = {"only", 1, SL_BATCH_TRANSPORT, 0, NULL, 0.42, 1, -1, -1};
    assert_int_equal(sl__batch_summary_add(&s, &r), 0);
    s.unfinished = 0;
    s.wall_ms = 1500;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__batch_summary_text(&s, &b), 0);
    assert_string_equal(b.data,
                        "batch: 1 item: 0 ok, 1 failed\n"
                        "  failed: transport 1\n"
                        "  time: 1.50s, 0.7 req/s, 0 tok/s\n"
                        "  tokens: 0 prompt + 0 completion = 0; retries: 0\n"
                        "  latency: p50 0.4ms, p90 0.4ms, p99 0.4ms, max 0.4ms (1 request)\n"
                        "failures:\n"
                        "  only: transport\n");
    sl__buf_free(&b);
    sl__batch_summary_free(&s);
}

static void test_message_cut(void **state)
{
    sl_batch_summary s;
    sl__batch_summary_init(&s, 0);
    char msg[401];
    for (int i = 0; i < 200; i++)
        memcpy(msg + 2 * i, "\xc3\xa9", 2); /* 200 times e-acute, 400 bytes */
    msg[400] = '\0';
    sl_batch_record r = {"x", 1, SL_BATCH_OTHER, 0, msg, -1, 1, -1, -1};
    assert_int_equal(sl__batch_summary_add(&s, &r), 0);
    const char *m = s.failures[0].message;
    assert_int_equal(strlen(m), SL_BATCH_FAILURE_MSG + 3);
    assert_memory_equal(m, msg, SL_BATCH_FAILURE_MSG);
    assert_string_equal(m + SL_BATCH_FAILURE_MSG, "...");
    /* invalid UTF-8 and control bytes are cleaned */
    sl_batch_record r2 = {"y", 2, SL_BATCH_OTHER, 0, "a\xff\x01z\xe2\x82", -1, 1, -1, -1};
    assert_int_equal(sl__batch_summary_add(&s, &r2), 0);
    assert_string_equal(s.failures[1].message, "a? z??");
    sl__batch_summary_free(&s);
}

static void test_json_summary(void **state)
{
    sl_batch_summary s;
    fill(&s);
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__batch_summary_json(&s, &b), 0);
    assert_string_equal(b.data, "{\n"
                                "  \"items\": 13,\n"
                                "  \"ok\": 3,\n"
                                "  \"failed\": 3,\n"
                                "  \"invalid_lines\": 2,\n"
                                "  \"skipped\": 5,\n"
                                "  \"unfinished\": 0,\n"
                                "  \"input_left\": false,\n"
                                "  \"failed_by_reason\": {\n"
                                "    \"http_4xx\": 1,\n"
                                "    \"http_5xx\": 1,\n"
                                "    \"timeout\": 1,\n"
                                "    \"transport\": 0,\n"
                                "    \"protocol\": 0,\n"
                                "    \"circuit_open\": 0,\n"
                                "    \"other\": 0\n"
                                "  },\n"
                                "  \"retries\": 3,\n"
                                "  \"tokens\": {\n"
                                "    \"prompt\": 40,\n"
                                "    \"completion\": 15,\n"
                                "    \"total\": 55\n"
                                "  },\n"
                                "  \"wall_ms\": 83000.0,\n"
                                "  \"latency_ms\": {\n"
                                "    \"count\": 6,\n"
                                "    \"p50\": 301.056,\n"
                                "    \"p90\": 30000.0,\n"
                                "    \"p99\": 30000.0,\n"
                                "    \"max\": 30000.0\n"
                                "  },\n"
                                "  \"failures\": [\n"
                                "    {\n"
                                "      \"id\": null,\n"
                                "      \"line\": 12,\n"
                                "      \"reason\": \"invalid\",\n"
                                "      \"http_status\": null,\n"
                                "      \"message\": \"line 12: invalid JSON at column 3: x\"\n"
                                "    },\n"
                                "    {\n"
                                "      \"id\": \"r4\",\n"
                                "      \"line\": 4,\n"
                                "      \"reason\": \"http_4xx\",\n"
                                "      \"http_status\": 429,\n"
                                "      \"message\": \"Rate limit reached retry later\"\n"
                                "    },\n"
                                "    {\n"
                                "      \"id\": \"q\\nx\",\n"
                                "      \"line\": 13,\n"
                                "      \"reason\": \"invalid\",\n"
                                "      \"http_status\": null,\n"
                                "      \"message\": \"line 13: missing \\\"body\\\"\"\n"
                                "    }\n"
                                "  ],\n"
                                "  \"failures_omitted\": 2\n"
                                "}\n");

    /* saved atomically to a file, same bytes */
    char dir[] = "/tmp/sl_summary_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64], err[256];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    assert_int_equal(sl__batch_summary_save_json(&s, path, err, sizeof err), 0);
    FILE *f = fopen(path, "rb");
    char got[4096];
    size_t n = fread(got, 1, sizeof got, f);
    fclose(f);
    assert_int_equal(n, b.len);
    assert_memory_equal(got, b.data, n);
    unlink(path);
    /* a directory that does not exist */
    char bad[96];
    snprintf(bad, sizeof bad, "%s/no/summary.json", dir);
    assert_int_equal(sl__batch_summary_save_json(&s, bad, err, sizeof err), SL_EIO);
    char want[160];
    snprintf(want, sizeof want, "cannot write %s: No such file or directory", bad);
    assert_string_equal(err, want);
    assert_int_equal(rmdir(dir), 0);
    sl__buf_free(&b);
    sl__batch_summary_free(&s);
}

static void test_bounded_failures(void **state)
{
    /* 100000 failures keep only the first max_failures entries */
    sl_batch_summary s;
    sl__batch_summary_init(&s, 0);
    for (int i = 0; i < 100000; i++) {
        char id[16];
        snprintf(id, sizeof id, "f%d", i);
        sl_batch_record r = {id, (uint64_t)i + 1, SL_BATCH_HTTP_5XX, 500, "boom", 1, 1, -1, -1};
        assert_int_equal(sl__batch_summary_add(&s, &r), 0);
    }
    assert_int_equal(s.nfailures, SL_BATCH_MAX_FAILURES);
    assert_int_equal(s.failures_omitted, 100000 - SL_BATCH_MAX_FAILURES);
    assert_int_equal(s.count[SL_BATCH_HTTP_5XX], 100000);
    assert_string_equal(s.failures[999].id, "f999");
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__batch_summary_text(&s, &b), 0);
    assert_non_null(strstr(b.data, "  f999: http 500: boom\n  ... and 99000 more (each one with "
                                   "an id has its line in the output file)\n"));
    sl__buf_free(&b);
    sl__batch_summary_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_exact_small_values),
        cmocka_unit_test(test_hist_known_samples),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_text_summary),
        cmocka_unit_test(test_message_cut),
        cmocka_unit_test(test_json_summary),
        cmocka_unit_test(test_bounded_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
