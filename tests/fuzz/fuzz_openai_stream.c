/* fuzz_openai_stream.c — arbitrary bytes as a streamed answer (fed in pieces whose sizes
 * come from the input) and as a non-streamed body: no crash, no leak, a successful stream
 * always yields a body that is a JSON object, reading chunks through the last one (the
 * parser's shortcut) gives exactly what reading every chunk in full gives (the same
 * deltas, the same value from every feed, the same result), and so does a reused parser
 * compared with a new one. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "llm/openai.h"

/* Every delta, logged in full; the consumer stops at delta number stop_at (0: never). */
typedef struct sink {
    sl_buf log;
    size_t n, stop_at;
} sink;

static void log_str(sl_buf *b, sl_str s)
{
    sl__buf_append(b, &s.len, sizeof s.len);
    sl__buf_append(b, s.ptr, s.len);
}

static int on_delta(void *user, const sl_delta *d)
{
    sink *s = user;
    int head[3] = {(int)d->kind, d->choice, d->tool_index};
    sl__buf_append(&s->log, head, sizeof head);
    log_str(&s->log, d->text);
    log_str(&s->log, d->tool_id);
    log_str(&s->log, d->tool_name);
    return ++s->n == s->stop_at ? 77 : 0;
}

/* The stream read one way, by a parser from spares (NULL: a new one); the log gets the
 * feed values and the result too. */
static void read_stream(sink *s, sl_openai_spares *spares, sl_openai_kind kind, const char *p,
                        size_t n, size_t step, int shortcut)
{
    sl_openai_parser *ps = sl__openai_parser_take(spares, kind, 4096, on_delta, s);
    if (!ps)
        abort();
    sl__openai_parser_shortcut(ps, shortcut);
    int rc = 0;
    for (size_t i = 0; i < n; i += step) {
        rc = sl__openai_feed(ps, p + i, n - i < step ? n - i : step);
        sl__buf_append(&s->log, &rc, sizeof rc);
    }
    rc = sl__openai_finish(ps);
    sl__buf_append(&s->log, &rc, sizeof rc);
    const sl_openai_out *o = sl__openai_out(ps);
    sl__buf_append(&s->log, &o->error, sizeof o->error);
    sl__buf_append(&s->log, &o->error_status, sizeof o->error_status);
    sl__buf_append(&s->log, &o->usage, sizeof o->usage);
    sl__buf_append(&s->log, &o->saw_done, sizeof o->saw_done);
    log_str(&s->log, (sl_str){o->message, strlen(o->message)});
    log_str(&s->log, o->error_body);
    log_str(&s->log, o->text);
    log_str(&s->log, o->reasoning);
    log_str(&s->log, o->body);
    const char *fr = o->finish_reason ? o->finish_reason : "(none)";
    log_str(&s->log, (sl_str){fr, strlen(fr)});
    if (rc == 0 && shortcut) {
        json_t *v = json_loadb(o->body.ptr, o->body.len, JSON_ALLOW_NUL, NULL);
        if (!json_is_object(v))
            abort();
        json_decref(v);
    }
    sl__openai_parser_give(spares, ps);
}

static int same(const sink *a, const sink *b)
{
    return a->log.len == b->log.len &&
           (!a->log.len || !memcmp(a->log.data, b->log.data, a->log.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    sl_openai_kind kind = data[0] & 1 ? SL_OPENAI_COMPLETIONS : SL_OPENAI_CHAT;
    size_t stop_at = (data[0] >> 1) & 7; /* 0: the consumer never stops */
    size_t step = 1 + data[1] % 64;
    const char *p = (const char *)data + 2;
    size_t n = size - 2;

    sink a = {.stop_at = stop_at}, b = {.stop_at = stop_at};
    sl__buf_init(&a.log, 0);
    sl__buf_init(&b.log, 0);
    read_stream(&a, NULL, kind, p, n, step, 1);
    read_stream(&b, NULL, kind, p, n, step, 0);
    if (!same(&a, &b))
        abort();
    /* a parser that read the first half, reused for the second, reads it as a new one */
    sl_openai_spares *sp = sl__openai_spares_new(1);
    if (!sp)
        abort();
    sink c = {0}, d = {.stop_at = stop_at}, e = {.stop_at = stop_at};
    sl__buf_init(&c.log, 0);
    sl__buf_init(&d.log, 0);
    sl__buf_init(&e.log, 0);
    read_stream(&c, sp, kind, p, n / 2, step, 1);
    read_stream(&d, sp, (sl_openai_kind)(kind ^ 1), p + n / 2, n - n / 2, step, 1);
    read_stream(&e, NULL, (sl_openai_kind)(kind ^ 1), p + n / 2, n - n / 2, step, 1);
    if (!same(&d, &e))
        abort();
    sl__openai_spares_close(sp);
    sl__buf_free(&a.log);
    sl__buf_free(&b.log);
    sl__buf_free(&c.log);
    sl__buf_free(&d.log);
    sl__buf_free(&e.log);

    sink f = {0};
    sl__buf_init(&f.log, 0);
    sl_openai_parser *pb = sl__openai_parser_new(kind, 1 << 16, on_delta, &f);
    sl__openai_parse_body(pb, p, n);
    sl__openai_parser_free(pb);
    sl__buf_free(&f.log);

    char msg[128];
    sl__openai_error_message(p, n, msg, sizeof msg);
    return 0;
}
