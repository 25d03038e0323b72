/* output.c — the results file of sluice batch (see output.h).
 *
 * Order matters everywhere here: every check that can refuse runs before anything is
 * modified; the side file exists before OUTPUT does; an id enters the set before its line
 * is written, so a failed write can never lead to a second line for it. */
#include "apps/batch/output.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/batch/lines.h"
#include "apps/batch/text.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/jsontok.h"

#define BODY_DEPTH      128 /* a body nested deeper is embedded as a string */
#define LINE_DEPTH      (BODY_DEPTH + 8)
#define SIDE_MAX        (64u * 1024)
#define DEFAULT_SYNC_MS 1000

struct sl_batch_output {
    int fd;
    int is_stdout;
    int regular; /* a regular file: fdatasync works */
    int own;     /* a file this module created or resumed: its size is known, so a partial
                    line can be cut off again (never true for stdout: "sluice ... >> f") */
    int failed;
    int forget_written; /* ids only from the resume scan; see output.h */
    char *path;
    char *side_path; /* NULL: no side file for this output */
    char *input_path;
    int side_present;
    long sync_interval_ms;
    double (*now_ms)(void);
    ssize_t (*write_fn)(int fd, const void *p, size_t n);
    int64_t created_unix;
    double last_sync_ms;
    uint64_t size; /* bytes in the file (regular files), to undo a partial line */
    uint64_t salt;
    uint64_t counter;
    sl_batch_idset ids;
    sl_buf line;
    sl_batch_output_stats stats;
    char errmsg[512];
};

static ssize_t plain_write(int fd, const void *p, size_t n)
{
    return write(fd, p, n);
}

void sl__batch_output_opts_init(sl_batch_output_opts *o)
{
    memset(o, 0, sizeof *o);
    o->side_file = 1;
}

/* ---- the side file -------------------------------------------------------------------- */

static void fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* not every file system can; the rename is done either way */
        close(fd);
    }
    free(dir);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_side(sl_batch_output *out, uint64_t fp, int known, char *err, size_t errlen)
{
    char hex[32];
    snprintf(hex, sizeof hex, "fnv1a64:%016" PRIx64, fp);
    json_t *o = json_object();
    char *text = NULL;
    char *tmp = NULL;
    int fd = -1, rc = SL_ENOMEM;
    if (!o || json_object_set_new(o, "version", json_integer(SL_BATCH_SIDE_VERSION)) ||
        json_object_set_new(o, "sluice", json_string(SL_VERSION)) ||
        json_object_set_new(o, "input", json_string(out->input_path)) ||
        json_object_set_new(o, "input_fingerprint", known ? json_string(hex) : json_null()) ||
        json_object_set_new(o, "created", json_integer(out->created_unix)))
        goto out;
    text = json_dumps(o, JSON_INDENT(2));
    size_t tlen = strlen(out->side_path) + 8;
    tmp = malloc(tlen);
    if (!text || !tmp)
        goto out;
    snprintf(tmp, tlen, "%s.tmp", out->side_path);
    rc = SL_EIO;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, text, strlen(text)) || write_all(fd, "\n", 1) || fsync(fd)) {
        if (errlen)
            snprintf(err, errlen, "cannot write %s (the side file of %s): %s", tmp, out->path,
                     strerror(errno));
        if (fd >= 0)
            unlink(tmp);
        goto out;
    }
    if (close(fd) || rename(tmp, out->side_path)) {
        fd = -1;
        if (errlen)
            snprintf(err, errlen, "cannot write %s: %s", out->side_path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    fd = -1;
    fsync_dir_of(out->side_path);
    out->side_present = 1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc == SL_ENOMEM && errlen && !err[0])
        snprintf(err, errlen, "%s: out of memory", out->side_path);
    json_decref(o);
    free(text);
    free(tmp);
    return rc;
}

/* Read OUTPUT.sluice: 0 with *present 0 when there is none; 0 with the recorded
 * fingerprint (*known 0 if null); SL_EPARSE / SL_EIO with a message. */
