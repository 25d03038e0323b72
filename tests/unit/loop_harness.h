/* loop_harness.h — the loop a network unit test runs on, included by the test file.
 *
 * Every test gets a fresh loop (setup) and must leave it with no live handle: teardown
 * runs it dry and closes it, so a leaked handle or a callback that never came fails the
 * test. alarm() bounds a test that would otherwise wait forever. Needs <cmocka.h> and
 * <uv.h> before it. */
#ifndef SL_TEST_LOOP_HARNESS_H
#define SL_TEST_LOOP_HARNESS_H

#include <unistd.h>

static uv_loop_t loop;

/* UV_RUN_ONCE runs due timers and then still blocks in poll: the callbacks call
 * uv_stop() so that the iteration in which the awaited event happened returns. */
static void run_until(int *flag)
{
    while (!*flag)
        uv_run(&loop, UV_RUN_ONCE);
}

static int setup(void **state)
{
    alarm(30);
    assert_int_equal(uv_loop_init(&loop), 0);
    return 0;
}

static int teardown(void **state)
{
    uv_run(&loop, UV_RUN_NOWAIT); /* clears a uv_stop() left by the last callback */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

#endif
