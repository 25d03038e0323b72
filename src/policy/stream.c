/* stream.c — sl_stream: a blocking pull iterator over one sl_call.
 *
 * No threads: sl_stream_next runs the client's private loop one iteration at a time
 * until a delta is queued or the call is done. Deltas are copied into a small queue;
 * when more than a few wait, the call is paused (curl stops reading), and it resumes
 * once the consumer has drained them. A consumer that stops pulling stops the loop, so
 * the socket is not read at all. */
#include <stdlib.h>
#include <string.h>

#include "policy/client.h"

#define HIGH_WATER 8 /* queued deltas before the call is paused */

typedef struct item {
    sl_delta d;
    char *mem; /* text, tool_id, tool_name */
} item;

struct sl_stream {
    uv_loop_t *loop;
    sl_call *call;
    item *q;
    size_t qhead, qlen, qcap;
    item cur; /* returned by the last sl_stream_next */
    int done;
    int paused;
    int closing;
};

static int push(sl_stream *s, const sl_delta *d)
{
    if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 16;
        item *n = malloc(cap * sizeof *n);
        if (!n)
            return SL_ENOMEM;
        for (size_t i = 0; i < s->qlen; i++)
            n[i] = s->q[(s->qhead + i) % s->qcap];
        free(s->q);
        s->q = n;
        s->qcap = cap;
        s->qhead = 0;
    }
    size_t n = d->text.len + d->tool_id.len + d->tool_name.len;
    char *mem = malloc(n + 1);
    if (!mem)
        return SL_ENOMEM;
    item *it = &s->q[(s->qhead + s->qlen) % s->qcap];
    it->d = *d;
    it->mem = mem;
    if (d->text.len)
        memcpy(mem, d->text.ptr, d->text.len);
    it->d.text.ptr = mem;
    if (d->tool_id.len)
        memcpy(mem + d->text.len, d->tool_id.ptr, d->tool_id.len);
    it->d.tool_id.ptr = mem + d->text.len;
    if (d->tool_name.len)
        memcpy(mem + d->text.len + d->tool_id.len, d->tool_name.ptr, d->tool_name.len);
    it->d.tool_name.ptr = mem + d->text.len + d->tool_id.len;
    mem[n] = '\0';
    s->qlen++;
    return 0;
}

static void on_delta(sl_call *call, const sl_delta *d, void *user)
{
    sl_stream *s = user;
    if (push(s, d) != 0) {
        sl_call_cancel(call); /* ends with SL_ECANCELED rather than a gap in the text */
        return;
    }
    if (s->qlen >= HIGH_WATER && !s->paused) {
        s->paused = 1;
        sl_call_pause(call);
    }
    /* UV_RUN_ONCE would still block in poll after a timer produced this: stop it */
    uv_stop(s->loop);
}

static void on_done(sl_call *call, const sl_result *res, void *user)
{
    sl_stream *s = user;
    s->done = 1;
    if (!s->closing)
        uv_stop(s->loop);
}

int sl_stream_open(sl_client *c, const sl_request *req, sl_stream **out)
{
    *out = NULL;
    if (!c || !c->own_loop)
        return SL_EINVAL;
    sl_stream *s = calloc(1, sizeof *s);
    if (!s)
        return SL_ENOMEM;
    s->loop = c->loop;
    sl_call_opts o;
    memset(&o, 0, sizeof o);
    o.on_delta = on_delta;
    o.on_done = on_done;
    o.user = s;
    int rc = sl_call_start(c, req, &o, &s->call);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

const sl_delta *sl_stream_next(sl_stream *s)
{
    free(s->cur.mem);
    s->cur.mem = NULL;
    while (!s->qlen && !s->done) {
        if (s->paused) {
            s->paused = 0;
            sl_call_resume(s->call);
        }
        if (uv_run(s->loop, UV_RUN_ONCE) == 0 && !s->qlen && !s->done)
            sl_call_cancel(s->call); /* nothing left to wait for: end it rather than spin */
    }
    if (!s->qlen)
        return NULL;
    s->cur = s->q[s->qhead];
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
    return &s->cur.d;
}

const sl_result *sl_stream_result(sl_stream *s)
{
    return s->done && !s->qlen ? sl__call_result(s->call) : NULL;
}

void sl_stream_close(sl_stream *s)
{
    if (!s)
        return;
    s->closing = 1;
    sl_call_free(s->call); /* a running call is cancelled: its on_done lands here now */
    free(s->cur.mem);
    for (size_t i = 0; i < s->qlen; i++)
        free(s->q[(s->qhead + i) % s->qcap].mem);
    free(s->q);
    free(s);
}
