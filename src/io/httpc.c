/* httpc.c — HTTP client: libcurl multi_socket driven by libuv (see httpc.h).
 *
 * libcurl tells us which sockets to watch (on_curl_socket: one uv_poll each) and when
 * to wake it (on_curl_timer_set: one uv_timer); we hand readiness back with
 * curl_multi_socket_action and collect finished transfers with curl_multi_info_read.
 *
 * Sockets are watched from the moment curl asks until curl closes them (our open and
 * close socket callbacks bracket each one), not from CURL_POLL_IN to CURL_POLL_REMOVE:
 * a kept-alive connection goes back to curl's cache after each request and is asked for
 * again by the next one, and re-registering it with epoll each time cost four epoll_ctl
 * and an ioctl per request. Between requests its poll handle stays armed but unreferenced
 * (it does not keep the loop alive); an event while curl does not want the socket (the
 * server closed it) only stops the watch.
 *
 * Finished easy handles are reset and kept for the next request (up to the number of
 * requests running, at least IDLE_EASY_MIN): creating one is most of curl's per-request
 * cost. A handle that was paused or ended abnormally is not reused.
 *
 * Two counters keep the re-entrancy straight. in_curl is non-zero while libcurl is on the
 * stack: then curl_multi_add_handle / remove_handle are forbidden (CURLM_RECURSIVE_API_CALL),
 * so add, cancel, free and resume are queued as the request's task. busy is non-zero
 * while one of our libuv callbacks runs: sl__httpc_free then only marks the client dying
 * and the outermost callback tears it down on its way out. */
#include "io/httpc.h"

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

#define DEFAULT_MAX_HEADER_BYTES (64u << 10)
#define IDLE_EASY_MIN            64
/* curl's receive buffer, one per easy handle (16 KiB by default): SSE events are small and
 * a streamed answer arrives a few hundred bytes at a time. curl 7.88 allocates it once per
 * handle and a reset handle keeps it, so every request must ask for this same size. */
#define RECV_BUFFER_BYTES (4u << 10)

struct sl_httpc_headers {
    struct curl_slist *list;
    struct sl_httpc_headers *next;
};

typedef struct poll_ctx poll_ctx;

struct sl_httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t curl_timer;  /* libcurl's single timeout */
    uv_timer_t defer_timer; /* runs queued tasks */
    sl_httpc_opts o;
    sl_link reqs; /* requests not yet finalized */
    size_t nreqs;
    sl_link polls;   /* open poll contexts */
    poll_ctx **byfd; /* the poll context of each socket curl opened, by descriptor */
    size_t nbyfd;
    CURL **idle; /* reset easy handles kept for reuse */
    size_t nidle, capidle;
    sl_httpc_headers *header_sets;
    sl_link tasks; /* queued tasks */
    sl_link batch; /* tasks taken for the current run */
    int in_curl;
    int busy;
    int dying;
    int closing; /* handle closes still to come before the struct can go */
};

/* One socket curl opened and asked us to watch. Found through curl_multi_assign, or by
 * descriptor in byfd, which our open and close socket callbacks keep exact. */
struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    sl_httpc *h;
    sl_link link;
    int armed;  /* events the poll handle watches (0: stopped) */
    int wanted; /* events curl wants (0: none since CURL_POLL_REMOVE) */
};

struct sl_httpc_req {
    sl_httpc *h;
    CURL *easy;
    struct curl_slist *hdrs; /* own header lines, or NULL with a header set */
    sl_link link;
    sl_httpc_task task;
    uv_timer_t timer; /* first-byte / idle / total deadlines */
    sl_httpc_head head;
    sl_httpc_head_cb on_head;
    sl_httpc_data_cb on_data;
    sl_httpc_done_cb on_done;
    void *user;
    long first_byte_ms, idle_ms, total_ms;
    uint64_t t_start, t_sent, t_last_rx; /* uv_now() */
    unsigned in_multi : 1;
    unsigned need_add : 1;
    unsigned sent : 1;
    unsigned got_byte : 1;
    unsigned head_done : 1;
    unsigned paused : 1;
    unsigned resume_wanted : 1;
    unsigned canceled : 1;
    unsigned freed : 1;
    unsigned done : 1;
    unsigned finalized : 1;
    unsigned ever_paused : 1;
    unsigned completed : 1; /* curl reported the transfer done with CURLE_OK */
    int depth;              /* > 0 while one of the owner's callbacks runs */
    int have_retry_ms;      /* retry-after-ms seen: it wins over Retry-After */
    int abort_err;
    char abort_msg[160];
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_global_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : SL_ENOMEM;
}

