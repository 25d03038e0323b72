/* test_buf.c — sl_buf: growth, the hard cap, consume, printf, integers. */
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

/* printf formats into the room there is, and again after growing when it does not fit */
static void test_printf_room(void **state)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__buf_printf(&b, "%s", "a"), 0); /* no memory yet */
    assert_int_equal(b.cap, 64);
    char big[100];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sl__buf_printf(&b, "<%s>", big), 0); /* longer than the room */
    assert_int_equal(b.len, 102);
    assert_int_equal(b.data[0], 'a');
    assert_int_equal(b.data[1], '<');
    assert_int_equal(b.data[101], '>');
    assert_int_equal(b.data[102], '\0');
    assert_int_equal(sl__buf_printf(&b, "%d", 7), 0); /* fits */
    assert_string_equal(b.data + 102, "7");
    sl__buf_free(&b);

    sl__buf_init(&b, 4); /* the cap holds even when the room would not */
    assert_int_equal(sl__buf_printf(&b, "%d", 123), 0);
    assert_int_equal(sl__buf_printf(&b, "%d", 45), SL_ELIMIT);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "123");
    sl__buf_free(&b);
}

static void test_append_int(void **state)
{
    static const long long v[] = {0, 7, -7, 10, 1234567890123LL, INT64_MAX, INT64_MIN};
    sl_buf b, want;
    sl__buf_init(&b, 0);
    sl__buf_init(&want, 0);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_int_equal(sl__buf_append_int(&b, v[i]), 0);
        assert_int_equal(sl__buf_printf(&want, "%lld", v[i]), 0);
        assert_int_equal(b.len, want.len);
        assert_string_equal(b.data, want.data);
    }
    sl__buf_free(&b);
    sl__buf_free(&want);
    sl__buf_init(&b, 2);
    assert_int_equal(sl__buf_append_int(&b, -10), SL_ELIMIT);
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

static void test_json_escape(void **state)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    /* controls, quotes, backslash escaped; valid UTF-8 kept */
    assert_int_equal(sl__json_escape(&b, "a\"b\\c\n\r\t\x01\xc3\xa9\xf0\x9f\x98\x80", 15, "?"), 0);
    assert_string_equal(b.data, "a\\\"b\\\\c\\n\\r\\t\\u0001\xc3\xa9\xf0\x9f\x98\x80");
    /* invalid UTF-8: a lone continuation, an overlong, a surrogate, a cut sequence */
    sl__buf_reset(&b);
    assert_int_equal(sl__json_escape(&b, "x\x80y\xc0\xafz\xed\xa0\x80w\xe2\x82", 12, "\\ufffd"), 0);
    assert_string_equal(b.data, "x\\ufffdy\\ufffd\\ufffdz\\ufffd\\ufffd\\ufffdw\\ufffd\\ufffd");
    /* NULL: bytes copied unchecked, NUL escaped */
    sl__buf_reset(&b);
    assert_int_equal(sl__json_escape(&b, "\x80\0", 2, NULL), 0);
    assert_memory_equal(b.data, "\x80\\u0000", 7);
    /* the output is a JSON string body jansson reads back */
    sl__buf_reset(&b);
    const char *in = "tab\there \"q\" \xe2\x82\xac";
    sl__buf_append_str(&b, "\"");
    sl__json_escape(&b, in, strlen(in), "?");
    sl__buf_append_str(&b, "\"");
    json_t *v = NULL;
    char err[64];
    assert_int_equal(sl__json_parse(b.data, b.len, 0, &v, err, sizeof err), 0);
    assert_string_equal(json_string_value(v), in);
    json_decref(v);
    sl__buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_cap), cmocka_unit_test(test_growth),
        cmocka_unit_test(test_printf_room),    cmocka_unit_test(test_append_int),
        cmocka_unit_test(test_json_depth_cap), cmocka_unit_test(test_json_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
