/* test_deadline.c — deadlines: none, in, remaining, expired, allows, min, timer_ms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>

#include "policy/deadline.h"

static void test_none(void **state)
{
    sl_deadline d = sl__deadline_none();
    assert_int_equal(d.set, 0);
    assert_false(sl__deadline_expired(d, 1e15));
    assert_true(sl__deadline_remaining(d, 5) == SL_DEADLINE_FOREVER);
    assert_true(sl__deadline_allows(d, 5, 1e12));
    assert_int_equal(sl__deadline_timer_ms(d, 5), -1);
    /* timeout <= 0 means no deadline */
    assert_int_equal(sl__deadline_in(100, 0).set, 0);
    assert_int_equal(sl__deadline_in(100, -5).set, 0);
}

static void test_in_remaining_expired(void **state)
{
    sl_deadline d = sl__deadline_in(1000, 250);
    assert_int_equal(d.set, 1);
    assert_true(d.end_ms == 1250);
    assert_true(sl__deadline_remaining(d, 1000) == 250);
    assert_true(sl__deadline_remaining(d, 1249.5) == 0.5);
    assert_true(sl__deadline_remaining(d, 1250) == 0);
    assert_true(sl__deadline_remaining(d, 9999) == 0);
    assert_false(sl__deadline_expired(d, 1249.999));
    assert_true(sl__deadline_expired(d, 1250));
    assert_true(sl__deadline_expired(d, 1300));
    /* a wait that would end at or past the deadline is not worth starting */
    assert_true(sl__deadline_allows(d, 1000, 249));
    assert_false(sl__deadline_allows(d, 1000, 250));
    assert_false(sl__deadline_allows(d, 1300, 0));
}

static void test_timer_ms(void **state)
{
    sl_deadline d = sl__deadline_at(1000);
    assert_int_equal(sl__deadline_timer_ms(d, 0), 1000);
    assert_int_equal(sl__deadline_timer_ms(d, 998.2), 2); /* rounded up, never early */
    assert_int_equal(sl__deadline_timer_ms(d, 999.99), 1);
    assert_int_equal(sl__deadline_timer_ms(d, 1000), 0);
    assert_int_equal(sl__deadline_timer_ms(d, 2000), 0);
    assert_int_equal(sl__deadline_timer_ms(sl__deadline_at(1e300), 0), LONG_MAX);
}

static void test_min(void **state)
{
    sl_deadline a = sl__deadline_at(500), b = sl__deadline_at(300), n = sl__deadline_none();
    assert_true(sl__deadline_min(a, b).end_ms == 300);
    assert_true(sl__deadline_min(b, a).end_ms == 300);
    assert_true(sl__deadline_min(a, n).end_ms == 500);
    assert_int_equal(sl__deadline_min(a, n).set, 1);
    assert_true(sl__deadline_min(n, b).end_ms == 300);
    assert_int_equal(sl__deadline_min(n, n).set, 0);
    assert_true(sl__deadline_min(a, a).end_ms == 500);
    /* a call deadline combined with a per-attempt timeout */
    sl_deadline call = sl__deadline_in(0, 10000);
    sl_deadline attempt = sl__deadline_in(9000, 5000);
    assert_true(sl__deadline_remaining(sl__deadline_min(call, attempt), 9000) == 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_in_remaining_expired),
        cmocka_unit_test(test_timer_ms),
        cmocka_unit_test(test_min),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
