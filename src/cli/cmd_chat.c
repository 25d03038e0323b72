/* cmd_chat.c — `sluice chat`: stream one completion to the terminal as it is generated.
 *
 * Callbacks on one libuv loop: the embedded mock (when no provider is configured), the
 * call, and the signal handlers all live there. Ctrl-C cancels the call, which closes the
 * upstream connection at once; the line being printed is ended, and the exit code is 130. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: sluice chat [options] [PROMPT...]\n"
    "\n"
    "Stream one chat completion to stdout as it is generated. The prompt is the\n"
    "arguments joined by spaces, or standard input when there are none (or '-').\n"
    "\n"
    "options:\n"
    "  -m, --model NAME        model (default: mock-model on the embedded mock, else\n"
    "                          $SLUICE_MODEL or gpt-4o-mini)\n"
    "      --system TEXT       a system message before the prompt\n"
    "      --max-tokens N      cap on generated tokens\n"
    "      --temperature T     sampling temperature, 0..2\n"
    "      --json              print the final result as one JSON object instead of the text\n"
    "      --no-stream         ask for the whole answer at once (stream: false)\n"
    "      --timeout SECONDS   give up after this long in total (e.g. 30, 1.5s, 500ms)\n"
    "      --retries N         retry a failed attempt up to N times (default 2): connect\n"
    "                          errors, timeouts, 408/409/429/5xx, cut streams; a stream cut\n"
    "                          mid-answer continues where it stopped, nothing printed twice\n"
    "  -v, --verbose           timings and usage on stderr\n"
    "      --base-url URL      OpenAI-compatible endpoint (default: $OPENAI_BASE_URL;\n"
    "                          with neither it nor an API key: the embedded mock)\n"
    "      --api-key-env VAR   read the API key from $VAR (default: OPENAI_API_KEY)\n"
    "  -h, --help              this text\n"
    "\n"
    "exit codes: 0 ok, 2 usage, 3 cannot connect or connection lost, 4 timeout, 5 HTTP\n"
    "error from the provider, 6 malformed answer, 130 interrupted, 1 other local error.\n";

typedef struct chat {
    uv_loop_t *loop;
    cli_provider prov;
    sl_client *client;
    sl_call *call;
    sl_policy *policy;
    uv_signal_t sigint, sigterm;
    int json, verbose;
    int interrupted;
    int at_line_start;
    int exit_code;
    const char *model;
} chat;

static void on_delta(sl_call *call, const sl_delta *d, void *user)
{
    chat *c = user;
    if (c->json || d->kind != SL_DELTA_CONTENT || d->text.len == 0)
        return;
    fwrite(d->text.ptr, 1, d->text.len, stdout);
    fflush(stdout);
    c->at_line_start = d->text.ptr[d->text.len - 1] == '\n';
}

static json_t *result_json(const sl_result *r, const char *model)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(r->error == 0));
    json_object_set_new(o, "model", json_string(model));
    json_object_set_new(o, "text", json_stringn(r->text.ptr ? r->text.ptr : "", r->text.len));
    if (r->reasoning.len)
        json_object_set_new(o, "reasoning", json_stringn(r->reasoning.ptr, r->reasoning.len));
    json_object_set_new(o, "finish_reason",
                        r->finish_reason ? json_string(r->finish_reason) : json_null());
    if (r->usage.total_tokens >= 0 || r->usage.prompt_tokens >= 0)
        json_object_set_new(o, "usage",
                            json_pack("{s:I,s:I,s:I}", "prompt_tokens",
                                      (json_int_t)r->usage.prompt_tokens, "completion_tokens",
                                      (json_int_t)r->usage.completion_tokens, "total_tokens",
                                      (json_int_t)r->usage.total_tokens));
    else
        json_object_set_new(o, "usage", json_null());
    json_object_set_new(o, "attempts", json_integer(r->attempts));
    json_object_set_new(o, "timings",
                        json_pack("{s:f,s:f,s:f}", "ttfb_ms", r->timings.ttfb_ms, "ttft_ms",
                                  r->timings.ttft_ms, "total_ms", r->timings.total_ms));
    if (r->request_id)
        json_object_set_new(o, "request_id", json_string(r->request_id));
    if (r->error) {
        json_t *e = json_pack("{s:s,s:s}", "code", sl_strerror(r->error), "message",
                              r->message ? r->message : sl_strerror(r->error));
        if (r->http_status)
            json_object_set_new(e, "http_status", json_integer(r->http_status));
        if (r->error_body.len) {
            json_t *b = json_loadb(r->error_body.ptr, r->error_body.len, 0, NULL);
            json_object_set_new(e, "body",
                                b ? b : json_stringn(r->error_body.ptr, r->error_body.len));
        }
        json_object_set_new(o, "error", e);
    }
    if (r->body.len) {
        json_t *b = json_loadb(r->body.ptr, r->body.len, 0, NULL);
        if (b)
            json_object_set_new(o, "response", b);
    }
    return o;
}

static void close_signals(chat *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->sigint))
        uv_close((uv_handle_t *)&c->sigint, NULL);
    if (!uv_is_closing((uv_handle_t *)&c->sigterm))
        uv_close((uv_handle_t *)&c->sigterm, NULL);
}

static void on_done(sl_call *call, const sl_result *r, void *user)
{
    chat *c = user;
    if (c->json) {
        json_t *o = result_json(r, c->model);
        char *s = json_dumps(o, JSON_COMPACT);
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
    } else if (!c->at_line_start) {
        /* End the line we were printing, so the shell prompt starts clean. */
        fputc('\n', stdout);
    }
    fflush(stdout);
    if (r->error == SL_ECANCELED && c->interrupted) {
        c->exit_code = SL_EXIT_INTERRUPTED;
        fprintf(stderr, "sluice: interrupted\n");
    } else if (r->error) {
        c->exit_code = cli_exit_for_error(r->error);
        fprintf(stderr, "sluice: %s\n", r->message ? r->message : sl_strerror(r->error));
    } else {
        c->exit_code = SL_EXIT_OK;
    }
    if (c->verbose) {
        fprintf(stderr,
                "sluice: model=%s attempts=%d ttfb=%.1fms ttft=%.1fms total=%.1fms "
                "tokens prompt=%ld completion=%ld finish=%s\n",
                c->model, r->attempts, r->timings.ttfb_ms, r->timings.ttft_ms, r->timings.total_ms,
                r->usage.prompt_tokens, r->usage.completion_tokens,
                r->finish_reason ? r->finish_reason : "-");
    }
    sl_call_free(call);
    c->call = NULL;
    close_signals(c);
    /* The embedded mock still listens: stop here, then release everything. */
    uv_stop(c->loop);
}

