/* test_request.c — sl_request: builders, unknown fields kept, from_json errors, the
 * include_usage rule on the wire body, the token estimate, the exact JSON writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonw.h"
#include "llm/request.h"

static void assert_json(char *got, const char *want)
{
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_builders(void **state)
{
    sl_request *r;
    assert_int_equal(sl_request_new(&r), 0);
    assert_json(sl_request_to_json(r), "{\"messages\":[],\"stream\":true}");
    assert_string_equal(sl_request_endpoint(r), "/chat/completions");
    assert_true(sl_request_stream(r));
    assert_null(sl_request_model(r));
    assert_int_equal(sl_request_max_tokens(r), -1);

    assert_int_equal(sl_request_default_model(r, "m1"), 0);
    assert_int_equal(sl_request_default_model(r, "m2"), 0); /* keeps m1 */
    assert_string_equal(sl_request_model(r), "m1");
    assert_int_equal(sl_request_add_message(r, "user", "hi \"there\"\n", 11), 0);
    assert_int_equal(sl_request_set_system(r, "be brief"), 0);
    assert_int_equal(sl_request_set_system(r, "be very brief"), 0); /* replaces */
    assert_int_equal(sl_request_set_max_tokens(r, 64), 0);
    assert_int_equal(sl_request_set_temperature(r, 0.7), 0);
    assert_int_equal(sl_request_set_stream(r, 0), 0);
    assert_json(sl_request_to_json(r),
                "{\"messages\":[{\"role\":\"system\",\"content\":\"be very brief\"},"
                "{\"role\":\"user\",\"content\":\"hi \\\"there\\\"\\n\"}],\"stream\":false,"
                "\"model\":\"m1\",\"max_tokens\":64,\"temperature\":0.7}");
    assert_int_equal(sl_request_max_tokens(r), 64);
    assert_false(sl_request_stream(r));
    assert_int_equal(sl_request_set_model(r, "m2"), 0);
    assert_string_equal(sl_request_model(r), "m2");

    /* a message with an embedded NUL and no terminator: length counts */
    assert_int_equal(sl_request_add_message(r, "user", "a\0b", 3), 0);
    char *s = sl_request_to_json(r);
    assert_non_null(strstr(s, "\"content\":\"a\\u0000b\""));
    free(s);

    /* bad arguments */
    assert_int_equal(sl_request_add_message(r, "user", "\xff\xfe", 2), SL_EINVAL);
    assert_int_equal(sl_request_set_max_tokens(r, 0), SL_EINVAL);
    assert_int_equal(sl_request_set_temperature(r, -1), SL_EINVAL);
    assert_int_equal(sl_request_set_endpoint(r, "completions"), SL_EINVAL);
    assert_int_equal(sl_request_set_endpoint(r, "/a b"), SL_EINVAL);
    assert_int_equal(sl_request_set_endpoint(r, "/x\r\nHost: evil"), SL_EINVAL);
    assert_int_equal(sl_request_set_endpoint(r, "/embeddings"), 0);
    assert_string_equal(sl_request_endpoint(r), "/embeddings");
    sl_request_free(r);
}

