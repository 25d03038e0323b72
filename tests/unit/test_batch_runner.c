/* test_batch_runner.c — the batch engine end to end on one loop against the in-process mock.
 *
 * Every input format, exactly one output line per id, invalid lines, --strict, resume
 * (skipping, a torn last line, a different input refused), stop(0) and stop(1) mid-run
 * followed by a resume that completes exactly the rest, the grace period, mock faults,
 * the errors file and the summary's exact counts. Stops are triggered by counts seen
 * from a uv_check handle, never by time. After each test the loop closes with no live
 * handle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/batch.h>
#include <sluice/mock.h>

static uv_loop_t loop;
static sl_mock *mock;
static sl_client *client;
static char dir[64];
static char in_path[128], out_path[128], errs_path[128], sum_path[128], msg_path[128];

/* ---- fixture ------------------------------------------------------------------------ */

static void start_mock(const sl_mock_opts *mo)
{
    assert_int_equal(sl_mock_new(&loop, mo, "127.0.0.1", 0, &mock), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", sl_mock_port(mock));
    sl_client_opts co;
    sl_client_opts_init(&co);
    co.base_url = url;
    co.max_host_connections = 16;
    assert_int_equal(sl_client_new(&loop, &co, &client), 0);
}

static sl_mock_opts fast_mock(void)
{
    sl_mock_opts mo;
    sl_mock_opts_init(&mo);
    mo.ttft_ms = 2;
    mo.interval_ms = 1;
    mo.chunks = 5;
    return mo;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/sl_runner_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(in_path, sizeof in_path, "%s/in.jsonl", dir);
    snprintf(out_path, sizeof out_path, "%s/out.jsonl", dir);
    snprintf(errs_path, sizeof errs_path, "%s/errors.jsonl", dir);
    snprintf(sum_path, sizeof sum_path, "%s/summary.json", dir);
    snprintf(msg_path, sizeof msg_path, "%s/messages.txt", dir);
    if (uv_loop_init(&loop))
        return -1;
    sl_mock_opts mo = fast_mock();
    start_mock(&mo);
    return 0;
}

static int teardown(void **state)
{
    if (client)
        sl_client_free(client);
    client = NULL;
    if (mock)
        sl_mock_free(mock);
    mock = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0); /* no live handle left */
    const char *names[] = {
        "in.jsonl",     "out.jsonl",    "out.jsonl.sluice", "out.jsonl.sluice.tmp",
        "errors.jsonl", "summary.json", "messages.txt",     "summary.json.tmp"};
    char p[200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    return rmdir(dir);
}

/* Replace the mock (and the client) with one made from mo. */
static void restart_mock(const sl_mock_opts *mo)
{
    sl_client_free(client);
    sl_mock_free(mock);
    uv_run(&loop, UV_RUN_DEFAULT);
    start_mock(mo);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    size_t k;
    while ((k = fread(p + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == cap)
            p = realloc(p, cap *= 2);
    }
    fclose(f);
    p[n] = '\0';
    return p;
}

/* Every line of path parsed (each must be one JSON object ending with '\n'). */
static json_t *load_lines(const char *path)
{
    char *text = slurp(path);
    json_t *arr = json_array();
    if (!text)
        return arr;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl); /* no torn line */
        json_error_t e;
        json_t *v = json_loadb(p, (size_t)(nl - p), 0, &e);
        if (!v)
            fail_msg("%s: bad line: %.*s (%s)", path, (int)(nl - p), p, e.text);
        assert_true(json_is_object(v));
        json_array_append_new(arr, v);
        p = nl + 1;
    }
    free(text);
    return arr;
}

static json_t *line_of(json_t *lines, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(lines, i, v)
    {
        if (!strcmp(json_string_value(json_object_get(v, "custom_id")), id))
            return v;
    }
    return NULL;
}

