/* test_batch_output.c — the batch results file: exact line format, one write per line,
 * resume after a torn last line at every cut, the refusals, write faults, the sync clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apps/batch/input.h"
#include "apps/batch/output.h"
#include "base/buf.h"
#include "base/json.h"
#include <sluice/common.h>

static char dir[64];
static char out_path[128];
static char side_path[160];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/sl_output_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(out_path, sizeof out_path, "%s/out.jsonl", dir);
    snprintf(side_path, sizeof side_path, "%s/out.jsonl.sluice", dir);
    return 0;
}

static int teardown(void **state)
{
    char p[200];
    const char *names[] = {"out.jsonl",    "out.jsonl.sluice",    "out.jsonl.sluice.tmp",
                           "errors.jsonl", "errors.jsonl.sluice", "copy.jsonl"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    return rmdir(dir);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    sl_buf b;
    sl__buf_init(&b, 0);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        sl__buf_append(&b, tmp, n);
    fclose(f);
    if (len)
        *len = b.len;
    return sl__buf_steal(&b);
}

static void spill(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static double fake_now;
static double fake_clock(void)
{
    return fake_now;
}

static void opts_for_test(sl_batch_output_opts *o)
{
    sl__batch_output_opts_init(o);
    o->input_path = "in.jsonl";
    o->input_fingerprint = 0x0123456789abcdefULL;
    o->fingerprint_known = 1;
    o->created_unix = 1700000000;
    o->id_salt = 0xfeedfacecafebeefULL;
    o->now_ms = fake_clock;
}

static const char *LINE_A = "{\"id\":\"batch_req_feedfacecafebeef00000000\",\"custom_id\":\"a\","
                            "\"response\":{\"status_code\":200,\"request_id\":\"req_1\",\"body\":"
                            "{\"x\":0.1}},\"error\":null}\n";
static const char *LINE_B =
    "{\"id\":\"batch_req_feedfacecafebeef00000001\",\"custom_id\":\"b\",\"response\":null,"
    "\"error\":{\"code\":\"timeout\",\"message\":\"no answer in 30s\"}}\n";
static const char *LINE_C =
    "{\"id\":\"batch_req_feedfacecafebeef00000002\",\"custom_id\":\"c\",\"response\":{"
    "\"status_code\":429,\"request_id\":null,\"body\":{\"error\":   {\"message\":\"slow down\"}}},"
    "\"error\":{\"code\":\"http_429\",\"message\":\"rate limited\"}}\n";

static void put_abc(sl_batch_output *out)
{
    sl_batch_result a = {"a", 200, "req_1", {"{\"x\":0.1}", 9}, NULL, NULL, 0, NULL, 0};
    sl_batch_result b = {"b", 0, NULL, {NULL, 0}, "timeout", "no answer in 30s", 0, NULL, 0};
    const char *cb = "{\"error\":\n  {\"message\":\"slow down\"}}\r\n";
    sl_batch_result c = {"c", 429, NULL, {cb, strlen(cb)}, "http_429", "rate limited", 0, NULL, 0};
    assert_int_equal(sl__batch_output_put(out, &a), 0);
    assert_int_equal(sl__batch_output_put(out, &b), 0);
    assert_int_equal(sl__batch_output_put(out, &c), 0);
}

/* After a retry the line carries the attempt count and each attempt kept in the log. */
static void test_line_attempts(void **state)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    sl_attempt_info log[3] = {
        {SL_EHTTP, 503, 0, 0, 1.25, 212.04},
        {SL_ETRANSPORT, 0, 213.3, 0.5, 2, 480},
        {0, 200, 695.66, 0, 10.01, -1},
    };
    sl_batch_result r = {"q1", 200, NULL, {"{}", 2}, NULL, NULL, 3, log, 3};
    assert_int_equal(sl__batch_result_line(&b, "batch_req_1", &r), 0);
    const char *want =
        "{\"id\":\"batch_req_1\",\"custom_id\":\"q1\",\"response\":{\"status_code\":200,"
        "\"request_id\":null,\"body\":{}},\"error\":null,\"attempts\":3,\"attempt_log\":["
        "{\"status\":503,\"error\":\"http_503\",\"start_ms\":0.0,\"wait_ms\":0.0,"
        "\"duration_ms\":1.3,\"backoff_ms\":212.0},"
        "{\"status\":null,\"error\":\"transport\",\"start_ms\":213.3,\"wait_ms\":0.5,"
        "\"duration_ms\":2.0,\"backoff_ms\":480.0},"
        "{\"status\":200,\"error\":null,\"start_ms\":695.7,\"wait_ms\":0.0,"
        "\"duration_ms\":10.0,\"backoff_ms\":null}]}\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    json_error_t je;
    json_t *j = json_loadb(b.data, b.len, 0, &je);
    assert_non_null(j);
    json_decref(j);
    /* one attempt: no log */
    sl__buf_reset(&b);
    r.attempts = 1;
    r.attempt_log_len = 1;
    assert_int_equal(sl__batch_result_line(&b, "batch_req_1", &r), 0);
    assert_null(memmem(b.data, b.len, "attempt", 7));
    sl__buf_free(&b);
}

