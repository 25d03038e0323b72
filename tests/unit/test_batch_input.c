/* test_batch_input.c — the batch JSONL reader: every format, ids, line ends, every error
 * with its exact message and line, duplicates, over-long lines, stdin, the first pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/batch/input.h"
#include "apps/batch/lines.h"
#include "base/buf.h"
#include <sluice/common.h>

/* Every item of (data, len) as one text line each:
 *   "L<line> <id> <endpoint> <body>"           for a request
 *   "L<line> id=<id or -> <code> | <message>"   for an error */
static char *read_all(const void *data, size_t len, const char *model, size_t max_line,
                      uint64_t *lines, uint64_t *fp)
{
    sl_batch_input_opts o = {model, max_line};
    sl_batch_input *in = NULL;
    assert_int_equal(sl__batch_input_open_mem(data, len, &o, &in), 0);
    sl_buf b;
    sl__buf_init(&b, 0);
    sl__buf_append_str(&b, "");
    sl_batch_item it;
    int rc;
    while ((rc = sl__batch_input_next(in, &it)) == 1) {
        if (it.error) {
            assert_null(it.body);
            assert_null(it.endpoint);
            assert_non_null(it.error_code);
            sl__buf_printf(&b, "L%" PRIu64 " id=%s %s | %s\n", it.line_no, it.id ? it.id : "-",
                           it.error_code, it.error);
        } else {
            assert_null(it.error_code);
            char *body = json_dumps(it.body, JSON_COMPACT);
            sl__buf_printf(&b, "L%" PRIu64 " %s %s %s\n", it.line_no, it.id, it.endpoint, body);
            free(body);
        }
        sl__batch_item_clear(&it);
    }
    assert_int_equal(rc, 0);
    /* the end is sticky */
    assert_int_equal(sl__batch_input_next(in, &it), 0);
    if (lines)
        *lines = sl__batch_input_lines(in);
    if (fp)
        *fp = sl__batch_input_fingerprint(in);
    sl__batch_input_free(in);
    return sl__buf_steal(&b);
}

static void check(const char *input, const char *model, const char *want)
{
    char *got = read_all(input, strlen(input), model, 0, NULL, NULL);
    assert_string_equal(got, want);
    free(got);
}

static void test_batch_api_form(void **state)
{
    check("{\"custom_id\": \"req-1\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", "
          "\"body\": {\"model\": \"m1\", \"messages\": [{\"role\": \"user\", \"content\": "
          "\"hi\"}]}}\n"
          "{\"custom_id\": \"req-2\", \"url\": \"/v1/embeddings\", \"body\": {\"input\": \"x\"}}\n"
          "{\"custom_id\": \"req-3\", \"url\": \"/completions\", \"body\": {\"prompt\": \"p\", "
          "\"model\": null}}\n"
          "{\"custom_id\": \"req-4\", \"body\": {\"messages\": []}}\n",
          "dflt",
          "L1 req-1 /chat/completions "
          "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n"
          "L2 req-2 /embeddings {\"input\":\"x\",\"model\":\"dflt\"}\n"
          "L3 req-3 /completions {\"prompt\":\"p\",\"model\":\"dflt\"}\n"
          "L4 req-4 /chat/completions {\"messages\":[],\"model\":\"dflt\"}\n");
    /* no default model: bodies stay as they are */
    check("{\"custom_id\": \"a\", \"body\": {\"messages\": []}}\n", NULL,
          "L1 a /chat/completions {\"messages\":[]}\n");
}

