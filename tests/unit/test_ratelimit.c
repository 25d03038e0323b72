/* test_ratelimit.c — RPM/TPM buckets on a fake clock: exact waits, corrections, oversize
 * requests, provider headers, 429 cooldown, and the FIFO queue's fairness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "policy/ratelimit.h"

/* Reserve and expect "go now". */
static void go(sl_ratelimit *rl, double now, long tokens)
{
    double w = -5;
    sl_ratelimit_ticket t = {-1};
    assert_int_equal(sl__ratelimit_reserve(rl, now, tokens, &w, &t), 0);
    assert_true(w == 0);
    assert_int_equal(t.tokens, tokens < 0 ? 0 : tokens);
}

/* Reserve and expect "wait exactly want ms" (to within rounding of the doubles). */
static void must_wait(sl_ratelimit *rl, double now, long tokens, double want)
{
    double w = -5;
    sl_ratelimit_ticket t = {-1};
    assert_int_equal(sl__ratelimit_reserve(rl, now, tokens, &w, &t), 1);
    assert_int_equal(t.tokens, -1); /* nothing taken */
    if (!(w > want - 1e-6 && w < want + 1e-6))
        fail_msg("wait %.9f, want %.9f", w, want);
}

static void test_rpm_exact(void **state)
{
    sl_ratelimit rl;
    sl__ratelimit_init(&rl, 60, 0, 0);
    for (int i = 0; i < 60; i++) /* the burst: a full bucket */
        go(&rl, 0, 1000);
    must_wait(&rl, 0, 0, 1000);
    must_wait(&rl, 250, 0, 750);
    /* then one per second, exactly */
    for (int s = 1; s <= 20; s++) {
        go(&rl, s * 1000.0, 5);
        must_wait(&rl, s * 1000.0, 5, 1000);
        must_wait(&rl, s * 1000.0 + 999, 5, 1);
    }
    /* idle for a long time: refills only up to the capacity */
    for (int i = 0; i < 60; i++)
        go(&rl, 1e7, 0);
    must_wait(&rl, 1e7, 0, 1000);
}

static void test_unlimited(void **state)
{
    sl_ratelimit rl;
    sl__ratelimit_init(&rl, 0, 0, 0);
    for (int i = 0; i < 100000; i++)
        go(&rl, 0, 1000000);
    sl__ratelimit_init(&rl, -1, -1, 0);
    go(&rl, 0, 5);
}

static void test_tpm_reserve_and_correct(void **state)
{
    sl_ratelimit rl;
    sl_ratelimit_ticket t1, t2;
    double w;
    sl__ratelimit_init(&rl, 0, 1000, 0);
    assert_int_equal(sl__ratelimit_reserve(&rl, 0, 600, &w, &t1), 0);
    assert_int_equal(t1.tokens, 600);
    /* 400 left; 600 more needs 200 -> 200 * 60000 / 1000 = 12000 ms */
    must_wait(&rl, 0, 600, 12000);
    /* the call used only 300: 300 come back, 700 available */
    sl__ratelimit_correct(&rl, 0, &t1, 300);
    assert_int_equal(t1.tokens, 300);
    assert_int_equal(sl__ratelimit_reserve(&rl, 0, 600, &w, &t2), 0); /* 100 left */
    must_wait(&rl, 0, 101, 60);
    /* the other way: estimated 600, used 900 -> 300 more taken (-200, in debt) */
    sl__ratelimit_correct(&rl, 0, &t2, 900);
    must_wait(&rl, 0, 1, (200 + 1) * 60.0);
    /* correcting again applies only the new difference (900 -> 900: nothing) */
    sl__ratelimit_correct(&rl, 0, &t2, 900);
    must_wait(&rl, 0, 1, (200 + 1) * 60.0);
    /* a give-back never fills past the capacity */
    sl__ratelimit_correct(&rl, 0, &t2, 0); /* +900: 700, not more */
    sl__ratelimit_correct(&rl, 0, &t1, 0); /* +300: 1000 */
    go(&rl, 0, 1000);
    must_wait(&rl, 0, 1, 60);
    sl__ratelimit_init(&rl, 0, 1000, 0);
    sl__ratelimit_correct(&rl, 0, &t2, -50); /* actual < 0 counts as 0; clamps at 1000 */
    go(&rl, 0, 1000);
    must_wait(&rl, 0, 1, 60);
}