static void test_line_format(void **state)
{
    sl_buf b;
    sl__buf_init(&b, 0);
    /* body kept byte for byte (numbers too), newlines between tokens become spaces */
    const char *body = "\n{\"id\": \"chatcmpl-1\",\r\n \"n\": 1.10, \"s\": \"a\\nb\"}\n";
    sl_batch_result r = {"q\"\n\xff", 200, "rid", {body, strlen(body)}, NULL, NULL, 0, NULL, 0};
    assert_int_equal(sl__batch_result_line(&b, "batch_req_1", &r), 0);
    assert_string_equal(b.data,
                        "{\"id\":\"batch_req_1\",\"custom_id\":\"q\\\"\\n\\ufffd\",\"response\":{"
                        "\"status_code\":200,\"request_id\":\"rid\",\"body\":{\"id\": "
                        "\"chatcmpl-1\",   \"n\": 1.10, \"s\": \"a\\nb\"}},\"error\":null}\n");
    /* it parses back */
    json_t *v = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(v);
    assert_string_equal(sl__json_str(v, "custom_id"), "q\"\n\xef\xbf\xbd");
    json_t *resp = json_object_get(v, "response");
    assert_int_equal(sl__json_int(resp, "status_code", 0), 200);
    assert_string_equal(sl__json_str(json_object_get(resp, "body"), "s"), "a\nb");
    assert_true(json_is_null(json_object_get(v, "error")));
    json_decref(v);

    /* a body that is not JSON is kept as a string; control bytes escaped */
    sl__buf_reset(&b);
    sl_batch_result e = {"x", 502,  NULL, {"<html>\x01\tbad\x7f</html>", 19}, NULL, "bad gateway",
                         0,   NULL, 0};
    assert_int_equal(sl__batch_result_line(&b, "r", &e), 0);
    assert_string_equal(b.data,
                        "{\"id\":\"r\",\"custom_id\":\"x\",\"response\":{\"status_code\":502,"
                        "\"request_id\":null,\"body\":\"<html>\\u0001\\tbad\\u007f</html>"
                        "\"},\"error\":{\"code\":null,\"message\":\"bad gateway\"}}\n");
    v = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(v);
    json_decref(v);

    /* no body at all */
    sl__buf_reset(&b);
    sl_batch_result n = {"y", 204, "r2", {NULL, 0}, NULL, NULL, 0, NULL, 0};
    assert_int_equal(sl__batch_result_line(&b, "r", &n), 0);
    assert_string_equal(b.data,
                        "{\"id\":\"r\",\"custom_id\":\"y\",\"response\":{\"status_code\":204,"
                        "\"request_id\":\"r2\",\"body\":null},\"error\":null}\n");
    sl__buf_free(&b);
}

/* write_fn that records each call's size and forwards to write */
static size_t calls[64];
static size_t ncalls;
static int fault; /* 0 none, 1 one byte a time + EINTR, 2 ENOSPC after 10 bytes */
static int eintr_once;

static ssize_t rec_write(int fd, const void *p, size_t n)
{
    if (fault == 1) {
        if (!eintr_once) {
            eintr_once = 1;
            errno = EINTR;
            return -1;
        }
        n = 1;
    }
    if (fault == 2) {
        if (ncalls > 0) {
            errno = ENOSPC;
            return -1;
        }
        n = 10;
    }
    if (ncalls < 64)
        calls[ncalls++] = n;
    return write(fd, p, n);
}

