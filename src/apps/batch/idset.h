/* idset.h — a compact set of ids (byte strings) with one 64-bit value each, for sluice batch.
 *
 * The input reader keeps every id it has handed out here (value: the line it came from)
 * to refuse duplicates; the output keeps the custom_ids read back on resume (and, unless
 * told otherwise, the ones it writes). Memory grows with the number of ids and nothing
 * else, so it is kept small: keys live back to back in one growing arena (a LEB128 length,
 * a LEB128 value, the bytes, a NUL), and the table is open addressing (linear probing,
 * load at most 3/4) over 8-byte entries: 40 bits of arena offset and 23 bits of the hash.
 * A lookup compares the key bytes whenever the hash bits match, so it is exact. A short id
 * with a value under 2^21 takes len + 3 to 5 bytes of arena (which grows by half) and 11 to
 * 21 bytes of table: at most 38 bytes in all for a 6-digit id, even right after both grew. The
 * table doubles in place (realloc, then a rehash inside the same array), so a growth never holds
 * the old and the new table at once.
 *
 * Keys are copied; any bytes, any length up to 2^40 bytes in total. Not thread-safe. */
#ifndef SL_APPS_BATCH_IDSET_H
#define SL_APPS_BATCH_IDSET_H

#include <stddef.h>
#include <stdint.h>

#define SL_BATCH_FNV_OFFSET 0xcbf29ce484222325ULL

/* FNV-1a 64 of (p, n), continuing from h (start with SL_BATCH_FNV_OFFSET). */
uint64_t sl__batch_fnv1a(uint64_t h, const void *p, size_t n);

typedef struct sl_batch_idset {
    uint64_t *table; /* cap entries; 0: empty */
    size_t cap;      /* 0 or a power of two */
    size_t count;    /* ids in the set */
    unsigned char *arena;
    size_t arena_len, arena_cap;
    /* Tests only (NULL: the defaults): the hash of a key, to force collisions, and the
     * allocator, to inject failures. Set them right after init, before the first add. */
    uint64_t (*hash)(const void *p, size_t n);
    void *(*realloc_fn)(void *p, size_t n);
} sl_batch_idset;

void sl__batch_idset_init(sl_batch_idset *s);
/* Release everything; the set is empty (and initialised again) afterwards. */
void sl__batch_idset_free(sl_batch_idset *s);

/* Add (id, len) with value. Returns 1 if added, 0 if the id was already there (its
 * stored value goes to *existing when existing is not NULL; nothing changes), or
 * SL_ENOMEM (nothing changes either). Amortised O(len). */
int sl__batch_idset_add(sl_batch_idset *s, const char *id, size_t len, uint64_t value,
                        uint64_t *existing);

/* 1 if (id, len) is in the set (its value to *value if not NULL), else 0. */
int sl__batch_idset_get(const sl_batch_idset *s, const char *id, size_t len, uint64_t *value);

/* Walk the set in the order the ids were added: start with *pos = 0; each call returns 1
 * with the next id (borrowed, NUL-terminated after its len bytes, valid until the set
 * changes) or 0 at the end. len and value may be NULL. */
int sl__batch_idset_next(const sl_batch_idset *s, size_t *pos, const char **id, size_t *len,
                         uint64_t *value);

/* Bytes the set holds on the heap (table + arena, allocated capacity). */
size_t sl__batch_idset_memory(const sl_batch_idset *s);

#endif
