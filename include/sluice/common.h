/* sluice/common.h — error codes, versions and the (pointer, length) string type.
 *
 * Every public function returns 0 or a negative SL_E* code; sl_strerror() names it.
 * An asynchronous function that returns an error never calls its callback. */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define SL_VERSION "0.1.0"

enum {
    SL_OK = 0,
    SL_ENOMEM = -1,     /* out of memory */
    SL_EINVAL = -2,     /* bad argument or option */
    SL_ETRANSPORT = -3, /* connect, DNS, TLS, reset: no complete HTTP answer */
    SL_ETIMEDOUT = -4,  /* a connect/first-byte/idle/total/deadline timeout fired */
    SL_EHTTP = -5,      /* the provider answered a non-2xx status */
    SL_ECANCELED = -6,  /* cancelled by the caller */
    SL_EPROTO = -7,     /* the provider's answer broke the protocol (bad SSE, bad JSON) */
    SL_ELIMIT = -8,     /* a hard cap on input size or count was exceeded */
    SL_EIO = -9,        /* local file or socket error (see errno) */
    SL_EDIVERGED = -10, /* a retried stream did not continue what was already delivered */
    SL_EBUSY = -11,     /* refused by a policy: circuit open, queue full */
    SL_EPARSE = -12,    /* bad syntax in input (JSON, JSONL, config) */
    SL_EADDR = -13,     /* cannot listen or resolve an address */
};

/* A static, human name for an SL_E* code (or "unknown error"). Never NULL. */
const char *sl_strerror(int err);

/* A string from the wire: not NUL-terminated, borrowed unless stated otherwise. */
typedef struct sl_str {
    const char *ptr;
    size_t len;
} sl_str;

/* Library version string, e.g. "0.1.0". */
const char *sl_version(void);

#endif