static void test_new_output_and_side_file(void **state)
{
    sl_batch_output_opts o;
    opts_for_test(&o);
    o.write_fn = rec_write;
    ncalls = 0;
    fault = 0;
    sl_batch_output *out;
    sl_batch_resume_info info;
    char err[512];
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    assert_int_equal(info.resumed, 0);
    put_abc(out);
    /* one write() per line, each the whole line */
    assert_int_equal(ncalls, 3);
    assert_int_equal(calls[0], strlen(LINE_A));
    assert_int_equal(calls[1], strlen(LINE_B));
    assert_int_equal(calls[2], strlen(LINE_C));
    /* an id is never written twice */
    sl_batch_result again = {"a", 200, NULL, {NULL, 0}, NULL, NULL, 0, NULL, 0};
    assert_int_equal(sl__batch_output_put(out, &again), 1);
    assert_int_equal(ncalls, 3);
    sl_batch_result noid = {NULL, 200, NULL, {NULL, 0}, NULL, NULL, 0, NULL, 0};
    assert_int_equal(sl__batch_output_put(out, &noid), SL_EINVAL);
    assert_int_equal(sl__batch_output_has(out, "b"), 1);
    assert_int_equal(sl__batch_output_has(out, "d"), 0);
    /* raw lines must be exactly one line */
    assert_int_equal(sl__batch_output_write_line(out, "{}", 2, NULL), SL_EINVAL);
    assert_int_equal(sl__batch_output_write_line(out, "{}\n{}\n", 6, NULL), SL_EINVAL);
    sl_batch_output_stats st;
    sl__batch_output_stats_get(out, &st);
    assert_int_equal(st.lines, 3);
    assert_int_equal(st.writes, 3);
    assert_int_equal(st.bytes, strlen(LINE_A) + strlen(LINE_B) + strlen(LINE_C));
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);

    char *got = slurp(out_path, NULL);
    sl_buf want;
    sl__buf_init(&want, 0);
    sl__buf_printf(&want, "%s%s%s", LINE_A, LINE_B, LINE_C);
    assert_string_equal(got, want.data);
    sl__buf_free(&want);
    free(got);

    got = slurp(side_path, NULL);
    assert_string_equal(got, "{\n  \"version\": 1,\n  \"sluice\": \"" SL_VERSION "\",\n"
                             "  \"input\": \"in.jsonl\",\n"
                             "  \"input_fingerprint\": \"fnv1a64:0123456789abcdef\",\n"
                             "  \"created\": 1700000000\n}\n");
    free(got);
    struct stat sb;
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", side_path);
    assert_int_equal(stat(tmp, &sb), -1);

    /* exists and no --resume: refused, nothing changed */
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), SL_EINVAL);
    assert_null(out);
    char want_err[256];
    snprintf(want_err, sizeof want_err, "%s exists; use --resume to continue it or remove it",
             out_path);
    assert_string_equal(err, want_err);
}