/* The output has exactly one line for each of ids[0..n) and nothing else. */
static void assert_ids_once(const char *path, const char *const *ids, size_t n)
{
    json_t *lines = load_lines(path);
    assert_int_equal(json_array_size(lines), n);
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        size_t k;
        json_t *v;
        json_array_foreach(lines, k, v)
        {
            seen += !strcmp(json_string_value(json_object_get(v, "custom_id")), ids[i]);
        }
        if (seen != 1)
            fail_msg("id %s has %d lines", ids[i], seen);
    }
    json_decref(lines);
}

/* n plain text lines "prompt 1".."prompt n": ids "1".."n". */
static void write_numbered(int n)
{
    FILE *f = fopen(in_path, "wb");
    assert_non_null(f);
    for (int i = 1; i <= n; i++)
        fprintf(f, "prompt %d\n", i);
    assert_int_equal(fclose(f), 0);
}

static void assert_numbered_once(int n)
{
    const char **ids = calloc((size_t)n, sizeof *ids);
    char(*buf)[16] = calloc((size_t)n, sizeof *buf);
    for (int i = 0; i < n; i++) {
        snprintf(buf[i], sizeof buf[i], "%d", i + 1);
        ids[i] = buf[i];
    }
    assert_ids_once(out_path, ids, (size_t)n);
    free(ids);
    free(buf);
}

static json_t *load_json(const char *path)
{
    json_error_t e;
    json_t *v = json_load_file(path, 0, &e);
    if (!v)
        fail_msg("%s: %s", path, e.text);
    return v;
}

static long long jint(json_t *o, const char *path)
{
    /* "a.b" */
    char key[64];
    const char *dot = strchr(path, '.');
    if (dot) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        return jint(json_object_get(o, key), dot + 1);
    }
    json_t *v = json_object_get(o, path);
    if (!json_is_integer(v))
        fail_msg("no integer %s", path);
    return json_integer_value(v);
}

/* ---- running a batch ---------------------------------------------------------------- */

typedef struct run {
    sl_batch *b;
    int done;
    int code;
    sl_batch_stats st; /* at on_done */
    /* stop once this many results are ok (0: never), now or with grace */
    uint64_t stop_after_ok;
    int stop_in_flight; /* or stop once this many calls are in flight */
    int stop_now;
    int stopped;
    uint64_t in_flight_at_stop;
    uint64_t ok_at_stop;
    uint64_t max_in_flight;
    uv_check_t check;
} run;

static void on_batch_done(sl_batch *b, int code, void *user)
{
    run *r = user;
    r->done++;
    r->code = code;
    sl_batch_get_stats(b, &r->st);
    uv_stop(&loop);
}

static void on_check(uv_check_t *h)
{
    run *r = h->data;
    if (r->done)
        return;
    sl_batch_stats st;
    sl_batch_get_stats(r->b, &st);
    if (st.in_flight > r->max_in_flight)
        r->max_in_flight = st.in_flight;
    if (r->stopped)
        return;
    if ((r->stop_after_ok && st.ok >= r->stop_after_ok) ||
        (r->stop_in_flight && st.in_flight >= (uint64_t)r->stop_in_flight)) {
        r->stopped = 1;
        r->in_flight_at_stop = st.in_flight;
        r->ok_at_stop = st.ok;
        sl_batch_stop(r->b, r->stop_now);
    }
}

static sl_batch_opts base_opts(void)
{
    sl_batch_opts o;
    sl_batch_opts_init(&o);
    o.input = in_path;
    o.output = out_path;
    o.client = client;
    o.concurrency = 4;
    o.progress = SL_PROGRESS_NEVER;
    o.model = "test-model";
    o.grace_s = 10;
    return o;
}

