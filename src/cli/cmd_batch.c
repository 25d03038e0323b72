/* cmd_batch.c — `sluice batch INPUT -o OUTPUT`: run a JSONL file of requests.
 *
 * Options in, an sl_batch out (sluice/batch.h does the work): the provider, the client
 * with one connection per concurrent request, the policy options, and the signals. The
 * first SIGINT/SIGTERM stops taking work and lets in-flight requests finish within the
 * grace period; a second one cancels them at once. Everything finished is written. */
#include "cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: sluice batch INPUT -o OUTPUT [options]\n"
    "\n"
    "Send every request of INPUT to an OpenAI-compatible API, at most --concurrency at\n"
    "a time, and write one result line per request to OUTPUT. INPUT and OUTPUT may be\n"
    "'-' (stdin, stdout). The input is streamed: memory stays flat.\n"
    "\n"
    "input lines (formats may be mixed; see docs/batch-formats.md):\n"
    "  {\"custom_id\": \"r1\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": "
    "{...}}\n"
    "                          the OpenAI Batch API format\n"
    "  {\"id\": \"q1\", \"prompt\": \"...\"}  short form (or \"messages\": [...]; optional\n"
    "                          \"system\", \"model\", \"max_tokens\", \"temperature\")\n"
    "  any other line          one prompt; its id is the line number\n"
    "output: one OpenAI Batch output line per id: {\"id\", \"custom_id\", \"response\":\n"
    "  {\"status_code\", \"request_id\", \"body\"}, \"error\"}, in completion order.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE       results (required; '-' = stdout)\n"
    "      --errors FILE       also write the failed results here\n"
    "  -c, --concurrency N     requests in flight (default 50)\n"
    "      --rpm N             requests per minute (default: no limit)\n"
    "      --tpm N             tokens per minute (default: no limit)\n"
    "      --retries N         retries after the first attempt (default 3)\n"
    "      --timeout SECONDS   per attempt (e.g. 30, 1.5s, 500ms; default 600, 0 = none)\n"
    "      --deadline SECONDS  per request, all its attempts and waits included\n"
    "                          (default: none)\n"
    "      --breaker N         after N consecutive failures, fail requests at once\n"
    "                          (circuit_open) until a trial succeeds (default: off)\n"
    "      --breaker-cooldown SECONDS\n"
    "                          time before the trial request (default 10)\n"
    "  -m, --model NAME        model for lines that name none (default: mock-model on the\n"
    "                          embedded mock, else $SLUICE_MODEL or gpt-4o-mini)\n"
    "      --base-url URL      OpenAI-compatible endpoint (default: $OPENAI_BASE_URL;\n"
    "                          with neither it nor an API key: the embedded mock)\n"
    "      --api-key-env VAR   read the API key from $VAR (default: OPENAI_API_KEY)\n"
    "      --resume            continue OUTPUT: repair a torn last line, skip the ids\n"
    "                          that have a result (refused if OUTPUT is from another input)\n"
    "      --progress MODE     auto (a bar if stderr is a terminal, else a status line\n"
    "                          every 10 s), always (the bar), never\n"
    "      --summary-json FILE the final summary as JSON ('-' = stdout)\n"
    "      --stream            use streaming calls; each body is the assembled completion\n"
    "      --strict            stop at the first invalid input line (exit 2)\n"
    "      --grace SECONDS     after Ctrl-C, wait this long for in-flight requests\n"
    "                          (default 30); a second Ctrl-C stops at once\n"
    "  -h, --help              this text\n"
    "\n"
    "exit codes: 0 every request succeeded; 1 some ids failed permanently (or invalid\n"
    "input lines); 2 usage or input error; 130 interrupted with requests left (run\n"
    "again with --resume to finish them).\n";

typedef struct batch_cmd {
    uv_loop_t *loop;
    sl_batch *batch;
    uv_signal_t sigint, sigterm;
    int signals;
    int exit_code;
    double grace_s;
    int bar; /* the progress bar is on the terminal */
} batch_cmd;

static void close_signals(batch_cmd *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->sigint))
        uv_close((uv_handle_t *)&c->sigint, NULL);
    if (!uv_is_closing((uv_handle_t *)&c->sigterm))
        uv_close((uv_handle_t *)&c->sigterm, NULL);
}