static void test_short_form(void **state)
{
    check("{\"id\": \"s1\", \"prompt\": \"hello\"}\n"
          "{\"id\": 42, \"prompt\": \"int id\", \"max_tokens\": 5, \"temperature\": 0.5}\n"
          "{\"prompt\": \"no id\"}\n"
          "{\"id\": null, \"prompt\": \"null id\", \"model\": \"own\"}\n"
          "{\"id\": -7, \"system\": \"be brief\", \"prompt\": \"q\", \"seed\": 3, "
          "\"response_format\": {\"type\": \"json_object\"}}\n"
          "{\"id\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
          "\"system\": \"s\"}\n",
          "dm",
          "L1 s1 /chat/completions "
          "{\"model\":\"dm\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}\n"
          "L2 42 /chat/completions "
          "{\"model\":\"dm\",\"messages\":[{\"role\":\"user\",\"content\":\"int id\"}],"
          "\"max_tokens\":5,\"temperature\":0.5}\n"
          "L3 3 /chat/completions "
          "{\"model\":\"dm\",\"messages\":[{\"role\":\"user\",\"content\":\"no id\"}]}\n"
          "L4 4 /chat/completions "
          "{\"model\":\"own\",\"messages\":[{\"role\":\"user\",\"content\":\"null id\"}]}\n"
          "L5 -7 /chat/completions "
          "{\"model\":\"dm\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
          "{\"role\":\"user\",\"content\":\"q\"}],\"seed\":3,"
          "\"response_format\":{\"type\":\"json_object\"}}\n"
          "L6 m /chat/completions "
          "{\"model\":\"dm\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
          "{\"role\":\"user\",\"content\":\"x\"}]}\n");
    /* without a default model the body has none */
    check("{\"id\": 1, \"prompt\": \"p\"}", NULL,
          "L1 1 /chat/completions {\"messages\":[{\"role\":\"user\",\"content\":\"p\"}]}\n");
}

static void test_plain_text_blank_lines_and_line_ends(void **state)
{
    /* CRLF, blank lines (also spaces and a lone CR), a last line without newline, a BOM */
    check("\xef\xbb\xbfWhat is 2+2?\r\n"
          "\r\n"
          "   \t \n"
          "  indented \"quoted\" text\n"
          "\n"
          "[1, 2]\n"
          "caf\xc3\xa9 without newline",
          "m",
          "L1 1 /chat/completions "
          "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"What is 2+2?\"}]}\n"
          "L4 4 /chat/completions {\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
          "\"  indented \\\"quoted\\\" text\"}]}\n"
          "L6 6 /chat/completions "
          "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"[1, 2]\"}]}\n"
          "L7 7 /chat/completions "
          "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xc3\xa9 without "
          "newline\"}]}\n");
    /* a JSON line with CRLF */
    check("{\"id\":\"x\",\"prompt\":\"p\"}\r\n", NULL,
          "L1 x /chat/completions {\"messages\":[{\"role\":\"user\",\"content\":\"p\"}]}\n");
    /* empty input, only blank lines */
    check("", NULL, "");
    check("\n\n  \r\n", NULL, "");
}

static void test_errors(void **state)
{
    check("{\"custom_id\": \"a\", \"body\": {}\n"                              /* 1 */
          "{\"body\": {}}\n"                                                   /* 2 */
          "{\"custom_id\": 5, \"body\": {}}\n"                                 /* 3 */
          "{\"custom_id\": \"\", \"body\": {}}\n"                              /* 4 */
          "{\"custom_id\": \"nul\\u0000\", \"body\": {}}\n"                    /* 5 */
          "{\"custom_id\": \"b\"}\n"                                           /* 6 */
          "{\"custom_id\": \"c\", \"body\": []}\n"                             /* 7 */
          "{\"custom_id\": \"d\", \"method\": \"GET\", \"body\": {}}\n"        /* 8 */
          "{\"custom_id\": \"e\", \"url\": \"/v1/responses\", \"body\": {}}\n" /* 9 */
          "{\"custom_id\": \"f\", \"url\": 3, \"body\": {}}\n"                 /* 10 */
          "{\"id\": \"g\", \"prompt\": 5}\n"                                   /* 11 */
          "{\"id\": 1.5, \"prompt\": \"x\"}\n"                                 /* 12 */
          "{\"id\": \"h\", \"prompt\": \"x\", \"messages\": [{}]}\n"           /* 13 */
          "{\"id\": \"i\", \"messages\": []}\n"                                /* 14 */
          "{\"id\": \"j\", \"prompt\": \"x\", \"system\": 1}\n"                /* 15 */
          "{\"id\": \"k\", \"prompt\": \"x\", \"model\": 1}\n"                 /* 16 */
          "{\"id\": \"l\", \"prompt\": \"x\", \"max_tokens\": \"9\"}\n"        /* 17 */
          "{\"id\": \"n\", \"prompt\": \"x\", \"temperature\": \"hot\"}\n"     /* 18 */
          "{\"id\": \"o\", \"text\": \"x\"}\n"                                 /* 19 */
          "{\"text\": \"x\"}\n"                                                /* 20 */
          "bad \xff utf8\n"                                                    /* 21 */
          "{\"custom_id\": \"p\", \"body\": {}} trailing\n",                   /* 22 */
          NULL,
          "L1 id=- invalid_json | line 1: invalid JSON at column 29: '}' expected near end of "
          "file\n"
          "L2 id=- missing_field | line 2: missing \"custom_id\"\n"
          "L3 id=- invalid_field | line 3: \"custom_id\" must be a string\n"
          "L4 id=- invalid_field | line 4: \"custom_id\" is empty\n"
          "L5 id=- invalid_field | line 5: \"custom_id\" contains a NUL character\n"
          "L6 id=b missing_field | line 6: missing \"body\"\n"
          "L7 id=c invalid_field | line 7: \"body\" must be an object\n"
          "L8 id=d invalid_method | line 8: \"method\" must be \"POST\"\n"
          "L9 id=e unsupported_url | line 9: unsupported url \"/v1/responses\" (use "
          "/v1/chat/completions, /v1/completions or /v1/embeddings)\n"
          "L10 id=f invalid_field | line 10: \"url\" must be a string\n"
          "L11 id=g invalid_field | line 11: \"prompt\" must be a string\n"
          "L12 id=- invalid_field | line 12: \"id\" must be a string or an integer\n"
          "L13 id=h invalid_field | line 13: give \"prompt\" or \"messages\", not both\n"
          "L14 id=i invalid_field | line 14: \"messages\" must be a non-empty array\n"
          "L15 id=j invalid_field | line 15: \"system\" must be a string\n"
          "L16 id=k invalid_field | line 16: \"model\" must be a string\n"
          "L17 id=l invalid_field | line 17: \"max_tokens\" must be an integer\n"
          "L18 id=n invalid_field | line 18: \"temperature\" must be a number\n"
          "L19 id=o unrecognized_line | line 19: expected a Batch API line (\"custom_id\", "
          "\"body\") or a short form (\"prompt\" or \"messages\")\n"
          "L20 id=- unrecognized_line | line 20: expected a Batch API line (\"custom_id\", "
          "\"body\") or a short form (\"prompt\" or \"messages\")\n"
          "L21 id=21 invalid_utf8 | line 21: not valid UTF-8\n"
          "L22 id=- invalid_json | line 22: invalid JSON at column 39: end of file expected "
          "near 'trailing'\n");
}

