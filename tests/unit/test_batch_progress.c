/* test_batch_progress.c — progress bar and status line, byte-exact for fixed counters and
 * times; the sliding rate window; the number formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "apps/batch/progress.h"
#include "base/buf.h"

static char *line_of(const sl_batch_progress *p, const sl_batch_counters *c, double now)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__batch_progress_line(p, c, now, &b), 0);
    return sl__buf_steal(&b);
}

static char *bar_of(const sl_batch_progress *p, const sl_batch_counters *c, double now, int width)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__batch_progress_bar(p, c, now, width, &b), 0);
    return sl__buf_steal(&b);
}

static void expect_line(const sl_batch_progress *p, const sl_batch_counters *c, double now,
                        const char *want)
{
    char *got = line_of(p, c, now);
    assert_string_equal(got, want);
    free(got);
}

static void expect_bar(const sl_batch_progress *p, const sl_batch_counters *c, double now,
                       int width, const char *want)
{
    char *got = bar_of(p, c, now, width);
    assert_string_equal(got, want);
    free(got);
}

static void test_status_line_and_bar(void **state)
{
    sl_batch_progress p;
    sl__batch_progress_init(&p, 0);
    sl_batch_counters c0 = {0};
    c0.total = 10000;
    c0.done = 790;
    c0.prompt_tokens = 10000;
    c0.completion_tokens = 2000;
    sl__batch_progress_sample(&p, &c0, 0);

    sl_batch_counters c = c0;
    c.done = 1200;
    c.ok = 1190;
    c.failed = 10;
    c.retrying = 3;
    c.in_flight = 64;
    c.prompt_tokens = 16000;
    c.completion_tokens = 4200; /* +8200 tokens in one second */
    expect_line(&p, &c, 1000,
                "[batch] 1200/10000 ok=1190 failed=10 retrying=3 rate=410/s tok/s=8200 eta=21s\n");
    expect_bar(&p, &c, 1000, 80,
               "\r[##...............] 1200/10000 ok=1190 fail=10 retry=3 410/s 8.2k tok/s ETA "
               "21s\x1b[K");
    /* width 0 means 80 */
    expect_bar(&p, &c, 1000, 0,
               "\r[##...............] 1200/10000 ok=1190 fail=10 retry=3 410/s 8.2k tok/s ETA "
               "21s\x1b[K");
    /* a wide terminal: the bar stops at 40 columns */
    expect_bar(&p, &c, 1000, 200,
               "\r[####....................................] 1200/10000 ok=1190 fail=10 retry=3 "
               "410/s 8.2k tok/s ETA 21s\x1b[K");
    /* narrow: no bar, the numbers are cut at width - 1 */
    expect_bar(&p, &c, 1000, 40, "\r1200/10000 ok=1190 fail=10 retry=3 410/\x1b[K");
}

static void test_unknown_total_skipped_and_done(void **state)
{
    sl_batch_progress p;
    sl__batch_progress_init(&p, 5000);
    sl_batch_counters c = {0};
    c.done = 10;
    c.ok = 9;
    c.failed = 1;
    c.completion_tokens = 24;
    /* no snapshot yet: rates since the start (2 s) */
    expect_line(&p, &c, 7000, "[batch] 10/? ok=9 failed=1 retrying=0 rate=5.0/s tok/s=12 eta=?\n");
    expect_bar(&p, &c, 7000, 80, "\r10/? ok=9 fail=1 retry=0 5.0/s 12 tok/s\x1b[K");

    /* resumed: done counts skipped items, ETA counts what is left */
    c.total = 100;
    c.skipped = 40;
    expect_line(&p, &c, 7000,
                "[batch] 50/100 ok=9 failed=1 skipped=40 retrying=0 rate=5.0/s tok/s=12 "
                "eta=10s\n");
    expect_bar(&p, &c, 7000, 80,
               "\r[#############..............] 50/100 ok=9 fail=1 retry=0 5.0/s 12 "
               "tok/s ETA 10s\x1b[K");

    /* no time has passed: no rate, no ETA */
    expect_line(&p, &c, 5000,
                "[batch] 50/100 ok=9 failed=1 skipped=40 retrying=0 rate=0.0/s tok/s=0 eta=?\n");

    /* all done: ETA 0s, a full bar */
    c.done = 60;
    c.ok = 59;
    expect_line(&p, &c, 7000,
                "[batch] 100/100 ok=59 failed=1 skipped=40 retrying=0 rate=30/s tok/s=12 eta=0s\n");
    expect_bar(&p, &c, 7000, 80,
               "\r[###########################] 100/100 ok=59 fail=1 retry=0 30/s 12 "
               "tok/s ETA 0s\x1b[K");

    /* big numbers: the bar gives way, the numbers fit */
    c.total = 1000000;
    c.skipped = 0;
    c.done = 123456;
    c.ok = 123000;
    c.failed = 456;
    c.retrying = 12;
    c.completion_tokens = 1234567 * 2 + 24;
    sl_batch_progress q;
    sl__batch_progress_init(&q, 0);
    sl_batch_counters c0 = {0};
    c0.done = 123456 - 2468;
    c0.completion_tokens = 24;
    sl__batch_progress_sample(&q, &c0, 0);
    expect_bar(&q, &c, 2000, 80,
               "\r123456/1000000 ok=123000 fail=456 retry=12 1234/s 1.2M tok/s ETA 11m50s\x1b[K");
}

