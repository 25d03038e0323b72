/* openai.h — the OpenAI-compatible adapter: requests out, deltas and results in.
 *
 * It turns an sl_request into an HTTP request (URL, headers, body), and a response
 * body into deltas plus one final result. It does no I/O: the attempt feeds it bytes.
 *
 * Streamed answers are SSE events carrying chat.completion.chunk objects (or
 * text_completion chunks for /completions). The parser emits a delta per piece of
 * content, reasoning (delta.reasoning_content or delta.reasoning) and tool-call
 * arguments, and assembles the same object a non-streamed call returns: id, object
 * ("chat.completion"), created, model, system_fingerprint, choices[] with message
 * {role, content, reasoning_content or reasoning, tool_calls, other fields},
 * logprobs, finish_reason, then usage, then any other top-level field the provider
 * sent. A non-streamed body is kept as received and its text handed out as deltas. */
#ifndef SL_LLM_OPENAI_H
#define SL_LLM_OPENAI_H

#include <stddef.h>

#include <sluice/call.h>

#include "base/buf.h"

typedef enum sl_openai_kind {
    SL_OPENAI_CHAT = 0,        /* /chat/completions */
    SL_OPENAI_COMPLETIONS = 1, /* /completions (text) */
    SL_OPENAI_EMBEDDINGS = 2,  /* /embeddings (never streamed) */
    SL_OPENAI_OTHER = 3,       /* any other path: the body is passed through */
} sl_openai_kind;

sl_openai_kind sl__openai_kind(const char *endpoint);

/* Limits on what one answer may make the parser hold. */
#define SL_OPENAI_MAX_CHOICES      128
#define SL_OPENAI_MAX_TOOL_CALLS   128
#define SL_OPENAI_MAX_EXTRA_FIELDS 64
#define SL_OPENAI_MAX_ASSEMBLED    (64u << 20) /* all text of a streamed answer */

/* ---- the request ------------------------------------------------------------------ */

typedef struct sl_openai_http {
    char *url;
    char *body;
    size_t body_len;
    char *headers[4]; /* "Name: value" */
    size_t nheaders;
    int stream;
    sl_openai_kind kind;
} sl_openai_http;

/* base_url and endpoint joined with one '/', the wire body (llm/request.h), and the
 * headers: Authorization (when api_key is non-empty), Content-Type, Accept
 * (text/event-stream when streamed), User-Agent. 0, SL_EINVAL (a header value with CR
 * or LF) or SL_ENOMEM; on error *out holds nothing. */
int sl__openai_build(const char *base_url, const char *api_key, const char *user_agent,
                     const sl_request *req, sl_openai_http *out);
/* The same without the headers (nheaders 0): what varies from request to request. */
int sl__openai_build_body(const char *base_url, const sl_request *req, sl_openai_http *out);
/* Just the headers sl__openai_build adds, for a streamed request or not: up to 4 lines
 * into out (caller frees each), their count in *n. 0, SL_EINVAL or SL_ENOMEM (then out
 * holds nothing). */
int sl__openai_headers(const char *api_key, const char *user_agent, int stream, char *out[4],
                       size_t *n);
void sl__openai_http_free(sl_openai_http *h);

/* ---- the answer ------------------------------------------------------------------- */

/* A delta, borrowed until the callback returns. Return 0 to go on; any other value
 * stops the parser, and the feed function returns it. */
typedef int (*sl_openai_delta_cb)(void *user, const sl_delta *d);

typedef struct sl_openai_parser sl_openai_parser;

typedef struct sl_openai_out {
    int error;           /* 0, SL_EPROTO, SL_EHTTP (an error object in a 2xx answer), SL_ELIMIT */
    const char *message; /* error: what went wrong, with the provider's message; no URL;
                            "" without one */
    int error_status;    /* SL_EHTTP: the status the provider's error object names, else 0 */
    sl_str error_body;   /* SL_EHTTP: the error event's data or the body */
    sl_str text;         /* choice 0's content */
    sl_str reasoning;    /* choice 0's reasoning */
    const char *finish_reason; /* choice 0's, or NULL */
    sl_usage usage;            /* -1 where the provider did not say */
    sl_str body;               /* after finish / parse_body: the response object as JSON */
    int saw_done;              /* "data: [DONE]" arrived */
} sl_openai_out;

/* max_event: cap on one SSE line/event and on a non-streamed body (0: 8 MiB). NULL on
 * ENOMEM. */
sl_openai_parser *sl__openai_parser_new(sl_openai_kind kind, size_t max_event,
                                        sl_openai_delta_cb on_delta, void *user);
void sl__openai_parser_free(sl_openai_parser *p);

/* Parsers given back after use, handed out again with their memory (buffers of up to
 * 16 KiB each are kept), so that a steady stream of calls allocates nothing for them.
 * One loop's: not thread-safe. */
typedef struct sl_openai_spares sl_openai_spares;

/* Holding at most max parsers. NULL on ENOMEM. */
sl_openai_spares *sl__openai_spares_new(size_t max);
/* The owner is done with s: the parsers held are freed, and s itself now, or when the
 * last parser taken from it is given back (parsers may outlive their owner's handle).
 * NULL is a no-op. */
void sl__openai_spares_close(sl_openai_spares *s);
/* A parser exactly as sl__openai_parser_new makes it, from s when it holds one (s may be
 * NULL: a new one). NULL on ENOMEM. */
sl_openai_parser *sl__openai_parser_take(sl_openai_spares *s, sl_openai_kind kind, size_t max_event,
                                         sl_openai_delta_cb on_delta, void *user);
/* Done with p, taken from s (NULL: nothing): kept by s, or freed when s is NULL, full or
 * closed. What p handed out (out, the deltas' strings) is gone. */
void sl__openai_parser_give(sl_openai_spares *s, sl_openai_parser *p);
/* Whether a chunk laid out like the one before it is read through it (default on): the
 * deltas and the result are the same either way; tests turn it off to compare. */
void sl__openai_parser_shortcut(sl_openai_parser *p, int on);
/* How many chunks were read that way. */
size_t sl__openai_parser_shortcuts(const sl_openai_parser *p);

/* Streamed answer: feed the body bytes in any split, then finish at its end. Each
 * returns 0, an error (also in out->error, with out->message), or what on_delta
 * returned. After an error the parser refuses further input. finish fails with
 * SL_EPROTO "stream ended before [DONE]" when neither [DONE] nor a finish_reason came. */
int sl__openai_feed(sl_openai_parser *p, const char *data, size_t len);
int sl__openai_finish(sl_openai_parser *p);
/* Non-streamed answer: the whole body at once (copied). */
int sl__openai_parse_body(sl_openai_parser *p, const char *body, size_t len);
const sl_openai_out *sl__openai_out(const sl_openai_parser *p);
/* Exchange the buffer that holds out.body with b: the caller gets the body without a
 * copy, the parser b's memory (emptied) for its next use; out.body is then "". */
void sl__openai_swap_body(sl_openai_parser *p, sl_buf *b);

/* The provider's error message in an error body ({"error":{"message":..}}, {"error":
 * "..."}, {"message":..}, {"detail":..}, else the body's first line), made printable and
 * cut to fit out. Returns 1 if something was found, else 0 with out = "". */
int sl__openai_error_message(const char *body, size_t len, char *out, size_t cap);

#endif
