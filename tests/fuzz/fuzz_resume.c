/* fuzz_resume.c — libFuzzer target for the continuation matcher (policy/resume).
 *
 * Input: [dlen][common][cutbits] then bytes. The first dlen bytes are the delivered
 * text D; the new attempt's text N is D's first `common` bytes followed by the rest of
 * the input, cut into pieces wherever the repeating cutbits pattern says. The matcher's
 * output is checked against a direct computation: the bytes of N beyond D, each once,
 * if and only if N starts with D. Any mismatch traps. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/resume.h"
#include <sluice/common.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t rest = size - 3;
    size_t dlen = rest ? data[0] % (rest + 1) : 0;
    size_t common = data[1] % (dlen + 1);
    uint8_t cutbits = data[2];
    const char *d = (const char *)data + 3;
    size_t tail = rest - dlen;
    size_t nlen = common + tail;
    char *n = malloc(nlen ? nlen : 1);
    char *out = malloc(nlen ? nlen : 1);
    if (!n || !out)
        goto out;
    memcpy(n, d, common);
    memcpy(n + common, d + dlen, tail);

    int prefix_ok = nlen >= dlen && memcmp(n, d, dlen) == 0;
    sl_resume r;
    if (sl__resume_init(&r, d, dlen) != 0)
        goto out;
    size_t olen = 0, start = 0;
    int diverged = 0;
    for (size_t i = 1; i <= nlen; i++) {
        if (i < nlen && !(cutbits & (1u << (i % 8))))
            continue;
        const char *o;
        size_t ol;
        sl_resume_status st = sl__resume_feed(&r, n + start, i - start, &o, &ol);
        if (st == SL_RESUME_DIVERGED) {
            diverged = 1;
            CHECK(o == NULL && ol == 0);
        } else if (st == SL_RESUME_PASS) {
            CHECK(!diverged && ol >= 1 && ol <= i - start && o == n + i - ol);
            memcpy(out + olen, o, ol);
            olen += ol;
        } else {
            CHECK(st == SL_RESUME_SKIP && !diverged && i <= dlen);
        }
        start = i;
    }
    int fin = sl__resume_finish(&r);
    if (prefix_ok) {
        CHECK(fin == 0 && !diverged);
        CHECK(olen == nlen - dlen && memcmp(out, n + dlen, olen) == 0);
    } else {
        CHECK(fin == SL_EDIVERGED && olen == 0);
    }
    sl__resume_free(&r);
out:
    free(n);
    free(out);
    return 0;
}