static int read_side(sl_batch_output *out, int *present, uint64_t *fp, int *known, char *err,
                     size_t errlen)
{
    *present = 0;
    *known = 0;
    int fd = open(out->side_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open %s: %s", out->side_path, strerror(errno));
        return SL_EIO;
    }
    char *buf = malloc(SIDE_MAX);
    size_t n = 0;
    int rc = 0;
    json_t *o = NULL;
    if (!buf) {
        close(fd);
        return SL_ENOMEM;
    }
    for (;;) {
        ssize_t k = read(fd, buf + n, SIDE_MAX - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(err, errlen, "cannot read %s: %s", out->side_path, strerror(errno));
            rc = SL_EIO;
            goto out;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        if (n == SIDE_MAX)
            break;
    }
    char why[200];
    const char *fps = NULL;
    json_t *f = NULL;
    if (sl__json_parse(buf, n, 0, &o, why, sizeof why)) {
        /* why already says what is wrong */
    } else if (!json_is_object(o)) {
        snprintf(why, sizeof why, "not a JSON object");
    } else if (!(f = json_object_get(o, "input_fingerprint")) ||
               !(json_is_null(f) ||
                 ((fps = json_string_value(f)) && strncmp(fps, "fnv1a64:", 8) == 0 &&
                  strlen(fps) == 24 && strspn(fps + 8, "0123456789abcdef") == 16))) {
        snprintf(why, sizeof why, "no valid \"input_fingerprint\"");
    } else {
        *present = 1;
        if (fps) {
            *known = 1;
            *fp = strtoull(fps + 8, NULL, 16);
        }
        goto out;
    }
    snprintf(err, errlen,
             "%s is not a sluice side file (%s); remove it to resume without the input check",
             out->side_path, why);
    rc = SL_EPARSE;
out:
    json_decref(o);
    free(buf);
    close(fd);
    return rc;
}

/* ---- resume: read back what is there ------------------------------------------------- */

static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

static int scan_existing(sl_batch_output *out, sl_batch_resume_info *info, char *err, size_t errlen)
{
    sl_batch_lines r;
    int rc = sl__batch_lines_init(&r, NULL, out->fd, NULL, 0, SL_BATCH_MAX_RESULT_LINE);
    int bad = 0; /* a line that is not a complete result was seen: it must be the last */
    uint64_t bad_line = 0, bad_offset = 0;
    char bad_why[200] = "";
    while (!rc) {
        sl_batch_line_view v;
        int k = sl__batch_lines_next(&r, &v);
        if (k == SL_EIO) {
            snprintf(err, errlen, "cannot read %s: %s", out->path, strerror(r.err));
            rc = SL_EIO;
            break;
        }
        if (k <= 0) {
            rc = k;
            break;
        }
        if (v.terminated && !v.too_long && blank(v.p, v.len))
            continue;
        char why[200] = "";
        json_t *o = NULL;
        const char *cid = NULL;
        if (v.too_long)
            snprintf(why, sizeof why, "longer than %u bytes", SL_BATCH_MAX_RESULT_LINE);
        else if (!v.terminated)
            snprintf(why, sizeof why, "no newline at the end");
        else if (sl__json_parse(v.p, v.len, LINE_DEPTH, &o, why, sizeof why))
            o = NULL; /* why says what is wrong */
        else if (!json_is_object(o) || !(cid = sl__json_str(o, "custom_id"))) {
            /* complete JSON that is not a result line: not ours to cut off */
            snprintf(err, errlen,
                     "%s: line %" PRIu64 " has no \"custom_id\"; not a sluice or Batch API "
                     "output, not resuming it",
                     out->path, v.line_no);
            json_decref(o);
            rc = SL_EPARSE;
            break;
        }
        if (bad) {
            snprintf(err, errlen,
                     "%s: line %" PRIu64 " is not a complete result line (%s) but more lines "
                     "follow; the file is damaged, not resuming it",
                     out->path, bad_line, bad_why);
            json_decref(o);
            rc = SL_EPARSE;
            break;
        }
        if (!cid) {
            bad = 1;
            bad_line = v.line_no;
            bad_offset = v.offset;
            snprintf(bad_why, sizeof bad_why, "%s", why);
            continue;
        }
        int added = sl__batch_idset_add(&out->ids, cid, strlen(cid), 0, NULL);
        if (added == 1) {
            json_t *e = json_object_get(o, "error");
            if (e && !json_is_null(e))
                info->failed++;
        }
        json_decref(o);
        if (added < 0) {
            rc = added;
            break;
        }
        info->lines++;
        if (added == 0)
            info->duplicates++;
    }
    uint64_t total = r.bytes;
    sl__batch_lines_free(&r);
    if (rc)
        return rc;
    info->ids = out->ids.count;
    if (bad) {
        if (ftruncate(out->fd, (off_t)bad_offset) || (out->regular && fdatasync(out->fd))) {
            snprintf(err, errlen, "cannot cut the torn last line of %s: %s", out->path,
                     strerror(errno));
            return SL_EIO;
        }
        info->torn = 1;
        info->torn_line = bad_line;
        info->torn_bytes = total - bad_offset;
        total = bad_offset;
    }
    out->size = total;
    return 0;
}

/* ---- open / close --------------------------------------------------------------------- */

static uint64_t random_salt(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
    }
    return s ? s : 1;
}