static void test_resume_every_torn_cut(void **state)
{
    sl_batch_output_opts o;
    opts_for_test(&o);
    sl_batch_output *out;
    sl_batch_resume_info info;
    char err[512];
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    put_abc(out);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    size_t full_len = 0;
    char *full = slurp(out_path, &full_len);
    size_t off_c = strlen(LINE_A) + strlen(LINE_B);

    o.resume = 1;
    /* cut anywhere inside the last line (its newline included): a and b remain */
    for (size_t cut = off_c; cut < full_len; cut++) {
        spill(out_path, full, cut);
        assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
        assert_int_equal(info.resumed, 1);
        assert_int_equal(info.had_side_file, 1);
        assert_int_equal(info.needs_id_check, 0);
        assert_int_equal(info.ids, 2);
        assert_int_equal(info.lines, 2);
        assert_int_equal(info.failed, 1);
        assert_int_equal(info.torn, cut > off_c);
        assert_int_equal(info.torn_line, cut > off_c ? 3 : 0);
        assert_int_equal(info.torn_bytes, cut - off_c);
        assert_int_equal(sl__batch_output_has(out, "a"), 1);
        assert_int_equal(sl__batch_output_has(out, "b"), 1);
        assert_int_equal(sl__batch_output_has(out, "c"), 0);
        struct stat sb;
        assert_int_equal(stat(out_path, &sb), 0);
        assert_int_equal(sb.st_size, off_c);
        /* finishing the run gives back the whole file, c once */
        const char *cb = "{\"error\":\n  {\"message\":\"slow down\"}}\r\n";
        sl_batch_result c = {"c", 429,  NULL, {cb, strlen(cb)}, "http_429", "rate limited",
                             0,   NULL, 0};
        char rid[SL_BATCH_REQ_ID_LEN];
        sl__batch_output_next_req_id(out, rid);
        sl__batch_output_next_req_id(out, rid); /* c was the third id of the first run */
        assert_int_equal(sl__batch_output_put(out, &c), 0);
        assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
        size_t len;
        char *now = slurp(out_path, &len);
        assert_int_equal(len, full_len);
        assert_memory_equal(now, full, full_len);
        free(now);
    }

    /* nothing torn: all three are there */
    spill(out_path, full, full_len);
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    assert_int_equal(info.torn, 0);
    assert_int_equal(info.ids, 3);
    assert_int_equal(info.failed, 2);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);

    /* a bad last line with its newline, blank lines after it: torn too */
    sl_buf b;
    sl__buf_init(&b, 0);
    sl__buf_printf(&b, "%s%s{\"id\":\"x\",\"cust\n\n  \n", LINE_A, LINE_B);
    spill(out_path, b.data, b.len);
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    assert_int_equal(info.torn, 1);
    assert_int_equal(info.torn_line, 3);
    assert_int_equal(info.torn_bytes, b.len - off_c);
    assert_int_equal(info.ids, 2);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    sl__buf_free(&b);
    free(full);
}

static void test_resume_refusals(void **state)
{
    sl_batch_output_opts o;
    opts_for_test(&o);
    sl_batch_output *out;
    sl_batch_resume_info info;
    char err[512], want[512];
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    put_abc(out);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    size_t full_len;
    char *full = slurp(out_path, &full_len);

    /* another input: refused, the file untouched even with a torn line */
    o.resume = 1;
    o.input_fingerprint = 0x1111111111111111ULL;
    spill(out_path, full, full_len - 5);
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), SL_EINVAL);
    snprintf(want, sizeof want,
             "%s was made from a different input (fingerprint 0123456789abcdef, this input "
             "1111111111111111); use a new output file or remove it",
             out_path);
    assert_string_equal(err, want);
    struct stat sb;
    assert_int_equal(stat(out_path, &sb), 0);
    assert_int_equal(sb.st_size, full_len - 5);
    o.input_fingerprint = 0x0123456789abcdefULL;

    /* a bad line with results after it: damaged, refused */
    sl_buf b;
    sl__buf_init(&b, 0);
    sl__buf_printf(&b, "%s{\"custom_id\":\"trunc\n%s", LINE_A, LINE_B);
    spill(out_path, b.data, b.len);
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), SL_EPARSE);
    snprintf(want, sizeof want,
             "%s: line 2 is not a complete result line (invalid JSON at column 19: "
             "premature end of input near '\"trunc') but more lines follow; the file is "
             "damaged, not resuming it",
             out_path);
    assert_string_equal(err, want);
    assert_int_equal(stat(out_path, &sb), 0);
    assert_int_equal((size_t)sb.st_size, b.len);

    /* JSON that is not a result line: not ours, refused (even as the last line) */
    sl__buf_reset(&b);
    sl__buf_printf(&b, "%s{\"hello\":1}\n", LINE_A);
    spill(out_path, b.data, b.len);
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), SL_EPARSE);
    snprintf(want, sizeof want,
             "%s: line 2 has no \"custom_id\"; not a sluice or Batch API output, not "
             "resuming it",
             out_path);
    assert_string_equal(err, want);
    sl__buf_free(&b);

    /* a broken side file */
    spill(out_path, full, full_len);
    spill(side_path, "{\"version\":1}", 13);
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), SL_EPARSE);
    snprintf(want, sizeof want,
             "%s is not a sluice side file (no valid \"input_fingerprint\"); remove it to "
             "resume without the input check",
             side_path);
    assert_string_equal(err, want);

    /* stdout cannot be resumed */
    assert_int_equal(sl__batch_output_open("-", &o, &out, &info, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "--resume needs an output file, not stdout");
    free(full);
}

