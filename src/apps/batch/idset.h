/* idset.h — a set of ids (byte strings) with one 64-bit value each, for sluice batch.
 *
 * The input reader keeps every id it has handed out here (value: the line it came from)
 * to refuse duplicates; the output keeps every custom_id that has a result line, so an
 * id is never written twice. Open addressing, FNV-1a 64 hashing; memory grows with the
 * number of ids (that is the point) and nothing else. Keys are copied. */
#ifndef SL_APPS_BATCH_IDSET_H
#define SL_APPS_BATCH_IDSET_H

#include <stddef.h>
#include <stdint.h>

#define SL_BATCH_FNV_OFFSET 0xcbf29ce484222325ULL

/* FNV-1a 64 of (p, n), continuing from h (start with SL_BATCH_FNV_OFFSET). */
uint64_t sl__batch_fnv1a(uint64_t h, const void *p, size_t n);

typedef struct sl_batch_idset_slot {
    char *key; /* NUL-terminated copy; NULL: empty slot */
    size_t len;
    uint64_t hash;
    uint64_t value;
} sl_batch_idset_slot;

typedef struct sl_batch_idset {
    sl_batch_idset_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t count;
} sl_batch_idset;

void sl__batch_idset_init(sl_batch_idset *s);
void sl__batch_idset_free(sl_batch_idset *s);

/* Add (id, len) with value. Returns 1 if added, 0 if the id was already there (its
 * stored value goes to *existing when existing is not NULL; nothing changes), or
 * SL_ENOMEM. */
int sl__batch_idset_add(sl_batch_idset *s, const char *id, size_t len, uint64_t value,
                        uint64_t *existing);

/* 1 if (id, len) is in the set (its value to *value if not NULL), else 0. */
int sl__batch_idset_get(const sl_batch_idset *s, const char *id, size_t len, uint64_t *value);

/* Walk the set: start with *pos = 0; each call returns 1 with the next id (borrowed, valid
 * until the set changes) or 0 at the end. Order is unspecified. */
int sl__batch_idset_next(const sl_batch_idset *s, size_t *pos, const char **id, size_t *len,
                         uint64_t *value);

#endif
