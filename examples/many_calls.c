/* many_calls.c — N streamed calls on one loop, at most C in flight, one summary line.
 *
 * The shape of a batch job without the files: each call streams its answer (on_delta
 * counts the text as it arrives), on_done checks the final text against it and starts the
 * next prompt, so at most C calls run at once. The calls share one client (one connection
 * pool) and one policy (retries with backoff; 4 attempts, as `sluice batch` does).
 *
 *   many_calls [N [C [BASE_URL]]]
 *   N defaults to 100, C to 10, BASE_URL to $OPENAI_BASE_URL, then
 *   http://127.0.0.1:8080/v1; $OPENAI_API_KEY and $OPENAI_MODEL are used when set.
 *   Prints "calls N concurrency C ok K errors E wall S s" and exits 1 if any failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

typedef struct run run;

typedef struct slot {
    run *r;
    size_t text_bytes; /* delivered by on_delta */
} slot;

struct run {
    sl_client *client;
    sl_policy *policy;
    const char *model;
    long n, started, ok, errors;
    char first_error[256];
};

static void on_delta(sl_call *call, const sl_delta *d, void *user)
{
    slot *s = user;
    if (d->kind == SL_DELTA_CONTENT && d->choice == 0)
        s->text_bytes += d->text.len;
}

static void start_next(slot *s);

static void on_done(sl_call *call, const sl_result *res, void *user)
{
    slot *s = user;
    run *r = s->r;
    if (!res->error && res->text.len == s->text_bytes) {
        r->ok++;
    } else {
        if (!r->errors++)
            snprintf(r->first_error, sizeof r->first_error, "%s",
                     res->error ? res->message : "final text differs from the deltas");
    }
    sl_call_free(call); /* allowed inside on_done */
    start_next(s);      /* this slot takes the next prompt */
}

/* Start the next prompt on slot s; a prompt that cannot start counts as an error and the
 * slot tries the one after it. */
static void start_next(slot *s)
{
    run *r = s->r;
    while (r->started < r->n) {
        char prompt[64];
        int len =
            snprintf(prompt, sizeof prompt, "Write one sentence about item %ld.", r->started++);
        sl_request *req;
        int rc = sl_request_new(&req);
        if (!rc)
            rc = sl_request_set_model(req, r->model);
        if (!rc)
            rc = sl_request_add_message(req, "user", prompt, (size_t)len);
        s->text_bytes = 0;
        sl_call_opts co = {
            .on_delta = on_delta, .on_done = on_done, .user = s, .policy = r->policy};
        sl_call *call;
        if (!rc)
            rc = sl_call_start(r->client, req, &co, &call); /* copies req */
        sl_request_free(req);
        if (!rc)
            return;
        if (!r->errors++)
            snprintf(r->first_error, sizeof r->first_error, "cannot start: %s", sl_strerror(rc));
    }
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    long c = argc > 2 ? strtol(argv[2], NULL, 10) : 10;
    const char *base = argc > 3 ? argv[3] : getenv("OPENAI_BASE_URL");
    const char *model = getenv("OPENAI_MODEL");
    if (n < 1 || c < 1 || c > 100000) {
        fprintf(stderr, "usage: many_calls [N [C [BASE_URL]]]\n");
        return 2;
    }
    if (c > n)
        c = n;
    uv_loop_t *loop = uv_default_loop();

    sl_client_opts o;
    sl_client_opts_init(&o);
    o.base_url = base ? base : "http://127.0.0.1:8080/v1";
    o.api_key = getenv("OPENAI_API_KEY");
    run r = {.n = n, .model = model ? model : "gpt-4o-mini"};
    if (sl_client_new(loop, &o, &r.client) != 0) {
        fprintf(stderr, "bad base URL: %s\n", o.base_url);
        return 2;
    }
    sl_policy_opts po;
    sl_policy_opts_init(&po);
    po.max_attempts = 4;
    slot *slots = calloc((size_t)c, sizeof *slots);
    if (!slots || sl_policy_new(loop, &po, &r.policy) != 0) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }

    uint64_t t0 = uv_hrtime();
    for (long i = 0; i < c; i++) {
        slots[i].r = &r;
        start_next(&slots[i]);
    }
    uv_run(loop, UV_RUN_DEFAULT); /* returns once every call is done */
    double wall = (double)(uv_hrtime() - t0) / 1e9;

    printf("calls %ld concurrency %ld ok %ld errors %ld wall %.3f s\n", n, c, r.ok, r.errors, wall);
    if (r.errors)
        printf("first error: %s\n", r.first_error);
    sl_client_free(r.client);
    sl_policy_free(r.policy);
    uv_run(loop, UV_RUN_DEFAULT); /* let the handles close */
    uv_loop_close(loop);
    free(slots);
    return r.errors ? 1 : 0;
}
