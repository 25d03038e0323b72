/* test_batch_idset.c — the id set of sluice batch: exact lookups, values, growth in place,
 * long and binary keys, forced hash collisions, insertion-order walk, allocation failures
 * and the bytes it takes per id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/common.h>

#include "apps/batch/idset.h"

/* The key of number i: its decimal text, like the ids sluice batch gives plain lines. */
static size_t key_of(char *buf, size_t cap, size_t i)
{
    return (size_t)snprintf(buf, cap, "%zu", i);
}

/* Every key 0..n-1 is in the set with value i + 1 (its line), keys n..2n-1 are not, and the walk
 * yields them in insertion order. */
static void check_numbered(const sl_batch_idset *s, size_t n)
{
    char k[32];
    assert_int_equal(s->count, n);
    for (size_t i = 0; i < 2 * n; i++) {
        size_t len = key_of(k, sizeof k, i);
        uint64_t v = 12345;
        int found = sl__batch_idset_get(s, k, len, &v);
        assert_int_equal(found, i < n);
        assert_true(v == (i < n ? i + 1 : 12345));
    }
    size_t pos = 0, i = 0, len;
    const char *id;
    uint64_t v;
    while (sl__batch_idset_next(s, &pos, &id, &len, &v)) {
        size_t klen = key_of(k, sizeof k, i);
        assert_int_equal(len, klen);
        assert_memory_equal(id, k, len);
        assert_int_equal(id[len], '\0');
        assert_true(v == i + 1);
        i++;
    }
    assert_int_equal(i, n);
}

static void fill_numbered(sl_batch_idset *s, size_t from, size_t to)
{
    char k[32];
    for (size_t i = from; i < to; i++) {
        size_t len = key_of(k, sizeof k, i);
        assert_int_equal(sl__batch_idset_add(s, k, len, i + 1, NULL), 1);
    }
}

static void test_basics(void **state)
{
    sl_batch_idset s;
    sl__batch_idset_init(&s);
    uint64_t v = 99;
    size_t pos = 0;
    const char *id;
    /* empty: nothing found, nothing walked, nothing allocated */
    assert_int_equal(sl__batch_idset_get(&s, "a", 1, &v), 0);
    assert_int_equal(v, 99);
    assert_int_equal(sl__batch_idset_next(&s, &pos, &id, NULL, NULL), 0);
    assert_int_equal(sl__batch_idset_memory(&s), 0);

    assert_int_equal(sl__batch_idset_add(&s, "a", 1, 5, NULL), 1);
    assert_int_equal(sl__batch_idset_add(&s, "ab", 2, 6, NULL), 1);
    assert_int_equal(sl__batch_idset_add(&s, "", 0, 7, NULL), 1);
    /* a second add keeps the first value and reports it */
    uint64_t first = 0;
    assert_int_equal(sl__batch_idset_add(&s, "a", 1, 8, &first), 0);
    assert_int_equal(first, 5);
    assert_int_equal(sl__batch_idset_add(&s, "", 0, 9, NULL), 0);
    assert_int_equal(s.count, 3);
    /* exact: a prefix, an extension and the length all matter */
    assert_int_equal(sl__batch_idset_get(&s, "ab", 1, &v), 1);
    assert_int_equal(v, 5);
    assert_int_equal(sl__batch_idset_get(&s, "abc", 3, NULL), 0);
    assert_int_equal(sl__batch_idset_get(&s, "b", 1, NULL), 0);
    assert_int_equal(sl__batch_idset_get(&s, "", 0, &v), 1);
    assert_int_equal(v, 7);

    /* values: every LEB128 length round-trips */
    static const uint64_t values[] = {
        0, 1, 127, 128, 16383, 16384, UINT32_MAX, (uint64_t)1 << 56, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char k[8];
        int n = snprintf(k, sizeof k, "v%zu", i);
        assert_int_equal(sl__batch_idset_add(&s, k, (size_t)n, values[i], NULL), 1);
    }
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char k[8];
        int n = snprintf(k, sizeof k, "v%zu", i);
        assert_int_equal(sl__batch_idset_get(&s, k, (size_t)n, &v), 1);
        assert_true(v == values[i]);
    }

    /* the walk: insertion order, NUL after each key */
    pos = 0;
    size_t len;
    assert_int_equal(sl__batch_idset_next(&s, &pos, &id, &len, &v), 1);
    assert_string_equal(id, "a");
    assert_int_equal(len, 1);
    assert_int_equal(v, 5);
    assert_int_equal(sl__batch_idset_next(&s, &pos, &id, &len, &v), 1);
    assert_string_equal(id, "ab");
    assert_int_equal(sl__batch_idset_next(&s, &pos, &id, &len, NULL), 1);
    assert_string_equal(id, "");
    assert_int_equal(len, 0);
    assert_int_equal(sl__batch_idset_next(&s, &pos, &id, NULL, &v), 1);
    assert_string_equal(id, "v0");
    assert_int_equal(v, 0);

    sl__batch_idset_free(&s);
    assert_int_equal(s.count, 0);
    assert_null(s.table);
    assert_null(s.arena);
    /* usable again after free */
    assert_int_equal(sl__batch_idset_add(&s, "a", 1, 1, NULL), 1);
    assert_int_equal(sl__batch_idset_get(&s, "a", 1, NULL), 1);
    sl__batch_idset_free(&s);
}

