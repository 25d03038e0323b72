/* list.h — an intrusive circular doubly linked list.
 *
 * A node is embedded in the object it links; the head is a node of its own. Removal
 * needs no head, so an object can leave whichever list it is on in O(1). A node that is
 * on no list points to itself (sl__list_init), which sl__list_linked() tells apart. */
#ifndef SL_BASE_LIST_H
#define SL_BASE_LIST_H

#include <stddef.h>

typedef struct sl_link {
    struct sl_link *prev;
    struct sl_link *next;
} sl_link;

#define SL_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void sl__list_init(sl_link *l)
{
    l->prev = l;
    l->next = l;
}

static inline int sl__list_empty(const sl_link *head)
{
    return head->next == head;
}

static inline int sl__list_linked(const sl_link *l)
{
    return l->next != l;
}

/* Append n at the tail of head. n must be unlinked. */
static inline void sl__list_push(sl_link *head, sl_link *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* Unlink n (no-op when unlinked) and leave it unlinked. */
static inline void sl__list_remove(sl_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    sl__list_init(n);
}

/* Move every node of from to the tail of to; from ends empty. */
static inline void sl__list_splice(sl_link *to, sl_link *from)
{
    if (sl__list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    sl__list_init(from);
}

#endif