static void test_tpm_correct_refills_first(void **state)
{
    /* the correction applies at "now": the refill up to now is capped first */
    sl_ratelimit rl;
    sl_ratelimit_ticket t;
    double w;
    sl__ratelimit_init(&rl, 0, 1000, 0);
    assert_int_equal(sl__ratelimit_reserve(&rl, 0, 100, &w, &t), 0); /* 900 */
    sl__ratelimit_correct(&rl, 60000, &t, 300); /* full again at 60 s, then -200 */
    must_wait(&rl, 60000, 1000, 200 * 60.0);
}

static void test_oversize_no_deadlock(void **state)
{
    sl_ratelimit rl;
    double w;
    sl_ratelimit_ticket t;
    sl__ratelimit_init(&rl, 0, 1000, 0);
    /* 5000 > capacity: goes on a full bucket, leaving 4000 of debt */
    assert_int_equal(sl__ratelimit_reserve(&rl, 0, 5000, &w, &t), 0);
    assert_int_equal(t.tokens, 5000);
    must_wait(&rl, 0, 1, 4001 * 60.0);
    /* not full: an oversize request waits for a full bucket, not forever */
    sl__ratelimit_init(&rl, 0, 1000, 0);
    go(&rl, 0, 100);
    must_wait(&rl, 0, 5000, 100 * 60.0);
    must_wait(&rl, 5999, 5000, 1);
    go(&rl, 6000, 5000);
}

static void test_observe_headers(void **state)
{
    sl_ratelimit rl;
    sl__ratelimit_init(&rl, 100, 10000, 0);
    /* unknown everything: no change */
    sl__ratelimit_observe(&rl, 0, -1, -1, -1, -1);
    for (int i = 0; i < 100; i++)
        go(&rl, 0, 0);
    must_wait(&rl, 0, 0, 600);

    /* provider: 2 requests remain until its reset in 5 s; the bucket keeps refilling at
     * its own rate (600 ms per request), the reset says nothing while some remain */
    sl__ratelimit_init(&rl, 100, 10000, 0);
    sl__ratelimit_observe(&rl, 0, 2, -1, 5000, -1);
    go(&rl, 0, 0);
    go(&rl, 0, 0);
    must_wait(&rl, 0, 0, 600);
    must_wait(&rl, 150, 0, 450);
    go(&rl, 600, 0);
    /* the same every answer of a fixed window: refill is never paused */
    sl__ratelimit_observe(&rl, 600, 1, -1, 4400, -1);
    must_wait(&rl, 600, 0, 600);
    go(&rl, 1200, 0);

    /* provider: 0 remain until its reset in 5 s: nothing before then, and what refilled
     * meanwhile (5 s at 100/min: 8.33) goes at the reset */
    sl__ratelimit_init(&rl, 100, 10000, 0);
    sl__ratelimit_observe(&rl, 0, 0, -1, 5000, -1);
    must_wait(&rl, 20, 0, 4980);
    must_wait(&rl, 4999, 0, 1);
    for (int i = 0; i < 8; i++)
        go(&rl, 5000, 0);
    must_wait(&rl, 5000, 0, (1 - 1.0 / 3) * 600);
    /* a later "0 remain" with a shorter reset never shortens the block */
    sl__ratelimit_init(&rl, 100, 10000, 0);
    sl__ratelimit_observe(&rl, 0, 0, -1, 5000, -1);
    sl__ratelimit_observe(&rl, 1000, 0, -1, 1000, -1);
    must_wait(&rl, 2000, 0, 3000);

    /* a higher remaining never raises the level */
    sl__ratelimit_init(&rl, 100, 10000, 0);
    for (int i = 0; i < 99; i++)
        go(&rl, 0, 0);
    sl__ratelimit_observe(&rl, 0, 50, 99999, -1, -1);
    go(&rl, 0, 0);
    must_wait(&rl, 0, 0, 600);

    /* tokens: clamped without a reset: refill continues at the normal rate */
    sl__ratelimit_init(&rl, 0, 6000, 0);
    sl__ratelimit_observe(&rl, 0, -1, 100, -1, -1);
    go(&rl, 0, 100);
    must_wait(&rl, 0, 50, 500); /* 50 tokens at 100/s */

    /* unlimited buckets: "0 remain, reset in 3 s" blocks until then */
    sl__ratelimit_init(&rl, 0, 0, 0);
    sl__ratelimit_observe(&rl, 1000, 0, -1, 3000, -1);
    must_wait(&rl, 1000, 0, 3000);
    go(&rl, 4000, 0);
    sl__ratelimit_observe(&rl, 5000, -1, 0, -1, 2000);
    must_wait(&rl, 6000, 10, 1000);
    go(&rl, 7000, 10);
    /* remaining > 0 or unknown reset say nothing for an unlimited bucket */
    sl__ratelimit_observe(&rl, 8000, 5, 0, 1000, -1);
    go(&rl, 8000, 10);
}