/* ---- client lifetime -------------------------------------------------------------- */

static void teardown(sl_httpc *h);
static void finalize(sl_httpc_req *r);

static void enter(sl_httpc *h)
{
    h->busy++;
}

static void leave(sl_httpc *h)
{
    if (--h->busy == 0 && h->dying)
        teardown(h);
}

void sl__httpc_opts_init(sl_httpc_opts *o)
{
    memset(o, 0, sizeof *o);
}

uv_loop_t *sl__httpc_loop(const sl_httpc *h)
{
    return h->loop;
}

static void on_handle_closed(uv_handle_t *handle)
{
    sl_httpc *h = handle->data;
    if (--h->closing == 0)
        free(h);
}

static void on_poll_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void close_poll(poll_ctx *pc)
{
    sl_httpc *h = pc->h;
    if ((size_t)pc->fd < h->nbyfd && h->byfd[pc->fd] == pc)
        h->byfd[pc->fd] = NULL;
    sl__list_remove(&pc->link);
    uv_close((uv_handle_t *)&pc->poll, on_poll_closed);
}

static void teardown(sl_httpc *h)
{
    while (!sl__list_empty(&h->reqs)) {
        sl_httpc_req *r = SL_CONTAINER_OF(h->reqs.next, sl_httpc_req, link);
        r->freed = 1;
        finalize(r);
    }
    while (!sl__list_empty(&h->tasks))
        sl__list_remove(h->tasks.next);
    while (!sl__list_empty(&h->batch))
        sl__list_remove(h->batch.next);
    h->in_curl++;
    curl_multi_cleanup(h->multi); /* may report CURL_POLL_REMOVE for cached connections */
    h->in_curl--;
    h->multi = NULL;
    while (!sl__list_empty(&h->polls))
        close_poll(SL_CONTAINER_OF(h->polls.next, poll_ctx, link));
    free(h->byfd);
    h->byfd = NULL;
    h->nbyfd = 0;
    while (h->nidle)
        curl_easy_cleanup(h->idle[--h->nidle]);
    free(h->idle);
    h->idle = NULL;
    while (h->header_sets) {
        sl_httpc_headers *hs = h->header_sets;
        h->header_sets = hs->next;
        curl_slist_free_all(hs->list);
        free(hs);
    }
    h->closing = 2;
    uv_close((uv_handle_t *)&h->curl_timer, on_handle_closed);
    uv_close((uv_handle_t *)&h->defer_timer, on_handle_closed);
}

void sl__httpc_free(sl_httpc *h)
{
    if (!h || h->dying)
        return;
    h->dying = 1;
    if (h->busy == 0)
        teardown(h);
}

/* ---- deferred tasks ----------------------------------------------------------------- */

void sl__httpc_task_init(sl_httpc_task *t, void (*run)(sl_httpc_task *t))
{
    t->run = run;
    sl__list_init(&t->link);
}

static void on_defer(uv_timer_t *timer)
{
    sl_httpc *h = timer->data;
    enter(h);
    /* Take the current queue: tasks deferred while these run wait for the next turn. */
    sl__list_splice(&h->batch, &h->tasks);
    while (!h->dying && !sl__list_empty(&h->batch)) {
        sl_link *l = h->batch.next;
        sl__list_remove(l);
        sl_httpc_task *t = SL_CONTAINER_OF(l, sl_httpc_task, link);
        t->run(t);
    }
    leave(h);
}

void sl__httpc_defer(sl_httpc *h, sl_httpc_task *t)
{
    if (sl__list_linked(&t->link) || h->dying)
        return;
    sl__list_push(&h->tasks, &t->link);
    if (!uv_is_active((uv_handle_t *)&h->defer_timer))
        uv_timer_start(&h->defer_timer, on_defer, 0, 0);
}

void sl__httpc_undefer(sl_httpc_task *t)
{
    sl__list_remove(&t->link);
}

/* ---- driving libcurl ---------------------------------------------------------------- */

static void deliver_done(sl_httpc_req *r, int err, const char *msg);