/* Run o to the end; the messages it printed are in msg_path. */
static int run_batch(sl_batch_opts *o, run *r)
{
    FILE *msgs = fopen(msg_path, "w");
    assert_non_null(msgs);
    o->messages = msgs;
    o->client = client;
    char err[512];
    int rc = sl_batch_new(&loop, o, &r->b, err, sizeof err);
    if (rc)
        fail_msg("sl_batch_new: %s", err);
    uv_check_init(&loop, &r->check);
    r->check.data = r;
    uv_check_start(&r->check, on_check);
    uv_unref((uv_handle_t *)&r->check);
    assert_int_equal(sl_batch_start(r->b, on_batch_done, r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r->done, 1);
    uv_close((uv_handle_t *)&r->check, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* the check handle lives in *r: close it now */
    sl_batch_free(r->b);
    fclose(msgs);
    return r->code;
}

/* sl_batch_new must refuse o; the reason goes to err. */
static int refuse(sl_batch_opts *o, char *err, size_t errlen)
{
    o->messages = stderr;
    o->client = client;
    sl_batch *b = NULL;
    int rc = sl_batch_new(&loop, o, &b, err, errlen);
    assert_int_not_equal(rc, 0);
    assert_null(b);
    return rc;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_formats(void **state)
{
    write_file(in_path,
               "{\"custom_id\":\"batch-1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
               "\"body\":{\"messages\":[{\"role\":\"user\",\"content\":\"alpha\"}]}}\n"
               "{\"id\":\"short-1\",\"prompt\":\"bravo\"}\n"
               "{\"id\":7,\"messages\":[{\"role\":\"user\",\"content\":\"charlie\"}],"
               "\"max_tokens\":3}\n"
               "{\"prompt\":\"delta\",\"model\":\"own-model\"}\n"
               "echo this plain line\n"
               "\n"
               "{\"custom_id\":\"emb-1\",\"url\":\"/v1/embeddings\","
               "\"body\":{\"input\":\"foxtrot\",\"dimensions\":4}}\n"
               "{\"custom_id\":\"cmp-1\",\"url\":\"/v1/completions\","
               "\"body\":{\"prompt\":\"golf\",\"max_tokens\":2}}");
    sl_batch_opts o = base_opts();
    o.summary_json = sum_path;
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_OK);
    const char *ids[] = {"batch-1", "short-1", "7", "4", "5", "emb-1", "cmp-1"};
    assert_ids_once(out_path, ids, 7);
    assert_int_equal(r.st.total, 7);
    assert_int_equal(r.st.ok, 7);
    assert_int_equal(r.st.failed, 0);
    assert_int_equal(r.st.unfinished, 0);

    json_t *lines = load_lines(out_path);
    struct {
        const char *id, *prompt, *model, *finish;
    } chats[] = {{"batch-1", "alpha", "test-model", "stop"},
                 {"short-1", "bravo", "test-model", "stop"},
                 {"7", "charlie", "test-model", "length"},
                 {"4", "delta", "own-model", "stop"},
                 {"5", "echo this plain line", "test-model", "stop"}};
    for (size_t i = 0; i < 5; i++) {
        json_t *l = line_of(lines, chats[i].id);
        assert_true(json_is_null(json_object_get(l, "error")));
        assert_true(json_is_string(json_object_get(l, "id")));
        json_t *resp = json_object_get(l, "response");
        assert_int_equal(jint(resp, "status_code"), 200);
        assert_true(json_is_string(json_object_get(resp, "request_id")));
        json_t *body = json_object_get(resp, "body");
        assert_string_equal(json_string_value(json_object_get(body, "object")), "chat.completion");
        assert_string_equal(json_string_value(json_object_get(body, "model")), chats[i].model);
        json_t *c0 = json_array_get(json_object_get(body, "choices"), 0);
        const char *text =
            json_string_value(json_object_get(json_object_get(c0, "message"), "content"));
        assert_non_null(text);
        assert_memory_equal(text, chats[i].prompt, strlen(chats[i].prompt));
        assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")),
                            chats[i].finish);
    }
    json_t *emb = json_object_get(json_object_get(line_of(lines, "emb-1"), "response"), "body");
    assert_string_equal(json_string_value(json_object_get(emb, "object")), "list");
    json_t *cmp = json_object_get(json_object_get(line_of(lines, "cmp-1"), "response"), "body");
    assert_string_equal(json_string_value(json_object_get(cmp, "object")), "text_completion");
    json_decref(lines);

    json_t *sum = load_json(sum_path);
    assert_int_equal(jint(sum, "items"), 7);
    assert_int_equal(jint(sum, "ok"), 7);
    assert_int_equal(jint(sum, "failed"), 0);
    assert_int_equal(jint(sum, "invalid_lines"), 0);
    assert_int_equal(jint(sum, "latency_ms.count"), 7);
    json_decref(sum);
}

/* --stream: the same bodies, assembled from the chunks. */
static void test_stream_same_shape(void **state)
{
    write_file(in_path,
               "one two\nthree four\n{\"id\":\"x\",\"prompt\":\"five\",\"max_tokens\":2}\n");
    sl_batch_opts o = base_opts();
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_OK);
    json_t *plain = load_lines(out_path);
    unlink(out_path);
    char side[160];
    snprintf(side, sizeof side, "%s.sluice", out_path);
    unlink(side);
    o = base_opts();
    o.stream = 1;
    run r2 = {0};
    assert_int_equal(run_batch(&o, &r2), SL_BATCH_EXIT_OK);
    json_t *streamed = load_lines(out_path);
    const char *ids[] = {"1", "2", "x"};
    for (size_t i = 0; i < 3; i++) {
        json_t *a = json_object_get(json_object_get(line_of(plain, ids[i]), "response"), "body");
        json_t *b = json_object_get(json_object_get(line_of(streamed, ids[i]), "response"), "body");
        assert_string_equal(json_string_value(json_object_get(b, "object")), "chat.completion");
        json_t *ca = json_array_get(json_object_get(a, "choices"), 0);
        json_t *cb = json_array_get(json_object_get(b, "choices"), 0);
        assert_true(json_equal(json_object_get(ca, "message"), json_object_get(cb, "message")));
        assert_true(
            json_equal(json_object_get(ca, "finish_reason"), json_object_get(cb, "finish_reason")));
        assert_true(json_equal(json_object_get(a, "usage"), json_object_get(b, "usage")));
    }
    json_decref(plain);
    json_decref(streamed);
}

