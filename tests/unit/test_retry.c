/* test_retry.c — retry classification, full-jitter bounds, Retry-After, budget, records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "policy/retry.h"
#include <sluice/common.h>

/* A state that records its attempts (the call layer keeps its own log and does not). */
static void start_kept(sl_retry_state *s, double now)
{
    static sl_retry_attempt pool[8][SL_RETRY_RECORDED];
    static int next;
    sl__retry_start(s, now);
    sl__retry_keep(s, pool[next++ % 8], SL_RETRY_RECORDED);
}

static void test_defaults(void **state)
{
    sl_retry_opts o;
    sl__retry_opts_init(&o);
    assert_int_equal(o.max_attempts, 5);
    assert_int_equal(o.base_ms, 500);
    assert_int_equal(o.cap_ms, 30000);
    assert_int_equal(o.budget_ms, 0);
    assert_int_equal(o.honour_retry_after, 1);
    assert_int_equal(o.retry_after_max_ms, 600000);
}

static void test_retryable_matrix(void **state)
{
    /* Every status with SL_EHTTP, and with err 0 (a status-only report). */
    for (int s = 100; s <= 599; s++) {
        int want = s == 408 || s == 409 || s == 429 || s >= 500;
        assert_int_equal(sl__retry_retryable(SL_EHTTP, s), want);
        assert_int_equal(sl__retry_retryable(0, s), s >= 400 ? want : 0);
    }
    assert_int_equal(sl__retry_retryable(SL_EHTTP, 0), 0);
    assert_int_equal(sl__retry_retryable(0, 0), 0);
    /* explicit, for the reader */
    const int no[] = {400, 401, 403, 404, 405, 413, 422, 451};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_int_equal(sl__retry_retryable(SL_EHTTP, no[i]), 0);
    const int yes[] = {408, 409, 429, 500, 502, 503, 504, 529, 599};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_int_equal(sl__retry_retryable(SL_EHTTP, yes[i]), 1);
    /* transport-level failures are retryable whatever status came before the cut */
    const int statuses[] = {0, 200, 400, 503};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(sl__retry_retryable(SL_ETRANSPORT, statuses[i]), 1);
        assert_int_equal(sl__retry_retryable(SL_ETIMEDOUT, statuses[i]), 1);
        assert_int_equal(sl__retry_retryable(SL_EPROTO, statuses[i]), 1);
    }
    const int never[] = {SL_ECANCELED, SL_EDIVERGED, SL_ELIMIT, SL_EINVAL, SL_ENOMEM,
                         SL_EBUSY,     SL_EIO,       SL_EPARSE, SL_EADDR,  -999};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        assert_int_equal(sl__retry_retryable(never[i], 0), 0);
        assert_int_equal(sl__retry_retryable(never[i], 503), 0);
    }
}

static void test_rand_reference(void **state)
{
    /* splitmix64 from seed 0: the reference outputs, top 53 bits scaled to [0, 1). */
    uint64_t rng = 0;
    assert_true(sl__retry_rand(&rng) == (double)(0xe220a8397b1dcdafULL >> 11) / 9007199254740992.0);
    assert_true(sl__retry_rand(&rng) == (double)(0x6e789e6aa1b965f4ULL >> 11) / 9007199254740992.0);
    assert_true(sl__retry_rand(&rng) == (double)(0x06c45d188009454fULL >> 11) / 9007199254740992.0);
}