static void remove_now(sl_httpc_req *r)
{
    if (!r->in_multi)
        return;
    r->h->in_curl++;
    curl_multi_remove_handle(r->h->multi, r->easy);
    r->h->in_curl--;
    r->in_multi = 0;
}

static int map_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return SL_ETIMEDOUT;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return SL_EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return SL_ENOMEM;
    default:
        return SL_ETRANSPORT;
    }
}

static void check_multi_info(sl_httpc *h)
{
    CURLMsg *m;
    int left;
    while (!h->dying && (m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = m->data.result;
        sl_httpc_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        remove_now(r); /* m is invalid from here on */
        r->completed = rc == CURLE_OK && !r->canceled && !r->abort_err;
        if (r->freed) {
            finalize(r);
            continue;
        }
        if (r->canceled)
            deliver_done(r, SL_ECANCELED, "cancelled");
        else if (r->abort_err)
            deliver_done(r, r->abort_err, r->abort_msg);
        else if (rc == CURLE_OK)
            deliver_done(r, 0, "");
        else
            deliver_done(r, map_curl(rc), r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    }
}

static void drive(sl_httpc *h, curl_socket_t fd, int flags)
{
    int running;
    h->in_curl++;
    curl_multi_socket_action(h->multi, fd, flags, &running);
    h->in_curl--;
    if (!h->in_curl)
        check_multi_info(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    poll_ctx *pc = p->data;
    sl_httpc *h = pc->h;
    if (!pc->wanted) {
        /* an idle kept-alive connection: the server closed it, or sent something curl
         * will see when it next uses it. Stop watching until then. */
        uv_poll_stop(&pc->poll);
        pc->armed = 0;
        return;
    }
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    enter(h);
    drive(h, pc->fd, flags);
    leave(h);
}

static poll_ctx *poll_of(sl_httpc *h, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < h->nbyfd ? h->byfd[fd] : NULL;
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp)
{
    sl_httpc *h = ud;
    poll_ctx *pc = sockp ? sockp : poll_of(h, fd);
    if (what == CURL_POLL_REMOVE) {
        if (pc) {
            /* stays armed, unreferenced, until an event or curl wants it again */
            curl_multi_assign(h->multi, fd, NULL);
            pc->wanted = 0;
            uv_unref((uv_handle_t *)&pc->poll);
        }
        return 0;
    }
    if (!pc) {
        if (fd < 0)
            return -1;
        if ((size_t)fd >= h->nbyfd) {
            size_t n = h->nbyfd ? h->nbyfd : 64;
            while (n <= (size_t)fd)
                n *= 2;
            poll_ctx **t = realloc(h->byfd, n * sizeof *t);
            if (!t)
                return -1;
            memset(t + h->nbyfd, 0, (n - h->nbyfd) * sizeof *t);
            h->byfd = t;
            h->nbyfd = n;
        }
        pc = calloc(1, sizeof *pc);
        if (!pc)
            return -1;
        if (uv_poll_init_socket(h->loop, &pc->poll, fd) != 0) {
            free(pc);
            return -1;
        }
        pc->fd = fd;
        pc->h = h;
        pc->poll.data = pc;
        sl__list_push(&h->polls, &pc->link);
        h->byfd[fd] = pc;
    }
    if (!sockp)
        curl_multi_assign(h->multi, fd, pc);
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    if (!pc->wanted)
        uv_ref((uv_handle_t *)&pc->poll);
    pc->wanted = events;
    if (pc->armed != events) {
        /* uv_poll_start re-registers with epoll: only when the events change */
        uv_poll_start(&pc->poll, events, on_poll);
        pc->armed = events;
    }
    return 0;
}

/* Every socket curl uses comes from here: a descriptor the kernel hands out again is a new
 * socket, so whatever was kept for an old one of that number goes. */
static curl_socket_t on_curl_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    sl_httpc *h = ud;
    curl_socket_t fd = socket(a->family, a->socktype, a->protocol);
    poll_ctx *pc = poll_of(h, fd);
    if (pc)
        close_poll(pc);
    return fd;
}

/* curl has removed the socket from its watch list (CURL_POLL_REMOVE) before this. */
static int on_curl_close_socket(void *ud, curl_socket_t fd)
{
    sl_httpc *h = ud;
    poll_ctx *pc = poll_of(h, fd);
    if (pc)
        close_poll(pc); /* stops the watch before the descriptor goes */
    return close(fd);
}

static void on_curl_timeout(uv_timer_t *t)
{
    sl_httpc *h = t->data;
    enter(h);
    drive(h, CURL_SOCKET_TIMEOUT, 0);
    leave(h);
}

/* libcurl may call this from inside its own functions; it only moves a timer. */
static int on_curl_timer_set(CURLM *m, long ms, void *ud)
{
    sl_httpc *h = ud;
    if (ms < 0)
        uv_timer_stop(&h->curl_timer);
    else
        uv_timer_start(&h->curl_timer, on_curl_timeout, (uint64_t)ms, 0);
    return 0;
}

int sl__httpc_new(uv_loop_t *loop, const sl_httpc_opts *o, sl_httpc **out)
{
    *out = NULL;
    if (!loop)
        return SL_EINVAL;
    pthread_once(&curl_once, curl_global_once);
    if (curl_init_rc)
        return curl_init_rc;
    sl_httpc *h = calloc(1, sizeof *h);
    if (!h)
        return SL_ENOMEM;
    if (o)
        h->o = *o;
    if (!h->o.max_header_bytes)
        h->o.max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
    h->loop = loop;
    sl__list_init(&h->reqs);
    sl__list_init(&h->polls);
    sl__list_init(&h->tasks);
    sl__list_init(&h->batch);
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return SL_ENOMEM;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer_set);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (h->o.max_host_connections > 0)
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)h->o.max_host_connections);
    uv_timer_init(loop, &h->curl_timer);
    uv_timer_init(loop, &h->defer_timer);
    h->curl_timer.data = h;
    h->defer_timer.data = h;
    *out = h;
    return 0;
}

