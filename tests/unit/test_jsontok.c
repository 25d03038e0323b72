/* test_jsontok.c — the tokenizer: token layout, lookups as jansson answers them,
 * unescaping, and the texts it accepts and rejects (exactly jansson's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/json.h"
#include "base/jsontok.h"
#include "base/jsonw.h"

static int parse(sl_jtoks *t, const char *s)
{
    return sl__jtok_parse(t, s, strlen(s), 0);
}

static void test_layout(void **state)
{
    sl_jtoks t;
    sl__jtoks_init(&t);
    const char *s = " {\"a\": [1, -2.5e3, \"x\"], \"b\": {}, \"c\": null} ";
    assert_int_equal(parse(&t, s), 0);
    /* object, "a", [, 1, -2.5e3, "x", "b", {}, "c", null */
    assert_int_equal(t.n, 10);
    static const uint8_t types[] = {SL_JTOK_OBJECT, SL_JTOK_STRING, SL_JTOK_ARRAY,  SL_JTOK_INT,
                                    SL_JTOK_REAL,   SL_JTOK_STRING, SL_JTOK_STRING, SL_JTOK_OBJECT,
                                    SL_JTOK_STRING, SL_JTOK_NULL};
    static const uint32_t next[] = {10, 2, 6, 4, 5, 6, 7, 8, 9, 10};
    for (uint32_t i = 0; i < t.n; i++) {
        assert_int_equal(t.v[i].type, types[i]);
        assert_int_equal(t.v[i].next, next[i]);
    }
    assert_int_equal(t.v[0].start, 1);
    assert_int_equal(t.v[0].len, strlen(s) - 2);
    assert_int_equal(t.v[2].len, strlen("[1, -2.5e3, \"x\"]"));
    assert_memory_equal(s + t.v[4].start, "-2.5e3", t.v[4].len);
    assert_int_equal(t.v[5].len, 3); /* quotes included */
    assert_int_equal(SL_JTOK_GET(&t, 0, "a"), 2);
    assert_int_equal(SL_JTOK_GET(&t, 0, "c"), 9);
    assert_int_equal(SL_JTOK_GET(&t, 0, "d"), 0);
    assert_int_equal(SL_JTOK_GET(&t, 2, "a"), 0); /* not an object */
    assert_int_equal(sl__jtok_int(&t, 3), 1);

    /* the array is reused: a smaller text leaves fewer tokens */
    assert_int_equal(parse(&t, "-9223372036854775808"), 0);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.v[0].type, SL_JTOK_INT);
    assert_true(sl__jtok_int(&t, 0) == INT64_MIN);
    sl__jtoks_free(&t);
}

static void test_repeated_names(void **state)
{
    sl_jtoks t;
    sl__jtoks_init(&t);
    sl_jmembers m;
    sl__jmembers_init(&m);
    assert_int_equal(parse(&t, "{\"x\":1,\"y\":2,\"x\":3,\"\\u0079\":4,\"z\":5}"), 0);
    uint32_t x = SL_JTOK_GET(&t, 0, "x");
    assert_int_equal(sl__jtok_int(&t, x), 3); /* the last one, as in jansson's tree */
    assert_int_equal(sl__jtok_int(&t, SL_JTOK_GET(&t, 0, "y")), 4);
    assert_int_equal(sl__jtok_members(&t, 0, &m), 0);
    assert_int_equal(m.n, 3); /* x, y, z: first places, last values */
    assert_true(sl__jtok_str_is(&t, m.v[0].key, "x", 1));
    assert_int_equal(sl__jtok_int(&t, m.v[0].val), 3);
    assert_true(sl__jtok_str_is(&t, m.v[1].key, "y", 1));
    assert_int_equal(sl__jtok_int(&t, m.v[1].val), 4);
    assert_true(sl__jtok_str_is(&t, m.v[2].key, "z", 1));

    /* many members take the sorting path: the same answer */
    char big[2048];
    size_t n = 0;
    big[n++] = '{';
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s\"k%d\":%d", i ? "," : "", i % 7, i);
    big[n++] = '}';
    big[n] = '\0';
    assert_int_equal(parse(&t, big), 0);
    assert_int_equal(sl__jtok_members(&t, 0, &m), 0);
    assert_int_equal(m.n, 7);
    for (uint32_t i = 0; i < 7; i++) {
        char k[4];
        snprintf(k, sizeof k, "k%u", i);
        assert_true(sl__jtok_str_is(&t, m.v[i].key, k, 2));
        assert_int_equal(sl__jtok_int(&t, m.v[i].val), 56 + i < 60 ? 56 + i : 49 + i);
    }
    sl__jmembers_free(&m);
    sl__jtoks_free(&t);
}

