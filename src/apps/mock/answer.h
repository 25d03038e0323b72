/* answer.h — what the mock says: request bodies in, response bytes out.
 *
 * The pure half of the mock's answers, separate from the server so unit tests check it
 * byte for byte: parsing a chat/completions/embeddings request body (jansson, depth and
 * size capped), the deterministic answer plan, and tight formatters that append the
 * response bytes (SSE frames, JSON bodies, OpenAI-shaped errors) to a reusable sl_buf.
 * No jansson on the response side: the formatters memcpy constant pieces and escape
 * only what came from the client.
 *
 * The answer rule: content chunk 0 is the last user message (chat) or the prompt
 * (legacy completions) verbatim; chunks 1..n-1 are one word each, " " + a word from a
 * fixed vocabulary picked by splitmix64 seeded with seed ^ FNV-1a(what the request
 * says: each message's role and text, or each prompt string, then the model), so
 * "stream", max_tokens and JSON spacing do not change the words. n is the
 * chunks option, cut to max_tokens / max_completion_tokens (finish_reason "length").
 * Tokens are whitespace-separated words: completion_tokens = words of the answer text,
 * prompt_tokens = words of every message content (or prompt string). */
#ifndef SL_APPS_MOCK_ANSWER_H
#define SL_APPS_MOCK_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum { SL_MOCK_CHAT = 1, SL_MOCK_TEXT = 2 };

#define SL_MOCK_MAX_DIMENSIONS     4096
#define SL_MOCK_DEFAULT_DIMENSIONS 1536
#define SL_MOCK_MAX_INPUTS         2048

/* A request refused: status, the OpenAI param it is about (or NULL), a message. */
typedef struct sl_mock_err {
    int status;
    const char *param;
    char message[256];
} sl_mock_err;

typedef struct sl_mock_answer {
    int kind;          /* SL_MOCK_CHAT or SL_MOCK_TEXT */
    int stream;        /* "stream": true */
    int include_usage; /* "stream_options": {"include_usage": true} */
    sl_buf model;      /* the model name, JSON-escaped, without quotes */
    sl_buf prompt;     /* the answer's beginning, JSON-escaped, without quotes */
    int n;             /* content chunks */
    int length;        /* 1: n was cut by max_tokens -> finish_reason "length" */
    uint64_t words;    /* PRNG state before word 1 */
    long prompt_tokens;
    long completion_tokens;
} sl_mock_answer;

void sl__mock_answer_init(sl_mock_answer *a);
void sl__mock_answer_free(sl_mock_answer *a);

/* Parse a request body of kind into a (its buffers are reused). chunks is the answer
 * length before max_tokens, seed the mock's seed. 0, or an error with e filled (400
 * for a bad body, SL_ENOMEM -> 500). */
int sl__mock_answer_parse(sl_mock_answer *a, int kind, const char *body, size_t len, uint64_t seed,
                          int chunks, sl_mock_err *e);

/* The constant start of every SSE chunk of one answer: `data: {"id":..,"choices":[`. */
int sl__mock_chunk_head(sl_buf *out, const sl_mock_answer *a, const char *id, long long created);
/* Append content chunk i (0..n-1) as one SSE event; *rng starts at a->words and is
 * advanced by chunks 1..n-1, which must be formatted in order. */
int sl__mock_chunk(sl_buf *out, const sl_mock_answer *a, const char *head, size_t head_len, int i,
                   uint64_t *rng);
/* The usage chunk ("choices": [] and "usage") as one SSE event. */
int sl__mock_usage_chunk(sl_buf *out, const sl_mock_answer *a, const char *head, size_t head_len);
/* The whole non-streamed answer: chat.completion or text_completion. */
int sl__mock_completion(sl_buf *out, const sl_mock_answer *a, const char *id, long long created);

/* The embeddings answer for body, or an error in e. */
int sl__mock_embeddings(sl_buf *out, const char *body, size_t len, uint64_t seed, sl_mock_err *e);
/* The models list. */
int sl__mock_models(sl_buf *out);
/* {"error":{"message":..,"type":..,"param":..,"code":..}}; param, code may be NULL. */
int sl__mock_error_body(sl_buf *out, const char *message, const char *type, const char *param,
                        const char *code);

/* Whitespace-separated words in (s, n). */
long sl__mock_count_words(const char *s, size_t n);
/* The i-th word of the vocabulary for a draw of the PRNG (for tests and docs). */
const char *sl__mock_word(uint64_t draw);

#endif