/* ---- one request -------------------------------------------------------------------- */

static void on_req_closed(uv_handle_t *handle)
{
    free(handle->data);
}

/* An easy handle for a new request: a kept one if there is one. */
static CURL *take_easy(sl_httpc *h)
{
    return h->nidle ? h->idle[--h->nidle] : curl_easy_init();
}

/* A finished request's easy handle: kept for reuse when it ended cleanly and the pool is
 * not over the number of requests running. Never inside libcurl. */
static void release_easy(sl_httpc *h, CURL *e, int clean)
{
    if (!e)
        return;
    size_t cap = h->nreqs > IDLE_EASY_MIN ? h->nreqs : IDLE_EASY_MIN;
    if (clean && !h->dying && h->nidle < cap) {
        if (h->nidle == h->capidle) {
            size_t n = h->capidle ? h->capidle * 2 : 16;
            CURL **v = realloc(h->idle, n * sizeof *v);
            if (!v)
                goto drop;
            h->idle = v;
            h->capidle = n;
        }
        curl_easy_reset(e);
        h->idle[h->nidle++] = e;
        return;
    }
drop:
    curl_easy_cleanup(e);
}

/* Release everything of r. Never inside libcurl (it may remove the easy handle). */
static void finalize(sl_httpc_req *r)
{
    if (r->finalized)
        return;
    r->finalized = 1;
    sl__httpc_undefer(&r->task);
    remove_now(r);
    release_easy(r->h, r->easy, r->completed && !r->ever_paused);
    r->easy = NULL;
    curl_slist_free_all(r->hdrs);
    r->h->nreqs--;
    sl__buf_free(&r->head.raw);
    sl__list_remove(&r->link);
    uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

static void deliver_done(sl_httpc_req *r, int err, const char *msg)
{
    if (r->done || r->freed)
        return;
    r->done = 1;
    uv_timer_stop(&r->timer);
    r->depth++;
    r->on_done(r, err, msg, r->user);
    r->depth--;
    if (r->freed && r->depth == 0)
        finalize(r);
}

/* The earliest deadline in force (uv_now() time), or UINT64_MAX; *what names it. */
static uint64_t next_deadline(const sl_httpc_req *r, const char **what, long *ms)
{
    uint64_t d = UINT64_MAX;
    if (r->total_ms > 0) {
        d = r->t_start + (uint64_t)r->total_ms;
        *what = "total";
        *ms = r->total_ms;
    }
    if (r->paused)
        return d;
    if (r->got_byte) {
        if (r->idle_ms > 0 && r->t_last_rx + (uint64_t)r->idle_ms < d) {
            d = r->t_last_rx + (uint64_t)r->idle_ms;
            *what = "idle";
            *ms = r->idle_ms;
        }
    } else if (r->sent && r->first_byte_ms > 0 && r->t_sent + (uint64_t)r->first_byte_ms < d) {
        d = r->t_sent + (uint64_t)r->first_byte_ms;
        *what = "first";
        *ms = r->first_byte_ms;
    }
    return d;
}

static void on_req_timer(uv_timer_t *t);

static void arm(sl_httpc_req *r)
{
    if (r->done || r->canceled || r->freed) {
        uv_timer_stop(&r->timer);
        return;
    }
    const char *what = "";
    long ms = 0;
    uint64_t d = next_deadline(r, &what, &ms);
    if (d == UINT64_MAX) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t now = uv_now(r->h->loop);
    uv_timer_start(&r->timer, on_req_timer, d > now ? d - now : 0, 0);
}

/* Data resets the idle clock by moving t_last_rx only; the timer notices when it fires
 * and sleeps again for the rest, so a busy stream costs no timer updates. */
static void on_req_timer(uv_timer_t *t)
{
    sl_httpc_req *r = t->data;
    sl_httpc *h = r->h;
    const char *what = "";
    long ms = 0;
    uint64_t d = next_deadline(r, &what, &ms);
    uint64_t now = uv_now(h->loop);
    if (d == UINT64_MAX || d > now) {
        arm(r);
        return;
    }
    enter(h);
    char msg[128];
    if (!strcmp(what, "first"))
        snprintf(msg, sizeof msg, "no response within %ld ms", ms);
    else if (!strcmp(what, "idle"))
        snprintf(msg, sizeof msg, "no data for %ld ms", ms);
    else
        snprintf(msg, sizeof msg, "not complete within %ld ms", ms);
    remove_now(r); /* incomplete: libcurl closes the connection */
    deliver_done(r, SL_ETIMEDOUT, msg);
    leave(h);
}

static void note_rx(sl_httpc_req *r)
{
    r->t_last_rx = uv_now(r->h->loop);
    if (!r->got_byte) {
        r->got_byte = 1;
        r->head.first_byte_ms = sl__clock_ms();
        arm(r); /* the idle deadline may be sooner than the first-byte one */
    }
}

static void set_abort(sl_httpc_req *r, int err, const char *msg)
{
    if (r->abort_err)
        return;
    r->abort_err = err;
    snprintf(r->abort_msg, sizeof r->abort_msg, "%s", msg);
}

static int on_curl_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    sl_httpc_req *r = ud;
    r->sent = 1;
    r->t_sent = uv_now(r->h->loop);
    arm(r);
    return CURL_PREREQFUNC_OK;
}

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *ud)
{
    sl_httpc_req *r = ud;
    size_t n = size * nmemb;
    if (r->freed || r->canceled || r->done || r->abort_err)
        return CURL_WRITEFUNC_ERROR;
    /* libcurl keeps the chunk and hands it over again after CURLPAUSE_CONT. */
    if (r->paused)
        return CURL_WRITEFUNC_PAUSE;
    note_rx(r);
    if (!r->on_data)
        return n;
    r->depth++;
    int rc = r->on_data(r, p, n, r->user);
    r->depth--;
    if (r->freed || r->canceled)
        return CURL_WRITEFUNC_ERROR;
    if (rc) {
        set_abort(r, rc, "aborted by the receiver");
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r' ||
                  (*s)[*n - 1] == '\n'))
        (*n)--;
}