static void test_invalid_lines(void **state)
{
    write_file(in_path, "{\"id\":\"a\",\"prompt\":\"fine\"}\n"
                        "{\"id\":\"b\",\"prompt\":\n"                 /* 2: bad JSON */
                        "{\"id\":\"a\",\"prompt\":\"again\"}\n"       /* 3: duplicate */
                        "{\"custom_id\":\"c\",\"method\":\"POST\"}\n" /* 4: no body */
                        "{\"custom_id\":\"d\",\"body\":{\"messages\":[{\"role\":\"user\","
                        "\"content\":\"ok\"}]}}\n"                                    /* 5 */
                        "{\"id\":\"e\",\"prompt\":\"x\",\"max_tokens\":\"many\"}\n"); /* 6 */
    sl_batch_opts o = base_opts();
    o.summary_json = sum_path;
    o.errors = errs_path;
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_FAILED);
    /* Lines with a usable id get an error line; the others none. */
    const char *ids[] = {"a", "c", "d", "e"};
    assert_ids_once(out_path, ids, 4);
    const char *failed_ids[] = {"c", "e"};
    assert_ids_once(errs_path, failed_ids, 2);
    json_t *lines = load_lines(out_path);
    json_t *c = line_of(lines, "c");
    assert_true(json_is_null(json_object_get(c, "response")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "error"), "code")),
                        "missing_field");
    json_t *e = line_of(lines, "e");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "error"), "code")),
                        "invalid_field");
    json_decref(lines);
    assert_int_equal(r.st.ok, 2);
    assert_int_equal(r.st.invalid, 4);
    assert_int_equal(r.st.failed, 4);

    char *m = slurp(msg_path);
    char want[256];
    const int bad[] = {2, 3, 4, 6};
    for (size_t i = 0; i < 4; i++) {
        snprintf(want, sizeof want, "sluice: %s:%d: ", in_path, bad[i]);
        if (!strstr(m, want))
            fail_msg("no message for line %d in:\n%s", bad[i], m);
    }
    assert_non_null(strstr(m, "duplicate id \"a\" (first on line 1)"));
    free(m);

    json_t *sum = load_json(sum_path);
    assert_int_equal(jint(sum, "items"), 6);
    assert_int_equal(jint(sum, "ok"), 2);
    assert_int_equal(jint(sum, "invalid_lines"), 4);
    assert_int_equal(jint(sum, "failed"), 0);
    assert_int_equal(json_array_size(json_object_get(sum, "failures")), 4);
    json_decref(sum);
}

