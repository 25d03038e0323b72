/* test_buf.c — sl_buf: growth, the hard cap, consume, printf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include <sluice/common.h>

static void test_append_and_cap(void **state)
{
    sl_buf b;
    sl__buf_init(&b, 10);
    assert_int_equal(sl__buf_append(&b, "hello", 5), 0);
    assert_int_equal(sl__buf_append(&b, "world", 5), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld");
    assert_int_equal(sl__buf_append(&b, "!", 1), SL_ELIMIT);
    assert_int_equal(b.len, 10);
    sl__buf_consume(&b, 5);
    assert_string_equal(b.data, "world");
    assert_int_equal(sl__buf_printf(&b, "%d", 42), 0);
    assert_string_equal(b.data, "world42");
    assert_int_equal(sl__buf_printf(&b, "%s", "toolong"), SL_ELIMIT);
    assert_string_equal(b.data, "world42");
    char *s = sl__buf_steal(&b);
    assert_string_equal(s, "world42");
    assert_null(b.data);
    free(s);
    sl__buf_free(&b);
}

static void test_growth(void **state)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(sl__buf_append(&b, "x", 1), 0);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > 10000);
    sl__buf_reset(&b);
    assert_int_equal(b.len, 0);
    sl__buf_free(&b);
}

static void test_json_depth_cap(void **state)
{
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    json_t *v = NULL;
    char err[128];
    assert_int_equal(sl__json_parse(deep, 200, 64, &v, err, sizeof err), SL_ELIMIT);
    assert_null(v);
    assert_int_equal(sl__json_parse(deep + 40, 120, 64, &v, err, sizeof err), 0);
    json_decref(v);
    /* brackets inside strings do not count */
    const char *s = "{\"a\":\"[[[[[[[[[[[[\\\"[[[[\"}";
    assert_int_equal(sl__json_parse(s, strlen(s), 3, &v, err, sizeof err), 0);
    assert_string_equal(sl__json_str(v, "a"), "[[[[[[[[[[[[\"[[[[");
    json_decref(v);
    assert_int_equal(sl__json_parse("{", 1, 0, &v, err, sizeof err), SL_EPARSE);
    assert_non_null(strstr(err, "invalid JSON"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_cap),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_json_depth_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
