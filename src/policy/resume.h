/* resume.h — continue a retried stream exactly where the consumer left off.
 *
 * When a stream fails after text was already delivered, the retry starts generating from
 * the beginning again. This matcher sits between the new attempt and the consumer: it
 * checks the new attempt's text against what was delivered (D) and passes on only what
 * lies beyond it, so the consumer never sees a byte twice and never misses one. If the
 * new text differs from D anywhere within D's length, the output would be garbled: the
 * matcher reports divergence and the call must end with SL_EDIVERGED.
 *
 * Works on bytes: pieces may split anywhere, also inside a UTF-8 sequence; D and the new
 * text are compared byte for byte. A new text that matches all of D and then goes on
 * differently from what the failed attempt would have sent is not divergence: that is
 * the continuation.
 *
 * Several channels: keep one sl_resume per channel of what was delivered — content per
 * choice, reasoning per choice, and the arguments text of each tool call (per choice and
 * tool index) — each initialised with that channel's delivered text (empty for channels
 * that delivered nothing: everything passes). Route each new piece to its channel's
 * matcher; any DIVERGED ends the call; at the end call finish on every channel. Tool-call
 * ids are generated anew by the provider on each attempt: the caller should keep showing
 * the ids it delivered first rather than matching them.
 *
 * Pure: no clock, no I/O; the only allocation is the copy of D made by init. */
#ifndef SL_POLICY_RESUME_H
#define SL_POLICY_RESUME_H

#include <stddef.h>

typedef enum sl_resume_status {
    SL_RESUME_SKIP = 0,     /* the piece lies within D and matches: deliver nothing */
    SL_RESUME_PASS = 1,     /* deliver (out, out_len): the part of the piece beyond D */
    SL_RESUME_DIVERGED = 2, /* the new text differs from D: stop (sticky) */
} sl_resume_status;

typedef struct sl_resume {
    char *d; /* owned copy of the delivered text; NULL when empty */
    size_t dlen;
    size_t pos; /* bytes of the new attempt fed so far */
    int diverged;
    size_t diverged_at; /* first offset where the new text differs from D (or where it
                           ended, if it ended short of D) */
} sl_resume;

/* Start matching a new attempt against delivered text (d, len), which is copied: the
 * caller may change or free it right after (it typically keeps growing as the new
 * attempt's continuation is delivered). Returns 0 or SL_ENOMEM (then r is empty and
 * needs no free). Free with sl__resume_free before initialising r again. */
int sl__resume_init(sl_resume *r, const char *d, size_t len);
void sl__resume_free(sl_resume *r);

/* Feed the next piece of the new attempt's text. *out / *out_len are set on every
 * return: for SL_RESUME_PASS they point into piece (out_len >= 1), otherwise (NULL, 0).
 * An empty piece returns SKIP (or DIVERGED once diverged). */
sl_resume_status sl__resume_feed(sl_resume *r, const char *piece, size_t len, const char **out,
                                 size_t *out_len);

/* 1 once the new attempt has matched all of D (everything after passes through). */
int sl__resume_caught_up(const sl_resume *r);

/* The new attempt ended: 0 if it matched and caught up with D, SL_EDIVERGED if it
 * diverged or ended before reaching the end of D. */
int sl__resume_finish(sl_resume *r);

#endif