static void test_strict(void **state)
{
    write_file(in_path, "p1\n{nope\np3\np4\np5\n");
    sl_batch_opts o = base_opts();
    o.strict = 1;
    o.concurrency = 1;
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_USAGE);
    /* p1 was in flight and finishes; nothing after line 2 is sent. */
    const char *ids[] = {"1"};
    assert_ids_once(out_path, ids, 1);
    assert_int_equal(r.st.ok, 1);
    assert_int_equal(r.st.invalid, 1);
    assert_int_equal(r.st.unfinished, 3);
    char *m = slurp(msg_path);
    assert_non_null(strstr(m, "--strict"));
    free(m);
}

static void test_resume_skips_and_repairs(void **state)
{
    write_numbered(12);
    sl_batch_opts o = base_opts();
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_OK);
    assert_numbered_once(12);

    /* Keep 7 complete lines and half of the 8th: a crash mid-write. */
    char *text = slurp(out_path);
    char *p = text;
    for (int i = 0; i < 7; i++)
        p = strchr(p, '\n') + 1;
    size_t keep = (size_t)(p - text) + (size_t)(strchr(p, '\n') - p) / 2;
    assert_int_equal(truncate(out_path, (off_t)keep), 0);
    free(text);

    o = base_opts();
    o.resume = 1;
    o.summary_json = sum_path;
    run r2 = {0};
    assert_int_equal(run_batch(&o, &r2), SL_BATCH_EXIT_OK);
    assert_numbered_once(12);
    assert_int_equal(r2.st.skipped, 7);
    assert_int_equal(r2.st.ok, 5);
    char *m = slurp(msg_path);
    assert_non_null(strstr(m, "removed a torn last line (line 8,"));
    assert_non_null(strstr(m, "resuming"));
    free(m);
    json_t *sum = load_json(sum_path);
    assert_int_equal(jint(sum, "skipped"), 7);
    assert_int_equal(jint(sum, "ok"), 5);
    json_decref(sum);

    /* Nothing left: a resume sends nothing. */
    o = base_opts();
    o.resume = 1;
    run r3 = {0};
    assert_int_equal(run_batch(&o, &r3), SL_BATCH_EXIT_OK);
    assert_int_equal(r3.st.skipped, 12);
    assert_int_equal(r3.st.ok, 0);
    assert_numbered_once(12);
}

static void test_refusals(void **state)
{
    write_numbered(3);
    sl_batch_opts o = base_opts();
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_OK);

    char err[512];
    o = base_opts();
    assert_int_equal(refuse(&o, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "exists; use --resume"));

    write_numbered(4); /* another input */
    o = base_opts();
    o.resume = 1;
    assert_int_equal(refuse(&o, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "different input"));
    assert_numbered_once(3); /* untouched */

    o = base_opts();
    o.input = "/nonexistent/in.jsonl";
    assert_int_equal(refuse(&o, err, sizeof err), SL_EIO);
    assert_non_null(strstr(err, "/nonexistent/in.jsonl"));

    o = base_opts();
    o.concurrency = 0;
    assert_int_equal(refuse(&o, err, sizeof err), SL_EINVAL);

    /* An errors file that cannot be created leaves no new output behind. */
    unlink(out_path);
    char side[160];
    snprintf(side, sizeof side, "%s.sluice", out_path);
    unlink(side);
    o = base_opts();
    o.errors = "/nonexistent/errors.jsonl";
    refuse(&o, err, sizeof err);
    struct stat st;
    assert_int_not_equal(stat(out_path, &st), 0);
    assert_int_not_equal(stat(side, &st), 0);
}

/* stop(0) after some results: in-flight calls finish and are written; the rest is left
 * for a resume, which completes exactly it. */
