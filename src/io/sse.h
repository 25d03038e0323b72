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
 * Feed any split of the input: the events and their order do not depend on it. */
#ifndef SL_IO_SSE_H
#define SL_IO_SSE_H

#include <stddef.h>

#include <sluice/common.h>

#include "base/buf.h"

typedef struct sl_sse_event {
    sl_str type;   /* "event" field; "message" when absent */
    sl_str data;   /* data lines joined with '\n' */
    sl_str id;     /* last event id seen so far (persists across events); may be empty */
    long retry_ms; /* "retry" field of this event, or -1 */
} sl_sse_event;

/* Return 0 to go on; any other value stops sl__sse_feed, which returns it. The event is
 * borrowed until the callback returns. */
typedef int (*sl_sse_event_cb)(void *user, const sl_sse_event *ev);

typedef struct sl_sse_parser {
    sl_sse_event_cb on_event;
    void *user;
    sl_buf line; /* the incomplete line */
    sl_buf data; /* the event's data so far */
    sl_buf type;
    sl_buf id;
    long retry_ms;
    int have_data;
    int bom_checked;
    int last_was_cr;
    int failed;
    size_t max_line;
    size_t max_event;
} sl_sse_parser;

#define SL_SSE_DEFAULT_MAX_LINE  (1u << 20) /* 1 MiB */
#define SL_SSE_DEFAULT_MAX_EVENT (8u << 20) /* 8 MiB */

/* max_line / max_event 0: the defaults above. */
void sl__sse_init(sl_sse_parser *p, size_t max_line, size_t max_event, sl_sse_event_cb cb,
                  void *user);
void sl__sse_free(sl_sse_parser *p);
/* Parse (data, len). 0, SL_ELIMIT (a cap was exceeded, or the parser already failed), or
 * the first non-zero value returned by the callback. */
int sl__sse_feed(sl_sse_parser *p, const char *data, size_t len);
/* End of stream: drop any incomplete event. Returns 0. */
int sl__sse_finish(sl_sse_parser *p);

/* Writer. Appends one event to out: "event: <type>\n" when type is non-NULL, "id: <id>\n"
 * when id is non-NULL, one "data: " line per line of data (split on LF, CR, CRLF, so the
 * reader gets the same data back), then the empty line. 0, SL_ELIMIT or SL_ENOMEM. */
int sl__sse_write(sl_buf *out, const char *type, const char *id, const char *data, size_t len);
/* Appends ": <text>\n\n" (a comment, e.g. a keep-alive). */
int sl__sse_write_comment(sl_buf *out, const char *text);

#endif