static void test_resume_without_side_file(void **state)
{
    sl_batch_output_opts o;
    opts_for_test(&o);
    sl_batch_output *out;
    sl_batch_resume_info info;
    char err[512], want[512];
    /* a Batch API output from elsewhere, no side file */
    spill(out_path, LINE_A, strlen(LINE_A));
    o.resume = 1;
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    assert_int_equal(info.had_side_file, 0);
    assert_int_equal(info.needs_id_check, 1);
    assert_int_equal(info.ids, 1);

    /* the input does not have "a": refused */
    const char *text = "{\"id\":\"z\",\"prompt\":\"x\"}\n";
    sl_batch_input *in;
    assert_int_equal(sl__batch_input_open_mem(text, strlen(text), NULL, &in), 0);
    sl_batch_item it;
    while (sl__batch_input_next(in, &it) == 1)
        sl__batch_item_clear(&it);
    assert_int_equal(sl__batch_output_check_ids(out, sl__batch_input_ids(in),
                                                sl__batch_input_fingerprint(in), err, sizeof err),
                     SL_EINVAL);
    snprintf(want, sizeof want,
             "%s has 1 result whose custom_id is not in the input (first: \"a\"); it was made "
             "from a different input",
             out_path);
    assert_string_equal(err, want);
    struct stat sb;
    assert_int_equal(stat(side_path, &sb), -1);
    sl__batch_input_free(in);

    /* an input that has it: fine, and the side file is written now */
    text = "{\"id\":\"z\",\"prompt\":\"x\"}\n{\"custom_id\":\"a\",\"body\":{}}\n";
    assert_int_equal(sl__batch_input_open_mem(text, strlen(text), NULL, &in), 0);
    while (sl__batch_input_next(in, &it) == 1)
        sl__batch_item_clear(&it);
    assert_int_equal(sl__batch_output_check_ids(out, sl__batch_input_ids(in),
                                                sl__batch_input_fingerprint(in), err, sizeof err),
                     0);
    char *side = slurp(side_path, NULL);
    char fp[40];
    snprintf(fp, sizeof fp, "fnv1a64:%016" PRIx64, sl__batch_input_fingerprint(in));
    assert_non_null(strstr(side, fp));
    free(side);
    sl__batch_input_free(in);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);

    /* an unknown fingerprint (stdin input) also asks for the id check */
    o.fingerprint_known = 0;
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    assert_int_equal(info.had_side_file, 1);
    assert_int_equal(info.needs_id_check, 1);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);

    /* --resume on a file that does not exist starts a new one */
    unlink(out_path);
    unlink(side_path);
    o.fingerprint_known = 1;
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    assert_int_equal(info.resumed, 0);
    assert_int_equal(stat(side_path, &sb), 0);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
}

static void test_write_faults(void **state)
{
    sl_batch_output_opts o;
    opts_for_test(&o);
    o.write_fn = rec_write;
    sl_batch_output *out;
    char err[512];

    /* EINTR, then one byte per write: the line still ends up whole */
    fault = 1;
    eintr_once = 0;
    ncalls = 0;
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, NULL, err, sizeof err), 0);
    sl_batch_result a = {"a", 200, "req_1", {"{\"x\":0.1}", 9}, NULL, NULL, 0, NULL, 0};
    assert_int_equal(sl__batch_output_put(out, &a), 0);
    sl_batch_output_stats st;
    sl__batch_output_stats_get(out, &st);
    assert_int_equal(st.writes, strlen(LINE_A) + 1);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    char *got = slurp(out_path, NULL);
    assert_string_equal(got, LINE_A);
    free(got);

    /* ENOSPC after part of a line: the part is taken back, the output refuses more */
    fault = 0;
    o.resume = 1;
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, NULL, err, sizeof err), 0);
    fault = 2;
    ncalls = 0;
    sl_batch_result b = {"b", 0, NULL, {NULL, 0}, "timeout", "no answer in 30s", 0, NULL, 0};
    assert_int_equal(sl__batch_output_put(out, &b), SL_EIO);
    char want[300];
    snprintf(want, sizeof want, "cannot write %s: No space left on device", out_path);
    assert_string_equal(sl__batch_output_error(out), want);
    got = slurp(out_path, NULL);
    assert_string_equal(got, LINE_A);
    free(got);
    sl_batch_result c = {"c", 0, NULL, {NULL, 0}, "x", NULL, 0, NULL, 0};
    assert_int_equal(sl__batch_output_put(out, &c), SL_EIO);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), SL_EIO);
    assert_string_equal(err, want);
    fault = 0;
}