static void test_stop_graceful_then_resume(void **state)
{
    write_numbered(40);
    sl_batch_opts o = base_opts();
    run r = {0};
    r.stop_after_ok = 6;
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_INTERRUPTED);
    assert_true(r.in_flight_at_stop > 0);
    json_t *lines = load_lines(out_path);
    assert_int_equal(json_array_size(lines), r.st.ok);
    json_decref(lines);
    assert_true(r.ok_at_stop >= 6);
    assert_int_equal(r.st.ok, r.ok_at_stop + r.in_flight_at_stop); /* in-flight ones finished */
    assert_int_equal(r.st.unfinished, 40 - r.st.ok);
    assert_int_equal(r.st.failed, 0);

    o = base_opts();
    o.resume = 1;
    run r2 = {0};
    assert_int_equal(run_batch(&o, &r2), SL_BATCH_EXIT_OK);
    assert_int_equal(r2.st.skipped, r.st.ok);
    assert_int_equal(r2.st.ok, 40 - r.st.ok);
    assert_numbered_once(40);
}

/* stop(1): in-flight calls are cancelled and get no line. */
static void test_stop_now_then_resume(void **state)
{
    write_numbered(40);
    sl_batch_opts o = base_opts();
    run r = {0};
    r.stop_after_ok = 6;
    r.stop_now = 1;
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_INTERRUPTED);
    assert_int_equal(r.in_flight_at_stop, 4);
    json_t *lines = load_lines(out_path);
    assert_int_equal(json_array_size(lines), r.st.ok);
    json_decref(lines);
    assert_true(r.ok_at_stop >= 6);
    assert_int_equal(r.st.ok, r.ok_at_stop); /* nothing finished after the stop */
    assert_int_equal(r.st.unfinished, 40 - r.st.ok);

    o = base_opts();
    o.resume = 1;
    run r2 = {0};
    assert_int_equal(run_batch(&o, &r2), SL_BATCH_EXIT_OK);
    assert_int_equal(r2.st.skipped, r.st.ok);
    assert_int_equal(r2.st.ok, 40 - r.st.ok);
    assert_numbered_once(40);
}

/* The grace period runs out: what is still in flight is cancelled. */
static void test_grace_expires(void **state)
{
    sl_mock_opts mo = fast_mock();
    mo.stall = 1;
    restart_mock(&mo);
    write_numbered(10);
    sl_batch_opts o = base_opts();
    o.grace_s = 0.02;
    run r = {0};
    r.stop_in_flight = 4;
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_INTERRUPTED);
    assert_int_equal(r.in_flight_at_stop, 4);
    assert_int_equal(r.st.ok + r.st.failed, 0);
    assert_int_equal(r.st.unfinished, 10);
    json_t *lines = load_lines(out_path);
    assert_int_equal(json_array_size(lines), 0);
    json_decref(lines);
    char *m = slurp(msg_path);
    assert_non_null(strstr(m, "grace period over: cancelling 4 in-flight requests"));
    free(m);
}

/* No more than `concurrency` calls at once, and that many when there is work. */
static void test_concurrency_bound(void **state)
{
    sl_mock_opts mo = fast_mock();
    mo.ttft_ms = 5;
    restart_mock(&mo);
    write_numbered(60);
    sl_batch_opts o = base_opts();
    o.concurrency = 7;
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_OK);
    assert_int_equal(r.max_in_flight, 7);
    assert_numbered_once(60);
}

