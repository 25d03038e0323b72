/* runner.c — the batch engine (sluice/batch.h): input in, calls out, one line per id.
 *
 * It sits on top of the batch data modules (input, output, progress, summary) and the
 * public call API: it pulls items from the input, keeps at most `concurrency` calls in
 * flight on the caller's loop, writes each result with one write() and accounts for
 * every item. It never blocks the loop on the input: a reader thread parses lines into a
 * small ring (the "feed", bounded in items and in bytes) and wakes the loop when the loop
 * is waiting for items, so a slow pipe on stdin stalls nothing and a signal can always
 * stop the run. The only blocking I/O on the loop is the result write (and the output's
 * periodic fdatasync).
 *
 * Lifecycle: new (open input, scan it, open the outputs) -> start -> items flow until
 * the input ends or a stop -> finish (from a timer, never inside a call's callback):
 * the reader stops, outputs are closed and synced, the summary is printed, every handle
 * is closed, and on_done fires from the last close callback. */
#include <sluice/batch.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apps/batch/input.h"
#include "apps/batch/output.h"
#include "apps/batch/progress.h"
#include "apps/batch/summary.h"
#include "base/buf.h"
#include "base/clock.h"
#include "llm/request.h"

#define FEED_CAP          256        /* items parsed ahead of the loop ... */
#define FEED_BYTES        (1u << 20) /* ... and their input bytes: large prompts wait in the file */
#define BAR_INTERVAL_MS   100
#define MAX_LINE_MESSAGES 100 /* invalid lines reported one by one on the messages stream */
#define MAX_CONCURRENCY   100000

/* ---- the feed: the reader thread and its ring ------------------------------------- */

typedef struct feed {
    pthread_mutex_t mu;
    pthread_cond_t room; /* the thread waits here for room in the ring */
    pthread_t thread;
    int thread_started;
    sl_batch_input *in;
    sl_batch_item ring[FEED_CAP];
    unsigned head, count;
    size_t bytes;      /* input bytes of the items in the ring */
    int ended;         /* the thread has left its loop */
    int eof;           /* ... because the input ended (else a stop or an error) */
    int end_rc;        /* a read error (SL_EIO, SL_ENOMEM), 0 if none */
    int stop;          /* the loop asks the thread to stop */
    int sleeping;      /* the thread waits for room */
    int hungry;        /* the loop found the ring empty and waits for the async */
    int in_read;       /* the thread is inside sl__batch_input_next */
    int refs;          /* the loop's and the thread's */
    uv_async_t *async; /* NULL once the loop closed it */
    char err[256];
} feed;

static void feed_destroy(feed *f)
{
    for (unsigned i = 0; i < f->count; i++)
        sl__batch_item_clear(&f->ring[(f->head + i) % FEED_CAP]);
    sl__batch_input_free(f->in);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->room);
    free(f);
}

/* The thread stops reading at a full ring and starts again once half of it is gone:
 * one wake-up per half ring. A line larger than FEED_BYTES still goes in, alone. */
static int feed_full(const feed *f)
{
    return f->count == FEED_CAP || f->bytes >= FEED_BYTES;
}

static int feed_low(const feed *f)
{
    return f->count <= FEED_CAP / 2 && f->bytes <= FEED_BYTES / 2;
}

/* Drop one reference under the lock held by the caller; unlocks. */
static void feed_unref_unlock(feed *f)
{
    int last = --f->refs == 0;
    pthread_mutex_unlock(&f->mu);
    if (last)
        feed_destroy(f);
}

static void *feed_main(void *arg)
{
    feed *f = arg;
    sl_batch_item item;
    memset(&item, 0, sizeof item);
    pthread_mutex_lock(&f->mu);
    for (;;) {
        if (feed_full(f) && !f->stop) {
            f->sleeping = 1;
            while (!feed_low(f) && !f->stop)
                pthread_cond_wait(&f->room, &f->mu);
            f->sleeping = 0;
        }
        if (f->stop)
            break;
        f->in_read = 1;
        pthread_mutex_unlock(&f->mu);
        int rc = sl__batch_input_next(f->in, &item);
        pthread_mutex_lock(&f->mu);
        f->in_read = 0;
        if (rc != 1) {
            f->eof = rc == 0;
            f->end_rc = rc < 0 ? rc : 0;
            if (rc < 0)
                snprintf(f->err, sizeof f->err, "%s",
                         *sl__batch_input_error(f->in) ? sl__batch_input_error(f->in)
                                                       : sl_strerror(rc));
            break;
        }
        if (f->stop) {
            sl__batch_item_clear(&item);
            break;
        }
        f->ring[(f->head + f->count) % FEED_CAP] = item;
        f->bytes += item.bytes;
        memset(&item, 0, sizeof item);
        f->count++;
        if (f->hungry && f->async) {
            f->hungry = 0;
            uv_async_send(f->async);
        }
    }
    f->ended = 1;
    if (f->async)
        uv_async_send(f->async);
    feed_unref_unlock(f);
    return NULL;
}

/* 1: an item into *item; 0: none yet (the async will fire when one comes); -1: the
 * thread has ended and the ring is empty. */