/* 200k ids: the table doubles 14 times, in place; nothing is lost or duplicated. The
 * set is checked after each of the first resizes too. */
static void test_growth(void **state)
{
    sl_batch_idset s;
    sl__batch_idset_init(&s);
    size_t n = 0, caps = 0, last_cap = 0;
    for (size_t to = 1; to <= 4096; to *= 2) {
        fill_numbered(&s, n, to);
        n = to;
        if (s.cap != last_cap) {
            caps++;
            last_cap = s.cap;
        }
        check_numbered(&s, n);
    }
    fill_numbered(&s, n, 200000);
    n = 200000;
    check_numbered(&s, n);
    assert_int_equal(s.cap, 262144 * 2); /* 200000 > 3/4 of 262144 */
    assert_true(caps >= 8);
    /* adding them all again changes nothing */
    char k[32];
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        size_t len = key_of(k, sizeof k, i);
        assert_int_equal(sl__batch_idset_add(&s, k, len, 1, &v), 0);
        assert_true(v == i + 1);
    }
    assert_int_equal(s.count, n);
    sl__batch_idset_free(&s);
}

/* What an id costs: short ids ("123456", value its line) stay under 40 bytes each, table
 * and arena slack included, at every size from 1k to 200k, even right after a growth. */
static void test_bytes_per_id(void **state)
{
    sl_batch_idset s;
    sl__batch_idset_init(&s);
    size_t n = 0;
    for (size_t to = 1000; to <= 200000; to += 1000) {
        fill_numbered(&s, n, to);
        n = to;
        size_t per = sl__batch_idset_memory(&s) / n;
        if (per >= 40)
            fail_msg("%zu ids take %zu bytes (%zu per id)", n, sl__batch_idset_memory(&s), per);
    }
    sl__batch_idset_free(&s);
}

/* Long keys that differ only in their last byte, or only in their length. */
static void test_long_keys(void **state)
{
    sl_batch_idset s;
    sl__batch_idset_init(&s);
    size_t big = 300000;
    char *k = malloc(big + 1);
    assert_non_null(k);
    memset(k, 'x', big);
    static const size_t lens[] = {127, 128, 129, 1024, 16383, 16384, 65536, 300000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int last = 0; last < 3; last++) {
            k[lens[i] - 1] = (char)('a' + last);
            assert_int_equal(sl__batch_idset_add(&s, k, lens[i], i * 10 + (size_t)last, NULL), 1);
        }
        k[lens[i] - 1] = 'x';
    }
    assert_int_equal(s.count, 24);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint64_t v;
        for (int last = 0; last < 3; last++) {
            k[lens[i] - 1] = (char)('a' + last);
            assert_int_equal(sl__batch_idset_get(&s, k, lens[i], &v), 1);
            assert_true(v == i * 10 + (size_t)last);
            /* one byte shorter or longer: absent */
            assert_int_equal(sl__batch_idset_get(&s, k, lens[i] - 1, NULL), 0);
        }
        k[lens[i] - 1] = 'd';
        assert_int_equal(sl__batch_idset_get(&s, k, lens[i], NULL), 0);
        k[lens[i] - 1] = 'x';
        assert_int_equal(sl__batch_idset_get(&s, k, lens[i], NULL), 0);
    }
    /* the walk hands the long keys back whole */
    size_t pos = 0, len, i = 0;
    const char *id;
    while (sl__batch_idset_next(&s, &pos, &id, &len, NULL)) {
        assert_int_equal(len, lens[i / 3]);
        assert_int_equal(id[len - 1], 'a' + (int)(i % 3));
        assert_int_equal(id[len], '\0');
        assert_int_equal(strlen(id), len);
        i++;
    }
    assert_int_equal(i, 24);
    free(k);
    sl__batch_idset_free(&s);
}