static void test_unknown_fields_kept(void **state)
{
    const char *in = "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"text\",\"text\":\"d\\u00e9j\\u00e0\"},{\"type\":\"image_url\","
                     "\"image_url\":{\"url\":\"data:,x\"}}]}],\"tools\":[{\"type\":\"function\","
                     "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                     "\"properties\":{}}}}],\"response_format\":{\"type\":\"json_object\"},"
                     "\"seed\":12345,\"top_p\":0.1,\"logit_bias\":{\"50256\":-100},"
                     "\"frequency_penalty\":1.0,\"x_vendor\":[true,false,null,1e300,-0.0]}";
    sl_request *r;
    assert_int_equal(sl_request_from_json(in, strlen(in), &r), 0);
    assert_false(sl_request_stream(r)); /* absent "stream": not streamed, as OpenAI */
    assert_int_equal(sl_request_set_max_tokens(r, 5), 0);
    char *out = sl_request_to_json(r);
    assert_json(out, "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"text\",\"text\":\"d\xc3\xa9j\xc3\xa0\"},{\"type\":\"image_url\","
                     "\"image_url\":{\"url\":\"data:,x\"}}]}],\"tools\":[{\"type\":\"function\","
                     "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                     "\"properties\":{}}}}],\"response_format\":{\"type\":\"json_object\"},"
                     "\"seed\":12345,\"top_p\":0.1,\"logit_bias\":{\"50256\":-100},"
                     "\"frequency_penalty\":1.0,\"x_vendor\":[true,false,null,1e+300,-0.0],"
                     "\"max_tokens\":5}");
    sl_request *c = sl__request_copy(r);
    assert_non_null(c);
    sl_request_free(r);
    assert_json(sl_request_to_json(c), "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\","
                                       "\"content\":[{\"type\":\"text\",\"text\":\"d\xc3\xa9j"
                                       "\xc3\xa0\"},{\"type\":\"image_url\",\"image_url\":{\"url\""
                                       ":\"data:,x\"}}]}],\"tools\":[{\"type\":\"function\","
                                       "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":"
                                       "\"object\",\"properties\":{}}}}],\"response_format\":{"
                                       "\"type\":\"json_object\"},\"seed\":12345,\"top_p\":0.1,"
                                       "\"logit_bias\":{\"50256\":-100},\"frequency_penalty\":1.0,"
                                       "\"x_vendor\":[true,false,null,1e+300,-0.0],"
                                       "\"max_tokens\":5}");
    sl_request_free(c);

    /* max_completion_tokens stays the name in use */
    const char *in2 = "{\"max_completion_tokens\":9}";
    assert_int_equal(sl_request_from_json(in2, strlen(in2), &r), 0);
    assert_int_equal(sl_request_max_tokens(r), 9);
    assert_int_equal(sl_request_set_max_tokens(r, 7), 0);
    assert_json(sl_request_to_json(r), "{\"max_completion_tokens\":7}");
    assert_int_equal(sl_request_add_message(r, "user", "x", 1), 0); /* creates messages */
    assert_json(
        sl_request_to_json(r),
        "{\"max_completion_tokens\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    sl_request_free(r);
}

static void test_from_json_errors(void **state)
{
    sl_request *r = (sl_request *)1;
    assert_int_equal(sl_request_from_json("[1,2]", 5, &r), SL_EPARSE);
    assert_null(r);
    assert_int_equal(sl_request_from_json("\"s\"", 3, &r), SL_EPARSE);
    assert_int_equal(sl_request_from_json("{\"a\":", 5, &r), SL_EPARSE);
    assert_int_equal(sl_request_from_json("", 0, &r), SL_EPARSE);
    assert_int_equal(sl_request_from_json("{} {}", 5, &r), SL_EPARSE);
    char deep[300];
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"a\":", 4);
    n += 4;
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_int_equal(sl_request_from_json(deep, n, &r), SL_ELIMIT);
    assert_null(r);
    /* a body whose messages is not an array: builders refuse, nothing changes */
    const char *odd = "{\"messages\":7}";
    assert_int_equal(sl_request_from_json(odd, strlen(odd), &r), 0);
    assert_int_equal(sl_request_add_message(r, "user", "x", 1), SL_EINVAL);
    assert_int_equal(sl_request_set_system(r, "x"), SL_EINVAL);
    assert_json(sl_request_to_json(r), "{\"messages\":7}");
    assert_int_equal(sl_request_estimate_tokens(r), 0);
    sl_request_free(r);
}

