/* fuzz_jsontok.c — the tokenizer against jansson on arbitrary bytes: it (and the checker,
 * with the same verdict) accepts exactly what sl__json_parse accepts, the value its tokens
 * describe (strings unescaped, integers read, the last of repeated keys) equals jansson's
 * tree, and sl__jtok_write writes the same bytes as sl__json_write of that tree. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/jsontok.h"
#include "base/jsonw.h"

static json_t *build(const sl_jtoks *t, uint32_t k, sl_buf *scratch)
{
    const sl_jtok *v = &t->v[k];
    switch (v->type) {
    case SL_JTOK_NULL:
        return json_null();
    case SL_JTOK_TRUE:
        return json_true();
    case SL_JTOK_FALSE:
        return json_false();
    case SL_JTOK_INT:
        return json_integer(sl__jtok_int(t, k));
    case SL_JTOK_REAL:
        return sl__jtok_json(t, k);
    case SL_JTOK_STRING: {
        sl_str s;
        if (sl__jtok_str(t, k, scratch, &s))
            abort();
        return json_stringn_nocheck(s.ptr, s.len);
    }
    case SL_JTOK_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = k + 1; i < v->next; i = t->v[i].next)
            json_array_append_new(a, build(t, i, scratch));
        return a;
    }
    case SL_JTOK_OBJECT: {
        json_t *o = json_object();
        for (uint32_t i = k + 1; i < v->next; i = t->v[i + 1].next) {
            sl_str key;
            if (sl__jtok_str(t, i, scratch, &key))
                abort();
            /* not strndup: ASan's strict_string_checks wants a NUL inside the source */
            char *kz = malloc(key.len + 1);
            if (!kz)
                abort();
            memcpy(kz, key.ptr, key.len);
            kz[key.len] = '\0';
            if (!sl__jtok_str_is(t, i, kz, key.len))
                abort();
            json_object_set_new_nocheck(o, kz, build(t, i + 1, scratch));
            free(kz);
        }
        /* get finds the last member of each name, and members lists each name once in
         * jansson's order with that value */
        sl_jmembers m;
        sl__jmembers_init(&m);
        if (sl__jtok_members(t, k, &m) || m.n != json_object_size(o))
            abort();
        uint32_t j = 0;
        const char *kz;
        json_t *val;
        json_object_foreach(o, kz, val)
        {
            json_t *want = build(t, sl__jtok_get(t, k, kz, strlen(kz)), scratch);
            if (!json_equal(want, val))
                abort();
            json_decref(want);
            if (!sl__jtok_str_is(t, m.v[j].key, kz, strlen(kz)))
                abort();
            want = build(t, m.v[j].val, scratch);
            if (!json_equal(want, val))
                abort();
            json_decref(want);
            j++;
        }
        sl__jmembers_free(&m);
        return o;
    }
    }
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    json_t *ref = NULL;
    int want = sl__json_load(p, size, 0, &ref, NULL, 0);
    /* sl__json_parse (the tokenizer's tree when it accepts) agrees with jansson's reader */
    json_t *fast = NULL;
    if ((sl__json_parse(p, size, 0, &fast, NULL, 0) == 0) != (want == 0) ||
        (want == 0 && !json_equal(fast, ref)))
        abort();
    json_decref(fast);
    sl_jtoks t;
    sl__jtoks_init(&t);
    int got = sl__jtok_parse(&t, p, size, 0);
    if ((want == 0) != (got == 0) || sl__jtok_check(p, size, 0) != got)
        abort();
    if (got == 0) {
        if (t.n == 0 || t.v[0].start + t.v[0].len > size || t.v[0].next != t.n)
            abort();
        sl_buf scratch;
        sl__buf_init(&scratch, 0);
        json_t *mine = build(&t, 0, &scratch);
        if (!json_equal(mine, ref))
            abort();
        json_decref(mine);
        /* written back, it reads as jansson's tree written by jsonw */
        sl_buf a, b;
        sl__buf_init(&a, 0);
        sl__buf_init(&b, 0);
        if (sl__jtok_write(&a, &t, 0) || sl__json_write(&b, ref) || a.len != b.len ||
            memcmp(a.data, b.data, a.len))
            abort();
        sl__buf_free(&a);
        sl__buf_free(&b);
        sl__buf_free(&scratch);
    }
    json_decref(ref);
    sl__jtoks_free(&t);
    return 0;
}
