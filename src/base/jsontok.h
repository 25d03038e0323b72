/* jsontok.h — a validating JSON tokenizer for hot paths: one pass, no tree, no copies.
 *
 * jansson builds a tree of separately allocated values; for a stream of small objects of
 * which the reader needs a few members (an LLM's chunks) that costs more than the rest of
 * the work together. This reads one JSON text into a flat array of tokens that point into
 * the input, reusing the array from one text to the next, and accepts exactly what
 * sl__json_parse (jansson with JSON_DECODE_ANY | JSON_ALLOW_NUL) accepts: RFC 8259 with
 * UTF-8 checked, no lone surrogate escapes, integers within long long, reals that do not
 * overflow a double, no NUL in object keys, nesting capped (and one quirk: a NUL byte right
 * after a number or true/false/null is skipped). Members keep their order and
 * duplicates; sl__jtok_get returns the last one, as jansson's tree would.
 *
 * A value is one token; an array's elements, or an object's key and value tokens in
 * turn, follow it; tok.next is the index just past everything inside it. */
#ifndef SL_BASE_JSONTOK_H
#define SL_BASE_JSONTOK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/common.h>

#include "base/buf.h"

typedef enum sl_jtok_type {
    SL_JTOK_NULL = 0,
    SL_JTOK_FALSE,
    SL_JTOK_TRUE,
    SL_JTOK_INT,
    SL_JTOK_REAL,
    SL_JTOK_STRING,
    SL_JTOK_ARRAY,
    SL_JTOK_OBJECT,
} sl_jtok_type;

typedef struct sl_jtok {
    uint8_t type;   /* sl_jtok_type */
    uint8_t esc;    /* a string with backslash escapes: read it with sl__jtok_str */
    uint32_t start; /* offset of the value's text in the input (a string's opening quote) */
    uint32_t len;   /* length of the value's text, quotes and brackets included */
    uint32_t next;  /* index of the first token after this value */
} sl_jtok;

/* The tokens of the last text read. src is the input (borrowed from the caller). */
typedef struct sl_jtoks {
    sl_jtok *v;
    uint32_t n, cap;
    const char *src;
} sl_jtoks;

void sl__jtoks_init(sl_jtoks *t);
void sl__jtoks_free(sl_jtoks *t);

/* Read exactly one JSON value from (p, n) into t (previous tokens are dropped; the array is
 * reused). 0; SL_EPARSE if sl__json_parse would reject the text; SL_ELIMIT if it nests
 * deeper than max_depth (0: SL_JSON_MAX_DEPTH) or n is 4 GiB or more; SL_ENOMEM. p must
 * stay valid while the tokens are used. Linear in n. */
int sl__jtok_parse(sl_jtoks *t, const char *p, size_t n, int max_depth);

/* The same verdict as sl__jtok_parse, without tokens: 0, SL_EPARSE, SL_ELIMIT, or
 * SL_ENOMEM (only for a real near the double's overflow, which strtod must judge). Linear
 * in n. For texts that are only checked (embedded as they are). */
int sl__jtok_check(const char *p, size_t n, int max_depth);

/* The JSON string whose opening quote is at p[i]: the index just past its closing quote,
 * or 0 if there is no valid string there (the tokenizer's rules). *esc: it has escapes. */
size_t sl__jtok_scan_string(const char *p, size_t n, size_t i, int *esc);

/* The value of member key (klen bytes) of object token obj: the last one when the key is
 * repeated. 0 when absent or obj is not an object (token 0 is never a member). */
uint32_t sl__jtok_get(const sl_jtoks *t, uint32_t obj, const char *key, size_t klen);
#define SL_JTOK_GET(t, obj, lit) sl__jtok_get((t), (obj), (lit), sizeof(lit) - 1)

/* An object's members as jansson's tree has them: each name once, at the place it first
 * appeared, with the value it was given last. Caller-owned, reused between calls. */
typedef struct sl_jmember {
    uint32_t key; /* token of the name's first appearance */
    uint32_t val; /* token of its last value */
} sl_jmember;

typedef struct sl_jmembers {
    sl_jmember *v;
    uint32_t n, cap;
    uint32_t *tmp; /* work space for objects with many members */
    uint32_t tmpcap;
} sl_jmembers;

void sl__jmembers_init(sl_jmembers *m);
void sl__jmembers_free(sl_jmembers *m);
/* Fill m with the members of object token obj (none if it is not an object). 0 or
 * SL_ENOMEM. O(n log n) for n members, whatever the names. */
int sl__jtok_members(const sl_jtoks *t, uint32_t obj, sl_jmembers *m);

/* 1 if string token i reads (key, klen) once unescaped. */
int sl__jtok_str_is(const sl_jtoks *t, uint32_t i, const char *key, size_t klen);

/* The text of string token i. Without escapes it points into the input; with them it is
 * unescaped into scratch (reset first), so it is valid until scratch changes. 0,
 * SL_ENOMEM or SL_ELIMIT (scratch's cap). */
int sl__jtok_str(const sl_jtoks *t, uint32_t i, sl_buf *scratch, sl_str *out);

/* Integer token i as a number. */
long long sl__jtok_int(const sl_jtoks *t, uint32_t i);

/* Real token i as a double, read as jansson reads it. */
double sl__jtok_real(const sl_jtoks *t, uint32_t i);

/* Append token i and everything inside it to out exactly as sl__json_write would write
 * jansson's tree of the same text (compact, strings unescaped then escaped its way, reals
 * in their shortest form, each repeated name once). 0, SL_ENOMEM or SL_ELIMIT; on error
 * out is left as it was. */
int sl__jtok_write(sl_buf *out, const sl_jtoks *t, uint32_t i);

/* Token i as a jansson value (a new reference), for values kept as they are. NULL on
 * ENOMEM. */
json_t *sl__jtok_json(const sl_jtoks *t, uint32_t i);

/* Token i and everything inside it as a jansson tree (a new reference), equal to the one
 * jansson's reader makes of the same text: repeated names keep their first place and
 * their last value. scratch holds unescaped strings while it works. NULL on ENOMEM. */
json_t *sl__jtok_tree(const sl_jtoks *t, uint32_t i, sl_buf *scratch);

/* Unescape the inside of a valid JSON string (without its quotes) into out, which has
 * room for n bytes; returns the length written (at most n). */
size_t sl__jtok_unescape(const char *s, size_t n, char *out);

#endif