static void test_cooldown_blocks_everyone(void **state)
{
    sl_ratelimit rl;
    sl__ratelimit_init(&rl, 0, 0, 0);
    go(&rl, 0, 10);
    sl__ratelimit_cooldown(&rl, 100, 2000);
    must_wait(&rl, 100, 0, 2000);
    must_wait(&rl, 2099, 999, 1);
    go(&rl, 2100, 0);
    go(&rl, 2100, 5);
    /* unknown Retry-After: the default */
    sl__ratelimit_cooldown(&rl, 3000, -1);
    must_wait(&rl, 3000, 0, SL_RATELIMIT_COOLDOWN_MS);
    /* a shorter cooldown never shortens one in force */
    sl__ratelimit_cooldown(&rl, 3000, 10000);
    sl__ratelimit_cooldown(&rl, 3500, 10);
    must_wait(&rl, 3500, 0, 9500);
    /* with buckets: the longer of the two waits */
    sl__ratelimit_init(&rl, 60, 0, 0);
    for (int i = 0; i < 60; i++)
        go(&rl, 0, 0);
    sl__ratelimit_cooldown(&rl, 0, 300);
    must_wait(&rl, 0, 0, 1000);
    sl__ratelimit_cooldown(&rl, 0, 5000);
    must_wait(&rl, 0, 0, 5000);
}

/* ---- the queue ---- */

typedef struct req {
    int id;
    sl_ratelimit_waiter w;
} req;

static int g_order[64];
static int g_n;

static void on_go(sl_ratelimit_waiter *w, void *user)
{
    req *r = user;
    assert_ptr_equal(w, &r->w);
    assert_int_equal(w->ticket.tokens, w->tokens);
    g_order[g_n++] = r->id;
}

static void test_queue_fifo_fairness(void **state)
{
    sl_ratelimit rl;
    double w;
    sl__ratelimit_init(&rl, 0, 1000, 0);
    g_n = 0;
    req small = {.id = 1}, big = {.id = 2}, s2 = {.id = 3}, s3 = {.id = 4};
    assert_int_equal(sl__ratelimit_wait(&rl, &small.w, 0, 900, on_go, &small, &w), 1);
    assert_true(w == 0);
    /* 100 left; the big one (1000) waits for a full bucket */
    assert_int_equal(sl__ratelimit_wait(&rl, &big.w, 0, 1000, on_go, &big, &w), 0);
    assert_true(w == 900 * 60.0);
    /* 10 would fit now, but it queues behind big: no overtaking */
    assert_int_equal(sl__ratelimit_wait(&rl, &s2.w, 0, 10, on_go, &s2, &w), 0);
    assert_true(w == 900 * 60.0); /* still the head's wait */
    assert_int_equal(sl__ratelimit_wait(&rl, &s3.w, 0, 10, on_go, &s3, &w), 0);
    /* nor can a direct reserve overtake */
    sl_ratelimit_ticket t = {-1};
    assert_int_equal(sl__ratelimit_reserve(&rl, 0, 1, &w, &t), 1);
    assert_int_equal(t.tokens, -1);
    assert_true(w == 900 * 60.0);
    /* pumping early grants nothing */
    assert_int_equal(sl__ratelimit_pump(&rl, 30000, &w), 3);
    assert_int_equal(g_n, 0);
    assert_true(w == 24000);
    /* at 54 s big goes; the small ones wait for 10 tokens each (600 ms each) */
    assert_int_equal(sl__ratelimit_pump(&rl, 54000, &w), 2);
    assert_int_equal(g_n, 1);
    assert_int_equal(g_order[0], 2);
    assert_true(w == 600);
    assert_int_equal(sl__ratelimit_pump(&rl, 54600, &w), 1);
    assert_true(w == 600);
    assert_int_equal(sl__ratelimit_pump(&rl, 55200, &w), 0);
    assert_true(w == -1);
    assert_int_equal(g_n, 3);
    assert_int_equal(g_order[1], 3);
    assert_int_equal(g_order[2], 4);
    assert_int_equal(rl.nwait, 0);
    /* empty queue: reserve works again */
    assert_int_equal(sl__ratelimit_pump(&rl, 60000, &w), 0);
    go(&rl, 55200 + 60000, 10);
}

