/* client.h — the inside of sl_client, shared by the public call and stream modules.
 *
 * A client is one provider endpoint (base URL, key), one HTTP client (its connection
 * pool) and the list of calls still running on it, so that sl_client_free can end
 * each of them with its on_done before the pool goes. */
#ifndef SL_POLICY_CLIENT_H
#define SL_POLICY_CLIENT_H

#include <sluice/call.h>

#include "base/list.h"
#include "io/httpc.h"
#include "llm/attempt.h"

struct sl_client {
    uv_loop_t *loop;
    int own_loop;
    sl_httpc *http;
    sl_client_opts o; /* strings point to the copies below */
    char *base_url;
    char *api_key;
    char *user_agent;
    sl_attempt_env env;
    sl_link calls; /* running sl_calls */
    int freeing;
};

/* call.c: end a running call now, delivering its on_done (SL_ECANCELED) before
 * returning; it leaves the client's list. */
void sl__call_abort(sl_call *call);
/* call.c: the call whose link is l. */
sl_call *sl__call_of(sl_link *l);
/* call.c: the final result once on_done was delivered (else NULL); valid until
 * sl_call_free. */
const sl_result *sl__call_result(const sl_call *call);

#endif
