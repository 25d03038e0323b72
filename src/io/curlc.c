/* curlc.c — httpc's libcurl transport: the multi_socket interface driven by libuv.
 *
 * The front (httpc.c) hands this transport every request that is not plain http://
 * (https://, HTTP/2 over TLS), or every request when the client asks for libcurl.
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
 * in_curl is non-zero while libcurl is on the stack: then curl_multi_add_handle /
 * remove_handle are forbidden (CURLM_RECURSIVE_API_CALL), so add, cancel, free and resume
 * are queued as the request's task on the front. */
#include "io/httpc_int.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"

#define IDLE_EASY_MIN 64
/* curl's receive buffer, one per easy handle (16 KiB by default): SSE events are small and
 * a streamed answer arrives a few hundred bytes at a time. curl 7.88 allocates it once per
 * handle and a reset handle keeps it, so every request must ask for this same size. */
#define RECV_BUFFER_BYTES (4u << 10)

typedef struct poll_ctx poll_ctx;
typedef struct creq creq;

struct sl_curlc {
    sl_httpc *front;
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t curl_timer; /* libcurl's single timeout */
    sl_httpc_opts o;
    sl_link reqs; /* requests not yet finalized */
    size_t nreqs;
    sl_link polls;   /* open poll contexts */
    poll_ctx **byfd; /* the poll context of each socket curl opened, by descriptor */
    size_t nbyfd;
    CURL **idle; /* reset easy handles kept for reuse */
    size_t nidle, capidle;
    int in_curl;
    int dying; /* sl__curlc_free ran: the front is going */
};

/* One socket curl opened and asked us to watch. Found through curl_multi_assign, or by
 * descriptor in byfd, which our open and close socket callbacks keep exact. */
struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    sl_curlc *h;
    sl_link link;
    int armed;  /* events the poll handle watches (0: stopped) */
    int wanted; /* events curl wants (0: none since CURL_POLL_REMOVE) */
};

struct creq {
    sl_httpc_req base; /* kind SL_HTTPC_REQ_CURL; first member */
    sl_curlc *h;
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
    sl_httpc_clock clk; /* first-byte / idle / total deadlines */
    unsigned in_multi : 1;
    unsigned need_add : 1;
    unsigned head_done : 1;
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

/* libcurl is loaded the first time a request needs it: linking it brings some thirty
 * libraries (TLS, Kerberos, LDAP, SSH, IDN...) whose loading and relocation alone cost
 * about 6 MiB of resident memory in every process, also in the ones that only ever speak
 * plain http:// through h1c. The table holds the few entry points this file calls. */
static struct {
    CURLcode (*global_init)(long flags);
    curl_version_info_data *(*version_info)(CURLversion v);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
    CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t fd, int ev, int *running);
    CURLMsg *(*multi_info_read)(CURLM *m, int *left);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_cleanup)(CURLM *m);
    CURLMcode (*multi_assign)(CURLM *m, curl_socket_t fd, void *p);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *e, CURLoption opt, ...);
    CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
    void (*easy_reset)(CURL *e);
    void (*easy_cleanup)(CURL *e);
    CURLcode (*easy_pause)(CURL *e, int bitmask);
    const char *(*easy_strerror)(CURLcode rc);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
} cx;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

/* PROTOCOLS_STR needs 7.85; Debian 12 has 7.88. */
#define MIN_CURL_VERSION 0x075500

