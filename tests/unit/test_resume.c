/* test_resume.c — the continuation matcher, fed every split of the new attempt's text and
 * checked against a reference model: never a byte twice, never a byte missed, divergence
 * reported in exactly the piece that holds the first differing byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "policy/resume.h"
#include <sluice/common.h>

#define MAXN 256

static unsigned long g_splits; /* splits checked, to prove the enumerations ran */

/* Feed n to a matcher for d, cut before each of cuts[0..ncuts) (strictly increasing,
 * inside (0, nlen)), and compare every step with the model. */
static void check_split(const char *d, size_t dlen, const char *n, size_t nlen, const size_t *cuts,
                        size_t ncuts)
{
    /* the model: first differing offset p within the common length */
    size_t m = dlen < nlen ? dlen : nlen, p = m;
    int div = 0;
    for (size_t i = 0; i < m; i++) {
        if (d[i] != n[i]) {
            p = i;
            div = 1;
            break;
        }
    }
    int is_short = !div && nlen < dlen;

    sl_resume r;
    assert_int_equal(sl__resume_init(&r, d, dlen), 0);
    char out[MAXN];
    size_t olen = 0, start = 0;
    int seen_div = 0, seen_pass = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : nlen;
        const char *o = (const char *)1;
        size_t ol = 99;
        sl_resume_status st = sl__resume_feed(&r, n + start, end - start, &o, &ol);
        if (div && end > p) {
            /* the first piece reaching p reports it; every later piece repeats it */
            assert_int_equal(st, SL_RESUME_DIVERGED);
            if (!seen_div)
                assert_true(start <= p);
            seen_div = 1;
            assert_null(o);
            assert_int_equal(ol, 0);
            assert_int_equal(r.diverged_at, p);
            assert_false(sl__resume_caught_up(&r));
        } else if (end <= dlen) {
            assert_int_equal(st, SL_RESUME_SKIP);
            assert_false(seen_pass);
            assert_null(o);
            assert_int_equal(ol, 0);
        } else {
            size_t from = start > dlen ? start : dlen;
            assert_int_equal(st, SL_RESUME_PASS);
            seen_pass = 1;
            assert_ptr_equal(o, n + from); /* zero-copy: a suffix of the piece */
            assert_int_equal(ol, end - from);
            assert_true(olen + ol <= MAXN);
            memcpy(out + olen, o, ol);
            olen += ol;
            assert_true(sl__resume_caught_up(&r));
        }
        start = end;
    }
    int fin = sl__resume_finish(&r);
    if (div || is_short) {
        assert_int_equal(fin, SL_EDIVERGED);
        assert_int_equal(r.diverged_at, div ? p : nlen);
        assert_int_equal(olen, 0);
        /* once diverged, always diverged */
        const char *o;
        size_t ol;
        assert_int_equal(sl__resume_feed(&r, "x", 1, &o, &ol), SL_RESUME_DIVERGED);
        assert_int_equal(sl__resume_finish(&r), SL_EDIVERGED);
    } else {
        assert_int_equal(fin, 0);
        /* exactly the bytes beyond d, each once */
        assert_int_equal(olen, nlen - dlen);
        assert_memory_equal(out, n + dlen, olen);
    }
    sl__resume_free(&r);
    assert_null(r.d);
    g_splits++;
}

/* Every split: each of the nlen-1 inner positions is a cut or not (nlen <= 16). */
static void all_splits(const char *d, size_t dlen, const char *n, size_t nlen)
{
    assert_true(nlen <= 16);
    size_t cuts[16] = {0};
    if (nlen <= 1) {
        check_split(d, dlen, n, nlen, cuts, 0);
        return;
    }
    for (uint32_t mask = 0; mask < (1u << (nlen - 1)); mask++) {
        size_t nc = 0;
        for (size_t i = 0; i + 1 < nlen; i++)
            if (mask & (1u << i))
                cuts[nc++] = i + 1;
        check_split(d, dlen, n, nlen, cuts, nc);
    }
}

/* Longer texts: every split with up to three cuts, plus one byte at a time. */
static void few_cut_splits(const char *d, size_t dlen, const char *n, size_t nlen)
{
    size_t cuts[MAXN] = {0};
    check_split(d, dlen, n, nlen, cuts, 0);
    for (size_t a = 1; a < nlen; a++) {
        cuts[0] = a;
        check_split(d, dlen, n, nlen, cuts, 1);
        for (size_t b = a + 1; b < nlen; b++) {
            cuts[1] = b;
            check_split(d, dlen, n, nlen, cuts, 2);
            for (size_t c = b + 1; c < nlen; c++) {
                cuts[2] = c;
                check_split(d, dlen, n, nlen, cuts, 3);
            }
        }
    }
    for (size_t i = 1; i < nlen; i++)
        cuts[i - 1] = i;
    check_split(d, dlen, n, nlen, cuts, nlen ? nlen - 1 : 0);
}