static void test_include_usage_rule(void **state)
{
    sl_request *r;
    size_t len;
    assert_int_equal(sl_request_new(&r), 0);
    char *w = sl__request_wire_body(r, &len);
    assert_string_equal(w, "{\"messages\":[],\"stream\":true,\"stream_options\":{\"include_usage\":"
                           "true}}");
    assert_int_equal(len, strlen(w));
    free(w);
    /* the request itself is unchanged */
    assert_json(sl_request_to_json(r), "{\"messages\":[],\"stream\":true}");
    sl_request_free(r);

    /* the body's own stream_options win */
    const char *own = "{\"stream\":true,\"stream_options\":{\"include_usage\":false}}";
    assert_int_equal(sl_request_from_json(own, strlen(own), &r), 0);
    assert_json(sl__request_wire_body(r, NULL), own);
    /* not streamed: stream_options dropped */
    assert_int_equal(sl_request_set_stream(r, 0), 0);
    assert_json(sl__request_wire_body(r, NULL), "{\"stream\":false}");
    sl_request_free(r);

    /* not streamed, no options: as is */
    const char *plain = "{\"messages\":[]}";
    assert_int_equal(sl_request_from_json(plain, strlen(plain), &r), 0);
    assert_json(sl__request_wire_body(r, NULL), plain);
    /* a streamed text completion asks for usage too (the legacy API has the option) */
    assert_int_equal(sl_request_set_endpoint(r, "/completions"), 0);
    assert_int_equal(sl_request_set_stream(r, 1), 0);
    assert_json(sl__request_wire_body(r, NULL),
                "{\"messages\":[],\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    /* any other endpoint: as is */
    assert_int_equal(sl_request_set_endpoint(r, "/responses"), 0);
    assert_json(sl__request_wire_body(r, NULL), "{\"messages\":[],\"stream\":true}");
    /* embeddings are never streamed */
    assert_int_equal(sl_request_set_endpoint(r, "/embeddings"), 0);
    assert_false(sl_request_stream(r));
    sl_request_free(r);
}

static void test_estimate(void **state)
{
    sl_request *r;
    assert_int_equal(sl_request_new(&r), 0);
    assert_int_equal(sl_request_estimate_tokens(r), 0);
    assert_int_equal(sl_request_add_message(r, "user", "12345678", 8), 0); /* 2 + 4 */
    assert_int_equal(sl_request_estimate_tokens(r), 6);
    assert_int_equal(sl_request_set_system(r, "1"), 0); /* (9+3)/4 = 3, + 8 */
    assert_int_equal(sl_request_estimate_tokens(r), 11);
    sl_request_free(r);

    const char *parts = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                        "\"text\":\"abcdefgh\"},{\"type\":\"text\",\"text\":\"ijkl\"}]}]}";
    assert_int_equal(sl_request_from_json(parts, strlen(parts), &r), 0);
    assert_int_equal(sl_request_estimate_tokens(r), 3 + 4);
    sl_request_free(r);

    const char *prompt = "{\"prompt\":[\"abcd\",\"efgh\"],\"input\":[[1,2,3]]}";
    assert_int_equal(sl_request_from_json(prompt, strlen(prompt), &r), 0);
    assert_int_equal(sl_request_estimate_tokens(r), (8 + 12 + 3) / 4);
    sl_request_free(r);
}

static void test_json_writer(void **state)
{
    const char *in = "[0.1,0.7,1.5e-7,100.0,3,-2,1e22,0.30000000000000004,\"\\u001f\\\"\\\\/\","
                     "{\"k\\n\":{}},[]]";
    json_t *v = json_loads(in, JSON_ALLOW_NUL, NULL);
    assert_non_null(v);
    size_t len = 0;
    char *s = sl__json_dump_exact(v, &len);
    assert_string_equal(s, "[0.1,0.7,1.5e-07,100.0,3,-2,1e+22,0.30000000000000004,"
                           "\"\\u001f\\\"\\\\/\",{\"k\\n\":{}},[]]");
    json_t *back = json_loadb(s, len, JSON_ALLOW_NUL, NULL);
    assert_true(json_equal(v, back));
    json_decref(back);
    json_decref(v);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builders),         cmocka_unit_test(test_unknown_fields_kept),
        cmocka_unit_test(test_from_json_errors), cmocka_unit_test(test_include_usage_rule),
        cmocka_unit_test(test_estimate),         cmocka_unit_test(test_json_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