static long parse_long(const char *s, size_t n)
{
    long v = 0;
    if (!n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (LONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static void copy_value(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void head_reset(sl_httpc_head *hd)
{
    hd->status = 0;
    hd->content_type[0] = '\0';
    hd->request_id[0] = '\0';
    hd->retry_after_ms = -1;
    hd->remaining_requests = -1;
    hd->remaining_tokens = -1;
    hd->reset_requests_ms = -1;
    hd->reset_tokens_ms = -1;
    sl__buf_reset(&hd->raw);
}

static int name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && !strncasecmp(name, want, n);
}

static void parse_header_line(sl_httpc_head *hd, const char *line, size_t n, int *have_ms)
{
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return;
    const char *name = line;
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    trim(&name, &nlen);
    trim(&v, &vlen);
    if (name_is(name, nlen, "content-type")) {
        copy_value(hd->content_type, sizeof hd->content_type, v, vlen);
        for (char *c = hd->content_type; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    } else if (name_is(name, nlen, "x-request-id")) {
        copy_value(hd->request_id, sizeof hd->request_id, v, vlen);
    } else if (name_is(name, nlen, "retry-after-ms")) {
        /* milliseconds, possibly fractional: reuse the duration parser with a unit */
        char tmp[48];
        if (vlen + 2 < sizeof tmp) {
            memcpy(tmp, v, vlen);
            memcpy(tmp + vlen, "ms", 2);
            long ms = sl__httpc_parse_duration_ms(tmp, vlen + 2);
            if (ms >= 0) {
                hd->retry_after_ms = ms;
                *have_ms = 1;
            }
        }
    } else if (name_is(name, nlen, "retry-after")) {
        long ms = sl__httpc_parse_retry_after_ms(v, vlen, (long long)time(NULL));
        if (ms >= 0 && !*have_ms)
            hd->retry_after_ms = ms;
    } else if (name_is(name, nlen, "x-ratelimit-remaining-requests")) {
        hd->remaining_requests = parse_long(v, vlen);
    } else if (name_is(name, nlen, "x-ratelimit-remaining-tokens")) {
        hd->remaining_tokens = parse_long(v, vlen);
    } else if (name_is(name, nlen, "x-ratelimit-reset-requests")) {
        hd->reset_requests_ms = sl__httpc_parse_duration_ms(v, vlen);
    } else if (name_is(name, nlen, "x-ratelimit-reset-tokens")) {
        hd->reset_tokens_ms = sl__httpc_parse_duration_ms(v, vlen);
    }
}

static size_t on_curl_header(char *p, size_t size, size_t nmemb, void *ud)
{
    sl_httpc_req *r = ud;
    size_t n = size * nmemb;
    if (r->freed || r->canceled || r->done || r->abort_err)
        return CURL_WRITEFUNC_ERROR;
    note_rx(r);
    if (r->head_done)
        return n; /* trailers */
    sl_httpc_head *hd = &r->head;
    if (n >= 5 && !memcmp(p, "HTTP/", 5)) {
        /* a new response (after a 1xx): start over */
        head_reset(hd);
        r->have_retry_ms = 0;
        const char *sp = memchr(p, ' ', n);
        if (sp && (size_t)(p + n - sp) >= 4) {
            long st = parse_long(sp + 1, 3);
            hd->status = st > 0 ? (int)st : 0;
        }
    }
    if (sl__buf_append(&hd->raw, p, n) != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "response headers over %zu bytes", hd->raw.max);
        set_abort(r, SL_ELIMIT, msg);
        return CURL_WRITEFUNC_ERROR;
    }
    const char *line = p;
    size_t len = n;
    trim(&line, &len);
    if (len == 0) {
        if (hd->status < 200)
            return n; /* end of an interim 1xx head */
        r->head_done = 1;
        if (r->on_head) {
            r->depth++;
            int rc = r->on_head(r, hd, r->user);
            r->depth--;
            if (r->freed || r->canceled)
                return CURL_WRITEFUNC_ERROR;
            if (rc) {
                set_abort(r, rc, "aborted by the receiver");
                return CURL_WRITEFUNC_ERROR;
            }
        }
        return n;
    }
    parse_header_line(hd, line, len, &r->have_retry_ms);
    return n;
}

static int add_now(sl_httpc_req *r)
{
    r->h->in_curl++;
    CURLMcode mc = curl_multi_add_handle(r->h->multi, r->easy);
    r->h->in_curl--;
    if (mc != CURLM_OK)
        return mc == CURLM_OUT_OF_MEMORY ? SL_ENOMEM : SL_EINVAL;
    r->in_multi = 1;
    arm(r);
    return 0;
}

static void req_task(sl_httpc_task *t)
{
    sl_httpc_req *r = SL_CONTAINER_OF(t, sl_httpc_req, task);
    sl_httpc *h = r->h;
    if (r->freed) {
        finalize(r);
        return;
    }
    if (r->canceled) {
        r->need_add = 0;
        remove_now(r);
        deliver_done(r, SL_ECANCELED, "cancelled");
        return;
    }
    if (r->need_add) {
        r->need_add = 0;
        int rc = add_now(r);
        if (rc) {
            deliver_done(r, rc, "cannot add the transfer");
            return;
        }
    }
    if (r->resume_wanted && !r->paused && r->in_multi) {
        r->resume_wanted = 0;
        r->t_last_rx = uv_now(h->loop);
        arm(r);
        /* may hand held data to on_data right away */
        h->in_curl++;
        curl_easy_pause(r->easy, CURLPAUSE_CONT);
        h->in_curl--;
        if (!h->in_curl)
            check_multi_info(h);
    }
}

static long pick(long req, long client)
{
    if (req < 0)
        return 0;
    return req ? req : client;
}

/* The header lines as a curl list, with "Expect:" added: never wait for "100 Continue",
 * it costs a round trip on every large prompt. */
static int header_list(const char *const *lines, size_t n, struct curl_slist **out)
{
    struct curl_slist *l = NULL;
    for (size_t i = 0; i <= n; i++) {
        struct curl_slist *x = curl_slist_append(l, i < n ? lines[i] : "Expect:");
        if (!x) {
            curl_slist_free_all(l);
            return SL_ENOMEM;
        }
        l = x;
    }
    *out = l;
    return 0;
}

int sl__httpc_headers_add(sl_httpc *h, const char *const *lines, size_t n,
                          const sl_httpc_headers **out)
{
    *out = NULL;
    if (!h || h->dying)
        return SL_EINVAL;
    sl_httpc_headers *hs = calloc(1, sizeof *hs);
    if (!hs)
        return SL_ENOMEM;
    int rc = header_list(lines, n, &hs->list);
    if (rc) {
        free(hs);
        return rc;
    }
    hs->next = h->header_sets;
    h->header_sets = hs;
    *out = hs;
    return 0;
}

int sl__httpc_start(sl_httpc *h, const sl_httpc_req_opts *o, sl_httpc_req **out)
{
    *out = NULL;
    if (!h || h->dying || !o || !o->url || !o->on_done)
        return SL_EINVAL;
    sl_httpc_req *r = calloc(1, sizeof *r);
    if (!r)
        return SL_ENOMEM;
    int rc = SL_ENOMEM;
    r->h = h;
    r->on_head = o->on_head;
    r->on_data = o->on_data;
    r->on_done = o->on_done;
    r->user = o->user;
    r->first_byte_ms = pick(o->first_byte_timeout_ms, h->o.first_byte_timeout_ms);
    r->idle_ms = pick(o->idle_timeout_ms, h->o.idle_timeout_ms);
    r->total_ms = pick(o->total_timeout_ms, h->o.total_timeout_ms);
    long connect_ms = pick(o->connect_timeout_ms, h->o.connect_timeout_ms);
    sl__list_init(&r->link);
    sl__httpc_task_init(&r->task, req_task);
    sl__buf_init(&r->head.raw, h->o.max_header_bytes);
    head_reset(&r->head);
    r->head.first_byte_ms = -1;
    if (!o->header_set && (rc = header_list(o->headers, o->nheaders, &r->hdrs)))
        goto fail;
    rc = SL_ENOMEM;
    r->easy = take_easy(h);
    if (!r->easy)
        goto fail;

    CURL *e = r->easy;
    if (curl_easy_setopt(e, CURLOPT_URL, o->url) != CURLE_OK)
        goto fail; /* curl keeps its own copy */
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 15L);
    if (connect_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->header_set ? o->header_set->list : r->hdrs);
    if (curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER_BYTES) != CURLE_OK)
        goto fail; /* never run a kept handle with another size than its buffer's */
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_curl_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_curl_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_curl_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
    const char *method = o->method ? o->method : (o->body ? "POST" : "GET");
    if (o->body || !strcmp(method, "POST")) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body ? o->body : "");
    }
    if (strcmp(method, "POST") && strcmp(method, "GET"))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);

    r->t_start = uv_now(h->loop);
    sl__list_push(&h->reqs, &r->link);
    h->nreqs++;
    uv_timer_init(h->loop, &r->timer);
    r->timer.data = r;
    if (h->in_curl) {
        r->need_add = 1;
        sl__httpc_defer(h, &r->task);
    } else {
        rc = add_now(r);
        if (rc) {
            r->freed = 1;
            finalize(r);
            return rc;
        }
    }
    *out = r;
    return 0;