static void test_replay_then_continuation(void **state)
{
    g_splits = 0;
    const char *d = "Hello, wor";
    const char *n = "Hello, world!";
    all_splits(d, strlen(d), n, strlen(n));
    assert_int_equal(g_splits, 1u << 12);
    /* the new attempt ends exactly at d: nothing to pass on, and that is fine */
    all_splits(d, strlen(d), d, strlen(d));
    /* one-byte d */
    all_splits("H", 1, "Hello", 5);

    /* a concrete straddling piece, spelled out */
    sl_resume r;
    const char *o;
    size_t ol;
    assert_int_equal(sl__resume_init(&r, "Hello, wor", 10), 0);
    assert_int_equal(sl__resume_feed(&r, "Hello", 5, &o, &ol), SL_RESUME_SKIP);
    assert_int_equal(sl__resume_feed(&r, ", wo", 4, &o, &ol), SL_RESUME_SKIP);
    assert_int_equal(sl__resume_feed(&r, "rld", 3, &o, &ol), SL_RESUME_PASS);
    assert_int_equal(ol, 2);
    assert_memory_equal(o, "ld", 2);
    assert_int_equal(sl__resume_feed(&r, "", 0, &o, &ol), SL_RESUME_SKIP);
    assert_int_equal(sl__resume_feed(&r, "!", 1, &o, &ol), SL_RESUME_PASS);
    assert_int_equal(ol, 1);
    assert_int_equal(sl__resume_finish(&r), 0);
    sl__resume_free(&r);
}

static void test_divergence_at_every_position(void **state)
{
    const char d[] = "abcdefghij";
    size_t dlen = sizeof d - 1;
    g_splits = 0;
    for (size_t p = 0; p < dlen; p++) {
        char n[32];
        memcpy(n, d, dlen);
        n[p] = 'Z';
        memcpy(n + dlen, "xyz", 3);
        all_splits(d, dlen, n, dlen + 3); /* diverges at p, would continue after d */
        all_splits(d, dlen, n, p + 1);    /* ends right after the differing byte */
    }
    assert_true(g_splits > 10 * (1u << 12));

    sl_resume r;
    const char *o;
    size_t ol;
    assert_int_equal(sl__resume_init(&r, d, dlen), 0);
    assert_int_equal(sl__resume_feed(&r, "abc", 3, &o, &ol), SL_RESUME_SKIP);
    assert_int_equal(sl__resume_feed(&r, "dXfghijkl", 9, &o, &ol), SL_RESUME_DIVERGED);
    assert_int_equal(r.diverged_at, 4);
    assert_null(o);
    assert_int_equal(sl__resume_feed(&r, "", 0, &o, &ol), SL_RESUME_DIVERGED);
    assert_int_equal(sl__resume_finish(&r), SL_EDIVERGED);
    sl__resume_free(&r);
}

static void test_boundary_is_not_divergence(void **state)
{
    /* the failed attempt was going to say " 42"; the new one says " forty-two": both
     * match all of d, so both are continuations */
    const char *d = "The answer is";
    const char *a = "The answer is 42.";
    const char *b = "The answer is forty-two.";
    few_cut_splits(d, strlen(d), a, strlen(a));
    few_cut_splits(d, strlen(d), b, strlen(b));
    all_splits("abc", 3, "abcXYZ", 6);
    all_splits("abc", 3, "abcabc", 6);
}

static void test_new_attempt_shorter(void **state)
{
    const char d[] = "0123456789";
    for (size_t k = 0; k < 10; k++)
        all_splits(d, 10, d, k);
    /* no pieces at all: the attempt ended before sending anything */
    sl_resume r;
    assert_int_equal(sl__resume_init(&r, d, 10), 0);
    assert_int_equal(sl__resume_finish(&r), SL_EDIVERGED);
    assert_int_equal(r.diverged_at, 0);
    sl__resume_free(&r);
}