static void test_strings(void **state)
{
    sl_jtoks t;
    sl__jtoks_init(&t);
    sl_buf scratch;
    sl__buf_init(&scratch, 0);
    sl_str s;
    assert_int_equal(
        parse(&t, "[\"plain\", \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"]"), 0);
    assert_int_equal(t.v[1].esc, 0);
    assert_int_equal(sl__jtok_str(&t, 1, &scratch, &s), 0);
    assert_int_equal(s.len, 5);
    assert_ptr_equal(s.ptr, t.src + t.v[1].start + 1); /* not copied */
    assert_int_equal(t.v[2].esc, 1);
    assert_int_equal(sl__jtok_str(&t, 2, &scratch, &s), 0);
    const char want[] = "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80";
    assert_int_equal(s.len, sizeof want - 1);
    assert_memory_equal(s.ptr, want, s.len);
    assert_true(sl__jtok_str_is(&t, 2, want, sizeof want - 1));
    assert_false(sl__jtok_str_is(&t, 2, want, sizeof want - 2));
    /* \u0000 is fine in a value (JSON_ALLOW_NUL) */
    assert_int_equal(parse(&t, "\"a\\u0000b\""), 0);
    assert_int_equal(sl__jtok_str(&t, 0, &scratch, &s), 0);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "a\0b", 3);
    sl__buf_free(&scratch);
    sl__jtoks_free(&t);
}

/* Each text: accepted here exactly when jansson accepts it. */
static void test_accepts_what_jansson_accepts(void **state)
{
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        int ok;
    } cases[] = {
        {"{}", 0, 1},
        {" [ ] ", 0, 1},
        {"0", 0, 1},
        {"-0", 0, 1},
        {"01", 0, 0},
        {"-", 0, 0},
        {"1.", 0, 0},
        {".5", 0, 0},
        {"1e", 0, 0},
        {"1e+", 0, 0},
        {"1E-5", 0, 1},
        {"9223372036854775807", 0, 1},
        {"9223372036854775808", 0, 0},
        {"-9223372036854775809", 0, 0},
        {"1.7976931348623157e308", 0, 1},
        {"1.7976931348623159e308", 0, 0},
        {"1e309", 0, 0},
        {"1e-400", 0, 1},
        {"0.0e999999999", 0, 1},
        {"true", 0, 1},
        {"tru", 0, 0},
        {"nulll", 0, 0},
        {"[1,]", 0, 0},
        {"{\"a\"}", 0, 0},
        {"{\"a\":1,}", 0, 0},
        {"{1:2}", 0, 0},
        {"\"\\x\"", 0, 0},
        {"\"\\u12\"", 0, 0},
        {"\"\\ud800\"", 0, 0},
        {"\"\\udc00\"", 0, 0},
        {"\"\\ud800\\u0041\"", 0, 0},
        {"\"tab\there\"", 0, 0},
        {"\"\xc3\xa9\"", 0, 1},
        {"\"\xc3\"", 0, 0},
        {"\"\xe0\x80\x80\"", 0, 0},     /* overlong */
        {"\"\xed\xa0\x80\"", 0, 0},     /* an encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", 0, 0}, /* above U+10FFFF */
        {"{\"k\\u0000\":1}", 0, 0},     /* NUL in a name */
        {"\xef\xbb\xbf{}", 0, 0},       /* a BOM */
        {"{} x", 0, 0},
        {"", 0, 0},
        {"[1\0]", 4, 1},    /* jansson's lost NUL after a number */
        {"[true\0]", 7, 1}, /* and after a literal */
        {"[1\0\0]", 5, 0},
        {"[\"a\"\0]", 6, 0},
        {"1\0", 2, 1},
    };
    sl_jtoks t;
    sl__jtoks_init(&t);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].text);
        json_t *v = NULL;
        int want = sl__json_load(cases[i].text, n, 0, &v, NULL, 0) == 0;
        json_decref(v);
        if (want != cases[i].ok)
            fail_msg("jansson and the table disagree on case %zu", i);
        int got = sl__jtok_parse(&t, cases[i].text, n, 0) == 0;
        if (got != cases[i].ok)
            fail_msg("case %zu: got %d", i, got);
        if ((sl__jtok_check(cases[i].text, n, 0) == 0) != cases[i].ok)
            fail_msg("case %zu: the checker disagrees", i);
    }
    sl__jtoks_free(&t);
}