static void test_bar_always_fits(void **state)
{
    sl_batch_progress p;
    sl__batch_progress_init(&p, 0);
    sl_batch_counters c = {0};
    c.total = UINT64_MAX / 2;
    c.done = c.ok = UINT64_MAX / 4;
    c.failed = c.retrying = 123456789;
    c.completion_tokens = UINT64_MAX / 8;
    for (int width = 1; width <= 200; width++) {
        char *got = bar_of(&p, &c, 1000, width);
        size_t len = strlen(got);
        assert_true(len >= 4);
        assert_true(len - 4 <= (size_t)(width > 1 ? width - 1 : 1));
        assert_int_equal(got[0], '\r');
        assert_string_equal(got + len - 3, "\x1b[K");
        free(got);
    }
}

static void test_rate_window(void **state)
{
    sl_batch_progress p;
    sl__batch_progress_init(&p, 0);
    sl_batch_counters c = {0};
    /* one snapshot a second for 12 s; done grows by 10/s, then 100/s from t=6 s */
    uint64_t done = 0;
    for (int t = 0; t <= 11; t++) {
        c.done = done;
        sl__batch_progress_sample(&p, &c, t * 1000.0);
        /* more snapshots within the same second are ignored */
        sl__batch_progress_sample(&p, &c, t * 1000.0 + 500);
        done += t < 6 ? 10 : 100;
    }
    assert_int_equal(p.n, SL_BATCH_RATE_SLOTS);
    /* the window holds t = 2..11 s; at t = 12 s done is 1200 - ... */
    c.done = done; /* value at t = 12 s */
    /* done(2 s) = 20; done(12 s) = 60 + 6 * 100 = 660 */
    assert_int_equal(done, 660);
    double r = sl__batch_progress_req_rate(&p, &c, 12000);
    assert_true(r == (660.0 - 20.0) / 10.0);
    assert_true(sl__batch_progress_tok_rate(&p, &c, 12000) == 0);
    /* counters going backwards (a reset) read as no rate, not garbage */
    c.done = 0;
    assert_true(sl__batch_progress_req_rate(&p, &c, 12000) == 0);
}

static void test_formats(void **state)
{
    char b[24];
    struct {
        double v;
        const char *want;
    } rates[] = {{0, "0.0"}, {0.5, "0.5"}, {9.94, "9.9"}, {9.96, "10"}, {410.4, "410"}},
      si[] = {{0, "0"},       {950, "950"},       {999.4, "999"},   {999.5, "1.0k"},
              {8200, "8.2k"}, {999949, "999.9k"}, {999950, "1.0M"}, {1.5e6, "1.5M"},
              {2e9, "2.0G"},  {2e15, ">1e15"}},
      secs[] = {{0, "0s"},      {21.4, "21s"},      {59.4, "59s"},   {59.6, "1m00s"},
                {185, "3m05s"}, {3599.4, "59m59s"}, {7380, "2h03m"}, {360000, "100h00m"},
                {-1, "?"},      {4e8, "?"}};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        sl__batch_fmt_rate(b, rates[i].v);
        assert_string_equal(b, rates[i].want);
    }
    for (size_t i = 0; i < sizeof si / sizeof si[0]; i++) {
        sl__batch_fmt_si(b, si[i].v);
        assert_string_equal(b, si[i].want);
    }
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++) {
        sl__batch_fmt_secs(b, secs[i].v);
        assert_string_equal(b, secs[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_line_and_bar),
        cmocka_unit_test(test_unknown_total_skipped_and_done),
        cmocka_unit_test(test_bar_always_fits),
        cmocka_unit_test(test_rate_window),
        cmocka_unit_test(test_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
