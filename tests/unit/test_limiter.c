/* test_limiter.c — concurrency limiter: FIFO grants, cancel, set_max, re-entrant callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "policy/limiter.h"

/* A caller's struct with the waiter embedded, as the call layer will have it. */
typedef struct job {
    int id;
    sl_limiter_waiter w;
    int release_in_cb;         /* release the slot right inside the grant callback */
    struct job *enqueue_in_cb; /* acquire this other job inside the grant callback */
} job;

static sl_limiter *g_lim;
static int g_order[64];
static int g_ngrants;
static int g_in_cb;
static int g_max_depth;

static void on_grant(sl_limiter_waiter *w, void *user)
{
    job *j = user;
    assert_ptr_equal(w, &j->w);
    assert_int_equal(w->queued, 0);
    g_in_cb++;
    if (g_in_cb > g_max_depth)
        g_max_depth = g_in_cb;
    g_order[g_ngrants++] = j->id;
    if (j->release_in_cb)
        sl__limiter_release(g_lim);
    if (j->enqueue_in_cb) /* a slot may be free here, but others are queued first */
        assert_int_equal(
            sl__limiter_acquire(g_lim, &j->enqueue_in_cb->w, on_grant, j->enqueue_in_cb), 0);
    g_in_cb--;
}

static void reset(sl_limiter *l, int max)
{
    sl__limiter_init(l, max);
    g_lim = l;
    g_ngrants = 0;
    g_in_cb = 0;
    g_max_depth = 0;
    memset(g_order, 0, sizeof g_order);
}

static void test_fifo_and_cancel(void **state)
{
    sl_limiter l;
    reset(&l, 2);
    job j[6];
    memset(j, 0, sizeof j);
    for (int i = 0; i < 6; i++)
        j[i].id = i;
    assert_int_equal(sl__limiter_acquire(&l, &j[0].w, on_grant, &j[0]), 1);
    assert_int_equal(sl__limiter_acquire(&l, &j[1].w, on_grant, &j[1]), 1);
    for (int i = 2; i < 6; i++)
        assert_int_equal(sl__limiter_acquire(&l, &j[i].w, on_grant, &j[i]), 0);
    assert_int_equal(l.in_use, 2);
    assert_int_equal(l.nwait, 4);
    assert_int_equal(g_ngrants, 0); /* granted-now never calls back */

    sl__limiter_release(&l); /* -> 2 */
    assert_int_equal(g_ngrants, 1);
    assert_int_equal(g_order[0], 2);
    assert_int_equal(sl__limiter_cancel(&l, &j[3].w), 1);
    assert_int_equal(sl__limiter_cancel(&l, &j[3].w), 0); /* no longer queued */
    assert_int_equal(sl__limiter_cancel(&l, &j[0].w), 0); /* was granted, not queued */
    assert_int_equal(l.nwait, 2);
    sl__limiter_release(&l); /* -> 4 (3 was cancelled) */
    sl__limiter_release(&l); /* -> 5 */
    assert_int_equal(g_ngrants, 3);
    assert_int_equal(g_order[1], 4);
    assert_int_equal(g_order[2], 5);
    assert_int_equal(l.nwait, 0);
    assert_null(l.head);
    assert_null(l.tail);
    assert_int_equal(l.in_use, 2);
    sl__limiter_release(&l);
    sl__limiter_release(&l);
    assert_int_equal(l.in_use, 0);
    sl__limiter_release(&l); /* a stray release cannot go negative */
    assert_int_equal(l.in_use, 0);
    assert_int_equal(g_ngrants, 3);
}

static void test_cancel_head_middle_tail(void **state)
{
    sl_limiter l;
    reset(&l, 1);
    job j[5];
    memset(j, 0, sizeof j);
    for (int i = 0; i < 5; i++)
        j[i].id = i;
    assert_int_equal(sl__limiter_acquire(&l, &j[0].w, on_grant, &j[0]), 1);
    for (int i = 1; i < 5; i++)
        assert_int_equal(sl__limiter_acquire(&l, &j[i].w, on_grant, &j[i]), 0);
    assert_int_equal(sl__limiter_cancel(&l, &j[1].w), 1); /* head */
    assert_int_equal(sl__limiter_cancel(&l, &j[4].w), 1); /* tail */
    assert_int_equal(sl__limiter_cancel(&l, &j[2].w), 1); /* only one left after */
    assert_ptr_equal(l.head, &j[3].w);
    assert_ptr_equal(l.tail, &j[3].w);
    sl__limiter_release(&l);
    assert_int_equal(g_ngrants, 1);
    assert_int_equal(g_order[0], 3);
    /* a cancelled waiter can be queued again */
    assert_int_equal(sl__limiter_acquire(&l, &j[1].w, on_grant, &j[1]), 0);
    sl__limiter_release(&l);
    assert_int_equal(g_ngrants, 2);
    assert_int_equal(g_order[1], 1);
}