fail:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    sl__buf_free(&r->head.raw);
    free(r);
    return rc;
}

void sl__httpc_pause(sl_httpc_req *r)
{
    if (!r || r->paused || r->done || r->canceled || r->freed)
        return;
    r->paused = 1;
    r->ever_paused = 1;
    r->resume_wanted = 0;
    /* Inside libcurl the write callback answers CURL_WRITEFUNC_PAUSE instead. */
    if (r->in_multi && !r->h->in_curl) {
        r->h->in_curl++;
        curl_easy_pause(r->easy, CURLPAUSE_RECV);
        r->h->in_curl--;
    }
    arm(r);
}

void sl__httpc_resume(sl_httpc_req *r)
{
    if (!r || !r->paused || r->done || r->canceled || r->freed)
        return;
    r->paused = 0;
    r->resume_wanted = 1;
    r->t_last_rx = uv_now(r->h->loop);
    arm(r);
    /* Unpausing can deliver held data at once: do it from the loop, not from here. */
    sl__httpc_defer(r->h, &r->task);
}

void sl__httpc_cancel(sl_httpc_req *r)
{
    if (!r || r->done || r->canceled || r->freed)
        return;
    r->canceled = 1;
    uv_timer_stop(&r->timer);
    if (!r->h->in_curl)
        remove_now(r); /* incomplete transfer: the connection is closed now */
    sl__httpc_defer(r->h, &r->task);
}