/* 400 is final: one attempt, the provider's answer kept, the errors file has the lines. */
static void test_http_400_failures(void **state)
{
    sl_mock_opts mo = fast_mock();
    mo.fail_rate = 1;
    mo.fail_status = 400;
    restart_mock(&mo);
    write_numbered(5);
    sl_batch_opts o = base_opts();
    o.errors = errs_path;
    o.summary_json = sum_path;
    o.policy.max_attempts = 4;
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_FAILED);
    assert_numbered_once(5);
    json_t *lines = load_lines(out_path);
    json_t *errs = load_lines(errs_path);
    assert_int_equal(json_array_size(errs), 5);
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        json_t *resp = json_object_get(l, "response");
        assert_int_equal(jint(resp, "status_code"), 400);
        assert_true(json_is_object(json_object_get(json_object_get(resp, "body"), "error")));
        json_t *e = json_object_get(l, "error");
        assert_string_equal(json_string_value(json_object_get(e, "code")), "http_400");
        assert_true(json_is_string(json_object_get(e, "message")));
        /* the same line in the errors file */
        json_t *same = line_of(errs, json_string_value(json_object_get(l, "custom_id")));
        assert_true(json_equal(l, same));
    }
    json_decref(lines);
    json_decref(errs);
    json_t *sum = load_json(sum_path);
    assert_int_equal(jint(sum, "failed"), 5);
    assert_int_equal(jint(sum, "failed_by_reason.http_4xx"), 5);
    assert_int_equal(jint(sum, "retries"), 0); /* never retried */
    json_decref(sum);
    assert_int_equal(r.st.retries, 0);

    /* A resume of a finished output with failures: nothing sent, still exit 1. */
    o = base_opts();
    o.errors = errs_path;
    o.resume = 1;
    run r2 = {0};
    assert_int_equal(run_batch(&o, &r2), SL_BATCH_EXIT_FAILED);
    assert_int_equal(r2.st.skipped, 5);
    assert_numbered_once(5);
}

/* 500s are retried: every id fails after exactly max_attempts attempts. */
static void test_http_500_retried(void **state)
{
    sl_mock_opts mo = fast_mock();
    mo.fail_rate = 1;
    mo.fail_status = 500;
    restart_mock(&mo);
    write_numbered(3);
    sl_batch_opts o = base_opts();
    o.summary_json = sum_path;
    o.policy.max_attempts = 3;
    o.policy.backoff_base_ms = 1;
    o.policy.backoff_cap_ms = 2;
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_FAILED);
    assert_numbered_once(3);
    json_t *sum = load_json(sum_path);
    assert_int_equal(jint(sum, "failed_by_reason.http_5xx"), 3);
    assert_int_equal(jint(sum, "retries"), 6);
    json_decref(sum);
    assert_int_equal(r.st.retries, 6);
    sl_mock_stats ms;
    sl_mock_get_stats(mock, &ms);
    assert_int_equal(ms.requests, 9);
}

/* A stream cut mid-way fails the id (response null) and the batch goes on. */
static void test_cut_stream(void **state)
{
    sl_mock_opts mo = fast_mock();
    mo.cut_after = 2;
    restart_mock(&mo);
    write_numbered(4);
    sl_batch_opts o = base_opts();
    o.stream = 1;
    o.errors = errs_path;
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_FAILED);
    assert_numbered_once(4);
    assert_int_equal(r.st.failed, 4);
    json_t *lines = load_lines(out_path);
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        assert_true(json_is_null(json_object_get(l, "response")));
        assert_true(json_is_object(json_object_get(l, "error")));
    }
    json_decref(lines);
}

/* An empty input: nothing to do, exit 0, an empty output. */
static void test_empty_input(void **state)
{
    write_file(in_path, "\n\n");
    sl_batch_opts o = base_opts();
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_OK);
    assert_int_equal(r.st.total, 0);
    json_t *lines = load_lines(out_path);
    assert_int_equal(json_array_size(lines), 0);
    json_decref(lines);
}

/* Progress status lines go to the messages stream when it is not a terminal. */
static void test_status_lines(void **state)
{
    write_numbered(5);
    sl_batch_opts o = base_opts();
    o.progress = SL_PROGRESS_AUTO;
    run r = {0};
    assert_int_equal(run_batch(&o, &r), SL_BATCH_EXIT_OK);
    char *m = slurp(msg_path);
    assert_non_null(strstr(m, "[batch] 5/5 ok=5 failed=0"));
    assert_non_null(strstr(m, "batch: 5 items: 5 ok, 0 failed"));
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_same_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_skips_and_repairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_graceful_then_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_now_then_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grace_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_400_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_500_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_lines, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