static void test_ceiling(void **state)
{
    sl_retry_opts o;
    sl__retry_opts_init(&o);
    const double want[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (int k = 0; k < 8; k++)
        assert_true(sl__retry_ceiling(&o, k) == want[k]);
    assert_true(sl__retry_ceiling(&o, 100000) == 30000);
    o.base_ms = 0;
    assert_true(sl__retry_ceiling(&o, 3) == 0);
    o.base_ms = 40000; /* base above the cap: the cap wins from the start */
    assert_true(sl__retry_ceiling(&o, 0) == 30000);
}

#define DRAWS   4000
#define RETRIES 9

static void test_backoff_bounds_and_spread(void **state)
{
    sl_retry_opts o;
    sl__retry_opts_init(&o);
    o.max_attempts = RETRIES + 1;
    uint64_t rng = 12345;
    double lo[RETRIES], hi[RETRIES], sum[RETRIES];
    for (int k = 0; k < RETRIES; k++) {
        lo[k] = 1e18;
        hi[k] = -1;
        sum[k] = 0;
    }
    for (int n = 0; n < DRAWS; n++) {
        sl_retry_state s;
        double now = 0, delay;
        start_kept(&s, now);
        for (int k = 0; k < RETRIES; k++) {
            assert_int_equal(sl__retry_next(&o, &s, SL_ETRANSPORT, 0, -1, now, &rng, &delay), 1);
            double ceil = sl__retry_ceiling(&o, k);
            assert_true(delay >= 0 && delay < ceil);
            lo[k] = delay < lo[k] ? delay : lo[k];
            hi[k] = delay > hi[k] ? delay : hi[k];
            sum[k] += delay;
            now += delay + 100;
        }
        assert_int_equal(sl__retry_next(&o, &s, SL_ETRANSPORT, 0, -1, now, &rng, &delay), 0);
        assert_int_equal(s.reason, SL_RETRY_ATTEMPTS);
        assert_true(delay == -1);
    }
    for (int k = 0; k < RETRIES; k++) {
        double ceil = sl__retry_ceiling(&o, k);
        /* spread over the whole range, mean near the middle */
        assert_true(lo[k] < 0.01 * ceil);
        assert_true(hi[k] > 0.99 * ceil);
        double mean = sum[k] / DRAWS;
        assert_true(mean > 0.45 * ceil && mean < 0.55 * ceil);
    }
}

static void test_seed_determinism(void **state)
{
    sl_retry_opts o;
    sl__retry_opts_init(&o);
    double a[4], b[4], c[4];
    uint64_t r1 = 7, r2 = 7, r3 = 8;
    sl_retry_state s1, s2, s3;
    start_kept(&s1, 0);
    start_kept(&s2, 0);
    start_kept(&s3, 0);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(sl__retry_next(&o, &s1, SL_ETIMEDOUT, 0, -1, 0, &r1, &a[k]), 1);
        assert_int_equal(sl__retry_next(&o, &s2, SL_ETIMEDOUT, 0, -1, 0, &r2, &b[k]), 1);
        assert_int_equal(sl__retry_next(&o, &s3, SL_ETIMEDOUT, 0, -1, 0, &r3, &c[k]), 1);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

static void test_retry_after(void **state)
{
    sl_retry_opts o;
    sl__retry_opts_init(&o);
    uint64_t rng = 1;
    sl_retry_state s;
    double d;

    /* larger than any jitter at k=0 (< 500): exactly the provider's value */
    start_kept(&s, 0);
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, 7000, 10, &rng, &d), 1);
    assert_true(d == 7000);
    assert_true(s.rec[0].delay_ms == 7000);
    /* Retry-After above the cap_ms still wins: cap_ms bounds only our own backoff */
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 503, 45000, 20, &rng, &d), 1);
    assert_true(d == 45000);
    /* clamped to retry_after_max_ms */
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, 999999999, 30, &rng, &d), 1);
    assert_true(d == 600000);

    /* Retry-After 0 only raises: the jitter stays (every draw in [0, 500)) */
    for (int i = 0; i < 50; i++) {
        start_kept(&s, 0);
        uint64_t r2 = (uint64_t)i, r3 = (uint64_t)i;
        double plain;
        assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, 0, 0, &r2, &d), 1);
        start_kept(&s, 0);
        assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, -1, 0, &r3, &plain), 1);
        assert_true(d == plain);
        /* a Retry-After of 300 gives max(jitter, 300) */
        start_kept(&s, 0);
        r2 = (uint64_t)i;
        assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, 300, 0, &r2, &d), 1);
        assert_true(d == (plain > 300 ? plain : 300));
    }

    /* not honoured: plain jitter */
    o.honour_retry_after = 0;
    start_kept(&s, 0);
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, 7000, 0, &rng, &d), 1);
    assert_true(d >= 0 && d < 500);
}

static void test_budget(void **state)
{
    sl_retry_opts o;
    sl__retry_opts_init(&o);
    o.max_attempts = 100;
    o.budget_ms = 5000;
    o.base_ms = 4000;
    uint64_t rng = 99;
    sl_retry_state s;
    double d;

    /* jitter is cut to the remaining budget: 200 ms left at 5800 (start 1000) */
    for (int i = 0; i < 200; i++) {
        start_kept(&s, 1000);
        assert_int_equal(sl__retry_next(&o, &s, SL_ETRANSPORT, 0, -1, 5800, &rng, &d), 1);
        assert_true(d >= 0 && d <= 200);
    }
    /* budget used up */
    start_kept(&s, 1000);
    assert_int_equal(sl__retry_next(&o, &s, SL_ETRANSPORT, 0, -1, 6000, &rng, &d), 0);
    assert_int_equal(s.reason, SL_RETRY_BUDGET);
    assert_string_equal(sl__retry_reason_name(s.reason), "retry budget exhausted");
    assert_true(d == -1);
    assert_int_equal(s.count, 1);
    /* Retry-After beyond the remaining budget: give up now */
    start_kept(&s, 0);
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, 1001, 4000, &rng, &d), 0);
    assert_int_equal(s.reason, SL_RETRY_BUDGET);
    /* exactly the remaining budget: allowed */
    start_kept(&s, 0);
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, 1000, 4000, &rng, &d), 1);
    assert_true(d == 1000);
    /* no budget: never a reason */
    o.budget_ms = 0;
    start_kept(&s, 0);
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, 1000, 1e9, &rng, &d), 1);
}

