/* text.h — JSON string quoting and UTF-8 checks for the lines sluice batch writes.
 *
 * The output module builds result lines by hand (so a provider's body is embedded byte
 * for byte), the input module quotes ids in its messages, the summary prints ids; all of
 * them need a quoting that can never produce a raw newline or invalid UTF-8, whatever the
 * bytes they are given. */
#ifndef SL_APPS_BATCH_TEXT_H
#define SL_APPS_BATCH_TEXT_H

#include <stddef.h>

#include "base/buf.h"

/* Append (s, n) as a JSON string literal with its quotes (sl__json_escape): '"' and '\\'
 * escaped, control bytes as \n \r \t \b \f or \u00XX, every byte that is not part of
 * valid UTF-8 (also overlongs, surrogates, > U+10FFFF) as \ufffd. 0, SL_ELIMIT or
 * SL_ENOMEM. */
int sl__batch_json_quote(sl_buf *b, const char *s, size_t n);

/* 1 if (s, n) is valid UTF-8 (NUL bytes allowed), else 0. */
int sl__batch_utf8_valid(const char *s, size_t n);

#endif