static void test_sync_clock(void **state)
{
    sl_batch_output_opts o;
    opts_for_test(&o);
    o.sync_interval_ms = 1000;
    fake_now = 0;
    sl_batch_output *out;
    char err[512];
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, NULL, err, sizeof err), 0);
    sl_batch_output_stats st;
    const double at[] = {500, 999, 1000, 1500, 1999, 2000, 9000};
    const uint64_t syncs[] = {0, 0, 1, 1, 1, 2, 3};
    for (size_t i = 0; i < 7; i++) {
        fake_now = at[i];
        char id[8];
        snprintf(id, sizeof id, "i%zu", i);
        sl_batch_result r = {id, 200, NULL, {"{}", 2}, NULL, NULL, 0, NULL, 0};
        assert_int_equal(sl__batch_output_put(out, &r), 0);
        sl__batch_output_stats_get(out, &st);
        assert_int_equal(st.syncs, syncs[i]);
    }
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    fake_now = 0;
}

static void test_errors_file_stdout_devnull(void **state)
{
    char path[200], err[512];
    snprintf(path, sizeof path, "%s/errors.jsonl", dir);
    sl_batch_output *out;
    sl_batch_resume_info info;
    assert_int_equal(sl__batch_errors_open(path, 0, &out, &info, err, sizeof err), 0);
    sl_batch_result b = {"b", 0, NULL, {NULL, 0}, "timeout", "no answer in 30s", 0, NULL, 0};
    assert_int_equal(sl__batch_output_put(out, &b), 0);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    char side[220];
    snprintf(side, sizeof side, "%s.sluice", path);
    struct stat sb;
    assert_int_equal(stat(side, &sb), -1);
    /* resumed: appended, the earlier id kept */
    assert_int_equal(sl__batch_errors_open(path, 1, &out, &info, err, sizeof err), 0);
    assert_int_equal(info.ids, 1);
    assert_int_equal(info.needs_id_check, 0);
    assert_int_equal(sl__batch_output_put(out, &b), 1);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);

    /* "-" is stdout: point it at a file for the test */
    char copy[200];
    snprintf(copy, sizeof copy, "%s/copy.jsonl", dir);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    sl_batch_output_opts o;
    opts_for_test(&o);
    assert_int_equal(sl__batch_output_open("-", &o, &out, NULL, err, sizeof err), 0);
    sl_batch_result a = {"a", 200, "req_1", {"{\"x\":0.1}", 9}, NULL, NULL, 0, NULL, 0};
    assert_int_equal(sl__batch_output_put(out, &a), 0);
    /* stdout is a regular file here: it can be synced */
    assert_int_equal(sl__batch_output_sync(out), 0);
    sl_batch_output_stats st;
    sl__batch_output_stats_get(out, &st);
    assert_int_equal(st.syncs, 1);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    assert_true(fcntl(STDOUT_FILENO, F_GETFD) >= 0); /* not closed */
    char *got = slurp(copy, NULL);
    assert_string_equal(got, LINE_A);
    free(got);

    /* a failed write on stdout never truncates: what was there before is not ours */
    o.write_fn = rec_write;
    fault = 2;
    ncalls = 0;
    assert_int_equal(sl__batch_output_open("-", &o, &out, NULL, err, sizeof err), 0);
    assert_int_equal(sl__batch_output_put(out, &a), SL_EIO);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), SL_EIO);
    char want_err[300];
    snprintf(want_err, sizeof want_err,
             "cannot write -: No space left on device (a partial last line is left)");
    assert_string_equal(err, want_err);
    fault = 0;
    o.write_fn = NULL;
    dup2(saved, STDOUT_FILENO);
    close(saved);
    got = slurp(copy, NULL);
    sl_buf w;
    sl__buf_init(&w, 0);
    sl__buf_printf(&w, "%s%.10s", LINE_A, LINE_A);
    assert_string_equal(got, w.data);
    sl__buf_free(&w);
    free(got);

    /* an existing device is just written to */
    assert_int_equal(sl__batch_output_open("/dev/null", &o, &out, &info, err, sizeof err), 0);
    assert_int_equal(info.resumed, 0);
    assert_int_equal(sl__batch_output_put(out, &a), 0);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    assert_int_equal(stat("/dev/null.sluice", &sb), -1);

    /* a directory that does not exist */
    char bad[220];
    snprintf(bad, sizeof bad, "%s/no/such/out.jsonl", dir);
    o.side_file = 0;
    assert_int_equal(sl__batch_output_open(bad, &o, &out, &info, err, sizeof err), SL_EIO);
    char want[300];
    snprintf(want, sizeof want, "cannot create %s: No such file or directory", bad);
    assert_string_equal(err, want);
}

