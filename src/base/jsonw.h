/* jsonw.h — a compact JSON writer that keeps numbers as they were written.
 *
 * jansson prints reals with 17 significant digits, so a request's "temperature": 0.7
 * would go out as 0.69999999999999996. This writer prints each real with the fewest
 * digits (15 to 17) that read back to the same double, keeps reals recognisable as
 * reals ("1.0"), keeps object keys in insertion order and strings as UTF-8 (only '"',
 * '\\' and control characters escaped). Re-parsing the output gives an equal value. */
#ifndef SL_BASE_JSONW_H
#define SL_BASE_JSONW_H

#include <jansson.h>

#include "base/buf.h"

/* Append v to out. 0, SL_ENOMEM, SL_ELIMIT (out's cap, or nesting over 1000). */
int sl__json_write(sl_buf *out, const json_t *v);
/* The pieces, for writers that do not hold a jansson value: a string of n bytes (UTF-8)
 * quoted and escaped, a real in the fewest digits that read back the same. 0, SL_ENOMEM
 * or SL_ELIMIT; a failed call may leave part of its output. */
int sl__json_write_string(sl_buf *out, const char *s, size_t n);
int sl__json_write_real(sl_buf *out, double d);
/* v as a new NUL-terminated string (caller frees), its length in *len if len is not
 * NULL. NULL on ENOMEM. */
char *sl__json_dump_exact(const json_t *v, size_t *len);

#endif
