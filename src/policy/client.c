/* client.c — sl_client: one provider endpoint with its connection pool.
 *
 * The client is public API (include/sluice/call.h) and lives in the policy layer with
 * the calls it runs (see call.c for why calls live here). */
#include "policy/client.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "llm/openai.h"

#define DEFAULT_CONNECT_MS    10000
#define DEFAULT_FIRST_BYTE_MS 120000
#define DEFAULT_IDLE_MS       120000
#define DEFAULT_MAX_RESPONSE  (8u << 20)
#define SPARE_PARSERS         64

void sl_client_opts_init(sl_client_opts *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ms = DEFAULT_CONNECT_MS;
    o->first_byte_timeout_ms = DEFAULT_FIRST_BYTE_MS;
    o->idle_timeout_ms = DEFAULT_IDLE_MS;
    o->max_response_bytes = DEFAULT_MAX_RESPONSE;
    o->user_agent = "sluice/" SL_VERSION;
}

static int header_safe(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* 0 means the default, < 0 none (httpc: 0 = none). */
static long timeout(long v, long def)
{
    return v == 0 ? def : v < 0 ? 0 : v;
}

int sl_client_new(uv_loop_t *loop, const sl_client_opts *o, sl_client **out)
{
    *out = NULL;
    if (!o || !o->base_url || !header_safe(o->api_key) || !header_safe(o->user_agent) ||
        !header_safe(o->base_url))
        return SL_EINVAL;
    if (strncmp(o->base_url, "http://", 7) && strncmp(o->base_url, "https://", 8))
        return SL_EINVAL;
    sl_client *c = calloc(1, sizeof *c);
    if (!c)
        return SL_ENOMEM;
    int rc = SL_ENOMEM;
    c->o = *o;
    c->base_url = strdup(o->base_url);
    c->api_key = o->api_key ? strdup(o->api_key) : NULL;
    c->user_agent = strdup(o->user_agent ? o->user_agent : "sluice/" SL_VERSION);
    if (!c->base_url || (o->api_key && !c->api_key) || !c->user_agent)
        goto fail;
    c->o.base_url = c->base_url;
    c->o.api_key = c->api_key;
    c->o.user_agent = c->user_agent;
    if (!c->o.max_response_bytes)
        c->o.max_response_bytes = DEFAULT_MAX_RESPONSE;
    sl__list_init(&c->calls);
    if (!loop) {
        loop = malloc(sizeof *loop);
        if (!loop)
            goto fail;
        if (uv_loop_init(loop) != 0) {
            free(loop);
            goto fail;
        }
        c->own_loop = 1;
    }
    c->loop = loop;
    sl_httpc_opts ho;
    sl__httpc_opts_init(&ho);
    ho.connect_timeout_ms = timeout(o->connect_timeout_ms, DEFAULT_CONNECT_MS);
    ho.first_byte_timeout_ms = timeout(o->first_byte_timeout_ms, DEFAULT_FIRST_BYTE_MS);
    ho.idle_timeout_ms = timeout(o->idle_timeout_ms, DEFAULT_IDLE_MS);
    ho.total_timeout_ms = o->total_timeout_ms > 0 ? o->total_timeout_ms : 0;
    ho.max_host_connections = o->max_host_connections > 0 ? o->max_host_connections : 0;
    rc = sl__httpc_new(loop, &ho, &c->http);
    if (rc)
        goto fail_loop;
    c->env.http = c->http;
    c->env.base_url = c->base_url;
    c->env.api_key = c->api_key;
    c->env.user_agent = c->user_agent;
    c->env.max_response_bytes = c->o.max_response_bytes;
    /* parsers for as many calls as usually end between two starts; without it each
     * attempt makes its own */
    c->env.spares = sl__openai_spares_new(SPARE_PARSERS);
    /* The request headers are the same for every call: made once (without them, each
     * attempt makes its own). */
    for (int s = 0; s < 2; s++) {
        char *lines[4];
        size_t n;
        if (sl__openai_headers(c->api_key, c->user_agent, s, lines, &n) == 0) {
            sl__httpc_headers_add(c->http, (const char *const *)lines, n, &c->env.headers[s]);
            while (n)
                free(lines[--n]);
        }
    }
    *out = c;
    return 0;
fail_loop:
    if (c->own_loop) {
        uv_loop_close(c->loop);
        free(c->loop);
    }
fail:
    free(c->base_url);
    free(c->api_key);
    free(c->user_agent);
    free(c);
    return rc;
}

uv_loop_t *sl_client_loop(sl_client *c)
{
    return c->loop;
}

const char *sl_client_base_url(const sl_client *c)
{
    return c->base_url;
}

void sl_client_free(sl_client *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = 1;
    while (!sl__list_empty(&c->calls))
        sl__call_abort(sl__call_of(c->calls.next));
    sl__httpc_free(c->http);
    sl__openai_spares_close(c->env.spares); /* the last attempt still out frees it */
    if (c->own_loop) {
        /* a stream's callbacks may have left uv_stop() set: run until really empty */
        while (uv_run(c->loop, UV_RUN_DEFAULT) != 0)
            ;
        if (uv_loop_close(c->loop) == 0)
            free(c->loop);
        else /* leak it rather than free memory that live handles point to */
            sl__log(SL_LOG_WARN, "sl_client_free: the private loop still has handles");
    }
    free(c->base_url);
    free(c->api_key);
    free(c->user_agent);
    free(c);
}