/* A Batch API line whose custom_id is n times 'x'. */
static size_t id_line(char *line, size_t cap, size_t n)
{
    size_t k = (size_t)snprintf(line, cap, "{\"custom_id\": \"");
    memset(line + k, 'x', n);
    k += n;
    k += (size_t)snprintf(line + k, cap - k, "\", \"body\": {}}\n");
    return k;
}

static void test_id_too_long_and_depth(void **state)
{
    char line[SL_BATCH_MAX_ID + 64];
    size_t n = id_line(line, sizeof line, SL_BATCH_MAX_ID + 1);
    char *got = read_all(line, n, NULL, 0, NULL, NULL);
    assert_string_equal(
        got, "L1 id=- invalid_field | line 1: \"custom_id\" is longer than 1024 bytes\n");
    free(got);
    /* exactly the maximum is fine */
    n = id_line(line, sizeof line, SL_BATCH_MAX_ID);
    got = read_all(line, n, NULL, 0, NULL, NULL);
    assert_int_equal(strlen(got), 3 + SL_BATCH_MAX_ID + strlen(" /chat/completions {}\n"));
    free(got);

    char deep[300];
    n = (size_t)snprintf(deep, sizeof deep, "{\"id\":\"d\",\"prompt\":\"x\",\"a\":");
    memset(deep + n, '[', 70);
    memset(deep + n + 70, ']', 70);
    memcpy(deep + n + 140, "}\n", 2);
    got = read_all(deep, n + 142, NULL, 0, NULL, NULL);
    assert_string_equal(got, "L1 id=- invalid_json | line 1: JSON nested deeper than 64 levels\n");
    free(got);
}

