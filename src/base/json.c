/* json.c — jansson helpers with caps for untrusted input (see json.h). */
#include "base/json.h"

#include <stdio.h>
#include <string.h>

#include <sluice/common.h>

/* Nesting depth of a JSON text, counting only brackets outside strings. Linear, no
 * allocation; stops as soon as the cap is passed. */
static int depth_exceeds(const char *p, size_t n, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

int sl__json_parse(const char *p, size_t n, int max_depth, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (max_depth <= 0)
        max_depth = SL_JSON_MAX_DEPTH;
    if (depth_exceeds(p, n, max_depth)) {
        if (errlen)
            snprintf(err, errlen, "JSON nested deeper than %d levels", max_depth);
        return SL_ELIMIT;
    }
    json_error_t je;
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) {
        if (errlen)
            snprintf(err, errlen, "invalid JSON at column %d: %s", je.column, je.text);
        return SL_EPARSE;
    }
    *out = v;
    return 0;
}

const char *sl__json_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

long long sl__json_int(const json_t *obj, const char *key, long long def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

char *sl__json_dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}
