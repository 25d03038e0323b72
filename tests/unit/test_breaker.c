/* test_breaker.c — circuit breaker: the full closed / open / half-open state machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy/breaker.h"

static void test_defaults_and_names(void **state)
{
    sl_breaker_opts o;
    sl__breaker_opts_init(&o);
    assert_int_equal(o.threshold, 5);
    assert_int_equal(o.cooldown_ms, 10000);
    assert_int_equal(o.cooldown_max_ms, 0);
    sl_breaker b;
    sl__breaker_init(&b, NULL);
    assert_int_equal(b.o.threshold, 5);
    assert_int_equal(b.state, SL_BREAKER_CLOSED);
    assert_string_equal(sl__breaker_state_name(SL_BREAKER_CLOSED), "closed");
    assert_string_equal(sl__breaker_state_name(SL_BREAKER_OPEN), "open");
    assert_string_equal(sl__breaker_state_name(SL_BREAKER_HALF_OPEN), "half-open");
    assert_string_equal(sl__breaker_state_name((sl_breaker_state)7), "unknown");
    /* default: 5 failures open it for 10 s */
    for (int i = 0; i < 4; i++)
        sl__breaker_record(&b, 0, 0);
    assert_int_equal(b.state, SL_BREAKER_CLOSED);
    sl__breaker_record(&b, 0, 0);
    assert_int_equal(b.state, SL_BREAKER_OPEN);
    assert_int_equal(sl__breaker_allow(&b, 9999), 0);
    assert_int_equal(sl__breaker_allow(&b, 10000), 1);
}

static void test_state_machine(void **state)
{
    sl_breaker_opts o = {.threshold = 3, .cooldown_ms = 1000};
    sl_breaker b;
    sl__breaker_init(&b, &o);

    /* closed: failures must be consecutive */
    assert_int_equal(sl__breaker_allow(&b, 0), 1);
    sl__breaker_record(&b, 0, 0);
    sl__breaker_record(&b, 0, 0);
    sl__breaker_record(&b, 0, 1); /* resets the count */
    sl__breaker_record(&b, 0, 0);
    sl__breaker_record(&b, 0, 0);
    assert_int_equal(b.state, SL_BREAKER_CLOSED);
    assert_int_equal(sl__breaker_allow(&b, 0), 1);
    sl__breaker_record(&b, 100, 0); /* third in a row */
    assert_int_equal(b.state, SL_BREAKER_OPEN);
    assert_int_equal(b.opens, 1);

    /* open: everything rejected until 100 + 1000 */
    assert_int_equal(sl__breaker_allow(&b, 100), 0);
    assert_int_equal(sl__breaker_allow(&b, 1099), 0);
    assert_int_equal(b.rejects, 2);
    assert_true(sl__breaker_retry_in(&b, 600) == 500);
    /* late outcomes of calls started before it opened change nothing */
    sl__breaker_record(&b, 500, 1);
    sl__breaker_record(&b, 500, 0);
    assert_int_equal(b.state, SL_BREAKER_OPEN);
    assert_true(sl__breaker_retry_in(&b, 600) == 500);

    /* half-open: exactly one trial */
    assert_int_equal(sl__breaker_allow(&b, 1100), 1);
    assert_int_equal(b.state, SL_BREAKER_HALF_OPEN);
    assert_true(sl__breaker_retry_in(&b, 1100) == 0);
    assert_int_equal(sl__breaker_allow(&b, 1100), 0);
    assert_int_equal(sl__breaker_allow(&b, 5000), 0);
    assert_int_equal(b.rejects, 4);
    /* the trial fails: open again, same cooldown from now */
    sl__breaker_record(&b, 2000, 0);
    assert_int_equal(b.state, SL_BREAKER_OPEN);
    assert_int_equal(b.opens, 2);
    assert_int_equal(sl__breaker_allow(&b, 2999), 0);
    assert_int_equal(sl__breaker_allow(&b, 3000), 1);
    assert_int_equal(sl__breaker_allow(&b, 3000), 0);
    /* the trial succeeds: closed, count from zero */
    sl__breaker_record(&b, 3500, 1);
    assert_int_equal(b.state, SL_BREAKER_CLOSED);
    for (int i = 0; i < 10; i++)
        assert_int_equal(sl__breaker_allow(&b, 3500), 1);
    sl__breaker_record(&b, 3600, 0);
    sl__breaker_record(&b, 3600, 0);
    assert_int_equal(b.state, SL_BREAKER_CLOSED);
    sl__breaker_record(&b, 3600, 0);
    assert_int_equal(b.state, SL_BREAKER_OPEN);
    assert_int_equal(b.opens, 3);
    assert_true(sl__breaker_retry_in(&b, 3600) == 1000);
    assert_true(sl__breaker_retry_in(&b, 9999) == 0);
}

