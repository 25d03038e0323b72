/* fuzz_jsontok.c — the tokenizer against jansson on arbitrary bytes: it (and the checker,
 * with the same verdict) accepts exactly what jansson's reader (sl__json_load) accepts, the
 * tree built from its tokens (sl__jtok_tree, and so sl__json_parse) equals jansson's, its
 * members and lookups agree with that tree, and sl__jtok_write writes the same bytes as
 * sl__json_write of that tree. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/jsontok.h"
#include "base/jsonw.h"

/* Every object at or inside token k, against o (jansson's tree of the same text): get finds
 * the last member of each name, and members lists each name once, in jansson's order, with
 * that value. */
static void check_objects(const sl_jtoks *t, uint32_t k, json_t *o, sl_buf *scratch)
{
    const sl_jtok *v = &t->v[k];
    if (v->type == SL_JTOK_ARRAY) {
        size_t idx = 0;
        for (uint32_t i = k + 1; i < v->next; i = t->v[i].next)
            check_objects(t, i, json_array_get(o, idx++), scratch);
        return;
    }
    if (v->type != SL_JTOK_OBJECT)
        return;
    sl_jmembers m;
    sl__jmembers_init(&m);
    if (sl__jtok_members(t, k, &m) || m.n != json_object_size(o))
        abort();
    uint32_t j = 0;
    const char *kz;
    json_t *val;
    json_object_foreach(o, kz, val)
    {
        json_t *want = sl__jtok_tree(t, sl__jtok_get(t, k, kz, strlen(kz)), scratch);
        if (!json_equal(want, val))
            abort();
        json_decref(want);
        if (!sl__jtok_str_is(t, m.v[j].key, kz, strlen(kz)))
            abort();
        want = sl__jtok_tree(t, m.v[j].val, scratch);
        if (!json_equal(want, val))
            abort();
        json_decref(want);
        check_objects(t, m.v[j].val, val, scratch);
        j++;
    }
    sl__jmembers_free(&m);
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
        json_t *mine = sl__jtok_tree(&t, 0, &scratch);
        if (!json_equal(mine, ref))
            abort();
        json_decref(mine);
        check_objects(&t, 0, ref, &scratch);
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
