/* lines.h — a streaming line reader with a fixed read buffer and a cap on one line.
 *
 * Shared by the batch input reader and the output's resume scan. It reads from a FILE*,
 * a file descriptor or a memory buffer in fixed chunks (never the whole file), hands out
 * one line at a time without its '\n', and keeps memory flat: a line longer than the cap
 * is not kept but skipped to its end and reported as too long (its length still counted),
 * and the reader goes on with the next line. While reading it computes the FNV-1a 64
 * fingerprint of every byte, and counts bytes and lines. */
#ifndef SL_APPS_BATCH_LINES_H
#define SL_APPS_BATCH_LINES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/buf.h"

#define SL_BATCH_CHUNK (64u * 1024)

typedef struct sl_batch_lines {
    FILE *f;                  /* source: a FILE* (not closed here) ... */
    int fd;                   /* ... or a file descriptor (not closed here), -1 if unused ... */
    const unsigned char *mem; /* ... or memory (borrowed) */
    size_t mem_len, mem_pos;
    unsigned char *chunk;     /* the fixed read buffer (files and descriptors) */
    const unsigned char *cur; /* the bytes being consumed: chunk, or a window of mem */
    size_t cur_len, cur_pos;
    int too_long; /* the line being read went over max_line */
    size_t raw_len;
    sl_buf line;
    size_t max_line;
    uint64_t line_no;     /* lines handed out so far */
    uint64_t offset;      /* byte offset of the next line's start */
    uint64_t bytes;       /* bytes read from the source */
    uint64_t fingerprint; /* FNV-1a 64 of those bytes */
    int eof;
    int err; /* errno of a read error, 0 if none */
} sl_batch_lines;

/* One line, borrowed until the next sl__batch_lines_next. */
typedef struct sl_batch_line_view {
    const char *p;    /* the bytes without the '\n' (a '\r' before it is kept); NUL after */
    size_t len;       /* 0 when too_long */
    size_t raw_len;   /* the full length without '\n', also when too long */
    uint64_t line_no; /* 1-based */
    uint64_t offset;  /* byte offset of the line's first byte in the source */
    int terminated;   /* 1 if it ended with '\n'; 0 only for a last line at EOF */
    int too_long;     /* the line had more than max_line bytes; p is "" */
} sl_batch_line_view;

/* Set up r on one source (pass NULL / -1 / NULL for the two unused ones). max_line 0:
 * 8 MiB. 0, SL_EINVAL (no source) or SL_ENOMEM; call sl__batch_lines_free in every case. */
int sl__batch_lines_init(sl_batch_lines *r, FILE *f, int fd, const void *mem, size_t mem_len,
                         size_t max_line);
void sl__batch_lines_free(sl_batch_lines *r);

/* The next line into *v: 1 a line, 0 end of input, SL_EIO on a read error (r->err holds
 * errno; the error repeats on later calls), SL_ENOMEM. Never SL_ELIMIT: a long line is a
 * view with too_long set. A last line without '\n' is a line (terminated 0); an empty
 * input, or input ending in '\n', has no extra empty line. */
int sl__batch_lines_next(sl_batch_lines *r, sl_batch_line_view *v);

#endif