static void test_duplicate_ids(void **state)
{
    check("{\"custom_id\": \"a\", \"body\": {}}\n"
          "{\"id\": \"a\", \"prompt\": \"again\"}\n"
          "{\"id\": 1, \"prompt\": \"int one\"}\n" /* "1" is line 1's number, but no line took it */
          "{\"custom_id\": \"a\"}\n"               /* a duplicate is reported before other faults */
          "plain line five\n"
          "{\"id\": \"5\", \"prompt\": \"x\"}\n"
          "{\"id\": \"b\\nc\", \"prompt\": \"x\"}\n"
          "{\"id\": \"b\\nc\", \"prompt\": \"x\"}\n"
          "{\"id\": \"e\", \"prompt\": 1}\n" /* an invalid line with an id keeps its id */
          "{\"id\": \"e\", \"prompt\": \"x\"}\n",
          NULL,
          "L1 a /chat/completions {}\n"
          "L2 id=- duplicate_id | line 2: duplicate id \"a\" (first on line 1)\n"
          "L3 1 /chat/completions {\"messages\":[{\"role\":\"user\",\"content\":\"int one\"}]}\n"
          "L4 id=- duplicate_id | line 4: duplicate id \"a\" (first on line 1)\n"
          "L5 5 /chat/completions "
          "{\"messages\":[{\"role\":\"user\",\"content\":\"plain line five\"}]}\n"
          "L6 id=- duplicate_id | line 6: duplicate id \"5\" (first on line 5)\n"
          "L7 b\nc /chat/completions {\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}\n"
          "L8 id=- duplicate_id | line 8: duplicate id \"b\\nc\" (first on line 7)\n"
          "L9 id=e invalid_field | line 9: \"prompt\" must be a string\n"
          "L10 id=- duplicate_id | line 10: duplicate id \"e\" (first on line 9)\n");
}

static void test_long_line_then_recovery(void **state)
{
    /* lines over the cap are errors, the next line reads fine; lines cross the reader's
       64 KiB chunks */
    size_t max = 100000;
    sl_buf in;
    sl__buf_init(&in, 0);
    sl__buf_append_str(&in, "{\"id\":\"ok1\",\"prompt\":\"");
    for (int i = 0; i < 70000; i++)
        sl__buf_append(&in, "a", 1);
    sl__buf_append_str(&in, "\"}\n");
    for (int i = 0; i < 250000; i++)
        sl__buf_append(&in, "b", 1);
    sl__buf_append_str(&in, "\n{\"id\":\"ok2\",\"prompt\":\"x\"}\n");
    for (size_t i = 0; i < max + 1; i++) /* one over, no newline: still an error */
        sl__buf_append(&in, " ", 1);
    uint64_t lines = 0;
    char *got = read_all(in.data, in.len, NULL, max, &lines, NULL);
    const char *l1 = got;
    const char *l2 = strchr(l1, '\n') + 1;
    assert_memory_equal(l1, "L1 ok1 /chat/completions {\"messages\"", 36);
    assert_int_equal(l2 - l1, 36 + strlen(":[{\"role\":\"user\",\"content\":\"\"}]}\n") + 70000);
    assert_string_equal(l2, "L2 id=- line_too_long | line 2: longer than 100000 bytes\n"
                            "L3 ok2 /chat/completions "
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}\n"
                            "L4 id=- line_too_long | line 4: longer than 100000 bytes\n");
    assert_int_equal(lines, 4);
    free(got);

    /* the scan counts the same items */
    sl_batch_scan sc;
    sl__batch_input_scan_mem(in.data, in.len, max, &sc);
    assert_int_equal(sc.items, 4);
    assert_int_equal(sc.lines, 4);
    assert_int_equal(sc.bytes, in.len);
    sl__buf_free(&in);

    /* a small cap: exactly max bytes pass, a CR counts */
    check("{\"id\":1,\"prompt\":\"x\"}\n", NULL,
          "L1 1 /chat/completions {\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}\n");
    got = read_all("12345\n123456\n12345\r\nabc", 23, NULL, 5, NULL, NULL);
    assert_string_equal(got, "L1 1 /chat/completions {\"messages\":[{\"role\":\"user\",\"content\":"
                             "\"12345\"}]}\n"
                             "L2 id=- line_too_long | line 2: longer than 5 bytes\n"
                             "L3 id=- line_too_long | line 3: longer than 5 bytes\n"
                             "L4 4 /chat/completions {\"messages\":[{\"role\":\"user\",\"content\":"
                             "\"abc\"}]}\n");
    free(got);
}