static int feed_pop(feed *f, sl_batch_item *item)
{
    int r;
    pthread_mutex_lock(&f->mu);
    if (f->count) {
        *item = f->ring[f->head];
        memset(&f->ring[f->head], 0, sizeof f->ring[f->head]);
        f->head = (f->head + 1) % FEED_CAP;
        f->count--;
        f->bytes -= item->bytes;
        if (f->sleeping && feed_low(f))
            pthread_cond_signal(&f->room);
        r = 1;
    } else if (f->ended) {
        r = -1;
    } else {
        f->hungry = 1;
        r = 0;
    }
    pthread_mutex_unlock(&f->mu);
    return r;
}

static void feed_stop(feed *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_signal(&f->room);
    pthread_mutex_unlock(&f->mu);
}

/* ---- the batch -------------------------------------------------------------------- */

typedef struct slot {
    sl_batch *b;
    sl_call *call; /* NULL: free */
    char *id;
    uint64_t line_no;
    int retried;
} slot;

struct sl_batch {
    uv_loop_t *loop;
    sl_batch_opts o; /* strings point to the copies below */
    char *input, *output, *errors, *summary_json, *model;
    const char *input_name; /* for messages: the path, or "stdin" */
    FILE *msg;
    sl_policy *policy;
    feed *feed;
    int input_regular;
    int scanned;
    sl_batch_scan scan;
    sl_batch_output *out, *errs;
    sl_batch_resume_info rinfo, einfo;
    sl_batch_summary *sum;
    sl_batch_counters cnt;
    sl_batch_progress prog;
    sl_buf line;   /* progress rendering */
    sl_buf result; /* the result line being written */
    slot *slots;
    int *free_slots;
    int nfree;
    uint64_t in_flight;
    uint64_t cancelled;
    uint64_t line_msgs;
    uv_async_t async;
    uv_timer_t tick, grace, fin;
    uv_idle_t more; /* pump again after the loop's next poll: see PUMP_BURST */
    int open_handles;
    int bar, status;       /* progress mode chosen at start */
    double next_status_ms; /* status mode: when the next line is due */
    int bar_shown;
    double t_start;
    unsigned started : 1, stopping : 1, cancelling : 1, finishing : 1, done : 1, fatal : 1,
        strict_hit : 1, feed_joined : 1;
    int exit_code;
    sl_batch_done_cb on_done;
    void *user;
};

void sl_batch_opts_init(sl_batch_opts *o)
{
    memset(o, 0, sizeof *o);
    o->concurrency = 50;
    o->progress = SL_PROGRESS_AUTO;
    o->status_interval_s = 10;
    o->grace_s = 30;
    sl_policy_opts_init(&o->policy);
}

/* ---- messages and progress -------------------------------------------------------- */

static void clear_bar(sl_batch *b)
{
    if (b->bar_shown) {
        fputs("\r\x1b[K", b->msg);
        b->bar_shown = 0;
    }
}