static void on_batch_done(sl_batch *b, int exit_code, void *user)
{
    batch_cmd *c = user;
    c->exit_code = exit_code;
    close_signals(c);
    /* The embedded mock still listens: stop here, then release everything. */
    uv_stop(c->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    batch_cmd *c = h->data;
    c->signals++;
    sl_batch_stats st;
    sl_batch_get_stats(c->batch, &st);
    if (c->bar)
        fputs("\r\x1b[K", stderr);
    if (c->signals == 1) {
        fprintf(stderr,
                "sluice: stopping: waiting up to %gs for %llu in-flight requests (signal again "
                "to stop now)\n",
                c->grace_s, (unsigned long long)st.in_flight);
        sl_batch_stop(c->batch, 0);
    } else {
        if (c->signals == 2)
            fprintf(stderr, "sluice: stopping now: cancelling %llu in-flight requests\n",
                    (unsigned long long)st.in_flight);
        sl_batch_stop(c->batch, 1);
    }
}

static int parse_progress(const char *s, int *out)
{
    if (!strcmp(s, "auto"))
        *out = SL_PROGRESS_AUTO;
    else if (!strcmp(s, "always"))
        *out = SL_PROGRESS_ALWAYS;
    else if (!strcmp(s, "never"))
        *out = SL_PROGRESS_NEVER;
    else {
        fprintf(stderr, "sluice: --progress: '%s' is not auto, always or never\n", s);
        return -1;
    }
    return 0;
}

int cmd_batch(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"errors", required_argument, NULL, 'E'},
        {"concurrency", required_argument, NULL, 'c'},
        {"rpm", required_argument, NULL, 'R'},
        {"tpm", required_argument, NULL, 'T'},
        {"retries", required_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'},
        {"deadline", required_argument, NULL, 'D'},
        {"breaker", required_argument, NULL, 'B'},
        {"breaker-cooldown", required_argument, NULL, 'C'},
        {"model", required_argument, NULL, 'm'},
        {"base-url", required_argument, NULL, 'b'},
        {"api-key-env", required_argument, NULL, 'k'},
        {"resume", no_argument, NULL, 'Z'},
        {"progress", required_argument, NULL, 'P'},
        {"summary-json", required_argument, NULL, 'J'},
        {"stream", no_argument, NULL, 'S'},
        {"strict", no_argument, NULL, 'X'},
        {"grace", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    batch_cmd c;
    memset(&c, 0, sizeof c);
    c.exit_code = SL_EXIT_USAGE;
    cli_provider prov;
    memset(&prov, 0, sizeof prov);
    sl_batch_opts bo;
    sl_batch_opts_init(&bo);
    long concurrency = 50, retries = 3, rpm = 0, tpm = 0, breaker = 0;
    /* A default attempt timeout, as the OpenAI SDKs have: a provider that stalls must not
     * hold a batch forever. */
    double timeout_s = 600, grace_s = 30, deadline_s = 0, cooldown_s = 10;
    const char *model = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:c:m:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            bo.output = optarg;
            break;
        case 'E':
            bo.errors = optarg;
            break;
        case 'c':
            if (cli_parse_long("--concurrency", optarg, 1, 100000, &concurrency))
                return SL_EXIT_USAGE;
            break;
        case 'R':
            if (cli_parse_long("--rpm", optarg, 0, 1000000000, &rpm))
                return SL_EXIT_USAGE;
            break;
        case 'T':
            if (cli_parse_long("--tpm", optarg, 0, 1000000000000L, &tpm))
                return SL_EXIT_USAGE;
            break;
        case 'r':
            if (cli_parse_long("--retries", optarg, 0, 100, &retries))
                return SL_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_seconds("--timeout", optarg, &timeout_s))
                return SL_EXIT_USAGE;
            break;
        case 'D':
            if (cli_parse_seconds("--deadline", optarg, &deadline_s))
                return SL_EXIT_USAGE;
            break;
        case 'B':
            if (cli_parse_long("--breaker", optarg, 0, 1000000, &breaker))
                return SL_EXIT_USAGE;
            break;
        case 'C':
            if (cli_parse_seconds("--breaker-cooldown", optarg, &cooldown_s))
                return SL_EXIT_USAGE;
            break;
        case 'm':
            model = optarg;
            break;
        case 'b':
            prov.base_url_flag = optarg;
            break;
        case 'k':
            prov.api_key_env = optarg;
            break;
        case 'Z':
            bo.resume = 1;
            break;
        case 'P':
            if (parse_progress(optarg, &bo.progress))
                return SL_EXIT_USAGE;
            break;
        case 'J':
            bo.summary_json = optarg;
            break;
        case 'S':
            bo.stream = 1;
            break;
        case 'X':
            bo.strict = 1;
            break;
        case 'g':
            if (cli_parse_seconds("--grace", optarg, &grace_s))
                return SL_EXIT_USAGE;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return SL_EXIT_OK;
        default:
            fputs(usage_text, stderr);
            return SL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "sluice: batch: an INPUT file is required ('-' for stdin)\n\n%s",
                usage_text);
        return SL_EXIT_USAGE;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "sluice: batch: one INPUT only (got '%s' too)\n", argv[optind + 1]);
        return SL_EXIT_USAGE;
    }
    if (!bo.output) {
        fprintf(stderr, "sluice: batch: -o OUTPUT is required ('-' for stdout)\n\n%s", usage_text);
        return SL_EXIT_USAGE;
    }
    bo.input = argv[optind];
    if (!strcmp(bo.input, "-") && isatty(STDIN_FILENO))
        fprintf(stderr, "sluice: reading requests from stdin, one a line (end with Ctrl-D)\n");
    if (!strcmp(bo.input, "-") && !strcmp(bo.output, "-") && bo.resume) {
        fprintf(stderr, "sluice: batch: --resume needs an output file, not stdout\n");
        return SL_EXIT_USAGE;
    }

    c.loop = uv_default_loop();
    sl_client *client = NULL;
    int rc;
    sl_mock_opts mo;
    sl_mock_opts_init(&mo);
    /* The embedded mock for batch: about 360 ms per answer (250 ms to the first token,
     * 12 chunks 10 ms apart), so the bundled 200 prompts take about 1.5 s at -c 50:
     * quick, yet concurrency and the progress bar are real. */
    mo.ttft_ms = 250;
    mo.interval_ms = 10;
    mo.chunks = 12;
    if (cli_provider_open(&prov, c.loop, &mo))
        goto out;
    if (!model)
        model = prov.embedded ? "mock-model" : getenv("SLUICE_MODEL");
    if (!model || !*model)
        model = "gpt-4o-mini";

    /* One descriptor per connection (two with the embedded mock: both ends are here),
     * plus room for the files and the loop. Refuse now rather than fail mid-run. */
    long need = concurrency * (prov.embedded ? 2 : 1) + 64;
    if (cli_raise_nofile(need)) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        fprintf(stderr,
                "sluice: --concurrency %ld needs %ld open files, but the limit is %llu; raise "
                "it (ulimit -n %ld) or lower --concurrency\n",
                concurrency, need, (unsigned long long)rl.rlim_cur, need);
        goto out;
    }

    sl_client_opts co;
    sl_client_opts_init(&co);
    co.base_url = prov.base_url;
    co.api_key = prov.api_key;
    co.max_host_connections = (int)concurrency;
    if ((rc = sl_client_new(c.loop, &co, &client))) {
        fprintf(stderr, "sluice: cannot create the client for %s: %s\n", co.base_url,
                sl_strerror(rc));
        goto out;
    }

    bo.model = model;
    bo.concurrency = (int)concurrency;
    bo.grace_s = grace_s;
    bo.client = client;
    bo.timeout_ms = (long)(timeout_s * 1000 + 0.5);
    bo.policy.max_attempts = (int)retries + 1;
    bo.policy.rpm = rpm;
    bo.policy.tpm = tpm;
    bo.policy.deadline_ms = (long)(deadline_s * 1000 + 0.5);
    bo.policy.breaker_threshold = (int)breaker;
    bo.policy.breaker_cooldown_ms = (long)(cooldown_s * 1000 + 0.5);
    c.grace_s = grace_s;
    char err[1024];
    if ((rc = sl_batch_new(c.loop, &bo, &c.batch, err, sizeof err))) {
        fprintf(stderr, "sluice: %s\n", err[0] ? err : sl_strerror(rc));
        goto out;
    }
    c.bar = bo.progress == SL_PROGRESS_ALWAYS ||
            (bo.progress == SL_PROGRESS_AUTO && isatty(STDERR_FILENO));

    uv_signal_init(c.loop, &c.sigint);
    uv_signal_init(c.loop, &c.sigterm);
    c.sigint.data = c.sigterm.data = &c;
    uv_signal_start(&c.sigint, on_signal, SIGINT);
    uv_signal_start(&c.sigterm, on_signal, SIGTERM);
    if ((rc = sl_batch_start(c.batch, on_batch_done, &c))) {
        fprintf(stderr, "sluice: cannot start the batch: %s\n", sl_strerror(rc));
        close_signals(&c);
        goto out;
    }
    c.exit_code = SL_EXIT_FAILED;
    uv_run(c.loop, UV_RUN_DEFAULT);

out:
    sl_batch_free(c.batch);
    if (client)
        sl_client_free(client);
    cli_provider_close(&prov);
    uv_run(c.loop, UV_RUN_DEFAULT);
    uv_loop_close(c.loop);
    return c.exit_code;
}
