/* resume.c — match a retried stream's text against what was already delivered.
 *
 * Pure (see resume.h): a byte-exact prefix matcher. It must never let a byte through
 * twice, never drop one, and never pass on text that contradicts what was delivered. */
#include "policy/resume.h"

#include <stdlib.h>
#include <string.h>

#include <sluice/common.h>

int sl__resume_init(sl_resume *r, const char *d, size_t len)
{
    memset(r, 0, sizeof *r);
    if (len == 0)
        return 0;
    r->d = malloc(len);
    if (!r->d)
        return SL_ENOMEM;
    memcpy(r->d, d, len);
    r->dlen = len;
    return 0;
}

void sl__resume_free(sl_resume *r)
{
    free(r->d);
    memset(r, 0, sizeof *r);
}

sl_resume_status sl__resume_feed(sl_resume *r, const char *piece, size_t len, const char **out,
                                 size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (r->diverged)
        return SL_RESUME_DIVERGED;
    size_t overlap = 0;
    if (r->pos < r->dlen) {
        overlap = r->dlen - r->pos;
        if (overlap > len)
            overlap = len;
        const char *want = r->d + r->pos;
        for (size_t i = 0; i < overlap; i++) {
            if (piece[i] != want[i]) {
                r->diverged = 1;
                r->diverged_at = r->pos + i;
                return SL_RESUME_DIVERGED;
            }
        }
        r->pos += overlap;
    }
    if (overlap == len)
        return SL_RESUME_SKIP;
    *out = piece + overlap;
    *out_len = len - overlap;
    r->pos += len - overlap;
    return SL_RESUME_PASS;
}

int sl__resume_caught_up(const sl_resume *r)
{
    return !r->diverged && r->pos >= r->dlen;
}

int sl__resume_finish(sl_resume *r)
{
    if (!r->diverged && r->pos < r->dlen) {
        r->diverged = 1;
        r->diverged_at = r->pos;
    }
    return r->diverged ? SL_EDIVERGED : 0;
}