static void say(sl_batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(sl_batch *b, const char *fmt, ...)
{
    clear_bar(b);
    va_list ap;
    va_start(ap, fmt);
    fputs("sluice: ", b->msg);
    vfprintf(b->msg, fmt, ap);
    fputc('\n', b->msg);
    va_end(ap);
    fflush(b->msg);
}

static int term_width(sl_batch *b)
{
    struct winsize ws;
    if (ioctl(fileno(b->msg), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 0; /* 80 */
}

static void render(sl_batch *b)
{
    double now = sl__clock_ms();
    b->cnt.in_flight = b->in_flight;
    sl__buf_reset(&b->line);
    if (b->bar) {
        if (sl__batch_progress_bar(&b->prog, &b->cnt, now, term_width(b), &b->line) == 0) {
            fwrite(b->line.data, 1, b->line.len, b->msg);
            b->bar_shown = 1;
        }
    } else if (sl__batch_progress_line(&b->prog, &b->cnt, now, &b->line) == 0) {
        fwrite(b->line.data, 1, b->line.len, b->msg);
    }
    fflush(b->msg);
    /* After rendering: a snapshot taken now would make the rate 0 until the next one. */
    sl__batch_progress_sample(&b->prog, &b->cnt, now);
}

/* The bar redraws on every tick. The status line ticks every second to keep the rate's
 * samples ~1 s apart (its window stays ~10 s), and prints when its period has passed. */
static void on_tick(uv_timer_t *t)
{
    sl_batch *b = t->data;
    double now = sl__clock_ms();
    if (b->status && now < b->next_status_ms) {
        sl__batch_progress_sample(&b->prog, &b->cnt, now);
        return;
    }
    if (b->status)
        b->next_status_ms += b->o.status_interval_s * 1000;
    render(b);
}

/* ---- finishing -------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    sl_batch *b = h->data;
    if (--b->open_handles > 0)
        return;
    b->done = 1;
    if (b->on_done)
        b->on_done(b, b->exit_code, b->user);
}

static void close_handle(sl_batch *b, uv_handle_t *h)
{
    h->data = b;
    b->open_handles++;
    uv_close(h, on_handle_closed);
}

/* The reader thread stops; returns 1 if it was joined (its input is then ours again),
 * 0 if it was left blocked in a read of a pipe or terminal, owning the feed. */
static int feed_release(sl_batch *b)
{
    feed *f = b->feed;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    f->async = NULL;
    pthread_cond_signal(&f->room);
    if (!f->thread_started) {
        pthread_mutex_unlock(&f->mu);
        return 1;
    }
    if (f->in_read && !b->input_regular) {
        /* A read of stdin may never return: the thread keeps the feed and frees it when
         * it comes back (or the process exits). */
        pthread_detach(f->thread);
        b->feed = NULL;
        feed_unref_unlock(f);
        return 0;
    }
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    f->thread_started = 0;
    return 1;
}

static int close_outputs(sl_batch *b)
{
    /* After a write error (already reported) the close repeats it: say it once. */
    char err[512];
    int bad = 0;
    if (b->out && sl__batch_output_close(b->out, err, sizeof err)) {
        if (!b->fatal)
            say(b, "%s", err);
        bad = 1;
    }
    b->out = NULL;
    if (b->errs && sl__batch_output_close(b->errs, err, sizeof err)) {
        if (!b->fatal)
            say(b, "%s", err);
        bad = 1;
    }
    b->errs = NULL;
    return bad;
}

static void finish(sl_batch *b)
{
    uv_timer_stop(&b->tick);
    uv_timer_stop(&b->grace);

    feed *f = b->feed;
    pthread_mutex_lock(&f->mu);
    int eof = f->ended && f->eof && f->count == 0;
    uint64_t pending = f->count;
    int end_rc = f->end_rc;
    char end_err[sizeof f->err];
    memcpy(end_err, f->err, sizeof end_err);
    pthread_mutex_unlock(&f->mu);
    b->feed_joined = feed_release(b) != 0;

    int input_error = 0;
    if (end_rc) {
        say(b, "cannot read %s: %s", b->input_name, end_err);
        input_error = 1;
    }
    if (eof && b->feed_joined) {
        uint64_t fp = sl__batch_input_fingerprint(b->feed->in);
        char err[512];
        if (b->scanned && fp != b->scan.fingerprint) {
            say(b, "%s changed while the batch ran; its results may not match it", b->input_name);
            input_error = 1;
        } else if (!b->scanned && b->rinfo.side_fingerprint_known &&
                   fp != b->rinfo.side_fingerprint) {
            say(b,
                "%s was made from a different input (fingerprint %016" PRIx64
                ", this input %016" PRIx64
                "): the results of this run were added to it; check it, or start a new output",
                b->output, b->rinfo.side_fingerprint, fp);
            input_error = 1;
        } else if (b->rinfo.needs_id_check && b->out &&
                   sl__batch_output_check_ids(b->out, sl__batch_input_ids(b->feed->in), fp, err,
                                              sizeof err)) {
            say(b, "%s", err);
            input_error = 1;
        } else if (!b->scanned && b->out && !b->rinfo.side_fingerprint_known &&
                   sl__batch_output_set_fingerprint(b->out, fp, err, sizeof err)) {
            say(b, "%s", err); /* a later --resume checks the ids only */
        }
    }
    int output_error = close_outputs(b);
    sl_policy_free(b->policy); /* every call has delivered its on_done */
    b->policy = NULL;

    uint64_t accounted = b->cnt.skipped + b->cnt.done;
    uint64_t unfinished;
    if (b->scanned)
        unfinished = b->scan.items > accounted ? b->scan.items - accounted : 0;
    else
        unfinished = b->cancelled + pending;
    int left = unfinished > 0 || !eof;
    b->sum->unfinished = unfinished;
    b->sum->input_left = !eof && !b->scanned;
    b->sum->wall_ms = sl__clock_ms() - b->t_start;

    if (b->bar) {
        clear_bar(b);
    } else if (b->status) {
        render(b); /* the last status line */
    }
    sl_buf text;
    sl__buf_init(&text, 0);
    if (sl__batch_summary_text(b->sum, &text) == 0)
        fwrite(text.data, 1, text.len, b->msg);
    sl__buf_free(&text);
    if (b->rinfo.failed)
        fprintf(b->msg, "  %" PRIu64 " of the skipped ids had failed in an earlier run\n",
                b->rinfo.failed);
    fflush(b->msg);
    if (b->summary_json) {
        char err[512];
        if (sl__batch_summary_save_json(b->sum, b->summary_json, err, sizeof err)) {
            say(b, "%s", err);
            output_error = 1;
        }
    }

    if (b->fatal || b->strict_hit || input_error || output_error)
        b->exit_code = SL_BATCH_EXIT_USAGE;
    else if (b->stopping && left)
        b->exit_code = SL_BATCH_EXIT_INTERRUPTED;
    else if (b->cnt.failed || b->rinfo.failed)
        b->exit_code = SL_BATCH_EXIT_FAILED;
    else if (left)
        b->exit_code = SL_BATCH_EXIT_INTERRUPTED; /* the input ended early without a stop */
    else
        b->exit_code = SL_BATCH_EXIT_OK;

    close_handle(b, (uv_handle_t *)&b->tick);
    close_handle(b, (uv_handle_t *)&b->grace);
    close_handle(b, (uv_handle_t *)&b->fin);
    close_handle(b, (uv_handle_t *)&b->more);
    close_handle(b, (uv_handle_t *)&b->async);
}

static void on_fin(uv_timer_t *t)
{
    finish(t->data);
}

/* Finish once nothing runs and nothing more will be read; from a timer, so that it
 * never runs inside a call's callback (the policy goes away in finish). */
static void maybe_finish(sl_batch *b)
{
    if (!b->started || b->finishing || b->in_flight)
        return;
    if (!b->stopping) {
        feed *f = b->feed;
        pthread_mutex_lock(&f->mu);
        int drained = f->ended && f->count == 0;
        pthread_mutex_unlock(&f->mu);
        if (!drained)
            return;
    }
    b->finishing = 1;
    uv_timer_start(&b->fin, on_fin, 0, 0);
}

static void cancel_all(sl_batch *b)
{
    b->cancelling = 1;
    uv_timer_stop(&b->grace);
    for (int i = 0; i < b->o.concurrency; i++)
        if (b->slots[i].call)
            sl_call_cancel(b->slots[i].call); /* on_done follows from the loop */
}

static void on_grace(uv_timer_t *t)
{
    sl_batch *b = t->data;
    if (b->in_flight)
        say(b, "grace period over: cancelling %" PRIu64 " in-flight requests", b->in_flight);
    cancel_all(b);
}

void sl_batch_stop(sl_batch *b, int now)
{
    if (!b || !b->started || b->finishing)
        return;
    if (!b->stopping) {
        b->stopping = 1;
        feed_stop(b->feed);
        if (!now && b->in_flight)
            uv_timer_start(&b->grace, on_grace, (uint64_t)(b->o.grace_s * 1000 + 0.5), 0);
    }
    if (now && !b->cancelling)
        cancel_all(b);
    maybe_finish(b);
}

/* A failure that stops everything: the output cannot be written. */
static void fatal(sl_batch *b)
{
    if (b->fatal)
        return;
    b->fatal = 1;
    sl_batch_stop(b, 1);
}

/* ---- results ---------------------------------------------------------------------- */

static void write_failed(sl_batch *b, sl_batch_output *o, const char *path, int rc)
{
    const char *why = sl__batch_output_error(o);
    if (*why)
        say(b, "%s", why);
    else
        say(b, "cannot write %s: %s", path, sl_strerror(rc));
    fatal(b);
}

/* Write r to OUTPUT (and, failed, to the errors file). Returns -1 if OUTPUT could not
 * be written (the run stops; the id stays unfinished), else failed, which is 1 also when
 * a result too large for a line was written as a failure instead. */
static int write_result(sl_batch *b, const sl_batch_result *r, int failed)
{
    if (b->fatal)
        return -1;
    /* One line, the same bytes in OUTPUT and in the errors file (same "id"). */
    char req_id[SL_BATCH_REQ_ID_LEN];
    sl__batch_output_next_req_id(b->out, req_id);
    sl__buf_reset(&b->result);
    int rc = sl__batch_result_line(&b->result, req_id, r);
    if (rc) {
        /* Too large or out of memory: the id still gets its line, without the body. */
        sl_batch_result small = *r;
        small.body = (sl_str){NULL, 0};
        small.error_code = "error";
        small.error_message = rc == SL_ELIMIT ? "the result is too large to write"
                                              : "out of memory writing the result";
        failed = 1;
        sl__buf_reset(&b->result);
        if (sl__batch_result_line(&b->result, req_id, &small)) {
            say(b, "cannot build the result line of %s", r->custom_id);
            fatal(b);
            return -1;
        }
    }
    rc = sl__batch_output_write_line(b->out, b->result.data, b->result.len, r->custom_id);
    if (rc < 0) {
        write_failed(b, b->out, b->output, rc);
        return -1;
    }
    /* OUTPUT first: it is the record; the errors file copies its failed lines. */
    if (failed && b->errs &&
        (rc = sl__batch_output_write_line(b->errs, b->result.data, b->result.len, r->custom_id)) <
            0)
        write_failed(b, b->errs, b->errors, rc);
    if (b->result.cap > 1u << 20) {
        /* one huge answer must not pin its memory for the rest of the run */
        sl__buf_free(&b->result);
        sl__buf_init(&b->result, SL_BATCH_MAX_RESULT_LINE);
    }
    return failed;
}

/* The "error.code" of a failed call in the output line. */
static void record_call(sl_batch *b, const slot *s, const sl_result *res)
{
    int failed = res->error != 0;
    sl_batch_result r;
    memset(&r, 0, sizeof r);
    r.custom_id = s->id;
    char code[32];
    if (!failed) {
        r.status_code = res->http_status ? res->http_status : 200;
        r.request_id = res->request_id;
        r.body = res->body;
    } else {
        /* The provider's answer is kept for an HTTP error; any other failure (cut stream,
         * timeout, reset) has no usable answer: "response": null. */
        if (res->error == SL_EHTTP) {
            r.status_code = res->http_status;
            r.request_id = res->request_id;
            r.body = res->error_body.len ? res->error_body : (sl_str){NULL, 0};
        }
        r.error_code = sl__batch_error_code(res->error, res->http_status, code, sizeof code);
        r.error_message = res->message ? res->message : sl_strerror(res->error);
    }
    r.attempts = res->attempts;
    r.attempt_log = res->attempt_log;
    r.attempt_log_len = res->attempt_log_len;
    int w = write_result(b, &r, failed);
    if (w < 0)
        return; /* not written: unfinished */
    if (w && !failed) {
        failed = 1; /* written as a failure: the answer did not fit in a line */
        r.error_message = "the result is too large to write";
    }

    sl_batch_record rec;
    memset(&rec, 0, sizeof rec);
    rec.id = s->id;
    rec.line_no = s->line_no;
    rec.outcome = failed && !res->error ? SL_BATCH_PROTOCOL
                                        : sl__batch_outcome_of(res->error, res->http_status);
    rec.http_status = res->http_status;
    rec.message = failed ? r.error_message : NULL;
    rec.total_ms = res->timings.total_ms;
    rec.attempts = res->attempts;
    rec.prompt_tokens = res->usage.prompt_tokens;
    rec.completion_tokens = res->usage.completion_tokens;
    sl__batch_summary_add(b->sum, &rec);

    b->cnt.done++;
    if (failed)
        b->cnt.failed++;
    else
        b->cnt.ok++;
    if (res->usage.prompt_tokens > 0)
        b->cnt.prompt_tokens += (uint64_t)res->usage.prompt_tokens;
    if (res->usage.completion_tokens > 0)
        b->cnt.completion_tokens += (uint64_t)res->usage.completion_tokens;
    b->cnt.bytes += res->body.len + res->error_body.len;
}

static void pump(sl_batch *b);

static void on_call_retry(sl_call *call, int attempt, int err, int http_status, double delay_ms,
                          void *user)
{
    slot *s = user;
    if (!s->retried) {
        s->retried = 1;
        s->b->cnt.retrying++;
    }
    s->b->cnt.retries++;
}

static void on_call_done(sl_call *call, const sl_result *res, void *user)
{
    slot *s = user;
    sl_batch *b = s->b;
    if (s->retried)
        b->cnt.retrying--;
    b->in_flight--;
    /* A cancelled call writes nothing: a --resume runs it again. */
    if (res->error == SL_ECANCELED)
        b->cancelled++;
    else
        record_call(b, s, res);
    sl_call_free(call); /* freed once this callback returns */
    free(s->id);
    s->id = NULL;
    s->call = NULL;
    b->free_slots[b->nfree++] = (int)(s - b->slots);
    pump(b);
}

/* ---- items ------------------------------------------------------------------------ */

static void invalid_line(sl_batch *b, sl_batch_item *it)
{
    if (it->id && sl__batch_output_has(b->out, it->id)) {
        b->cnt.skipped++;
        b->sum->skipped++;
        return;
    }
    if (it->id) {
        sl_batch_result r;
        memset(&r, 0, sizeof r);
        r.custom_id = it->id;
        r.error_code = it->error_code;
        r.error_message = it->error;
        if (write_result(b, &r, 1) < 0)
            return;
    }
    /* "line N: what" -> "INPUT:N: what" */
    const char *what = it->error ? it->error : it->error_code;
    char prefix[40];
    snprintf(prefix, sizeof prefix, "line %" PRIu64 ": ", it->line_no);
    if (!strncmp(what, prefix, strlen(prefix)))
        what += strlen(prefix);
    if (b->line_msgs < MAX_LINE_MESSAGES)
        say(b, "%s:%" PRIu64 ": %s", b->input_name, it->line_no, what);
    else if (b->line_msgs == MAX_LINE_MESSAGES)
        say(b, "more invalid lines are not shown here; the summary lists them");
    b->line_msgs++;

    sl_batch_record rec;
    memset(&rec, 0, sizeof rec);
    rec.id = it->id;
    rec.line_no = it->line_no;
    rec.outcome = SL_BATCH_INVALID;
    rec.message = it->error;
    rec.total_ms = -1;
    rec.prompt_tokens = rec.completion_tokens = -1;
    sl__batch_summary_add(b->sum, &rec);
    b->cnt.done++;
    b->cnt.failed++;
    b->cnt.invalid++;

    if (b->o.strict && !b->strict_hit) {
        b->strict_hit = 1;
        say(b, "--strict: stopping at the first invalid line");
        sl_batch_stop(b, 0);
    }
}

static void start_item(sl_batch *b, sl_batch_item *it)
{
    /* A request that borrows the item's body: sl_call_start copies it. */
    sl_request req = {.body = it->body, .endpoint = (char *)it->endpoint};
    int rc = 0;
    if (strcmp(it->endpoint, "/embeddings"))
        rc = sl_request_set_stream(&req, b->o.stream);
    int idx = b->free_slots[b->nfree - 1];
    slot *s = &b->slots[idx];
    sl_call_opts co;
    memset(&co, 0, sizeof co);
    co.on_done = on_call_done;
    co.on_retry = on_call_retry;
    co.user = s;
    co.timeout_ms = b->o.timeout_ms;
    co.policy = b->policy;
    if (!rc)
        rc = sl_call_start(b->o.client, &req, &co, &s->call);
    if (rc) {
        /* Not sent: a failed line, so the id is accounted for. */
        sl_buf m;
        sl__buf_init(&m, 0);
        sl__buf_printf(&m, "cannot start the request: %s", sl_strerror(rc));
        sl_batch_result r;
        memset(&r, 0, sizeof r);
        r.custom_id = it->id;
        r.error_code = "error";
        r.error_message = m.data ? m.data : sl_strerror(rc);
        if (write_result(b, &r, 1) < 0) {
            sl__buf_free(&m);
            return;
        }
        sl_batch_record rec;
        memset(&rec, 0, sizeof rec);
        rec.id = it->id;
        rec.line_no = it->line_no;
        rec.outcome = SL_BATCH_OTHER;
        rec.message = r.error_message;
        rec.total_ms = -1;
        rec.prompt_tokens = rec.completion_tokens = -1;
        sl__batch_summary_add(b->sum, &rec);
        sl__buf_free(&m);
        b->cnt.done++;
        b->cnt.failed++;
        return;
    }
    b->nfree--;
    s->id = it->id;
    it->id = NULL;
    s->line_no = it->line_no;
    s->retried = 0;
    b->in_flight++;
}

static void handle_item(sl_batch *b, sl_batch_item *it)
{
    if (it->error_code) {
        invalid_line(b, it);
    } else if (sl__batch_output_has(b->out, it->id)) {
        b->cnt.skipped++;
        b->sum->skipped++;
    } else {
        start_item(b, it);
    }
}

static void on_more(uv_idle_t *h);

/* Start what the concurrency allows, at most PUMP_BURST calls before the loop polls again:
 * starting a call opens its connection (~40 us of kernel time on loopback), and a thousand
 * at once would hold back every request until the last connection is open. Between bursts
 * the loop sends the requests whose connections are ready, so the provider's clock starts
 * for them at once. Smaller bursts also spread the streams' chunks in time, which costs
 * CPU (more, smaller wake-ups of the loop): at C=1000, 32 gave the same wall time as 128
 * with ~10% more CPU (bench/batch.sh). */
#define PUMP_BURST 128

static void pump(sl_batch *b)
{
    int started = 0;
    while (!b->stopping && !b->finishing && b->in_flight < (uint64_t)b->o.concurrency) {
        if (started == PUMP_BURST) {
            uv_idle_start(&b->more, on_more);
            return;
        }
        sl_batch_item item;
        if (feed_pop(b->feed, &item) <= 0)
            break;
        handle_item(b, &item);
        sl__batch_item_clear(&item);
        started++;
    }
    maybe_finish(b);
}

static void on_more(uv_idle_t *h)
{
    uv_idle_stop(h);
    pump(h->data);
}

static void on_async(uv_async_t *a)
{
    pump(a->data);
}

/* ---- new, start, free ------------------------------------------------------------- */

static char *dup_opt(const char *s, int *bad)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *bad = 1;
    return d;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Remove a new, empty OUTPUT (and its side file) that this sl_batch_new created before
 * a later step failed, so that the same command can simply be run again. */
static void unlink_new_output(const char *path)
{
    char side[4096];
    unlink(path);
    if ((size_t)snprintf(side, sizeof side, "%s%s", path, SL_BATCH_SIDE_SUFFIX) < sizeof side)
        unlink(side);
}

void sl_batch_free(sl_batch *b)
{
    if (!b)
        return;
    if (b->feed) {
        if (b->feed->thread_started) /* freed before on_done: stop the reader */
            feed_release(b);
        if (b->feed) {
            pthread_mutex_lock(&b->feed->mu);
            feed_unref_unlock(b->feed);
        }
    }
    if (b->out)
        sl__batch_output_close(b->out, NULL, 0);
    if (b->errs)
        sl__batch_output_close(b->errs, NULL, 0);
    sl_policy_free(b->policy);
    if (b->sum) {
        sl__batch_summary_free(b->sum);
        free(b->sum);
    }
    sl__buf_free(&b->line);
    sl__buf_free(&b->result);
    if (b->slots)
        for (int i = 0; i < b->o.concurrency; i++)
            free(b->slots[i].id);
    free(b->slots);
    free(b->free_slots);
    free(b->input);
    free(b->output);
    free(b->errors);
    free(b->summary_json);
    free(b->model);
    free(b);
}

/* Two of the run's file arguments naming one file (the same path, or one file under two
 * paths); '-' is standard output, handled apart. */
static int same_file(const char *a, const char *b)
{
    if (!strcmp(a, "-") || !strcmp(b, "-"))
        return 0;
    if (!strcmp(a, b))
        return 1;
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int sl_batch_new(uv_loop_t *loop, const sl_batch_opts *o, sl_batch **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = '\0';
#define FAIL(code, ...)                                                                            \
    do {                                                                                           \
        if (errlen)                                                                                \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
        rc = (code);                                                                               \
        goto fail;                                                                                 \
    } while (0)
    int rc = 0;
    sl_batch *b = NULL;
    int created_output = 0;
    if (!loop || !o || !o->input || !o->output || !o->client) {
        if (errlen)
            snprintf(err, errlen, "an input, an output and a client are required");
        return SL_EINVAL;
    }
    if (o->concurrency < 1 || o->concurrency > MAX_CONCURRENCY) {
        if (errlen)
            snprintf(err, errlen, "concurrency must be in [1, %d]", MAX_CONCURRENCY);
        return SL_EINVAL;
    }
    if (!(o->grace_s >= 0) || !(o->status_interval_s >= 0) || o->timeout_ms < 0 ||
        o->progress < SL_PROGRESS_AUTO || o->progress > SL_PROGRESS_NEVER) {
        if (errlen)
            snprintf(err, errlen, "invalid batch options");
        return SL_EINVAL;
    }
    b = calloc(1, sizeof *b);
    if (!b)
        return SL_ENOMEM;
    int bad = 0;
    b->loop = loop;
    b->o = *o;
    b->o.input = b->input = dup_opt(o->input, &bad);
    b->o.output = b->output = dup_opt(o->output, &bad);
    b->o.errors = b->errors = dup_opt(o->errors, &bad);
    b->o.summary_json = b->summary_json = dup_opt(o->summary_json, &bad);
    b->o.model = b->model = dup_opt(o->model, &bad);
    if (b->o.status_interval_s == 0)
        b->o.status_interval_s = 10;
    b->msg = o->messages ? o->messages : stderr;
    b->input_name = strcmp(o->input, "-") ? b->input : "stdin";
    sl__buf_init(&b->line, 0);
    /* never a line longer than a resume can read back */
    sl__buf_init(&b->result, SL_BATCH_MAX_RESULT_LINE);
    b->sum = malloc(sizeof *b->sum);
    b->slots = calloc((size_t)o->concurrency, sizeof *b->slots);
    b->free_slots = malloc((size_t)o->concurrency * sizeof *b->free_slots);
    b->feed = calloc(1, sizeof *b->feed);
    if (bad || !b->sum || !b->slots || !b->free_slots || !b->feed) {
        free(b->feed);
        b->feed = NULL;
        FAIL(SL_ENOMEM, "out of memory");
    }
    sl__batch_summary_init(b->sum, 0);
    if (!strcmp(o->output, "-") && o->errors && !strcmp(o->errors, "-"))
        FAIL(SL_EINVAL, "-o - and --errors - would write each failure to stdout twice");
    if (!strcmp(o->output, "-") && o->summary_json && !strcmp(o->summary_json, "-"))
        FAIL(SL_EINVAL, "-o - and --summary-json - would mix the summary into the results");
    if (o->errors && o->summary_json && !strcmp(o->errors, "-") && !strcmp(o->summary_json, "-"))
        FAIL(SL_EINVAL, "--errors - and --summary-json - would mix the summary into the failures");
    if (o->errors && same_file(o->output, o->errors))
        FAIL(SL_EINVAL, "-o and --errors name the same file (%s)", o->errors);
    if (o->summary_json && (same_file(o->output, o->summary_json) ||
                            (o->errors && same_file(o->errors, o->summary_json))))
        FAIL(SL_EINVAL, "--summary-json names the file of -o or --errors (%s)", o->summary_json);
    if (o->summary_json && strcmp(o->summary_json, "-")) {
        /* written at the end, beside it: find out now that it cannot be */
        char dir[4096];
        const char *slash = strrchr(o->summary_json, '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else
            snprintf(dir, sizeof dir, "%.*s",
                     slash == o->summary_json ? 1 : (int)(slash - o->summary_json),
                     o->summary_json);
        struct stat sj;
        if (stat(o->summary_json, &sj) == 0 && S_ISDIR(sj.st_mode))
            FAIL(SL_EIO, "cannot write the summary to %s: it is a directory", o->summary_json);
        if (access(dir, W_OK | X_OK))
            FAIL(SL_EIO, "cannot write the summary to %s: %s", o->summary_json, strerror(errno));
    }
    for (int i = 0; i < o->concurrency; i++) {
        b->slots[i].b = b;
        b->free_slots[i] = o->concurrency - 1 - i; /* slot 0 first */
    }
    b->nfree = o->concurrency;
    feed *f = b->feed;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->room, NULL);
    f->refs = 1;

    /* The input: scanned first when it is a regular file (fingerprint, progress total). */
    if (strcmp(o->input, "-")) {
        struct stat st;
        if (stat(o->input, &st))
            FAIL(SL_EIO, "cannot open %s: %s", o->input, strerror(errno));
        if (S_ISDIR(st.st_mode))
            FAIL(SL_EIO, "cannot read %s: it is a directory", o->input);
        b->input_regular = S_ISREG(st.st_mode);
        if (b->input_regular) {
            rc = sl__batch_input_scan(o->input, 0, &b->scan, err, errlen);
            if (rc)
                goto fail;
            b->scanned = 1;
            b->cnt.total = b->scan.items;
        }
    }
    sl_batch_input_opts io = {.default_model = o->model, .max_line = 0};
    rc = sl__batch_input_open(o->input, &io, &f->in, err, errlen);
    if (rc)
        goto fail;

    if (o->resume && !strcmp(o->output, "-"))
        FAIL(SL_EINVAL, "--resume needs an output file, not stdout");
    sl_batch_output_opts oo;
    sl__batch_output_opts_init(&oo);
    oo.resume = o->resume;
    oo.side_file = 1;
    oo.input_path = strcmp(o->input, "-") ? o->input : NULL;
    oo.input_fingerprint = b->scan.fingerprint;
    oo.fingerprint_known = b->scanned;
    /* The input refuses duplicate ids and an id with a result is skipped before it runs,
     * so no id reaches the outputs twice: they need to remember only the ids read back,
     * and the input's set stays the only copy of every id. */
    oo.forget_written = 1;
    int output_existed = strcmp(o->output, "-") ? file_exists(o->output) : 1;
    rc = sl__batch_output_open(o->output, &oo, &b->out, &b->rinfo, err, errlen);
    if (rc)
        goto fail;
    created_output = !output_existed;
    if (b->rinfo.needs_id_check && b->scanned) {
        /* No side file to compare with: read the file's ids now, before anything runs
         * (only a stream has to wait for its end). */
        sl_batch_input *pre = NULL;
        rc = sl__batch_input_open(o->input, &io, &pre, err, errlen);
        if (rc)
            goto fail;
        sl_batch_item it;
        memset(&it, 0, sizeof it);
        int r;
        while ((r = sl__batch_input_next(pre, &it)) == 1)
            sl__batch_item_clear(&it);
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", o->input, sl__batch_input_error(pre));
            sl__batch_input_free(pre);
            rc = SL_EIO;
            goto fail;
        }
        rc = sl__batch_output_check_ids(b->out, sl__batch_input_ids(pre),
                                        sl__batch_input_fingerprint(pre), err, errlen);
        sl__batch_input_free(pre);
        if (rc)
            goto fail;
        b->rinfo.needs_id_check = 0;
    }
    if (o->errors) {
        /* sl__batch_errors_open, plus forget_written */
        sl_batch_output_opts eo;
        sl__batch_output_opts_init(&eo);
        eo.resume = o->resume;
        eo.side_file = 0;
        eo.forget_written = 1;
        rc = sl__batch_output_open(o->errors, &eo, &b->errs, &b->einfo, err, errlen);
        if (rc)
            goto fail;
    }

    sl_policy_opts po = o->policy;
    po.concurrency = 0; /* the batch keeps its own bound */
    rc = sl_policy_new(loop, &po, &b->policy);
    if (rc)
        FAIL(rc, "invalid retry or rate-limit options: %s", sl_strerror(rc));
    *out = b;
    return 0;
fail:
    if (b->out) {
        sl__batch_output_close(b->out, NULL, 0);
        b->out = NULL;
        if (created_output)
            unlink_new_output(o->output);
    }
    sl_batch_free(b);
    return rc;
#undef FAIL
}

int sl_batch_start(sl_batch *b, sl_batch_done_cb on_done, void *user)
{
    if (!b || b->started)
        return SL_EINVAL;
    b->on_done = on_done;
    b->user = user;
    feed *f = b->feed;
    uv_async_init(b->loop, &b->async, on_async);
    uv_timer_init(b->loop, &b->tick);
    uv_timer_init(b->loop, &b->grace);
    uv_timer_init(b->loop, &b->fin);
    uv_idle_init(b->loop, &b->more);
    b->async.data = b->tick.data = b->grace.data = b->fin.data = b->more.data = b;
    f->async = &b->async;
    f->refs = 2;
    if (pthread_create(&f->thread, NULL, feed_main, f)) {
        f->refs = 1;
        f->async = NULL;
        uv_close((uv_handle_t *)&b->async, NULL);
        uv_close((uv_handle_t *)&b->tick, NULL);
        uv_close((uv_handle_t *)&b->grace, NULL);
        uv_close((uv_handle_t *)&b->fin, NULL);
        uv_close((uv_handle_t *)&b->more, NULL);
        return SL_ENOMEM;
    }
    f->thread_started = 1;
    b->started = 1;
    b->t_start = sl__clock_ms();
    sl__batch_progress_init(&b->prog, b->t_start);
    b->cnt.total = b->scanned ? b->scan.items : 0;

    if (b->rinfo.torn)
        say(b,
            "%s: removed a torn last line (line %" PRIu64 ", %" PRIu64
            " bytes); its request runs again",
            b->output, b->rinfo.torn_line, b->rinfo.torn_bytes);
    if (b->einfo.torn)
        say(b, "%s: removed a torn last line (line %" PRIu64 ", %" PRIu64 " bytes)", b->errors,
            b->einfo.torn_line, b->einfo.torn_bytes);
    if (b->rinfo.resumed)
        say(b, "resuming %s: %" PRIu64 " results kept (%" PRIu64 " failed)", b->output,
            b->rinfo.ids, b->rinfo.failed);
    if (b->rinfo.resumed && b->rinfo.needs_id_check)
        say(b,
            "%s cannot be checked against %s before the run (the input is a stream): it is "
            "checked when the input ends",
            b->input_name, b->output);

    int tty = isatty(fileno(b->msg));
    b->bar = b->o.progress == SL_PROGRESS_ALWAYS || (b->o.progress == SL_PROGRESS_AUTO && tty);
    b->status = b->o.progress == SL_PROGRESS_AUTO && !tty;
    if (b->bar) {
        render(b); /* 0/N at once */
        uv_timer_start(&b->tick, on_tick, BAR_INTERVAL_MS, BAR_INTERVAL_MS);
    } else if (b->status) {
        uint64_t ms = (uint64_t)(b->o.status_interval_s * 1000 + 0.5);
        if (ms > 1000)
            ms = 1000;
        b->next_status_ms = b->t_start + b->o.status_interval_s * 1000;
        uv_timer_start(&b->tick, on_tick, ms ? ms : 1, ms ? ms : 1);
    }
    pump(b);
    return 0;
}

void sl_batch_get_stats(const sl_batch *b, sl_batch_stats *st)
{
    memset(st, 0, sizeof *st);
    st->total = b->scanned ? b->scan.items : 0;
    st->skipped = b->cnt.skipped;
    st->ok = b->cnt.ok;
    st->failed = b->cnt.failed;
    st->invalid = b->cnt.invalid;
    st->in_flight = b->in_flight;
    st->retrying = b->cnt.retrying;
    st->retries = b->cnt.retries;
    st->unfinished = b->sum ? b->sum->unfinished : 0;
    st->prompt_tokens = b->cnt.prompt_tokens;
    st->completion_tokens = b->cnt.completion_tokens;
}
