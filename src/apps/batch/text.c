/* text.c — JSON string quoting and UTF-8 checks (see text.h). */
#include "apps/batch/text.h"

#include "base/json.h"

int sl__batch_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = sl__utf8_seq(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

int sl__batch_json_quote(sl_buf *b, const char *s, size_t n)
{
    int rc = sl__buf_append(b, "\"", 1);
    if (!rc)
        rc = sl__json_escape(b, s, n, "\\ufffd");
    if (!rc)
        rc = sl__buf_append(b, "\"", 1);
    return rc;
}
