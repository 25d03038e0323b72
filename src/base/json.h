/* json.h — helpers over jansson for JSON from the wire.
 *
 * jansson does the parsing; this adds what untrusted input needs on top: a nesting
 * depth cap checked before parsing, a size cap, and one-line error messages. */
#ifndef SL_BASE_JSON_H
#define SL_BASE_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "base/buf.h"

#define SL_JSON_MAX_DEPTH 64

/* Parse exactly one JSON value from (p, n). On success *out is a new reference and 0
 * is returned. On failure returns SL_EPARSE or SL_ELIMIT (depth over max_depth, or 0 for
 * SL_JSON_MAX_DEPTH) and writes a one-line reason into err (if errlen > 0).
 * A text the tokenizer (base/jsontok.h) accepts is built from its tokens, several times
 * faster than jansson's own reader on small texts; any other goes through sl__json_load,
 * so the verdict, the tree and the messages are jansson's. */
int sl__json_parse(const char *p, size_t n, int max_depth, json_t **out, char *err, size_t errlen);
/* The same through jansson's reader only: the reference the tokenizer is held to. */
int sl__json_load(const char *p, size_t n, int max_depth, json_t **out, char *err, size_t errlen);

/* Borrowed string member, or NULL if absent or not a string. */
const char *sl__json_str(const json_t *obj, const char *key);
/* Integer member, or def if absent or not an integer. */
long long sl__json_int(const json_t *obj, const char *key, long long def);

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 if it is not one
 * (overlong forms, surrogates and code points over U+10FFFF are not valid). */
size_t sl__utf8_seq(const unsigned char *s, size_t n);

/* Append (s, n) as the inside of a JSON string: '"', '\\', control characters and DEL escaped,
 * UTF-8 copied as it is. invalid: what replaces each byte that is not valid UTF-8 (e.g.
 * "\\ufffd" or "?"); NULL when s is known to be valid (text from a JSON parser) and
 * bytes are copied unchecked. 0, SL_ENOMEM or SL_ELIMIT (b's cap). */
int sl__json_escape(sl_buf *b, const char *s, size_t n, const char *invalid);

/* Compact serialisation, caller frees; NULL on ENOMEM. */
char *sl__json_dump(const json_t *v);

#endif