static void test_fingerprint_and_scan(void **state)
{
    /* FNV-1a 64 reference values */
    uint64_t fp = 0, lines = 0;
    char *got = read_all("a", 1, NULL, 0, &lines, &fp);
    free(got);
    assert_true(fp == 0xaf63dc4c8601ec8cULL);
    assert_int_equal(lines, 1);
    got = read_all("", 0, NULL, 0, &lines, &fp);
    free(got);
    assert_true(fp == 0xcbf29ce484222325ULL);
    assert_int_equal(lines, 0);

    char dir[] = "/tmp/sl_input_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/in.jsonl", dir);
    const char *text = "\xef\xbb\xbf\n{\"id\":1,\"prompt\":\"p\"}\n\n  \nplain\r\n\n"
                       "{\"custom_id\":\"z\",\"body\":{}}";
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);

    sl_batch_scan sc;
    char err[256];
    assert_int_equal(sl__batch_input_scan(path, 0, &sc, err, sizeof err), 0);
    assert_int_equal(sc.bytes, strlen(text));
    assert_int_equal(sc.lines, 7);
    assert_int_equal(sc.items, 3);

    sl_batch_input *in;
    assert_int_equal(sl__batch_input_open(path, NULL, &in, err, sizeof err), 0);
    sl_batch_item it;
    int n = 0;
    while (sl__batch_input_next(in, &it) == 1) {
        assert_null(it.error);
        n++;
        sl__batch_item_clear(&it);
    }
    assert_int_equal(n, 3);
    assert_true(sl__batch_input_fingerprint(in) == sc.fingerprint);
    assert_int_equal(sl__batch_input_lines(in), 7);
    assert_int_equal(sl__batch_input_items(in), 3);
    assert_int_equal(sl__batch_input_bytes(in), strlen(text));
    /* the id set holds every id given out, with its line */
    const sl_batch_idset *ids = sl__batch_input_ids(in);
    uint64_t line = 0;
    assert_int_equal(ids->count, 3);
    assert_int_equal(sl__batch_idset_get(ids, "5", 1, &line), 1);
    assert_int_equal(line, 5);
    assert_int_equal(sl__batch_idset_get(ids, "z", 1, &line), 1);
    assert_int_equal(line, 7);
    assert_string_equal(sl__batch_input_error(in), "");
    sl__batch_input_free(in);

    /* the memory scan agrees with the file scan */
    sl_batch_scan sm;
    sl__batch_input_scan_mem(text, strlen(text), 0, &sm);
    assert_true(sm.fingerprint == sc.fingerprint);
    assert_int_equal(sm.items, 3);

    /* missing file */
    char missing[80];
    snprintf(missing, sizeof missing, "%s/nope.jsonl", dir);
    assert_int_equal(sl__batch_input_open(missing, NULL, &in, err, sizeof err), SL_EIO);
    assert_null(in);
    char want[160];
    snprintf(want, sizeof want, "cannot open %s: No such file or directory", missing);
    assert_string_equal(err, want);
    assert_int_equal(sl__batch_input_scan(missing, 0, &sc, err, sizeof err), SL_EIO);
    assert_string_equal(err, want);

    /* a directory: the read error is reported by next */
    assert_int_equal(sl__batch_input_open(dir, NULL, &in, err, sizeof err), 0);
    assert_int_equal(sl__batch_input_next(in, &it), SL_EIO);
    assert_string_equal(sl__batch_input_error(in), "read error after line 0: Is a directory");
    assert_int_equal(sl__batch_input_next(in, &it), 0);
    sl__batch_input_free(in);

    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