/* forget_written (what the runner uses): ids read back on resume are known and refused a
 * second line; ids written now are not kept, so the set holds only the read-back ones. */
static void test_forget_written(void **state)
{
    sl_batch_output_opts o;
    opts_for_test(&o);
    o.forget_written = 1;
    sl_batch_output *out;
    sl_batch_resume_info info;
    char err[512];
    /* a new file: the same bytes as without the option, nothing remembered */
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    put_abc(out);
    assert_int_equal(sl__batch_output_ids(out)->count, 0);
    assert_int_equal(sl__batch_idset_memory(sl__batch_output_ids(out)), 0);
    assert_int_equal(sl__batch_output_has(out, "a"), 0);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    size_t full_len;
    char *full = slurp(out_path, &full_len);
    sl_buf want;
    sl__buf_init(&want, 0);
    sl__buf_printf(&want, "%s%s%s", LINE_A, LINE_B, LINE_C);
    assert_int_equal(full_len, want.len);
    assert_memory_equal(full, want.data, want.len);

    /* resumed without c: a and b are known and refused, c is written once */
    spill(out_path, full, strlen(LINE_A) + strlen(LINE_B));
    o.resume = 1;
    assert_int_equal(sl__batch_output_open(out_path, &o, &out, &info, err, sizeof err), 0);
    assert_int_equal(info.ids, 2);
    assert_int_equal(sl__batch_output_has(out, "a"), 1);
    assert_int_equal(sl__batch_output_has(out, "b"), 1);
    assert_int_equal(sl__batch_output_has(out, "c"), 0);
    sl_batch_result a = {"a", 200, "req_1", {"{\"x\":0.1}", 9}, NULL, NULL, 0, NULL, 0};
    assert_int_equal(sl__batch_output_put(out, &a), 1);
    assert_int_equal(sl__batch_output_write_line(out, "{}\n", 3, "b"), 1);
    const char *cb = "{\"error\":\n  {\"message\":\"slow down\"}}\r\n";
    sl_batch_result c = {"c", 429, NULL, {cb, strlen(cb)}, "http_429", "rate limited", 0, NULL, 0};
    char rid[SL_BATCH_REQ_ID_LEN];
    sl__batch_output_next_req_id(out, rid);
    sl__batch_output_next_req_id(out, rid); /* c was the third id of the first run */
    assert_int_equal(sl__batch_output_put(out, &c), 0);
    assert_int_equal(sl__batch_output_ids(out)->count, 2);
    assert_int_equal(sl__batch_output_has(out, "c"), 0);
    sl_batch_output_stats st;
    sl__batch_output_stats_get(out, &st);
    assert_int_equal(st.lines, 1);
    assert_int_equal(sl__batch_output_close(out, err, sizeof err), 0);
    char *now = slurp(out_path, NULL);
    assert_string_equal(now, want.data);
    free(now);
    free(full);
    sl__buf_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_line_attempts),
        cmocka_unit_test_setup_teardown(test_new_output_and_side_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_every_torn_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_without_side_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_file_stdout_devnull, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_written, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
