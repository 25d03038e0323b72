/* idset.c — a compact set of ids with a value each (see idset.h).
 *
 * An entry is (tag << TAG_SHIFT) | (offset + 1): offset is where the key's record starts
 * in the arena, tag the top bits of the key's hash (a quick filter before comparing
 * bytes). The slot index comes from the hash's low bits; the full hash is not kept, so a
 * growth recomputes it from the key. During a growth bit PENDING marks the entries not
 * yet moved to their new place. */
#include "apps/batch/idset.h"

#include <stdlib.h>
#include <string.h>

#include <sluice/common.h>

#define OFF_BITS   40
#define OFF_MASK   ((UINT64_C(1) << OFF_BITS) - 1)
#define PENDING    (UINT64_C(1) << OFF_BITS)
#define TAG_SHIFT  (OFF_BITS + 1)
#define ARENA_MAX  OFF_MASK /* so that the last record's offset + 1 still fits */
#define MIN_CAP    16
#define MIN_ARENA  1024
#define VARINT_MAX 10 /* bytes of a 64-bit LEB128 */

uint64_t sl__batch_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* FNV-1a with a final mix: the table indexes by the low bits, which FNV alone leaves
 * poorly mixed (its last step is a multiplication, and sequential ids differ late). */
static uint64_t default_hash(const void *p, size_t n)
{
    uint64_t h = sl__batch_fnv1a(SL_BATCH_FNV_OFFSET, p, n);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_of(const sl_batch_idset *s, const void *p, size_t n)
{
    return s->hash ? s->hash(p, n) : default_hash(p, n);
}

static void *resize(const sl_batch_idset *s, void *p, size_t n)
{
    return s->realloc_fn ? s->realloc_fn(p, n) : realloc(p, n);
}

void sl__batch_idset_init(sl_batch_idset *s)
{
    memset(s, 0, sizeof *s);
}

void sl__batch_idset_free(sl_batch_idset *s)
{
    /* through the same allocator that made the blocks: realloc(p, 0) may not free */
    if (s->realloc_fn) {
        if (s->table)
            s->realloc_fn(s->table, 0);
        if (s->arena)
            s->realloc_fn(s->arena, 0);
    } else {
        free(s->table);
        free(s->arena);
    }
    sl__batch_idset_init(s);
}

size_t sl__batch_idset_memory(const sl_batch_idset *s)
{
    return s->cap * sizeof *s->table + s->arena_cap;
}

/* ---- records: LEB128 length, LEB128 value, the key, a NUL ----------------------------- */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t varint_put(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* The arena holds only what varint_put wrote: no bounds to check. */
static const unsigned char *varint_get(const unsigned char *p, uint64_t *v)
{
    uint64_t r = 0;
    unsigned shift = 0;
    while (*p & 0x80) {
        r |= (uint64_t)(*p++ & 0x7f) << shift;
        shift += 7;
    }
    *v = r | (uint64_t)*p++ << shift;
    return p;
}

typedef struct rec {
    const char *key;
    size_t len;
    uint64_t value;
    size_t size; /* of the whole record */
} rec;

static void rec_at(const sl_batch_idset *s, size_t off, rec *r)
{
    const unsigned char *start = s->arena + off;
    uint64_t len;
    const unsigned char *p = varint_get(start, &len);
    p = varint_get(p, &r->value);
    r->key = (const char *)p;
    r->len = (size_t)len;
    r->size = (size_t)(p - start) + r->len + 1;
}

static size_t entry_off(uint64_t e)
{
    return (size_t)((e & OFF_MASK) - 1);
}

/* ---- the table ------------------------------------------------------------------------ */

/* The slot of (id, len), or the empty slot where it would go; *found says which. */
static size_t find(const sl_batch_idset *s, const char *id, size_t len, uint64_t hash, int *found,
                   uint64_t *value)
{
    size_t mask = s->cap - 1;
    size_t i = (size_t)hash & mask;
    uint64_t tag = hash >> TAG_SHIFT;
    for (;;) {
        uint64_t e = s->table[i];
        if (!e) {
            *found = 0;
            return i;
        }
        if (e >> TAG_SHIFT == tag) {
            rec r;
            rec_at(s, entry_off(e), &r);
            if (r.len == len && memcmp(r.key, id, len) == 0) {
                if (value)
                    *value = r.value;
                *found = 1;
                return i;
            }
        }
        i = (i + 1) & mask;
    }
}

/* Double the table inside one block. Every old entry is marked PENDING, then moved to
 * the first slot of its new probe run that is empty or still pending (swapping with a
 * pending one, which is then placed in turn). A placed entry only ever skips slots that
 * are placed already, and a placed slot never changes again, so at the end every entry
 * is reachable from its home slot without crossing an empty one. */
static int grow(sl_batch_idset *s)
{
    size_t old = s->cap;
    size_t cap = old ? old * 2 : MIN_CAP;
    if (cap < old || cap > SIZE_MAX / sizeof *s->table)
        return SL_ENOMEM;
    uint64_t *t = resize(s, s->table, cap * sizeof *t);
    if (!t)
        return SL_ENOMEM;
    memset(t + old, 0, (cap - old) * sizeof *t);
    s->table = t;
    s->cap = cap;
    size_t mask = cap - 1;
    for (size_t i = 0; i < old; i++)
        if (t[i])
            t[i] |= PENDING;
    for (size_t i = 0; i < old; i++) {
        while (t[i] & PENDING) {
            uint64_t e = t[i] & ~PENDING;
            rec r;
            rec_at(s, entry_off(e), &r);
            size_t j = (size_t)hash_of(s, r.key, r.len) & mask;
            while (t[j] && !(t[j] & PENDING))
                j = (j + 1) & mask;
            if (j == i) {
                t[i] = e;
                break;
            }
            t[i] = t[j]; /* empty, or another pending entry to place next */
            t[j] = e;
        }
    }
    return 0;
}

/* Room for n more arena bytes. */
static int arena_reserve(sl_batch_idset *s, size_t n)
{
    if (n <= s->arena_cap - s->arena_len)
        return 0;
    if ((uint64_t)n > ARENA_MAX - (uint64_t)s->arena_len)
        return SL_ENOMEM;
    size_t need = s->arena_len + n;
    size_t cap = s->arena_cap ? s->arena_cap : MIN_ARENA;
    /* x1.5: less slack than doubling; a large block grows by mremap, without a copy */
    while (cap < need)
        cap = cap > SIZE_MAX / 3 ? need : cap + cap / 2;
    if ((uint64_t)cap > ARENA_MAX)
        cap = (size_t)ARENA_MAX;
    unsigned char *a = resize(s, s->arena, cap);
    if (!a)
        return SL_ENOMEM;
    s->arena = a;
    s->arena_cap = cap;
    return 0;
}

int sl__batch_idset_add(sl_batch_idset *s, const char *id, size_t len, uint64_t value,
                        uint64_t *existing)
{
    uint64_t hash = hash_of(s, id, len);
    int found = 0;
    if (s->cap) {
        find(s, id, len, hash, &found, existing);
        if (found)
            return 0;
    }
    if ((uint64_t)len > ARENA_MAX)
        return SL_ENOMEM;
    size_t size = varint_len(len) + varint_len(value) + len + 1;
    /* keep the load under 3/4 so probes stay short */
    if (s->count + 1 > s->cap / 4 * 3) {
        int rc = grow(s);
        if (rc)
            return rc;
    }
    int rc = arena_reserve(s, size);
    if (rc)
        return rc;
    size_t off = s->arena_len;
    unsigned char *p = s->arena + off;
    p += varint_put(p, len);
    p += varint_put(p, value);
    if (len)
        memcpy(p, id, len);
    p[len] = '\0';
    s->arena_len += size;
    size_t i = find(s, id, len, hash, &found, NULL);
    s->table[i] = (hash >> TAG_SHIFT) << TAG_SHIFT | ((uint64_t)off + 1);
    s->count++;
    return 1;
}

int sl__batch_idset_get(const sl_batch_idset *s, const char *id, size_t len, uint64_t *value)
{
    if (!s->cap)
        return 0;
    int found;
    find(s, id, len, hash_of(s, id, len), &found, value);
    return found;
}

int sl__batch_idset_next(const sl_batch_idset *s, size_t *pos, const char **id, size_t *len,
                         uint64_t *value)
{
    if (*pos >= s->arena_len)
        return 0;
    rec r;
    rec_at(s, *pos, &r);
    *pos += r.size;
    *id = r.key;
    if (len)
        *len = r.len;
    if (value)
        *value = r.value;
    return 1;
}