static void test_set_max(void **state)
{
    sl_limiter l;
    reset(&l, 1);
    job j[5];
    memset(j, 0, sizeof j);
    for (int i = 0; i < 5; i++)
        j[i].id = i;
    assert_int_equal(sl__limiter_acquire(&l, &j[0].w, on_grant, &j[0]), 1);
    for (int i = 1; i < 5; i++)
        assert_int_equal(sl__limiter_acquire(&l, &j[i].w, on_grant, &j[i]), 0);
    sl__limiter_set_max(&l, 3); /* two more slots: 1 and 2, in order, now */
    assert_int_equal(g_ngrants, 2);
    assert_int_equal(g_order[0], 1);
    assert_int_equal(g_order[1], 2);
    assert_int_equal(l.in_use, 3);
    sl__limiter_set_max(&l, 1); /* lowering never takes slots back */
    assert_int_equal(l.in_use, 3);
    sl__limiter_release(&l);
    sl__limiter_release(&l);
    assert_int_equal(g_ngrants, 2); /* in_use 1 == max 1 */
    sl__limiter_release(&l);
    assert_int_equal(g_ngrants, 3);
    assert_int_equal(g_order[2], 3);
    sl__limiter_set_max(&l, 0); /* unlimited: the rest goes */
    assert_int_equal(g_ngrants, 4);
    assert_int_equal(g_order[3], 4);
    assert_int_equal(l.in_use, 2);
    job extra = {.id = 9};
    assert_int_equal(sl__limiter_acquire(&l, &extra.w, on_grant, &extra), 1);
}

static void test_unlimited(void **state)
{
    sl_limiter l;
    reset(&l, 0);
    job j[50];
    memset(j, 0, sizeof j);
    for (int i = 0; i < 50; i++)
        assert_int_equal(sl__limiter_acquire(&l, &j[i].w, on_grant, &j[i]), 1);
    assert_int_equal(l.in_use, 50);
    sl__limiter_init(&l, -3); /* negative = unlimited too */
    assert_int_equal(l.max, 0);
}

static void test_reentrant_release_no_recursion(void **state)
{
    /* 40 queued waiters each release inside their callback: one release grants them
     * all, in order, without nesting callbacks. */
    sl_limiter l;
    reset(&l, 1);
    job first = {.id = 100};
    job j[40];
    memset(j, 0, sizeof j);
    assert_int_equal(sl__limiter_acquire(&l, &first.w, on_grant, &first), 1);
    for (int i = 0; i < 40; i++) {
        j[i].id = i;
        j[i].release_in_cb = 1;
        assert_int_equal(sl__limiter_acquire(&l, &j[i].w, on_grant, &j[i]), 0);
    }
    sl__limiter_release(&l);
    assert_int_equal(g_ngrants, 40);
    for (int i = 0; i < 40; i++)
        assert_int_equal(g_order[i], i);
    assert_int_equal(g_max_depth, 1);
    assert_int_equal(l.in_use, 0);
    assert_int_equal(l.nwait, 0);
}

static void test_acquire_in_callback_queues_behind(void **state)
{
    /* max 2; a's grant callback releases, then acquires for x while b and c are still
     * queued and a slot is free: x must queue behind them. */
    sl_limiter l;
    reset(&l, 2);
    job h1 = {.id = 90}, h2 = {.id = 91};
    job a = {.id = 1}, b = {.id = 2}, c = {.id = 3}, x = {.id = 4};
    a.enqueue_in_cb = &x;
    a.release_in_cb = 1;
    assert_int_equal(sl__limiter_acquire(&l, &h1.w, on_grant, &h1), 1);
    assert_int_equal(sl__limiter_acquire(&l, &h2.w, on_grant, &h2), 1);
    assert_int_equal(sl__limiter_acquire(&l, &a.w, on_grant, &a), 0);
    assert_int_equal(sl__limiter_acquire(&l, &b.w, on_grant, &b), 0);
    assert_int_equal(sl__limiter_acquire(&l, &c.w, on_grant, &c), 0);
    sl__limiter_release(&l); /* a (releases at once) -> b; c and x wait */
    assert_int_equal(g_ngrants, 2);
    assert_int_equal(g_order[0], 1);
    assert_int_equal(g_order[1], 2);
    assert_int_equal(l.nwait, 2);
    sl__limiter_release(&l);
    sl__limiter_release(&l);
    assert_int_equal(g_ngrants, 4);
    assert_int_equal(g_order[2], 3);
    assert_int_equal(g_order[3], 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_cancel),
        cmocka_unit_test(test_cancel_head_middle_tail),
        cmocka_unit_test(test_set_max),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_reentrant_release_no_recursion),
        cmocka_unit_test(test_acquire_in_callback_queues_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
