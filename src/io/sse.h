/* sse.h — incremental Server-Sent Events parser and writer.
 *
 * The parser follows the WHATWG event-stream rules: lines end in LF, CR or CRLF (a CRLF
 * split across two feeds counts once), a leading UTF-8 BOM is skipped, lines starting
 * with ':' are comments, "field: value" drops one leading space of the value, a line
 * without ':' is a field with an empty value, data lines join with '\n', an empty line
 * dispatches the event (nothing is dispatched when no data field was seen), unknown
 * fields are ignored, "id" containing NUL is ignored, "retry" takes only ASCII digits.
 * An event still being assembled when the stream ends is discarded (sl__sse_finish).
 * Hard caps: one line, and one event's data, may not exceed their maximum (SL_ELIMIT);
 * the parser is then in error and refuses further input.
 *
 * Feed any split of the input: the events and their order do not depend on it.
 * Complete lines inside one feed are parsed in place; only a line cut by the end of a
 * feed is copied, so the cost is linear in the input. An event of one data line inside
 * one feed is handed to the callback in place too; its data is copied only when a second
 * line joins it or the feed ends before the event does. */
#ifndef SL_IO_SSE_H
#define SL_IO_SSE_H

#include <stddef.h>

#include <sluice/common.h>

#include "base/buf.h"

typedef struct sl_sse_event {
    sl_str type; /* "event" field; "message" when absent */
    sl_str data; /* data lines joined with '\n' */
    sl_str id;   /* last event id seen so far (persists across events); may be empty */
    /* The last valid "retry" (non-empty, ASCII digits only, saturating at LONG_MAX) seen
     * since the previous dispatched event, or -1. A "retry" in a block without data is
     * carried to the next event: the WHATWG parser applies it at once, and this is how a
     * callback-only reader gets to see it. */
    long retry_ms;
} sl_sse_event;

/* Return 0 to go on; any other value stops sl__sse_feed, which returns it. The event is
 * borrowed until the callback returns. The callback must not feed its own parser. */
typedef int (*sl_sse_event_cb)(void *user, const sl_sse_event *ev);

/* Fields are private to sse.c except consumed. */
typedef struct sl_sse_parser {
    sl_sse_event_cb on_event;
    void *user;
    sl_buf line;          /* the incomplete line */
    sl_buf data;          /* the event's data so far, unless data_ref holds it */
    const char *data_ref; /* the event's one data line, in place in the current feed */
    size_t data_ref_len;
    int data_is_ref;
    sl_buf type;
    sl_buf id;
    long retry_ms;
    int have_data;
    int bom_checked;
    int bom_matched; /* BOM bytes seen so far while bom_checked is 0 */
    int last_was_cr;
    int failed; /* 0, or the error (SL_ELIMIT, SL_ENOMEM) every later feed returns */
    size_t max_line;
    size_t max_event;
    /* Bytes of the last sl__sse_feed input that were parsed: all of them unless the
     * callback stopped the feed, in which case feeding the input from here on resumes
     * exactly where it stopped (e.g. after a pause). */
    size_t consumed;
} sl_sse_parser;

#define SL_SSE_DEFAULT_MAX_LINE  (1u << 20) /* 1 MiB */
#define SL_SSE_DEFAULT_MAX_EVENT (8u << 20) /* 8 MiB */

/* max_line / max_event 0: the defaults above. cb may be NULL (events are parsed and
 * dropped). Does not allocate. */
void sl__sse_init(sl_sse_parser *p, size_t max_line, size_t max_event, sl_sse_event_cb cb,
                  void *user);
void sl__sse_free(sl_sse_parser *p);
/* Parse (data, len), calling on_event for each event completed by it. 0, SL_ELIMIT (a
 * cap was exceeded, or the parser already failed on it), SL_ENOMEM (likewise), or the
 * first non-zero value returned by the callback (see consumed). */
int sl__sse_feed(sl_sse_parser *p, const char *data, size_t len);
/* End of stream: drop any incomplete line and event (and a pending "retry"). The last
 * event id is kept, as a reconnecting reader needs it; a later feed is a new stream
 * (its BOM is skipped again). A failed parser stays failed. Returns 0. */
int sl__sse_finish(sl_sse_parser *p);

/* Writer. Appends one event to out: "event: <type>\n" when type is non-NULL, "id: <id>\n"
 * when id is non-NULL, one "data: " line per line of data (split on LF, CR, CRLF, so the
 * reader gets the same data back, with every line end as LF; empty data is one empty
 * "data: " line, which a reader dispatches), then the empty line. 0, SL_EINVAL (type or
 * id contains CR or LF, which would forge fields), SL_ELIMIT or SL_ENOMEM; on error out
 * is left as it was. */
int sl__sse_write(sl_buf *out, const char *type, const char *id, const char *data, size_t len);
/* Appends ": <text>\n\n" (a comment, e.g. a keep-alive); a text of several lines
 * becomes one ": " line each, so it can never be read as a field. NULL is "". 0,
 * SL_ELIMIT or SL_ENOMEM; on error out is left as it was. */
int sl__sse_write_comment(sl_buf *out, const char *text);

#endif