static void test_queue_cancel_and_cooldown(void **state)
{
    sl_ratelimit rl;
    double w;
    sl__ratelimit_init(&rl, 60, 0, 0);
    g_n = 0;
    for (int i = 0; i < 60; i++)
        go(&rl, 0, 0);
    req r[4];
    for (int i = 0; i < 4; i++) {
        r[i].id = i;
        assert_int_equal(sl__ratelimit_wait(&rl, &r[i].w, 0, 0, on_go, &r[i], &w), 0);
        assert_true(w == 1000);
    }
    assert_int_equal(sl__ratelimit_cancel(&rl, &r[0].w), 1); /* the head */
    assert_int_equal(sl__ratelimit_cancel(&rl, &r[0].w), 0);
    assert_int_equal(sl__ratelimit_cancel(&rl, &r[2].w), 1); /* the middle */
    /* a 429 blocks the queue too */
    sl__ratelimit_cooldown(&rl, 500, 2500);
    assert_int_equal(sl__ratelimit_pump(&rl, 1000, &w), 2);
    assert_int_equal(g_n, 0);
    assert_true(w == 2000);
    /* at 3000 three requests refilled; the two left go, in order */
    assert_int_equal(sl__ratelimit_pump(&rl, 3000, &w), 0);
    assert_int_equal(g_n, 2);
    assert_int_equal(g_order[0], 1);
    assert_int_equal(g_order[1], 3);
    assert_true(w == -1);
    assert_int_equal(sl__ratelimit_cancel(&rl, &r[1].w), 0); /* granted: not queued */
}

static sl_ratelimit *g_rl;
static req g_extra;

/* A grant callback that queues another request and tries a nested pump. */
static void on_go_requeue(sl_ratelimit_waiter *w, void *user)
{
    on_go(w, user);
    double wait;
    if (g_n == 1) {
        g_extra.id = 9;
        assert_int_equal(sl__ratelimit_wait(g_rl, &g_extra.w, 0, 0, on_go, &g_extra, &wait), 0);
        assert_int_equal(sl__ratelimit_pump(g_rl, 0, &wait), 2); /* nested: no-op */
        assert_true(wait == -1);
    }
}

static void test_queue_reentrant(void **state)
{
    sl_ratelimit rl;
    double w;
    sl__ratelimit_init(&rl, 0, 0, 0);
    g_rl = &rl;
    g_n = 0;
    sl__ratelimit_cooldown(&rl, 0, 100);
    req a = {.id = 1}, b = {.id = 2};
    assert_int_equal(sl__ratelimit_wait(&rl, &a.w, 0, 0, on_go_requeue, &a, &w), 0);
    assert_int_equal(sl__ratelimit_wait(&rl, &b.w, 0, 0, on_go, &b, &w), 0);
    assert_true(w == 100);
    /* a's callback queues 9 behind b: all three go in order within this pump */
    assert_int_equal(sl__ratelimit_pump(&rl, 100, &w), 0);
    assert_int_equal(g_n, 3);
    assert_int_equal(g_order[0], 1);
    assert_int_equal(g_order[1], 2);
    assert_int_equal(g_order[2], 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpm_exact),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_tpm_reserve_and_correct),
        cmocka_unit_test(test_tpm_correct_refills_first),
        cmocka_unit_test(test_oversize_no_deadlock),
        cmocka_unit_test(test_observe_headers),
        cmocka_unit_test(test_cooldown_blocks_everyone),
        cmocka_unit_test(test_queue_fifo_fairness),
        cmocka_unit_test(test_queue_cancel_and_cooldown),
        cmocka_unit_test(test_queue_reentrant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
