/* idset.c — a set of ids with a value each (see idset.h). */
#include "apps/batch/idset.h"

#include <stdlib.h>
#include <string.h>

#include <sluice/common.h>

uint64_t sl__batch_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void sl__batch_idset_init(sl_batch_idset *s)
{
    s->slots = NULL;
    s->cap = 0;
    s->count = 0;
}

void sl__batch_idset_free(sl_batch_idset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i].key);
    free(s->slots);
    sl__batch_idset_init(s);
}

static size_t find_slot(const sl_batch_idset_slot *slots, size_t cap, const char *id, size_t len,
                        uint64_t hash)
{
    size_t mask = cap - 1;
    size_t i = (size_t)hash & mask;
    while (slots[i].key) {
        if (slots[i].hash == hash && slots[i].len == len && memcmp(slots[i].key, id, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

static int grow(sl_batch_idset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    if (cap > SIZE_MAX / sizeof(sl_batch_idset_slot))
        return SL_ENOMEM;
    sl_batch_idset_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return SL_ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        sl_batch_idset_slot *o = &s->slots[i];
        if (o->key)
            slots[find_slot(slots, cap, o->key, o->len, o->hash)] = *o;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int sl__batch_idset_add(sl_batch_idset *s, const char *id, size_t len, uint64_t value,
                        uint64_t *existing)
{
    uint64_t hash = sl__batch_fnv1a(SL_BATCH_FNV_OFFSET, id, len);
    if (s->cap) {
        size_t i = find_slot(s->slots, s->cap, id, len, hash);
        if (s->slots[i].key) {
            if (existing)
                *existing = s->slots[i].value;
            return 0;
        }
    }
    /* keep the load under 3/4 so probes stay short */
    if ((s->count + 1) * 4 > s->cap * 3) {
        int rc = grow(s);
        if (rc)
            return rc;
    }
    char *key = malloc(len + 1);
    if (!key)
        return SL_ENOMEM;
    if (len)
        memcpy(key, id, len);
    key[len] = '\0';
    size_t i = find_slot(s->slots, s->cap, id, len, hash);
    s->slots[i].key = key;
    s->slots[i].len = len;
    s->slots[i].hash = hash;
    s->slots[i].value = value;
    s->count++;
    return 1;
}

int sl__batch_idset_get(const sl_batch_idset *s, const char *id, size_t len, uint64_t *value)
{
    if (!s->cap)
        return 0;
    uint64_t hash = sl__batch_fnv1a(SL_BATCH_FNV_OFFSET, id, len);
    size_t i = find_slot(s->slots, s->cap, id, len, hash);
    if (!s->slots[i].key)
        return 0;
    if (value)
        *value = s->slots[i].value;
    return 1;
}

int sl__batch_idset_next(const sl_batch_idset *s, size_t *pos, const char **id, size_t *len,
                         uint64_t *value)
{
    while (*pos < s->cap) {
        const sl_batch_idset_slot *sl = &s->slots[(*pos)++];
        if (sl->key) {
            *id = sl->key;
            if (len)
                *len = sl->len;
            if (value)
                *value = sl->value;
            return 1;
        }
    }
    return 0;
}
