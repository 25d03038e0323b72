/* fuzz_batch_resume.c — libFuzzer target for resuming a batch results file.
 *
 * The input is the content of an existing OUTPUT (in a memfd, opened by its /proc path,
 * so no disk I/O). Resume must either refuse it (damaged or not ours: SL_EPARSE) or keep
 * a prefix of it, cut exactly the torn tail it reports, and leave a file that resumes
 * again with nothing torn, the same ids, and takes one more line cleanly. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/common.h>

#include "apps/batch/output.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);                 \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

static int open_resume(const char *path, sl_batch_output **out, sl_batch_resume_info *info)
{
    sl_batch_output_opts o;
    sl__batch_output_opts_init(&o);
    o.resume = 1;
    o.side_file = 0;
    o.sync_interval_ms = -1;
    o.id_salt = 1;
    char err[512];
    return sl__batch_output_open(path, &o, out, info, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("resume", 0);
    if (fd < 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (size && write(fd, data, size) != (ssize_t)size)
        goto out;

    sl_batch_output *out = NULL;
    sl_batch_resume_info info;
    int rc = open_resume(path, &out, &info);
    CHECK(rc == 0 || rc == SL_EPARSE || rc == SL_ENOMEM);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    if (rc) {
        CHECK((size_t)st.st_size == size); /* refused: untouched */
        goto out;
    }
    CHECK(info.resumed == 1);
    CHECK((uint64_t)st.st_size + info.torn_bytes == size);
    CHECK(info.torn || info.torn_bytes == 0);
    uint64_t ids = info.ids;
    CHECK(sl__batch_output_ids(out)->count == ids);
    sl_batch_result r = {"fuzz-new-id", 200, NULL, {"{}", 2}, NULL, NULL, 0, NULL, 0};
    int put = sl__batch_output_put(out, &r);
    CHECK(put == 0 || put == 1);
    char err[512];
    CHECK(sl__batch_output_close(out, err, sizeof err) == 0);

    /* again: nothing torn, the same ids plus the new one */
    rc = open_resume(path, &out, &info);
    CHECK(rc == 0);
    CHECK(info.torn == 0);
    CHECK(info.ids == ids + (put == 0));
    CHECK(sl__batch_output_has(out, "fuzz-new-id"));
    CHECK(sl__batch_output_close(out, err, sizeof err) == 0);
out:
    close(fd);
    return 0;
}
