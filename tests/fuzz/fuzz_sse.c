/* fuzz_sse.c — libFuzzer target for the SSE parser (io/sse.c).
 *
 * The input is parsed with small caps three ways: in one feed, in chunks whose sizes
 * come from the input bytes, and in chunks with the callback stopping at every event
 * and the feed resumed from sl_sse_parser.consumed. All three must return the same
 * code and deliver the same events (count and hash), no event may exceed the caps,
 * and every event written back with the writer must parse to the same event. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/sse.h"
#include <sluice/common.h>

#define MAX_LINE  256
#define MAX_EVENT 1024

typedef struct run {
    size_t count;
    uint64_t hash;
    int stop_every;
} run;

static void check(int ok)
{
    if (!ok)
        abort();
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix_str(uint64_t h, sl_str s)
{
    h = mix(h, &s.len, sizeof s.len);
    return mix(h, s.ptr, s.len);
}

static int on_copy(void *user, const sl_sse_event *ev)
{
    sl_sse_event *out = user;
    check(out->retry_ms == -2); /* exactly one event */
    out->retry_ms = ev->retry_ms;
    char *d = malloc(ev->data.len + ev->type.len + ev->id.len + 1);
    check(d != NULL);
    memcpy(d, ev->data.ptr, ev->data.len);
    memcpy(d + ev->data.len, ev->type.ptr, ev->type.len);
    memcpy(d + ev->data.len + ev->type.len, ev->id.ptr, ev->id.len);
    out->data.ptr = d;
    out->data.len = ev->data.len;
    out->type.ptr = d + ev->data.len;
    out->type.len = ev->type.len;
    out->id.ptr = d + ev->data.len + ev->type.len;
    out->id.len = ev->id.len;
    return 0;
}

static int eq(sl_str a, sl_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Write the event back and parse it: the same event must come out. */
static void round_trip(const sl_sse_event *ev)
{
    char type[MAX_LINE + 1], id[MAX_LINE + 1];
    int type_ok = memchr(ev->type.ptr, '\0', ev->type.len) == NULL;
    memcpy(type, ev->type.ptr, ev->type.len);
    type[ev->type.len] = '\0';
    memcpy(id, ev->id.ptr, ev->id.len);
    id[ev->id.len] = '\0';

    sl_buf out;
    sl__buf_init(&out, 0);
    check(sl__sse_write(&out, type_ok ? type : NULL, id, ev->data.ptr, ev->data.len) == 0);
    sl_sse_event got = {.retry_ms = -2};
    sl_sse_parser p;
    sl__sse_init(&p, MAX_LINE + 16, MAX_EVENT, on_copy, &got);
    check(sl__sse_feed(&p, out.data, out.len) == 0);
    check(got.retry_ms == -1);
    check(eq(got.data, ev->data));
    check(eq(got.id, ev->id));
    if (type_ok) {
        check(eq(got.type, ev->type));
    } else {
        sl_str m = {"message", 7};
        check(eq(got.type, m));
    }
    free((void *)got.data.ptr);
    sl__sse_free(&p);
    sl__buf_free(&out);
}

static int on_event(void *user, const sl_sse_event *ev)
{
    run *r = user;
    check(ev->data.len <= MAX_EVENT);
    check(ev->type.len > 0 && ev->type.len <= MAX_LINE);
    check(ev->id.len <= MAX_LINE);
    check(memchr(ev->data.ptr, '\r', ev->data.len) == NULL);
    check(memchr(ev->type.ptr, '\r', ev->type.len) == NULL);
    check(memchr(ev->type.ptr, '\n', ev->type.len) == NULL);
    check(memchr(ev->id.ptr, '\n', ev->id.len) == NULL);
    check(memchr(ev->id.ptr, '\0', ev->id.len) == NULL);
    check(ev->retry_ms >= -1);
    r->count++;
    r->hash = mix_str(r->hash, ev->type);
    r->hash = mix_str(r->hash, ev->data);
    r->hash = mix_str(r->hash, ev->id);
    r->hash = mix(r->hash, &ev->retry_ms, sizeof ev->retry_ms);
    if (!r->stop_every)
        round_trip(ev);
    return r->stop_every ? 1 : 0;
}

/* chunked: 0 one feed; otherwise chunk sizes from the input bytes. */
static int parse(const uint8_t *in, size_t n, int chunked, run *r)
{
    sl_sse_parser p;
    int rc = 0;
    r->count = 0;
    r->hash = 14695981039346656037ull;
    sl__sse_init(&p, MAX_LINE, MAX_EVENT, on_event, r);
    size_t at = 0, k = 0;
    do {
        size_t len = n - at;
        if (chunked) {
            size_t want = 1 + (size_t)((in[(at + k) % n] * 7u + k) % 40);
            len = want < len ? want : len;
        }
        k++;
        rc = sl__sse_feed(&p, (const char *)in + at, len);
        check(p.data.len <= MAX_EVENT && p.line.len <= MAX_LINE);
        if (rc == 1 && r->stop_every) {
            check(p.consumed <= len);
            at += p.consumed;
            rc = 0;
            continue;
        }
        if (rc)
            break;
        check(p.consumed == len);
        at += len;
    } while (at < n);
    check(sl__sse_finish(&p) == 0);
    sl__sse_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run whole = {0}, chunks = {0}, stops = {.stop_every = 1};
    int rc_whole = parse(data, size, 0, &whole);
    check(rc_whole == 0 || rc_whole == SL_ELIMIT);
    if (size == 0)
        return 0;
    int rc_chunks = parse(data, size, 1, &chunks);
    int rc_stops = parse(data, size, 1, &stops);
    check(rc_chunks == rc_whole && rc_stops == rc_whole);
    check(chunks.count == whole.count && stops.count == whole.count);
    check(chunks.hash == whole.hash && stops.hash == whole.hash);
    return 0;
}
