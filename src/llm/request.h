/* request.h — the inside of sl_request, for the adapters and the call layer.
 *
 * An sl_request is an OpenAI-shaped JSON object body plus the endpoint it goes to.
 * The public builder functions live in include/sluice/call.h. */
#ifndef SL_LLM_REQUEST_H
#define SL_LLM_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include <sluice/call.h>

#define SL_REQUEST_MAX_ENDPOINT 256

struct sl_request {
    json_t *body; /* always an object */
    char *endpoint;
};

/* A deep copy, or NULL on ENOMEM. */
sl_request *sl__request_copy(const sl_request *r);
/* Borrowed. */
const json_t *sl__request_body(const sl_request *r);
/* The body as sent: a streamed chat request without stream_options gets
 * "stream_options":{"include_usage":true}; a request that is not streamed loses
 * stream_options (providers reject it without stream). Caller frees; length in *len.
 * NULL on ENOMEM. */
char *sl__request_wire_body(const sl_request *r, size_t *len);

#endif