static void test_stdin_and_file(void **state)
{
    char dir[] = "/tmp/sl_input_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/stdin.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("first prompt\n{\"id\":\"x\",\"prompt\":\"y\"}\n", f);
    fclose(f);

    int saved = dup(STDIN_FILENO);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    dup2(fd, STDIN_FILENO);
    close(fd);
    sl_batch_input *in;
    char err[128];
    assert_int_equal(sl__batch_input_open("-", NULL, &in, err, sizeof err), 0);
    sl_batch_item it;
    assert_int_equal(sl__batch_input_next(in, &it), 1);
    assert_string_equal(it.id, "1");
    sl__batch_item_clear(&it);
    assert_int_equal(sl__batch_input_next(in, &it), 1);
    assert_string_equal(it.id, "x");
    sl__batch_item_clear(&it);
    assert_int_equal(sl__batch_input_next(in, &it), 0);
    sl__batch_input_free(in);
    /* free did not close stdin */
    assert_true(fcntl(STDIN_FILENO, F_GETFD) >= 0);
    dup2(saved, STDIN_FILENO);
    close(saved);

    /* a FILE* */
    f = fopen(path, "r");
    assert_int_equal(sl__batch_input_open_file(f, NULL, &in), 0);
    assert_int_equal(sl__batch_input_next(in, &it), 1);
    assert_string_equal(it.id, "1");
    assert_int_equal(it.format, SL_BATCH_FORMAT_TEXT);
    sl__batch_item_clear(&it);
    assert_int_equal(sl__batch_input_next(in, &it), 1);
    assert_int_equal(it.format, SL_BATCH_FORMAT_SHORT);
    sl__batch_item_clear(&it);
    assert_int_equal(sl__batch_input_next(in, &it), 0);
    sl__batch_input_free(in);
    fclose(f);

    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

static void test_item_ownership(void **state)
{
    /* the caller may take the body and keep it after the item and the reader are gone */
    const char *text = "{\"custom_id\":\"a\",\"body\":{\"k\":1}}\n";
    sl_batch_input *in;
    assert_int_equal(sl__batch_input_open_mem(text, strlen(text), NULL, &in), 0);
    sl_batch_item it;
    assert_int_equal(sl__batch_input_next(in, &it), 1);
    assert_int_equal(it.format, SL_BATCH_FORMAT_BATCH);
    json_t *body = it.body;
    it.body = NULL;
    char *id = it.id;
    it.id = NULL;
    sl__batch_item_clear(&it);
    sl__batch_input_free(in);
    assert_int_equal(json_integer_value(json_object_get(body, "k")), 1);
    assert_string_equal(id, "a");
    json_decref(body);
    free(id);
    /* clearing a zeroed item is fine */
    memset(&it, 0, sizeof it);
    sl__batch_item_clear(&it);
}

/* Every item carries the length of its line (the runner's read-ahead budget): CR
 * counted, '\n' not, a line over the cap with its full length. */
static void test_item_bytes(void **state)
{
    const char *text = "ab\r\n\n{\"id\":1,\"prompt\":\"x\"}\n{\"id\":1,\"prompt\":\"y\"}\n"
                       "0123456789\nxyz";
    sl_batch_input_opts o = {NULL, 9};
    sl_batch_input *in;
    assert_int_equal(sl__batch_input_open_mem(text, strlen(text), &o, &in), 0);
    static const size_t want[] = {3, 21, 21, 10, 3};
    static const uint64_t lines[] = {1, 3, 4, 5, 6};
    sl_batch_item it;
    size_t n = 0;
    while (sl__batch_input_next(in, &it) == 1) {
        assert_true(n < 5);
        assert_int_equal(it.line_no, lines[n]);
        assert_int_equal(it.bytes, want[n]);
        n++;
        sl__batch_item_clear(&it);
    }
    assert_int_equal(n, 5);
    sl__batch_input_free(in);
}

/* A line buffer grown by one huge line is released after it; a small one is kept. */
static void test_line_buffer_released(void **state)
{
    size_t big = 3u << 20;
    char *text = malloc(big + 16);
    assert_non_null(text);
    memset(text, 'a', big);
    memcpy(text + big, "\nbc\nde\n", 7);
    sl_batch_lines r;
    assert_int_equal(sl__batch_lines_init(&r, NULL, -1, text, big + 7, 0), 0);
    sl_batch_line_view v;
    assert_int_equal(sl__batch_lines_next(&r, &v), 1);
    assert_int_equal(v.len, big);
    assert_true(r.line.cap > big);
    assert_int_equal(sl__batch_lines_next(&r, &v), 1);
    assert_int_equal(v.len, 2);
    assert_memory_equal(v.p, "bc", 2);
    assert_true(r.line.cap <= 64);
    void *kept = r.line.data;
    assert_int_equal(sl__batch_lines_next(&r, &v), 1);
    assert_memory_equal(v.p, "de", 2);
    assert_ptr_equal(r.line.data, kept);
    assert_int_equal(sl__batch_lines_next(&r, &v), 0);
    sl__batch_lines_free(&r);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_api_form),
        cmocka_unit_test(test_short_form),
        cmocka_unit_test(test_plain_text_blank_lines_and_line_ends),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_id_too_long_and_depth),
        cmocka_unit_test(test_duplicate_ids),
        cmocka_unit_test(test_long_line_then_recovery),
        cmocka_unit_test(test_fingerprint_and_scan),
        cmocka_unit_test(test_stdin_and_file),
        cmocka_unit_test(test_item_ownership),
        cmocka_unit_test(test_item_bytes),
        cmocka_unit_test(test_line_buffer_released),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