void sl__httpc_req_free(sl_httpc_req *r)
{
    if (!r || r->freed)
        return;
    r->freed = 1;
    if (r->h->dying || r->h->in_curl || r->depth) {
        uv_timer_stop(&r->timer);
        if (!r->h->dying)
            sl__httpc_defer(r->h, &r->task);
        return; /* finalized from the loop (or by the teardown) */
    }
    finalize(r);
}

const sl_httpc_head *sl__httpc_head(const sl_httpc_req *r)
{
    return &r->head;
}

/* ---- header value parsers ----------------------------------------------------------- */

long sl__httpc_parse_duration_ms(const char *s, size_t n)
{
    trim(&s, &n);
    if (!n || n > 64)
        return -1;
    double total = 0;
    size_t i = 0;
    int parts = 0;
    while (i < n) {
        double v = 0, scale = 1;
        int digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (s[i++] - '0');
            digits++;
        }
        if (i < n && s[i] == '.') {
            i++;
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                scale /= 10;
                v += (s[i++] - '0') * scale;
                digits++;
            }
        }
        if (!digits)
            return -1;
        double unit;
        if (i == n) {
            if (parts)
                return -1; /* "1m30": a unit is missing */
            unit = 1000;   /* a bare number is seconds */
        } else if (n - i >= 2 && !memcmp(s + i, "ms", 2)) {
            unit = 1, i += 2;
        } else if (n - i >= 2 && !memcmp(s + i, "us", 2)) {
            unit = 1e-3, i += 2;
        } else if (n - i >= 3 && !memcmp(s + i, "\xc2\xb5s", 3)) {
            unit = 1e-3, i += 3;
        } else if (n - i >= 2 && !memcmp(s + i, "ns", 2)) {
            unit = 1e-6, i += 2;
        } else if (s[i] == 'h') {
            unit = 3600e3, i++;
        } else if (s[i] == 'm') {
            unit = 60e3, i++;
        } else if (s[i] == 's') {
            unit = 1e3, i++;
        } else {
            return -1;
        }
        total += v * unit;
        parts++;
    }
    if (total > 1e12)
        return -1;
    long ms = (long)total;
    if ((double)ms < total)
        ms++;
    return ms;
}

long sl__httpc_parse_retry_after_ms(const char *s, size_t n, long long now_unix)
{
    trim(&s, &n);
    long secs = parse_long(s, n);
    if (secs >= 0)
        return secs > 1000000000L / 1000 ? -1 : secs * 1000;
    char tmp[64];
    if (!n || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    time_t when = curl_getdate(tmp, NULL);
    if (when == (time_t)-1)
        return -1;
    long long d = (long long)when - now_unix;
    if (d < 0)
        d = 0;
    if (d > 1000000000LL / 1000)
        return -1;
    return (long)(d * 1000);
}
