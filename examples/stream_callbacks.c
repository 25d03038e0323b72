/* stream_callbacks.c — a few concurrent streamed calls on one libuv loop.
 *
 * Callbacks: on_delta for every piece, exactly one on_done per call with the final
 * result (or the error that ended it). All calls share the client's connection pool.
 *
 *   stream_callbacks [BASE_URL]
 *   BASE_URL defaults to $OPENAI_BASE_URL, then http://127.0.0.1:8080/v1;
 *   $OPENAI_API_KEY and $OPENAI_MODEL are used when set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

static const char *const prompts[] = {
    "Name three rivers in Europe.",
    "Say hello in French.",
    "What is 6 times 7?",
};
#define NCALLS 3

typedef struct job {
    int id;
    int deltas;
    sl_call *call;
} job;

static int failed;

static void on_delta(sl_call *call, const sl_delta *d, void *user)
{
    job *j = user;
    j->deltas++;
}

static void on_done(sl_call *call, const sl_result *r, void *user)
{
    job *j = user;
    if (r->error) {
        printf("[%d] error: %s\n", j->id, r->message);
        failed = 1;
    } else {
        printf("[%d] %.*s\n    (%d deltas, finish %s, %.0f ms)\n", j->id, (int)r->text.len,
               r->text.ptr, j->deltas, r->finish_reason ? r->finish_reason : "-",
               r->timings.total_ms);
    }
    sl_call_free(call); /* allowed inside on_done */
    j->call = NULL;
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : getenv("OPENAI_BASE_URL");
    const char *model = getenv("OPENAI_MODEL");
    uv_loop_t *loop = uv_default_loop();

    sl_client_opts o;
    sl_client_opts_init(&o);
    o.base_url = base ? base : "http://127.0.0.1:8080/v1";
    o.api_key = getenv("OPENAI_API_KEY");
    sl_client *c;
    if (sl_client_new(loop, &o, &c) != 0) {
        fprintf(stderr, "bad base URL: %s\n", o.base_url);
        return 2;
    }

    job jobs[NCALLS];
    for (int i = 0; i < NCALLS; i++) {
        sl_request *req;
        sl_request_new(&req);
        sl_request_set_model(req, model ? model : "gpt-4o-mini");
        sl_request_add_message(req, "user", prompts[i], strlen(prompts[i]));
        jobs[i] = (job){.id = i};
        sl_call_opts co = {.on_delta = on_delta, .on_done = on_done, .user = &jobs[i]};
        int rc = sl_call_start(c, req, &co, &jobs[i].call);
        sl_request_free(req);
        if (rc != 0) {
            fprintf(stderr, "[%d] cannot start: %s\n", i, sl_strerror(rc));
            failed = 1;
        }
    }

    uv_run(loop, UV_RUN_DEFAULT); /* returns once every call is done */
    sl_client_free(c);
    uv_run(loop, UV_RUN_DEFAULT); /* let the client's handles close */
    uv_loop_close(loop);
    return failed;
}