static void output_free(sl_batch_output *out)
{
    if (!out)
        return;
    if (out->fd >= 0 && !out->is_stdout)
        close(out->fd);
    free(out->path);
    free(out->side_path);
    free(out->input_path);
    sl__batch_idset_free(&out->ids);
    sl__buf_free(&out->line);
    free(out);
}

/* One writer per file: a second run on the same OUTPUT (a --resume started while the first
 * still runs) would write the same ids again. The lock goes with the process, kill -9
 * included. */
static int lock_output(sl_batch_output *out, char *err, size_t errlen)
{
    if (flock(out->fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    if (errno == EWOULDBLOCK) {
        snprintf(err, errlen,
                 "%s is being written by another sluice batch; wait for it to end (or stop "
                 "it) before resuming",
                 out->path);
        return SL_EINVAL;
    }
    if (errno == ENOLCK || errno == EINVAL || errno == EOPNOTSUPP)
        return 0; /* a file system without locks: go on unprotected */
    snprintf(err, errlen, "cannot lock %s: %s", out->path, strerror(errno));
    return SL_EIO;
}

int sl__batch_output_open(const char *path, const sl_batch_output_opts *o, sl_batch_output **outp,
                          sl_batch_resume_info *infop, char *err, size_t errlen)
{
    sl_batch_resume_info dummy;
    sl_batch_resume_info *info = infop ? infop : &dummy;
    memset(info, 0, sizeof *info);
    *outp = NULL;
    char scratch[8];
    if (!errlen) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    int rc = SL_ENOMEM;
    sl_batch_output *out = calloc(1, sizeof *out);
    if (!out)
        return SL_ENOMEM;
    out->fd = -1;
    sl__batch_idset_init(&out->ids);
    sl__buf_init(&out->line, 0);
    out->now_ms = o->now_ms ? o->now_ms : sl__clock_ms;
    out->write_fn = o->write_fn ? o->write_fn : plain_write;
    out->sync_interval_ms = o->sync_interval_ms ? o->sync_interval_ms : DEFAULT_SYNC_MS;
    out->created_unix = o->created_unix ? o->created_unix : sl__clock_unix();
    out->salt = o->id_salt ? o->id_salt : random_salt();
    out->forget_written = o->forget_written;
    out->path = strdup(path);
    out->input_path = strdup(o->input_path ? o->input_path : "-");
    if (!out->path || !out->input_path)
        goto fail;

    if (strcmp(path, "-") == 0) {
        if (o->resume) {
            snprintf(err, errlen, "--resume needs an output file, not stdout");
            rc = SL_EINVAL;
            goto fail;
        }
        out->fd = STDOUT_FILENO;
        out->is_stdout = 1;
        struct stat so;
        out->regular = fstat(STDOUT_FILENO, &so) == 0 && S_ISREG(so.st_mode);
        goto ready;
    }

    struct stat st;
    int exists = stat(path, &st) == 0;
    if (!exists && errno != ENOENT) {
        snprintf(err, errlen, "cannot use %s: %s", path, strerror(errno));
        rc = SL_EIO;
        goto fail;
    }
    if (exists && !S_ISREG(st.st_mode)) {
        /* /dev/null, a FIFO, a terminal: nothing to resume or protect */
        out->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (out->fd < 0) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            rc = SL_EIO;
            goto fail;
        }
        goto ready;
    }
    if (exists && !o->resume) {
        snprintf(err, errlen, "%s exists; use --resume to continue it or remove it", path);
        rc = SL_EINVAL;
        goto fail;
    }
    if (o->side_file) {
        size_t n = strlen(path) + sizeof SL_BATCH_SIDE_SUFFIX;
        out->side_path = malloc(n);
        if (!out->side_path)
            goto fail;
        snprintf(out->side_path, n, "%s%s", path, SL_BATCH_SIDE_SUFFIX);
    }
    out->regular = 1;
    out->own = 1;

    if (!exists) {
        if (out->side_path) {
            rc = write_side(out, o->input_fingerprint, o->fingerprint_known, err, errlen);
            if (rc)
                goto fail;
        }
        out->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
        if (out->fd < 0) {
            if (errno == EEXIST) {
                snprintf(err, errlen, "%s exists; use --resume to continue it or remove it", path);
                rc = SL_EINVAL;
            } else {
                snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
                rc = SL_EIO;
            }
            goto fail;
        }
        fsync_dir_of(path);
        rc = lock_output(out, err, errlen);
        if (rc)
            goto fail;
        goto ready;
    }

    /* --resume on an existing file: check the side file, then read every line */
    int present = 0, known = 0;
    uint64_t fp = 0;
    if (out->side_path) {
        rc = read_side(out, &present, &fp, &known, err, errlen);
        if (rc)
            goto fail;
        if (present && known && o->fingerprint_known && fp != o->input_fingerprint) {
            snprintf(err, errlen,
                     "%s was made from a different input (fingerprint %016" PRIx64
                     ", this input %016" PRIx64 "); use a new output file or remove it",
                     path, fp, o->input_fingerprint);
            rc = SL_EINVAL;
            goto fail;
        }
        out->side_present = present;
        info->had_side_file = present;
        info->side_fingerprint_known = present && known;
        info->side_fingerprint = fp;
        info->needs_id_check = !(present && known && o->fingerprint_known);
    }
    out->fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (out->fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        rc = SL_EIO;
        goto fail;
    }
    rc = lock_output(out, err, errlen); /* before a torn line is cut off */
    if (rc)
        goto fail;
    info->resumed = 1;
    rc = scan_existing(out, info, err, errlen);
    if (rc) {
        if (rc == SL_ENOMEM && !err[0])
            snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }

ready:
    out->last_sync_ms = out->now_ms();
    *outp = out;
    return 0;
fail:
    if (rc == SL_ENOMEM && !err[0])
        snprintf(err, errlen, "%s: out of memory", path);
    memset(info, 0, sizeof *info);
    output_free(out);
    return rc;
}

int sl__batch_errors_open(const char *path, int resume, sl_batch_output **out,
                          sl_batch_resume_info *info, char *err, size_t errlen)
{
    sl_batch_output_opts o;
    sl__batch_output_opts_init(&o);
    o.resume = resume;
    o.side_file = 0;
    return sl__batch_output_open(path, &o, out, info, err, errlen);
}

int sl__batch_output_sync(sl_batch_output *out)
{
    out->last_sync_ms = out->now_ms();
    if (!out->regular)
        return 0;
    out->stats.syncs++;
    if (fdatasync(out->fd)) {
        snprintf(out->errmsg, sizeof out->errmsg, "cannot sync %s: %s", out->path, strerror(errno));
        return SL_EIO;
    }
    return 0;
}

int sl__batch_output_close(sl_batch_output *out, char *err, size_t errlen)
{
    if (!out)
        return 0;
    int rc = out->failed ? SL_EIO : 0;
    if (out->regular && sl__batch_output_sync(out))
        rc = SL_EIO;
    if (out->fd >= 0 && !out->is_stdout) {
        if (close(out->fd) && !rc) {
            snprintf(out->errmsg, sizeof out->errmsg, "cannot close %s: %s", out->path,
                     strerror(errno));
            rc = SL_EIO;
        }
        out->fd = -1;
    }
    if (rc && errlen)
        snprintf(err, errlen, "%s", out->errmsg);
    output_free(out);
    return rc;
}

/* ---- writing -------------------------------------------------------------------------- */

int sl__batch_output_has(const sl_batch_output *out, const char *custom_id)
{
    return sl__batch_idset_get(&out->ids, custom_id, strlen(custom_id), NULL);
}

const sl_batch_idset *sl__batch_output_ids(const sl_batch_output *out)
{
    return &out->ids;
}

const char *sl__batch_output_error(const sl_batch_output *out)
{
    return out->errmsg;
}

void sl__batch_output_stats_get(const sl_batch_output *out, sl_batch_output_stats *st)
{
    *st = out->stats;
}

/* v in lower-case hex, at least width digits; returns the end. */
static char *put_hex(char *p, uint64_t v, int width)
{
    static const char hex[] = "0123456789abcdef";
    int digits = 1;
    while (digits < 16 && v >> (4 * digits))
        digits++;
    if (digits < width)
        digits = width;
    for (int i = digits - 1; i >= 0; i--)
        *p++ = hex[(v >> (4 * i)) & 15];
    return p;
}

void sl__batch_output_next_req_id(sl_batch_output *out, char *buf)
{
    /* "batch_req_%016" PRIx64 "%08" PRIx64, without printf: one per result */
    memcpy(buf, "batch_req_", 10);
    char *p = put_hex(buf + 10, out->salt, 16);
    p = put_hex(p, out->counter++, 8);
    *p = '\0';
}

static int append_str_or_null(sl_buf *b, const char *s)
{
    return s ? sl__batch_json_quote(b, s, strlen(s)) : sl__buf_append_str(b, "null");
}

static int append_body(sl_buf *b, sl_str body)
{
    if (!body.ptr)
        return sl__buf_append_str(b, "null");
    if (sl__jtok_check(body.ptr, body.len, BODY_DEPTH)) /* what sl__json_parse refuses */
        return sl__batch_json_quote(b, body.ptr, body.len);
    /* valid JSON: raw CR/LF can only sit between tokens, where a space means the same */
    const char *p = body.ptr;
    size_t n = body.len;
    while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    size_t start = b->len;
    int rc = sl__buf_append(b, p, n);
    if (rc)
        return rc;
    if (!memchr(b->data + start, '\n', n) && !memchr(b->data + start, '\r', n))
        return 0; /* the usual case: a compact body */
    for (size_t i = start; i < b->len; i++)
        if (b->data[i] == '\n' || b->data[i] == '\r')
            b->data[i] = ' ';
    return 0;
}

const char *sl__batch_error_code(int error, int http_status, char *buf, size_t len)
{
    switch (error) {
    case SL_EHTTP:
        snprintf(buf, len, "http_%d", http_status);
        return buf;
    case SL_ETIMEDOUT:
        return "timeout";
    case SL_ETRANSPORT:
        return "transport";
    case SL_EPROTO:
        return "protocol";
    case SL_EDIVERGED:
        return "diverged";
    case SL_ELIMIT:
        return "too_large";
    case SL_EBUSY:
        return "circuit_open";
    default:
        return "error";
    }
}

/* A duration in ms with one decimal: 12.3 */
static int append_ms(sl_buf *b, double ms)
{
    if (!(ms >= 0))
        ms = 0;
    long long tenths = (long long)(ms * 10 + 0.5);
    int rc = sl__buf_append_int(b, tenths / 10);
    if (!rc) {
        char frac[3] = {'.', (char)('0' + tenths % 10), 0};
        rc = sl__buf_append_str(b, frac);
    }
    return rc;
}

static int append_attempts(sl_buf *b, const sl_batch_result *r)
{
    int rc = sl__buf_append_str(b, ",\"attempts\":");
    if (!rc)
        rc = sl__buf_append_int(b, r->attempts);
    if (!rc)
        rc = sl__buf_append_str(b, ",\"attempt_log\":[");
    for (int i = 0; i < r->attempt_log_len && !rc; i++) {
        const sl_attempt_info *a = &r->attempt_log[i];
        char code[32];
        rc = sl__buf_append_str(b, i ? ",{\"status\":" : "{\"status\":");
        if (!rc)
            rc = a->http_status ? sl__buf_append_int(b, a->http_status)
                                : sl__buf_append_str(b, "null");
        if (!rc)
            rc = sl__buf_append_str(b, ",\"error\":");
        if (!rc)
            rc = append_str_or_null(
                b, a->error ? sl__batch_error_code(a->error, a->http_status, code, sizeof code)
                            : NULL);
        if (!rc)
            rc = sl__buf_append_str(b, ",\"start_ms\":");
        if (!rc)
            rc = append_ms(b, a->start_ms);
        if (!rc)
            rc = sl__buf_append_str(b, ",\"wait_ms\":");
        if (!rc)
            rc = append_ms(b, a->wait_ms);
        if (!rc)
            rc = sl__buf_append_str(b, ",\"duration_ms\":");
        if (!rc)
            rc = append_ms(b, a->duration_ms);
        if (!rc)
            rc = sl__buf_append_str(b, ",\"backoff_ms\":");
        if (!rc)
            rc = a->delay_ms >= 0 ? append_ms(b, a->delay_ms) : sl__buf_append_str(b, "null");
        if (!rc)
            rc = sl__buf_append_str(b, "}");
    }
    if (!rc)
        rc = sl__buf_append_str(b, "]");
    return rc;
}

int sl__batch_result_line(sl_buf *b, const char *req_id, const sl_batch_result *r)
{
    int rc = sl__buf_append_str(b, "{\"id\":");
    if (!rc)
        rc = append_str_or_null(b, req_id);
    if (!rc)
        rc = sl__buf_append_str(b, ",\"custom_id\":");
    if (!rc)
        rc = append_str_or_null(b, r->custom_id);
    if (!rc)
        rc = sl__buf_append_str(b, ",\"response\":");
    if (!rc && r->status_code == 0)
        rc = sl__buf_append_str(b, "null");
    else if (!rc) {
        rc = sl__buf_append_str(b, "{\"status_code\":");
        if (!rc)
            rc = sl__buf_append_int(b, r->status_code);
        if (!rc)
            rc = sl__buf_append_str(b, ",\"request_id\":");
        if (!rc)
            rc = append_str_or_null(b, r->request_id);
        if (!rc)
            rc = sl__buf_append_str(b, ",\"body\":");
        if (!rc)
            rc = append_body(b, r->body);
        if (!rc)
            rc = sl__buf_append_str(b, "}");
    }
    if (!rc)
        rc = sl__buf_append_str(b, ",\"error\":");
    if (!rc && !r->error_code && !r->error_message)
        rc = sl__buf_append_str(b, "null");
    else if (!rc) {
        rc = sl__buf_append_str(b, "{\"code\":");
        if (!rc)
            rc = append_str_or_null(b, r->error_code);
        if (!rc)
            rc = sl__buf_append_str(b, ",\"message\":");
        if (!rc)
            rc = append_str_or_null(b, r->error_message);
        if (!rc)
            rc = sl__buf_append_str(b, "}");
    }
    if (!rc && r->attempts > 1)
        rc = append_attempts(b, r);
    if (!rc)
        rc = sl__buf_append_str(b, "}\n");
    return rc;
}

static void maybe_sync(sl_batch_output *out)
{
    if (!out->regular || out->sync_interval_ms < 0)
        return;
    if (out->now_ms() - out->last_sync_ms >= (double)out->sync_interval_ms)
        sl__batch_output_sync(out); /* a failed periodic sync shows again at close */
}

int sl__batch_output_write_line(sl_batch_output *out, const char *line, size_t len,
                                const char *custom_id)
{
    if (out->failed)
        return SL_EIO;
    if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1))
        return SL_EINVAL;
    if (custom_id && out->forget_written) {
        if (sl__batch_idset_get(&out->ids, custom_id, strlen(custom_id), NULL))
            return 1;
    } else if (custom_id) {
        int added = sl__batch_idset_add(&out->ids, custom_id, strlen(custom_id), 0, NULL);
        if (added < 0)
            return added;
        if (added == 0)
            return 1;
    }
    size_t off = 0;
    while (off < len) {
        out->stats.writes++;
        ssize_t k = out->write_fn(out->fd, line + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EIO;
            out->failed = 1;
            /* take back a partial line so the file still ends with a complete one */
            int undone = off > 0 && out->own && ftruncate(out->fd, (off_t)out->size) == 0;
            snprintf(out->errmsg, sizeof out->errmsg, "cannot write %s: %s%s", out->path,
                     strerror(e), off > 0 && !undone ? " (a partial last line is left)" : "");
            return SL_EIO;
        }
        off += (size_t)k;
    }
    out->size += len;
    out->stats.lines++;
    out->stats.bytes += len;
    maybe_sync(out);
    return 0;
}