static void test_depth(void **state)
{
    char deep[200];
    sl_jtoks t;
    sl__jtoks_init(&t);
    for (int d = 63; d <= 66; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        int want = d <= SL_JSON_MAX_DEPTH ? 0 : SL_ELIMIT;
        assert_int_equal(sl__jtok_parse(&t, deep, 2 * (size_t)d, 0), want);
        assert_int_equal(sl__jtok_check(deep, 2 * (size_t)d, 0), want);
    }
    assert_int_equal(sl__jtok_parse(&t, "[[[1]]]", 7, 2), SL_ELIMIT);
    assert_int_equal(sl__jtok_parse(&t, "[[[1]]]", 7, 3), 0);
    assert_int_equal(sl__jtok_check("[[[1]]]", 7, 2), SL_ELIMIT);
    assert_int_equal(sl__jtok_check("[{\"a\":[1]}]", 11, 3), 0);
    assert_int_equal(sl__jtok_check("[{\"a\":[1]}]", 11, 2), SL_ELIMIT);
    sl__jtoks_free(&t);
}

/* Written back exactly as jsonw writes jansson's tree of the same text. */
static void test_write(void **state)
{
    static const char *const texts[] = {
        "[-0,-1,0,-10,12,9223372036854775807,-9223372036854775808]",
        "[\"plain\",\"a\\/b\",\"\\u00e9\\n\",\"\",\"\xc3\xa9\"]",
        " { \"b\" : 1 , \"a\" : [ true , false , null ] , \"b\" : 2.50 } ",
        "{\"usage\":{\"prompt_tokens\":6,\"total_tokens\":31}}",
    };
    sl_jtoks t;
    sl__jtoks_init(&t);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *v = NULL;
        assert_int_equal(sl__json_load(texts[i], strlen(texts[i]), 0, &v, NULL, 0), 0);
        assert_int_equal(parse(&t, texts[i]), 0);
        sl_buf a, b;
        sl__buf_init(&a, 0);
        sl__buf_init(&b, 0);
        assert_int_equal(sl__jtok_write(&a, &t, 0), 0);
        assert_int_equal(sl__json_write(&b, v), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        sl__buf_free(&a);
        sl__buf_free(&b);
        json_decref(v);
    }
    sl__jtoks_free(&t);
}

/* sl__json_parse builds from the tokens the tree jansson's reader builds: same values,
 * same member order, repeated names in their first place with their last value; texts it
 * rejects get jansson's verdict and message. */
static void test_tree_is_janssons(void **state)
{
    static const char *const texts[] = {
        "{\"id\":\"1\",\"prompt\":\"Write one sentence about item 1.\"}",
        " { \"b\" : 1 , \"a\" : [ true , false , null ] , \"b\" : 2.50, \"c\": {} } ",
        "[\"a\\u0000b\",\"\\ud83d\\ude00\",\"\\n\\t\\\"\",1e2,-0,0.1,-9223372036854775808,[]]",
        "{\"k\\u00e9y\":{\"x\":[{\"y\":\"z\"}]},\"k\\u00e9y\":\"last\"}",
        "\"just a string\"",
        "12",
        "null",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *want = NULL, *got = NULL;
        assert_int_equal(sl__json_load(texts[i], strlen(texts[i]), 0, &want, NULL, 0), 0);
        assert_int_equal(sl__json_parse(texts[i], strlen(texts[i]), 0, &got, NULL, 0), 0);
        assert_true(json_equal(want, got));
        char *a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
        char *b = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_string_equal(a, b); /* the order too */
        free(a);
        free(b);
        json_decref(want);
        json_decref(got);
    }
    static const char *const bad[] = {"{\"a\":}", "[1,]", "\"\xff\"", "01", "{\"a\\u0000\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *v = NULL;
        char e1[200], e2[200];
        int r1 = sl__json_load(bad[i], strlen(bad[i]), 0, &v, e1, sizeof e1);
        int r2 = sl__json_parse(bad[i], strlen(bad[i]), 0, &v, e2, sizeof e2);
        assert_int_not_equal(r1, 0);
        assert_int_equal(r1, r2);
        assert_null(v);
        assert_string_equal(e1, e2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_repeated_names),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_accepts_what_jansson_accepts),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_tree_is_janssons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