static void test_empty_delivered(void **state)
{
    const char *n = "hello, world";
    all_splits("", 0, n, strlen(n));
    all_splits("", 0, "", 0);
    sl_resume r;
    const char *o;
    size_t ol;
    assert_int_equal(sl__resume_init(&r, NULL, 0), 0);
    assert_null(r.d);
    assert_true(sl__resume_caught_up(&r));
    assert_int_equal(sl__resume_feed(&r, "hi", 2, &o, &ol), SL_RESUME_PASS);
    assert_memory_equal(o, "hi", 2);
    assert_int_equal(sl__resume_finish(&r), 0);
    sl__resume_free(&r);
}

static void test_utf8_split_anywhere(void **state)
{
    /* naïve 日本 | 語です 🎉 — pieces cut inside multi-byte sequences */
    const char *d = "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac";
    const char *n = "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xa7\xe3\x81\x99 "
                    "\xf0\x9f\x8e\x89";
    few_cut_splits(d, strlen(d), n, strlen(n));
    /* divergence in a continuation byte: 本 E6 9C AC vs 朱 E6 9C B1 */
    const char *d2 = "\xe6\x97\xa5\xe6\x9c\xac";
    const char *n2 = "\xe6\x97\xa5\xe6\x9c\xb1\xe3\x81\xa7";
    all_splits(d2, 6, n2, 9);
    /* delivered text ending inside a character (bytes are bytes) */
    const char *n3 = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e";
    all_splits(n3, 4, n3, 9);

    sl_resume r;
    const char *o;
    size_t ol;
    assert_int_equal(sl__resume_init(&r, d2, 6), 0);
    assert_int_equal(sl__resume_feed(&r, "\xe6\x97", 2, &o, &ol), SL_RESUME_SKIP);
    assert_int_equal(sl__resume_feed(&r, "\xa5\xe6\x9c\xb1", 4, &o, &ol), SL_RESUME_DIVERGED);
    assert_int_equal(r.diverged_at, 5);
    sl__resume_free(&r);
}

static void test_second_retry_and_copy(void **state)
{
    /* d is copied: the caller's buffer may change (it grows with the continuation) */
    char delivered[64] = "one two";
    size_t dlen = 7;
    sl_resume r;
    const char *o;
    size_t ol;
    assert_int_equal(sl__resume_init(&r, delivered, dlen), 0);
    memset(delivered, '#', dlen);
    memcpy(delivered, "one two", dlen);
    assert_int_equal(sl__resume_feed(&r, "one t", 5, &o, &ol), SL_RESUME_SKIP);
    memset(delivered, 'X', 7); /* scribbled: the matcher must not care */
    assert_int_equal(sl__resume_feed(&r, "wo three", 8, &o, &ol), SL_RESUME_PASS);
    assert_int_equal(ol, 6);
    assert_memory_equal(o, " three", 6);
    memcpy(delivered, "one two three", 13);
    dlen = 13;
    /* this attempt fails too; a third attempt matches the grown text */
    sl__resume_free(&r);
    assert_int_equal(sl__resume_init(&r, delivered, dlen), 0);
    assert_int_equal(sl__resume_feed(&r, "one two three four", 18, &o, &ol), SL_RESUME_PASS);
    assert_int_equal(ol, 5);
    assert_memory_equal(o, " four", 5);
    assert_int_equal(sl__resume_finish(&r), 0);
    sl__resume_free(&r);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_random_against_model(void **state)
{
    /* random texts over a 3-letter alphabet (so prefixes often match) and random cuts */
    uint64_t s = 0x5eed;
    for (int it = 0; it < 20000; it++) {
        char d[64], n[MAXN];
        size_t dlen = rng_next(&s) % 40, nlen = rng_next(&s) % 80;
        for (size_t i = 0; i < dlen; i++)
            d[i] = (char)('a' + rng_next(&s) % 3);
        size_t common = rng_next(&s) % 2 ? dlen : rng_next(&s) % (dlen + 1);
        for (size_t i = 0; i < nlen; i++)
            n[i] = i < common ? d[i] : (char)('a' + rng_next(&s) % 3);
        size_t cuts[MAXN], nc = 0;
        for (size_t i = 1; i < nlen; i++)
            if (rng_next(&s) % 4 == 0)
                cuts[nc++] = i;
        check_split(d, dlen, n, nlen, cuts, nc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_then_continuation),
        cmocka_unit_test(test_divergence_at_every_position),
        cmocka_unit_test(test_boundary_is_not_divergence),
        cmocka_unit_test(test_new_attempt_shorter),
        cmocka_unit_test(test_empty_delivered),
        cmocka_unit_test(test_utf8_split_anywhere),
        cmocka_unit_test(test_second_retry_and_copy),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