static void test_cooldown_doubling(void **state)
{
    sl_breaker_opts o = {.threshold = 1, .cooldown_ms = 1000, .cooldown_max_ms = 3500};
    sl_breaker b;
    sl__breaker_init(&b, &o);
    double t = 0;
    sl__breaker_record(&b, t, 0);
    const double want[] = {1000, 2000, 3500, 3500};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(b.state, SL_BREAKER_OPEN);
        assert_int_equal(sl__breaker_allow(&b, t + want[i] - 1), 0);
        t += want[i];
        assert_int_equal(sl__breaker_allow(&b, t), 1);
        sl__breaker_record(&b, t, 0); /* the trial fails */
    }
    /* a successful trial resets the cooldown to the base */
    t += 3500;
    assert_int_equal(sl__breaker_allow(&b, t), 1);
    sl__breaker_record(&b, t, 1);
    assert_int_equal(b.state, SL_BREAKER_CLOSED);
    sl__breaker_record(&b, t, 0);
    assert_int_equal(sl__breaker_allow(&b, t + 999), 0);
    assert_int_equal(sl__breaker_allow(&b, t + 1000), 1);
}

static void test_disabled(void **state)
{
    sl_breaker_opts o = {.threshold = 0, .cooldown_ms = 1000};
    sl_breaker b;
    sl__breaker_init(&b, &o);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(sl__breaker_allow(&b, i), 1);
        sl__breaker_record(&b, i, 0);
    }
    assert_int_equal(b.state, SL_BREAKER_CLOSED);
    assert_int_equal(b.opens, 0);
    assert_int_equal(b.rejects, 0);
}

static void test_abandon(void **state)
{
    sl_breaker_opts o = {.threshold = 1, .cooldown_ms = 100};
    sl_breaker b;
    sl__breaker_init(&b, &o);
    /* closed: an allowed call is no trial; abandoning it changes nothing */
    assert_int_equal(sl__breaker_allow(&b, 0), 1);
    assert_true(sl__breaker_trial_token(&b) == 0);
    sl__breaker_abandon(&b, 0);
    sl__breaker_record(&b, 0, 0);
    assert_int_equal(b.state, SL_BREAKER_OPEN);

    /* the trial is cancelled before it reports: the next call becomes the trial */
    assert_int_equal(sl__breaker_allow(&b, 100), 1);
    uint64_t t1 = sl__breaker_trial_token(&b);
    assert_true(t1 != 0);
    assert_int_equal(sl__breaker_allow(&b, 100), 0);
    sl__breaker_abandon(&b, t1);
    assert_int_equal(b.state, SL_BREAKER_HALF_OPEN);
    assert_int_equal(sl__breaker_allow(&b, 101), 1);
    uint64_t t2 = sl__breaker_trial_token(&b);
    assert_true(t2 == t1);
    assert_int_equal(sl__breaker_allow(&b, 101), 0);

    /* that trial fails and a later trial is out: the stale token does not free it */
    sl__breaker_record(&b, 200, 0);
    assert_int_equal(sl__breaker_allow(&b, 300), 1);
    uint64_t t3 = sl__breaker_trial_token(&b);
    assert_true(t3 != t1);
    sl__breaker_abandon(&b, t1);
    assert_int_equal(sl__breaker_allow(&b, 300), 0);
    /* nor once it closed */
    sl__breaker_record(&b, 300, 1);
    sl__breaker_abandon(&b, t3);
    assert_int_equal(b.state, SL_BREAKER_CLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_names),
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_cooldown_doubling),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_abandon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
