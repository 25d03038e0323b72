/* test_jsonw.c — the compact writer: strings escaped exactly as jansson escapes them, at
 * every position (the writer scans eight bytes at a time), integers, and the cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonw.h"
#include <sluice/common.h>

/* jansson's own text for the string (s, n), with the hex digits of \u escapes in lower
 * case as this writer has always written them. */
static char *reference(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    assert_non_null(v);
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(v);
    assert_non_null(text);
    for (char *p = text; (p = strstr(p, "\\u")) != NULL; p += 2)
        for (int i = 2; i < 6; i++)
            if (p[i] >= 'A' && p[i] <= 'F')
                p[i] = (char)(p[i] - 'A' + 'a');
    return text;
}

static void check(const char *s, size_t n)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__buf_append(&b, "x", 1), 0); /* appends after what is there */
    assert_int_equal(sl__json_write_string(&b, s, n), 0);
    char *want = reference(s, n);
    assert_int_equal(b.len, 1 + strlen(want));
    assert_memory_equal(b.data + 1, want, b.len - 1);
    assert_int_equal(b.data[b.len], '\0');
    free(want);
    sl__buf_free(&b);
}

static void test_string_positions(void **state)
{
    /* each byte that needs an escape (and some that do not), at each place of strings of
     * up to 24 bytes */
    static const char specials[] = {'"',  '\\', '\n', '\r', '\t', '\b', '\f',
                                    0x01, 0x1f, '\0', 0x7f, '/',  ' ',  '~'};
    char s[32];
    for (size_t n = 0; n <= 24; n++) {
        memset(s, 'a', n);
        check(s, n);
        for (size_t at = 0; at < n; at++) {
            for (size_t k = 0; k < sizeof specials; k++) {
                memset(s, 'a', n);
                s[at] = specials[k];
                check(s, n);
                if (at + 3 < n) { /* and a second one further on */
                    s[at + 3] = '"';
                    check(s, n);
                }
            }
        }
    }
    /* UTF-8 is copied as it is, also next to escapes */
    const char *u = "\xc3\xa9t\xc3\xa9\n\xe2\x82\xac \xf0\x9f\x98\x80\"";
    check(u, strlen(u));
    const char *all = "\"\\\"\\\"\\\"\\\"\\";
    check(all, strlen(all));
}

static void test_cap(void **state)
{
    sl_buf b;
    sl__buf_init(&b, 5);
    assert_int_equal(sl__json_write_string(&b, "abc", 3), 0);
    assert_string_equal(b.data, "\"abc\"");
    sl__buf_free(&b);
    sl__buf_init(&b, 5);
    assert_int_equal(sl__json_write_string(&b, "abcd", 4), SL_ELIMIT);
    assert_int_equal(b.len, 0);
    sl__buf_free(&b);
    sl__buf_init(&b, 6);
    assert_int_equal(sl__json_write_string(&b, "a\n\n", 3), SL_ELIMIT); /* 7 bytes */
    sl__buf_free(&b);
}

static void test_values(void **state)
{
    json_t *v =
        json_pack("{s:[i,i,I,f,b,n],s:s}", "a", 0, -7, (json_int_t)INT64_MIN, 0.5, 1, "b", "x\ty");
    assert_non_null(v);
    sl_buf b;
    sl__buf_init(&b, 0);
    assert_int_equal(sl__json_write(&b, v), 0);
    assert_string_equal(b.data,
                        "{\"a\":[0,-7,-9223372036854775808,0.5,true,null],\"b\":\"x\\ty\"}");
    sl__buf_free(&b);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_positions),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
