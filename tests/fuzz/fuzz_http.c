/* fuzz_http.c — libFuzzer target for the HTTP server's request path.
 *
 * The input is the byte stream a peer sends on one connection. sl__httpd_fuzz_feed runs
 * it through the real parsing, limits, pipelining and response code of io/httpd.c with no
 * socket: chunking, answers (at once, later, streamed, aborted), write drains and timer
 * expiries are all derived from the input, so a run is deterministic. A broken promise
 * of the server (two requests at once, on_close twice) is reported as a crash. */
#include <stddef.h>
#include <stdint.h>

#include "io/httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sl__httpd_fuzz_feed(data, size) != 0)
        __builtin_trap();
    return 0;
}