static void curl_global_once(void)
{
    static const char *const sonames[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"};
    void *lib = NULL;
    for (size_t i = 0; !lib && i < sizeof sonames / sizeof *sonames; i++)
        lib = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
    curl_init_rc = SL_EINVAL;
    if (!lib) {
        sl__log(SL_LOG_ERROR, "cannot load libcurl (needed for https://): %s", dlerror());
        return;
    }
#define LOAD(name)                                                                                 \
    if (!(*(void **)&cx.name = dlsym(lib, "curl_" #name))) {                                       \
        sl__log(SL_LOG_ERROR, "libcurl lacks curl_%s", #name);                                     \
        return;                                                                                    \
    }
    LOAD(global_init)
    LOAD(version_info)
    LOAD(multi_init)
    LOAD(multi_setopt)
    LOAD(multi_socket_action)
    LOAD(multi_info_read)
    LOAD(multi_add_handle)
    LOAD(multi_remove_handle)
    LOAD(multi_cleanup)
    LOAD(multi_assign)
    LOAD(easy_init)
    LOAD(easy_setopt)
    LOAD(easy_getinfo)
    LOAD(easy_reset)
    LOAD(easy_cleanup)
    LOAD(easy_pause)
    LOAD(easy_strerror)
    LOAD(slist_append)
    LOAD(slist_free_all)
#undef LOAD
    const curl_version_info_data *v = cx.version_info(CURLVERSION_NOW);
    if (!v || v->version_num < MIN_CURL_VERSION) {
        sl__log(SL_LOG_ERROR, "libcurl %s is too old: sluice needs 7.85 or later",
                v ? v->version : "?");
        return;
    }
    curl_init_rc = cx.global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : SL_ENOMEM;
}

/* ---- transport lifetime ----------------------------------------------------------- */

static void finalize(creq *r);

static void enter(sl_curlc *h)
{
    sl__httpc_enter(h->front);
}

static void leave(sl_curlc *h)
{
    sl__httpc_leave(h->front);
}

/* The client is going: no new work, no reuse. */
static int gone(const sl_curlc *h)
{
    return h->dying || h->front->dying;
}

static void on_timer_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void on_poll_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void close_poll(poll_ctx *pc)
{
    sl_curlc *h = pc->h;
    if ((size_t)pc->fd < h->nbyfd && h->byfd[pc->fd] == pc)
        h->byfd[pc->fd] = NULL;
    sl__list_remove(&pc->link);
    uv_close((uv_handle_t *)&pc->poll, on_poll_closed);
}

/* Called by the front's teardown, outside every callback of ours. */
void sl__curlc_free(sl_curlc *h)
{
    if (!h)
        return;
    h->dying = 1;
    while (!sl__list_empty(&h->reqs)) {
        creq *r = SL_CONTAINER_OF(h->reqs.next, creq, link);
        r->freed = 1;
        finalize(r);
    }
    h->in_curl++;
    cx.multi_cleanup(h->multi); /* may report CURL_POLL_REMOVE for cached connections */
    h->in_curl--;
    h->multi = NULL;
    while (!sl__list_empty(&h->polls))
        close_poll(SL_CONTAINER_OF(h->polls.next, poll_ctx, link));
    free(h->byfd);
    h->byfd = NULL;
    h->nbyfd = 0;
    while (h->nidle)
        cx.easy_cleanup(h->idle[--h->nidle]);
    free(h->idle);
    h->idle = NULL;
    uv_close((uv_handle_t *)&h->curl_timer, on_timer_closed);
}

void sl__curlc_headers_free(sl_httpc_headers *hs)
{
    cx.slist_free_all(hs->curl_list);
    hs->curl_list = NULL;
}

/* ---- driving libcurl ---------------------------------------------------------------- */

static void deliver_done(creq *r, int err, const char *msg);

static void remove_now(creq *r)
{
    if (!r->in_multi)
        return;
    r->h->in_curl++;
    cx.multi_remove_handle(r->h->multi, r->easy);
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

static void check_multi_info(sl_curlc *h)
{
    CURLMsg *m;
    int left;
    while (!gone(h) && (m = cx.multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = m->data.result;
        creq *r = NULL;
        cx.easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
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
            deliver_done(r, map_curl(rc), r->errbuf[0] ? r->errbuf : cx.easy_strerror(rc));
    }
}

static void drive(sl_curlc *h, curl_socket_t fd, int flags)
{
    int running;
    h->in_curl++;
    cx.multi_socket_action(h->multi, fd, flags, &running);
    h->in_curl--;
    if (!h->in_curl)
        check_multi_info(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    poll_ctx *pc = p->data;
    sl_curlc *h = pc->h;
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

static poll_ctx *poll_of(sl_curlc *h, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < h->nbyfd ? h->byfd[fd] : NULL;
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp)
{
    sl_curlc *h = ud;
    poll_ctx *pc = sockp ? sockp : poll_of(h, fd);
    if (what == CURL_POLL_REMOVE) {
        if (pc) {
            /* stays armed, unreferenced, until an event or curl wants it again */
            cx.multi_assign(h->multi, fd, NULL);
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
        cx.multi_assign(h->multi, fd, pc);
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
    sl_curlc *h = ud;
    curl_socket_t fd = socket(a->family, a->socktype, a->protocol);
    poll_ctx *pc = poll_of(h, fd);
    if (pc)
        close_poll(pc);
    return fd;
}

/* curl has removed the socket from its watch list (CURL_POLL_REMOVE) before this. */
static int on_curl_close_socket(void *ud, curl_socket_t fd)
{
    sl_curlc *h = ud;
    poll_ctx *pc = poll_of(h, fd);
    if (pc)
        close_poll(pc); /* stops the watch before the descriptor goes */
    return close(fd);
}

static void on_curl_timeout(uv_timer_t *t)
{
    sl_curlc *h = t->data;
    enter(h);
    drive(h, CURL_SOCKET_TIMEOUT, 0);
    leave(h);
}

/* libcurl may call this from inside its own functions; it only moves a timer. */
static int on_curl_timer_set(CURLM *m, long ms, void *ud)
{
    sl_curlc *h = ud;
    if (ms < 0)
        uv_timer_stop(&h->curl_timer);
    else
        uv_timer_start(&h->curl_timer, on_curl_timeout, (uint64_t)ms, 0);
    return 0;
}

int sl__curlc_new(sl_httpc *front, sl_curlc **out)
{
    *out = NULL;
    uv_loop_t *loop = front->loop;
    pthread_once(&curl_once, curl_global_once);
    if (curl_init_rc)
        return curl_init_rc;
    sl_curlc *h = calloc(1, sizeof *h);
    if (!h)
        return SL_ENOMEM;
    h->front = front;
    h->o = front->o;
    h->loop = loop;
    sl__list_init(&h->reqs);
    sl__list_init(&h->polls);
    h->multi = cx.multi_init();
    if (!h->multi) {
        free(h);
        return SL_ENOMEM;
    }
    cx.multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    cx.multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    cx.multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer_set);
    cx.multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    cx.multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (h->o.max_host_connections > 0)
        cx.multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)h->o.max_host_connections);
    uv_timer_init(loop, &h->curl_timer);
    h->curl_timer.data = h;
    *out = h;
    return 0;
}

/* ---- one request -------------------------------------------------------------------- */

static void on_req_closed(uv_handle_t *handle)
{
    free(handle->data);
}

/* An easy handle for a new request: a kept one if there is one. */
static CURL *take_easy(sl_curlc *h)
{
    return h->nidle ? h->idle[--h->nidle] : cx.easy_init();
}

/* A finished request's easy handle: kept for reuse when it ended cleanly and the pool is
 * not over the number of requests running. Never inside libcurl. */
static void release_easy(sl_curlc *h, CURL *e, int clean)
{
    if (!e)
        return;
    size_t cap = h->nreqs > IDLE_EASY_MIN ? h->nreqs : IDLE_EASY_MIN;
    if (clean && !gone(h) && h->nidle < cap) {
        if (h->nidle == h->capidle) {
            size_t n = h->capidle ? h->capidle * 2 : 16;
            CURL **v = realloc(h->idle, n * sizeof *v);
            if (!v)
                goto drop;
            h->idle = v;
            h->capidle = n;
        }
        cx.easy_reset(e);
        h->idle[h->nidle++] = e;
        return;
    }
drop:
    cx.easy_cleanup(e);
}

/* Release everything of r. Never inside libcurl (it may remove the easy handle). */
static void finalize(creq *r)
{
    if (r->finalized)
        return;
    r->finalized = 1;
    sl__httpc_undefer(&r->task);
    remove_now(r);
    release_easy(r->h, r->easy, r->completed && !r->ever_paused);
    r->easy = NULL;
    cx.slist_free_all(r->hdrs);
    r->h->nreqs--;
    sl__buf_free(&r->head.raw);
    sl__list_remove(&r->link);
    uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

static void deliver_done(creq *r, int err, const char *msg)
{
    if (r->done || r->freed)
        return;
    r->done = 1;
    uv_timer_stop(&r->timer);
    r->depth++;
    r->on_done(&r->base, err, msg, r->user);
    r->depth--;
    if (r->freed && r->depth == 0)
        finalize(r);
}

static void on_req_timer(uv_timer_t *t);

static void arm(creq *r)
{
    sl__httpc_clock_arm(&r->timer, &r->clk, !(r->done || r->canceled || r->freed), on_req_timer);
}

static void on_req_timer(uv_timer_t *t)
{
    creq *r = t->data;
    sl_curlc *h = r->h;
    char msg[128];
    if (!sl__httpc_clock_expired(t, &r->clk, on_req_timer, "", msg, sizeof msg))
        return;
    enter(h);
    remove_now(r); /* incomplete: libcurl closes the connection */
    deliver_done(r, SL_ETIMEDOUT, msg);
    leave(h);
}

static void note_rx(creq *r)
{
    r->clk.t_last_rx = uv_now(r->h->loop);
    if (!r->clk.got_byte) {
        r->clk.got_byte = 1;
        r->head.first_byte_ms = sl__clock_ms();
        arm(r); /* the idle deadline may be sooner than the first-byte one */
    }
}

static void set_abort(creq *r, int err, const char *msg)
{
    if (r->abort_err)
        return;
    r->abort_err = err;
    snprintf(r->abort_msg, sizeof r->abort_msg, "%s", msg);
}

static int on_curl_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    creq *r = ud;
    r->clk.sent = 1;
    r->clk.t_sent = uv_now(r->h->loop);
    arm(r);
    return CURL_PREREQFUNC_OK;
}

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *ud)
{
    creq *r = ud;
    size_t n = size * nmemb;
    if (r->freed || r->canceled || r->done || r->abort_err)
        return CURL_WRITEFUNC_ERROR;
    /* libcurl keeps the chunk and hands it over again after CURLPAUSE_CONT. */
    if (r->clk.paused)
        return CURL_WRITEFUNC_PAUSE;
    note_rx(r);
    if (!r->on_data)
        return n;
    r->depth++;
    int rc = r->on_data(&r->base, p, n, r->user);
    r->depth--;
    if (r->freed || r->canceled)
        return CURL_WRITEFUNC_ERROR;
    if (rc) {
        set_abort(r, rc, "aborted by the receiver");
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

static size_t on_curl_header(char *p, size_t size, size_t nmemb, void *ud)
{
    creq *r = ud;
    size_t n = size * nmemb;
    if (r->freed || r->canceled || r->done || r->abort_err)
        return CURL_WRITEFUNC_ERROR;
    note_rx(r);
    if (r->head_done)
        return n; /* trailers */
    sl_httpc_head *hd = &r->head;
    if (n >= 5 && !memcmp(p, "HTTP/", 5)) {
        /* a new response (after a 1xx): start over */
        sl__httpc_head_reset(hd);
        r->have_retry_ms = 0;
        const char *sp = memchr(p, ' ', n);
        if (sp && (size_t)(p + n - sp) >= 4 && sp[1] >= '1' && sp[1] <= '9' && sp[2] >= '0' &&
            sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9')
            hd->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
    }
    if (sl__buf_append(&hd->raw, p, n) != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "response headers over %zu bytes", hd->raw.max);
        set_abort(r, SL_ELIMIT, msg);
        return CURL_WRITEFUNC_ERROR;
    }
    size_t len = n;
    while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'))
        len--;
    if (len == 0) {
        if (hd->status < 200)
            return n; /* end of an interim 1xx head */
        r->head_done = 1;
        if (r->on_head) {
            r->depth++;
            int rc = r->on_head(&r->base, hd, r->user);
            r->depth--;
            if (r->freed || r->canceled)
                return CURL_WRITEFUNC_ERROR;
            if (rc) {
                set_abort(r, rc, "aborted by the receiver");
                return CURL_WRITEFUNC_ERROR;
            }
        }
        sl__buf_free(&hd->raw); /* the lines live until on_head returns (httpc.h) */
        return n;
    }
    sl__httpc_head_line(hd, p, len, &r->have_retry_ms);
    return n;
}

static int add_now(creq *r)
{
    r->h->in_curl++;
    CURLMcode mc = cx.multi_add_handle(r->h->multi, r->easy);
    r->h->in_curl--;
    if (mc != CURLM_OK)
        return mc == CURLM_OUT_OF_MEMORY ? SL_ENOMEM : SL_EINVAL;
    r->in_multi = 1;
    arm(r);
    return 0;
}

static void req_task(sl_httpc_task *t)
{
    creq *r = SL_CONTAINER_OF(t, creq, task);
    sl_curlc *h = r->h;
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
    if (r->resume_wanted && !r->clk.paused && r->in_multi) {
        r->resume_wanted = 0;
        r->clk.t_last_rx = uv_now(h->loop);
        arm(r);
        /* may hand held data to on_data right away */
        h->in_curl++;
        cx.easy_pause(r->easy, CURLPAUSE_CONT);
        h->in_curl--;
        if (!h->in_curl)
            check_multi_info(h);
    }
}

/* The header lines as a curl list, with "Expect:" added: never wait for "100 Continue",
 * it costs a round trip on every large prompt. */
static int header_list(const char *const *lines, size_t n, struct curl_slist **out)
{
    struct curl_slist *l = NULL;
    for (size_t i = 0; i <= n; i++) {
        struct curl_slist *x = cx.slist_append(l, i < n ? lines[i] : "Expect:");
        if (!x) {
            cx.slist_free_all(l);
            return SL_ENOMEM;
        }
        l = x;
    }
    *out = l;
    return 0;
}

int sl__curlc_start(sl_curlc *h, const sl_httpc_req_opts *o, sl_httpc_req **out)
{
    *out = NULL;
    sl_httpc_headers *hs = (sl_httpc_headers *)o->header_set;
    if (hs && !hs->curl_list) {
        struct curl_slist *l = NULL;
        if (header_list((const char *const *)hs->lines, hs->n, &l))
            return SL_ENOMEM;
        hs->curl_list = l;
    }
    creq *r = calloc(1, sizeof *r);
    if (!r)
        return SL_ENOMEM;
    int rc = SL_ENOMEM;
    r->base.kind = SL_HTTPC_REQ_CURL;
    r->h = h;
    r->on_head = o->on_head;
    r->on_data = o->on_data;
    r->on_done = o->on_done;
    r->user = o->user;
    r->clk.first_byte_ms =
        sl__httpc_pick_timeout(o->first_byte_timeout_ms, h->o.first_byte_timeout_ms);
    r->clk.idle_ms = sl__httpc_pick_timeout(o->idle_timeout_ms, h->o.idle_timeout_ms);
    r->clk.total_ms = sl__httpc_pick_timeout(o->total_timeout_ms, h->o.total_timeout_ms);
    long connect_ms = sl__httpc_pick_timeout(o->connect_timeout_ms, h->o.connect_timeout_ms);
    sl__list_init(&r->link);
    sl__httpc_task_init(&r->task, req_task);
    sl__buf_init(&r->head.raw, h->o.max_header_bytes);
    sl__httpc_head_reset(&r->head);
    r->head.first_byte_ms = -1;
    if (!o->header_set && (rc = header_list(o->headers, o->nheaders, &r->hdrs)))
        goto fail;
    rc = SL_ENOMEM;
    r->easy = take_easy(h);
    if (!r->easy)
        goto fail;

    CURL *e = r->easy;
    if (cx.easy_setopt(e, CURLOPT_URL, o->url) != CURLE_OK)
        goto fail; /* curl keeps its own copy */
    cx.easy_setopt(e, CURLOPT_PRIVATE, r);
    cx.easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    cx.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    cx.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    cx.easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    cx.easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    cx.easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    cx.easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    cx.easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 15L);
    if (connect_ms > 0)
        cx.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    cx.easy_setopt(e, CURLOPT_HTTPHEADER, hs ? (struct curl_slist *)hs->curl_list : r->hdrs);
    if (cx.easy_setopt(e, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER_BYTES) != CURLE_OK)
        goto fail; /* never run a kept handle with another size than its buffer's */
    cx.easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_curl_open_socket);
    cx.easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
    cx.easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_curl_close_socket);
    cx.easy_setopt(e, CURLOPT_CLOSESOCKETDATA, h);
    cx.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    cx.easy_setopt(e, CURLOPT_WRITEDATA, r);
    cx.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    cx.easy_setopt(e, CURLOPT_HEADERDATA, r);
    cx.easy_setopt(e, CURLOPT_PREREQFUNCTION, on_curl_prereq);
    cx.easy_setopt(e, CURLOPT_PREREQDATA, r);
    const char *method = o->method ? o->method : (o->body ? "POST" : "GET");
    if (o->body || !strcmp(method, "POST")) {
        cx.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        cx.easy_setopt(e, CURLOPT_POSTFIELDS, o->body ? o->body : "");
    }
    if (strcmp(method, "POST") && strcmp(method, "GET"))
        cx.easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);

    r->clk.t_start = uv_now(h->loop);
    sl__list_push(&h->reqs, &r->link);
    h->nreqs++;
    uv_timer_init(h->loop, &r->timer);
    r->timer.data = r;
    if (h->in_curl) {
        r->need_add = 1;
        sl__httpc_defer(h->front, &r->task);
    } else {
        rc = add_now(r);
        if (rc) {
            r->freed = 1;
            finalize(r);
            return rc;
        }
    }
    *out = &r->base;
    return 0;
fail:
    if (r->easy)
        cx.easy_cleanup(r->easy);
    cx.slist_free_all(r->hdrs);
    sl__buf_free(&r->head.raw);
    free(r);
    return rc;
}

void sl__curlc_pause(sl_httpc_req *br)
{
    creq *r = (creq *)br;
    if (!r || r->clk.paused || r->done || r->canceled || r->freed)
        return;
    r->clk.paused = 1;
    r->ever_paused = 1;
    r->resume_wanted = 0;
    /* Inside libcurl the write callback answers CURL_WRITEFUNC_PAUSE instead. */
    if (r->in_multi && !r->h->in_curl) {
        r->h->in_curl++;
        cx.easy_pause(r->easy, CURLPAUSE_RECV);
        r->h->in_curl--;
    }
    arm(r);
}

void sl__curlc_resume(sl_httpc_req *br)
{
    creq *r = (creq *)br;
    if (!r || !r->clk.paused || r->done || r->canceled || r->freed)
        return;
    r->clk.paused = 0;
    r->resume_wanted = 1;
    r->clk.t_last_rx = uv_now(r->h->loop);
    arm(r);
    /* Unpausing can deliver held data at once: do it from the loop, not from here. */
    sl__httpc_defer(r->h->front, &r->task);
}

void sl__curlc_cancel(sl_httpc_req *br)
{
    creq *r = (creq *)br;
    if (!r || r->done || r->canceled || r->freed)
        return;
    r->canceled = 1;
    uv_timer_stop(&r->timer);
    if (!r->h->in_curl)
        remove_now(r); /* incomplete transfer: the connection is closed now */
    sl__httpc_defer(r->h->front, &r->task);
}

void sl__curlc_req_free(sl_httpc_req *br)
{
    creq *r = (creq *)br;
    if (!r || r->freed)
        return;
    r->freed = 1;
    if (gone(r->h) || r->h->in_curl || r->depth) {
        uv_timer_stop(&r->timer);
        if (!gone(r->h))
            sl__httpc_defer(r->h->front, &r->task);
        return; /* finalized from the loop (or by the teardown) */
    }
    finalize(r);
}

const sl_httpc_head *sl__curlc_head(const sl_httpc_req *br)
{
    return &((const creq *)br)->head;
}
