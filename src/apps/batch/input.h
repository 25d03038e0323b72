/* input.h — the streaming JSONL reader of sluice batch.
 *
 * Reads the input one line at a time through a fixed buffer (lines.h): memory stays flat
 * whatever the size of the file, except for the set of ids seen, which duplicate
 * detection needs. Each non-blank line becomes one item: a request (id, endpoint, body)
 * or an error naming the line and what is wrong; a bad line never stops the reader.
 * It never touches the network or the output; the runner (runner.c) pulls items.
 *
 * Formats, detected per line (docs/batch-formats.md has the full rules):
 *   (a) Batch API: {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions",
 *       "body": {...}}. Any object with "custom_id", "body", "method" or "url" is read as
 *       this form. custom_id must be a non-empty string; method, if present, "POST"; url,
 *       if present, /v1/chat/completions, /v1/completions or /v1/embeddings (the "/v1"
 *       may be left out; no url means chat completions); body an object.
 *   (b) short form: {"id": ..., "prompt": "..."} or {"id": ..., "messages": [...]}, with
 *       optional "system", "model", "max_tokens", "temperature" and any other body field
 *       (kept). id: a string, an integer (its decimal text), or absent/null (the line
 *       number). Becomes a chat body: {"model", "messages", the other fields in order}.
 *   (c) a plain text line (not starting with '{' after spaces and tabs): one user prompt,
 *       the whole line without its line end; the id is the line number.
 * Blank lines (only spaces, tabs, CR) are skipped but counted; "\r\n" ends a line like
 * "\n"; a last line without a newline is read; a UTF-8 BOM at the start is ignored.
 * The default model (from the CLI) is set when a body has no "model" (absent or null).
 *
 * Ids are unique: a line whose id was already given out is an error (the first line
 * keeps its id). An error item has an id only when the line's output line may carry it:
 * NULL for malformed JSON, a bad id and a duplicate id; such lines get no output line. */
#ifndef SL_APPS_BATCH_INPUT_H
#define SL_APPS_BATCH_INPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "apps/batch/idset.h"

#define SL_BATCH_MAX_LINE (8u * 1024 * 1024) /* one input line, bytes */
#define SL_BATCH_MAX_ID   1024               /* one id, bytes */

typedef struct sl_batch_input sl_batch_input;

typedef struct sl_batch_input_opts {
    const char *default_model; /* NULL: none; copied */
    size_t max_line;           /* 0: SL_BATCH_MAX_LINE */
} sl_batch_input_opts;

typedef enum sl_batch_format {
    SL_BATCH_FORMAT_NONE = 0,  /* the line could not be read as any format */
    SL_BATCH_FORMAT_BATCH = 1, /* OpenAI Batch API line */
    SL_BATCH_FORMAT_SHORT = 2, /* {"id", "prompt" | "messages"} */
    SL_BATCH_FORMAT_TEXT = 3,  /* plain text line */
} sl_batch_format;

/* One line's outcome. Every pointer is owned by the item: release with
 * sl__batch_item_clear (or take a field and set it to NULL first). */
typedef struct sl_batch_item {
    uint64_t line_no; /* 1-based, blank lines counted */
    size_t bytes;     /* the line's length ('\n' not counted), also when too long */
    sl_batch_format format;
    char *id;               /* the custom_id; on error NULL when the line has no usable id */
    const char *endpoint;   /* static: "/chat/completions", "/completions", "/embeddings";
                               NULL on error */
    json_t *body;           /* the request body, a new reference; NULL on error */
    const char *error_code; /* NULL for a request, else a static code (docs: "Errors"):
                               line_too_long invalid_json invalid_utf8 missing_field
                               invalid_field invalid_method unsupported_url
                               unrecognized_line duplicate_id */
    char *error;            /* NULL for a request, else "line N: what is wrong" */
} sl_batch_item;

/* Open path for reading ("-": standard input, not closed by free). o may be NULL. 0, or
 * SL_EIO / SL_ENOMEM with a one-line reason in err ("cannot open PATH: reason"). */
int sl__batch_input_open(const char *path, const sl_batch_input_opts *o, sl_batch_input **out,
                         char *err, size_t errlen);
/* Read from f (not closed by free). */
int sl__batch_input_open_file(FILE *f, const sl_batch_input_opts *o, sl_batch_input **out);
/* Read from memory (borrowed until free): the fuzzer's and the tests' way in. */
int sl__batch_input_open_mem(const void *data, size_t len, const sl_batch_input_opts *o,
                             sl_batch_input **out);
void sl__batch_input_free(sl_batch_input *in);

/* The next item into *item (overwritten; the caller owns what it holds afterwards):
 * 1 an item (request or line error), 0 end of input, SL_EIO on a read error (reason in
 * sl__batch_input_error), SL_ENOMEM. After an error the reader is done. */
int sl__batch_input_next(sl_batch_input *in, sl_batch_item *item);
/* Release what an item holds and zero it. Safe on a zeroed item. */
void sl__batch_item_clear(sl_batch_item *item);

/* FNV-1a 64 of every byte read so far: the input's fingerprint once next returned 0. */
uint64_t sl__batch_input_fingerprint(const sl_batch_input *in);
/* Lines (blank ones too) and bytes read so far; items handed out (requests + errors). */
uint64_t sl__batch_input_lines(const sl_batch_input *in);
uint64_t sl__batch_input_bytes(const sl_batch_input *in);
uint64_t sl__batch_input_items(const sl_batch_input *in);
/* The ids given out so far (value: line number), borrowed until free. After the end of
 * input, the set the output's resume check compares against. */
const sl_batch_idset *sl__batch_input_ids(const sl_batch_input *in);
/* One line about the last read error ("" if none). */
const char *sl__batch_input_error(const sl_batch_input *in);

/* A quick first pass over a whole file (not "-"): the fingerprint sl__batch_input_next
 * would end with, the byte and line counts, and the number of items (non-blank lines and
 * lines over max_line) the reader will yield, which is the progress total. Reads through
 * a fixed buffer; parses nothing. 0, or SL_EIO with a reason in err. */
typedef struct sl_batch_scan {
    uint64_t fingerprint;
    uint64_t bytes;
    uint64_t lines;
    uint64_t items;
} sl_batch_scan;
int sl__batch_input_scan(const char *path, size_t max_line, sl_batch_scan *out, char *err,
                         size_t errlen);
/* The same over memory. */
void sl__batch_input_scan_mem(const void *data, size_t len, size_t max_line, sl_batch_scan *out);

#endif