int sl__batch_output_put(sl_batch_output *out, const sl_batch_result *r)
{
    if (!r->custom_id)
        return SL_EINVAL;
    if (sl__batch_output_has(out, r->custom_id))
        return 1;
    char req_id[SL_BATCH_REQ_ID_LEN];
    sl__batch_output_next_req_id(out, req_id);
    sl__buf_reset(&out->line);
    int rc = sl__batch_result_line(&out->line, req_id, r);
    if (rc)
        return rc;
    rc = sl__batch_output_write_line(out, out->line.data, out->line.len, r->custom_id);
    /* a single huge line should not pin its memory for the rest of the run */
    if (out->line.cap > (1u << 20))
        sl__buf_free(&out->line);
    return rc;
}

int sl__batch_output_set_fingerprint(sl_batch_output *out, uint64_t fingerprint, char *err,
                                     size_t errlen)
{
    if (!out->side_path)
        return 0;
    return write_side(out, fingerprint, 1, err, errlen);
}

int sl__batch_output_check_ids(sl_batch_output *out, const sl_batch_idset *input_ids,
                               uint64_t fingerprint, char *err, size_t errlen)
{
    size_t pos = 0;
    const char *id, *first = NULL;
    size_t len;
    uint64_t missing = 0;
    while (sl__batch_idset_next(&out->ids, &pos, &id, &len, NULL)) {
        if (!sl__batch_idset_get(input_ids, id, len, NULL)) {
            if (!first)
                first = id;
            missing++;
        }
    }
    if (missing) {
        sl_buf q;
        sl__buf_init(&q, 0);
        sl__batch_json_quote(&q, first, strlen(first));
        if (errlen)
            snprintf(err, errlen,
                     "%s has %" PRIu64 " result%s whose custom_id is not in the input (first: "
                     "%s); it was made from a different input",
                     out->path, missing, missing == 1 ? "" : "s", q.data ? q.data : "?");
        sl__buf_free(&q);
        return SL_EINVAL;
    }
    if (out->side_path && !out->side_present)
        return write_side(out, fingerprint, 1, err, errlen);
    return 0;
}
