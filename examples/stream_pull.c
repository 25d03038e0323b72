/* stream_pull.c — one streamed chat completion, pulled delta by delta.
 *
 * The blocking iterator: no callbacks, no loop to run. Each sl_stream_next returns the
 * next piece of the answer; when it returns NULL the call is over and the result says
 * how it ended.
 *
 *   stream_pull [BASE_URL] [PROMPT]
 *   BASE_URL defaults to $OPENAI_BASE_URL, then http://127.0.0.1:8080/v1;
 *   $OPENAI_API_KEY and $OPENAI_MODEL are used when set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : getenv("OPENAI_BASE_URL");
    const char *prompt = argc > 2 ? argv[2] : "Write a haiku about rivers.";
    const char *model = getenv("OPENAI_MODEL");

    sl_client_opts o;
    sl_client_opts_init(&o);
    o.base_url = base ? base : "http://127.0.0.1:8080/v1";
    o.api_key = getenv("OPENAI_API_KEY");
    sl_client *c;
    if (sl_client_new(NULL, &o, &c) != 0) { /* NULL: a private loop, for pulling */
        fprintf(stderr, "bad base URL: %s\n", o.base_url);
        return 2;
    }

    sl_request *req;
    sl_request_new(&req);
    sl_request_set_model(req, model ? model : "gpt-4o-mini");
    sl_request_add_message(req, "user", prompt, strlen(prompt));

    sl_stream *s;
    int rc = sl_stream_open(c, req, &s);
    sl_request_free(req); /* the call keeps its own copy */
    if (rc != 0) {
        fprintf(stderr, "cannot start: %s\n", sl_strerror(rc));
        sl_client_free(c);
        return 1;
    }

    const sl_delta *d;
    while ((d = sl_stream_next(s))) {
        if (d->kind == SL_DELTA_CONTENT) {
            fwrite(d->text.ptr, 1, d->text.len, stdout);
            fflush(stdout); /* typewriter style */
        }
    }

    const sl_result *r = sl_stream_result(s);
    int status = 0;
    if (r->error) {
        fprintf(stderr, "\nerror: %s\n", r->message);
        status = 1;
    } else {
        printf("\n[finish: %s, tokens: %ld, first token after %.0f ms]\n",
               r->finish_reason ? r->finish_reason : "-", r->usage.total_tokens,
               r->timings.ttft_ms);
    }
    sl_stream_close(s);
    sl_client_free(c);
    return status;
}