static void on_retry(sl_call *call, int attempt, int err, int http_status, double delay_ms,
                     void *user)
{
    chat *c = user;
    if (!c->verbose)
        return;
    if (http_status)
        fprintf(stderr, "sluice: attempt %d failed (HTTP %d), retrying in %.0f ms\n", attempt,
                http_status, delay_ms);
    else
        fprintf(stderr, "sluice: attempt %d failed (%s), retrying in %.0f ms\n", attempt,
                sl_strerror(err), delay_ms);
}

static void on_signal(uv_signal_t *h, int signum)
{
    chat *c = h->data;
    c->interrupted = 1;
    if (c->call)
        sl_call_cancel(c->call);
}

int cmd_chat(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"system", required_argument, NULL, 's'},
        {"max-tokens", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"no-stream", no_argument, NULL, 'S'},
        {"timeout", required_argument, NULL, 'T'},
        {"retries", required_argument, NULL, 'r'},
        {"verbose", no_argument, NULL, 'v'},
        {"base-url", required_argument, NULL, 'b'},
        {"api-key-env", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    chat c;
    memset(&c, 0, sizeof c);
    c.at_line_start = 1;
    c.exit_code = SL_EXIT_FAILED;
    const char *model = NULL, *system = NULL;
    long max_tokens = -1;
    double temperature = -1, timeout_s = 0;
    int stream = 1;
    long retries = 2;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+m:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm':
            model = optarg;
            break;
        case 's':
            system = optarg;
            break;
        case 'n':
            if (cli_parse_long("--max-tokens", optarg, 1, 10000000, &max_tokens))
                return SL_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_double("--temperature", optarg, 0, 2, &temperature))
                return SL_EXIT_USAGE;
            break;
        case 'j':
            c.json = 1;
            break;
        case 'S':
            stream = 0;
            break;
        case 'T':
            if (cli_parse_seconds("--timeout", optarg, &timeout_s))
                return SL_EXIT_USAGE;
            break;
        case 'r':
            if (cli_parse_long("--retries", optarg, 0, 100, &retries))
                return SL_EXIT_USAGE;
            break;
        case 'v':
            c.verbose = 1;
            break;
        case 'b':
            c.prov.base_url_flag = optarg;
            break;
        case 'k':
            c.prov.api_key_env = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return SL_EXIT_OK;
        default:
            fputs(usage_text, stderr);
            return SL_EXIT_USAGE;
        }
    }

    /* The prompt: the arguments, or stdin. */
    char *prompt = NULL;
    size_t prompt_len = 0;
    if (optind < argc && strcmp(argv[optind], "-")) {
        size_t n = 0;
        for (int i = optind; i < argc; i++)
            n += strlen(argv[i]) + 1;
        prompt = malloc(n);
        if (!prompt)
            return SL_EXIT_FAILED;
        prompt[0] = '\0';
        for (int i = optind; i < argc; i++) {
            size_t l = strlen(argv[i]);
            if (prompt_len)
                prompt[prompt_len++] = ' ';
            memcpy(prompt + prompt_len, argv[i], l);
            prompt_len += l;
        }
        prompt[prompt_len] = '\0';
    } else {
        if (isatty(STDIN_FILENO))
            fprintf(stderr, "sluice: reading the prompt from stdin (end with Ctrl-D)\n");
        prompt = cli_read_all(stdin, 64u << 20, &prompt_len);
        if (!prompt) {
            fprintf(stderr, "sluice: cannot read the prompt from stdin: %s\n", strerror(errno));
            return SL_EXIT_USAGE;
        }
        while (prompt_len && (prompt[prompt_len - 1] == '\n' || prompt[prompt_len - 1] == '\r'))
            prompt[--prompt_len] = '\0';
    }
    if (prompt_len == 0) {
        free(prompt);
        fprintf(stderr, "sluice: empty prompt\n%s", usage_text);
        return SL_EXIT_USAGE;
    }

    c.loop = uv_default_loop();
    sl_request *req = NULL;
    int rc;
    if (cli_provider_open(&c.prov, c.loop, NULL)) {
        c.exit_code = SL_EXIT_USAGE;
        goto out;
    }
    if (!model)
        model = c.prov.embedded ? "mock-model" : getenv("SLUICE_MODEL");
    if (!model || !*model)
        model = "gpt-4o-mini";
    c.model = model;

    sl_client_opts co;
    sl_client_opts_init(&co);
    co.base_url = c.prov.base_url;
    co.api_key = c.prov.api_key;
    co.total_timeout_ms = (long)(timeout_s * 1000);
    if ((rc = sl_client_new(c.loop, &co, &c.client))) {
        fprintf(stderr, "sluice: cannot create the client for %s: %s\n", co.base_url,
                sl_strerror(rc));
        goto out;
    }
    if ((rc = sl_request_new(&req)) || (rc = sl_request_set_model(req, model)) ||
        (system && (rc = sl_request_set_system(req, system))) ||
        (rc = sl_request_add_message(req, "user", prompt, prompt_len)) ||
        (max_tokens > 0 && (rc = sl_request_set_max_tokens(req, max_tokens))) ||
        (temperature >= 0 && (rc = sl_request_set_temperature(req, temperature))) ||
        (rc = sl_request_set_stream(req, stream))) {
        fprintf(stderr, "sluice: cannot build the request: %s\n", sl_strerror(rc));
        goto out;
    }

    uv_signal_init(c.loop, &c.sigint);
    uv_signal_init(c.loop, &c.sigterm);
    c.sigint.data = c.sigterm.data = &c;
    uv_signal_start(&c.sigint, on_signal, SIGINT);
    uv_signal_start(&c.sigterm, on_signal, SIGTERM);

    sl_policy_opts po;
    sl_policy_opts_init(&po);
    po.max_attempts = (int)retries + 1;
    po.deadline_ms = (long)(timeout_s * 1000);
    if ((rc = sl_policy_new(c.loop, &po, &c.policy))) {
        fprintf(stderr, "sluice: cannot set up retries: %s\n", sl_strerror(rc));
        close_signals(&c);
        goto out;
    }
    sl_call_opts o = {.on_delta = on_delta,
                      .on_done = on_done,
                      .user = &c,
                      .policy = c.policy,
                      .on_retry = on_retry};
    if ((rc = sl_call_start(c.client, req, &o, &c.call))) {
        fprintf(stderr, "sluice: cannot start the call to %s: %s\n", co.base_url, sl_strerror(rc));
        close_signals(&c);
        goto out;
    }
    uv_run(c.loop, UV_RUN_DEFAULT);

out:
    sl_request_free(req);
    if (c.client)
        sl_client_free(c.client);
    if (c.policy)
        sl_policy_free(c.policy);
    cli_provider_close(&c.prov);
    uv_run(c.loop, UV_RUN_DEFAULT);
    uv_loop_close(c.loop);
    free(prompt);
    return c.exit_code;
}