/* Every byte but NUL, in one-, two- and three-byte keys, prefixes of each other. */
static void test_binary_keys(void **state)
{
    sl_batch_idset s;
    sl__batch_idset_init(&s);
    unsigned char k[3];
    uint64_t n = 0;
    for (int a = 1; a < 256; a++) {
        k[0] = (unsigned char)a;
        assert_int_equal(sl__batch_idset_add(&s, (char *)k, 1, n++, NULL), 1);
        for (int b = 1; b < 256; b += 7) {
            k[1] = (unsigned char)b;
            assert_int_equal(sl__batch_idset_add(&s, (char *)k, 2, n++, NULL), 1);
            k[2] = (unsigned char)(256 - b);
            assert_int_equal(sl__batch_idset_add(&s, (char *)k, 3, n++, NULL), 1);
        }
    }
    assert_int_equal(s.count, n);
    n = 0;
    uint64_t v;
    for (int a = 1; a < 256; a++) {
        k[0] = (unsigned char)a;
        assert_int_equal(sl__batch_idset_get(&s, (char *)k, 1, &v), 1);
        assert_true(v == n++);
        for (int b = 1; b < 256; b += 7) {
            k[1] = (unsigned char)b;
            assert_int_equal(sl__batch_idset_get(&s, (char *)k, 2, &v), 1);
            assert_true(v == n++);
            k[2] = (unsigned char)(256 - b);
            assert_int_equal(sl__batch_idset_get(&s, (char *)k, 3, &v), 1);
            assert_true(v == n++);
            k[2] = (unsigned char)(255 - b);
            assert_int_equal(sl__batch_idset_get(&s, (char *)k, 3, NULL), 0);
        }
        k[1] = 2; /* b never takes 2 */
        assert_int_equal(sl__batch_idset_get(&s, (char *)k, 2, NULL), 0);
    }
    sl__batch_idset_free(&s);
}

/* ---- forced collisions ------------------------------------------------------------------ */

static uint64_t same_hash(const void *p, size_t n)
{
    (void)p;
    (void)n;
    return 0x123456789abcdef0ULL;
}

/* Every key lands on the table's last slot, so every probe run wraps around. */
static uint64_t last_slot_hash(const void *p, size_t n)
{
    (void)p;
    (void)n;
    return UINT64_MAX;
}

/* The top (tag) bits always equal, the low bits from a weak hash: few homes, long runs. */
static uint64_t few_homes_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    return 0xfff0000000000000ULL | (n ? (uint64_t)(b[n - 1] % 5) : 0);
}

/* Home slot from the key's number, tags all equal: runs that cross the table's end
 * and that a growth must split between the old and the new half. */
static uint64_t mod_hash(const void *p, size_t n)
{
    uint64_t v = 0;
    const char *s = p;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    return (v * 13) ^ 0xabc0000000000000ULL;
}

static void collide(uint64_t (*hash)(const void *, size_t), size_t n)
{
    sl_batch_idset s;
    sl__batch_idset_init(&s);
    s.hash = hash;
    size_t done = 0;
    for (size_t to = 1; done < n; to = to * 2 + 1) {
        size_t end = to < n ? to : n;
        fill_numbered(&s, done, end);
        done = end;
        check_numbered(&s, done);
    }
    sl__batch_idset_free(&s);
}

static void test_collisions(void **state)
{
    collide(same_hash, 2000);
    collide(last_slot_hash, 2000);
    collide(few_homes_hash, 2000);
    collide(mod_hash, 20000);
}

/* ---- allocation failures ---------------------------------------------------------------- */

static int allocs_left = -1; /* -1: never fail */

static void *failing_realloc(void *p, size_t n)
{
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (allocs_left == 0)
        return NULL;
    if (allocs_left > 0)
        allocs_left--;
    return realloc(p, n);
}

/* A failed table or arena growth leaves the set exactly as it was, and a later add
 * (once memory is back) succeeds. */
static void test_enomem(void **state)
{
    for (int budget = 0; budget < 16; budget++) {
        sl_batch_idset s;
        sl__batch_idset_init(&s);
        s.realloc_fn = failing_realloc;
        allocs_left = budget;
        char k[32];
        size_t n = 0;
        int failed = 0;
        for (size_t i = 0; i < 20000; i++) {
            size_t len = key_of(k, sizeof k, i);
            int rc = sl__batch_idset_add(&s, k, len, i + 1, NULL);
            if (rc == SL_ENOMEM) {
                failed = 1;
                assert_int_equal(s.count, n);
                assert_int_equal(sl__batch_idset_get(&s, k, len, NULL), 0);
                check_numbered(&s, n);
                break;
            }
            assert_int_equal(rc, 1);
            n++;
        }
        assert_true(failed);
        allocs_left = -1;
        fill_numbered(&s, n, n + 5000);
        check_numbered(&s, n + 5000);
        sl__batch_idset_free(&s);
    }
}

/* The FNV-1a 64 test vectors (the input's fingerprint is built on it). */
static void test_fnv(void **state)
{
    assert_true(sl__batch_fnv1a(SL_BATCH_FNV_OFFSET, "", 0) == 0xcbf29ce484222325ULL);
    assert_true(sl__batch_fnv1a(SL_BATCH_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(sl__batch_fnv1a(SL_BATCH_FNV_OFFSET, "foobar", 6) == 0x85944171f73967e8ULL);
    uint64_t h = sl__batch_fnv1a(SL_BATCH_FNV_OFFSET, "foo", 3);
    assert_true(sl__batch_fnv1a(h, "bar", 3) == 0x85944171f73967e8ULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),       cmocka_unit_test(test_growth),
        cmocka_unit_test(test_bytes_per_id), cmocka_unit_test(test_long_keys),
        cmocka_unit_test(test_binary_keys),  cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_enomem),       cmocka_unit_test(test_fnv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
