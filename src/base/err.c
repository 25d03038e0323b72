/* err.c — names for the SL_E* codes. */
#include <sluice/common.h>

const char *sl_strerror(int err)
{
    switch (err) {
    case SL_OK:
        return "success";
    case SL_ENOMEM:
        return "out of memory";
    case SL_EINVAL:
        return "invalid argument";
    case SL_ETRANSPORT:
        return "transport error";
    case SL_ETIMEDOUT:
        return "timed out";
    case SL_EHTTP:
        return "HTTP error status";
    case SL_ECANCELED:
        return "cancelled";
    case SL_EPROTO:
        return "protocol error";
    case SL_ELIMIT:
        return "size limit exceeded";
    case SL_EIO:
        return "I/O error";
    case SL_EDIVERGED:
        return "retried stream diverged from delivered output";
    case SL_EBUSY:
        return "refused by policy";
    case SL_EPARSE:
        return "parse error";
    case SL_EADDR:
        return "address error";
    }
    return "unknown error";
}

const char *sl_version(void)
{
    return SL_VERSION;
}
