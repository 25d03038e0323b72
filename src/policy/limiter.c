/* limiter.c — counting semaphore with an intrusive FIFO wait queue.
 *
 * Pure policy (see limiter.h): no allocation, no clock. Grants run synchronously from
 * release/set_max through one non-recursive loop. */
#include "policy/limiter.h"

#include <stddef.h>

void sl__limiter_init(sl_limiter *l, int max)
{
    l->max = max > 0 ? max : 0;
    l->in_use = 0;
    l->nwait = 0;
    l->head = l->tail = NULL;
    l->granting = 0;
}

static int slot_free(const sl_limiter *l)
{
    return l->max == 0 || l->in_use < l->max;
}

static void unlink_waiter(sl_limiter *l, sl_limiter_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = 0;
    l->nwait--;
}

/* Hand free slots to the queue head, in order. A callback may release or acquire:
 * the guard makes those calls only adjust counters, and this loop picks the change up. */
static void grant(sl_limiter *l)
{
    if (l->granting)
        return;
    l->granting = 1;
    while (l->head && slot_free(l)) {
        sl_limiter_waiter *w = l->head;
        unlink_waiter(l, w);
        l->in_use++;
        w->cb(w, w->user);
    }
    l->granting = 0;
}

int sl__limiter_acquire(sl_limiter *l, sl_limiter_waiter *w, sl_limiter_cb cb, void *user)
{
    w->cb = cb;
    w->user = user;
    w->prev = w->next = NULL;
    w->queued = 0;
    if (l->head == NULL && slot_free(l)) {
        l->in_use++;
        return 1;
    }
    w->queued = 1;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
    l->nwait++;
    return 0;
}

void sl__limiter_release(sl_limiter *l)
{
    if (l->in_use > 0)
        l->in_use--;
    grant(l);
}

int sl__limiter_cancel(sl_limiter *l, sl_limiter_waiter *w)
{
    if (!w->queued)
        return 0;
    unlink_waiter(l, w);
    return 1;
}

void sl__limiter_set_max(sl_limiter *l, int max)
{
    l->max = max > 0 ? max : 0;
    grant(l);
}