static void test_attempts_recorded(void **state)
{
    sl_retry_opts o;
    sl__retry_opts_init(&o);
    o.max_attempts = 3;
    uint64_t rng = 5;
    sl_retry_state s;
    double d1, d2, d3;
    start_kept(&s, 100);
    assert_int_equal(s.count, 0);
    assert_int_equal(s.reason, SL_RETRY_NONE);
    assert_int_equal(sl__retry_next(&o, &s, SL_ETRANSPORT, 0, -1, 150, &rng, &d1), 1);
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 503, -1, 900, &rng, &d2), 1);
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 429, 2000, 3000, &rng, &d3), 0);
    assert_int_equal(s.reason, SL_RETRY_ATTEMPTS);
    assert_string_equal(sl__retry_reason_name(s.reason), "attempts exhausted");
    assert_int_equal(s.count, 3);
    assert_int_equal(s.rec[0].error, SL_ETRANSPORT);
    assert_int_equal(s.rec[0].http_status, 0);
    assert_true(s.rec[0].end_ms == 150);
    assert_true(s.rec[0].delay_ms == d1);
    assert_int_equal(s.rec[1].error, SL_EHTTP);
    assert_int_equal(s.rec[1].http_status, 503);
    assert_true(s.rec[1].end_ms == 900);
    assert_true(s.rec[1].delay_ms == d2);
    assert_true(d2 >= 0 && d2 < 1000);
    assert_int_equal(s.rec[2].http_status, 429);
    assert_true(s.rec[2].delay_ms == -1);

    /* not retryable: one attempt, reason says so */
    start_kept(&s, 0);
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 401, -1, 10, &rng, &d1), 0);
    assert_int_equal(s.reason, SL_RETRY_NOT_RETRYABLE);
    assert_string_equal(sl__retry_reason_name(s.reason), "not retryable");
    assert_int_equal(s.count, 1);
    assert_int_equal(sl__retry_next(&o, &s, SL_ECANCELED, 0, -1, 10, &rng, &d1), 0);

    /* success after a retry */
    start_kept(&s, 0);
    assert_int_equal(sl__retry_next(&o, &s, SL_ETIMEDOUT, 0, -1, 10, &rng, &d1), 1);
    sl__retry_record_ok(&s, 200, 700);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.rec[1].error, 0);
    assert_int_equal(s.rec[1].http_status, 200);
    assert_true(s.rec[1].delay_ms == -1);
    assert_true(s.rec[1].end_ms == 700);

    /* max_attempts 1: no retry at all; 0 or negative count as 1 */
    o.max_attempts = 1;
    start_kept(&s, 0);
    assert_int_equal(sl__retry_next(&o, &s, SL_ETIMEDOUT, 0, -1, 10, &rng, &d1), 0);
    assert_int_equal(s.reason, SL_RETRY_ATTEMPTS);
    o.max_attempts = 0;
    start_kept(&s, 0);
    assert_int_equal(sl__retry_next(&o, &s, SL_ETIMEDOUT, 0, -1, 10, &rng, &d1), 0);
}

static void test_many_attempts_bounded_record(void **state)
{
    sl_retry_opts o;
    sl__retry_opts_init(&o);
    o.max_attempts = 40;
    uint64_t rng = 3;
    sl_retry_state s;
    double d;
    start_kept(&s, 0);
    for (int i = 0; i < 39; i++)
        assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 500 + i, -1, i, &rng, &d), 1);
    assert_int_equal(sl__retry_next(&o, &s, SL_EHTTP, 599, -1, 40, &rng, &d), 0);
    assert_int_equal(s.count, 40);
    for (int i = 0; i < SL_RETRY_RECORDED; i++)
        assert_int_equal(s.rec[i].http_status, 500 + i);
    assert_true(s.rec[SL_RETRY_RECORDED - 1].delay_ms >= 0);
}

/* Without storage nothing is recorded, and everything else works the same. */
static void test_no_record_without_storage(void **state)
{
    sl_retry_state s;
    sl__retry_start(&s, 0);
    assert_null(s.rec);
    sl_retry_opts o;
    sl__retry_opts_init(&o);
    o.max_attempts = 3;
    uint64_t rng = 1;
    double d = -1;
    assert_int_equal(sl__retry_next(&o, &s, SL_ETRANSPORT, 0, -1, 100, &rng, &d), 1);
    assert_true(d >= 0);
    assert_int_equal(s.count, 1);
    sl__retry_record_ok(&s, 200, 900);
    assert_int_equal(s.count, 2);
    assert_null(s.rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_no_record_without_storage),
        cmocka_unit_test(test_retryable_matrix),
        cmocka_unit_test(test_rand_reference),
        cmocka_unit_test(test_ceiling),
        cmocka_unit_test(test_backoff_bounds_and_spread),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_attempts_recorded),
        cmocka_unit_test(test_many_attempts_bounded_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
