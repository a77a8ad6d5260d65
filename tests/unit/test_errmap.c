/* test_errmap.c — each dialect's error envelope and status for every st_code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stowage/api.h"

static void test_errmap_standard_status_for_every_code(void **state)
{
    (void)state;
    static const struct {
        enum st_code code;
        unsigned status;
    } want[] = {
        {ST_INVALID, 400},
        {ST_UNAUTHORIZED, 401},
        {ST_FORBIDDEN, 403},
        {ST_NOT_FOUND, 404},
        {ST_METHOD, 405},
        {ST_EXISTS, 409},
        {ST_CONFLICT, 409},
        {ST_IN_USE, 409},
        {ST_PRECONDITION, 412},
        {ST_TOO_LARGE, 413},
        {ST_UNSUPPORTED_MEDIA, 415},
        {ST_RANGE, 416},
        {ST_HEADER_TOO_LARGE, 431},
        {ST_UNAVAILABLE, 503},
        {ST_NO_SPACE, 507},
        {ST_INTERNAL, 500},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_int_equal(http_status_of(want[i].code), want[i].status);
    assert_int_equal(http_status_of((enum st_code)999), 500);
}

static void test_errmap_every_dialect_names_every_code(void **state)
{
    (void)state;
    for (size_t d = 0; api_dialects[d]; d++) {
        for (int c = ST_INVALID; c < ST_CODE_COUNT; c++) {
            struct st_err e;
            unsigned status = 0;
            st_fail_field(&e, (enum st_code)c, "name", "message %d", c);
            json_t *j = api_dialects[d]->error_body(&e, &status);
            assert_non_null(j);
            assert_true(status >= 400 && status <= 599);
            char *text = json_dumps(j, JSON_ENCODE_ANY);
            /* esdc words credentials as Django REST framework does, and 403 */
            if (api_dialects[d] == &api_esdc && c == ST_UNAUTHORIZED)
                assert_true(status == 403 && strstr(text, "Invalid API key"));
            else
                assert_non_null(strstr(text, "message"));
            free(text);
            json_decref(j);
        }
    }
}

static void test_errmap_flexvdi_envelope_is_error_message(void **state)
{
    struct st_err e;
    unsigned status = 0;
    (void)state;
    st_fail(&e, ST_NOT_FOUND, "image storage 'x' not found");
    json_t *j = api_flexvdi.error_body(&e, &status);
    assert_int_equal(status, 404);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "message")),
                        "image storage 'x' not found");
    assert_int_equal(json_object_size(j), 2);
    json_decref(j);

    st_fail(&e, ST_INTERNAL, "boom");
    j = api_flexvdi.error_body(&e, &status);
    assert_int_equal(status, 500);
    json_decref(j);
}

static void test_errmap_native_envelope_names_code_and_field(void **state)
{
    struct st_err e;
    unsigned status = 0;
    (void)state;
    st_fail_field(&e, ST_INVALID, "size", "'size' must be an integer");
    json_t *j = api_native.error_body(&e, &status);
    assert_int_equal(status, 400);
    json_t *err = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "invalid");
    assert_string_equal(json_string_value(json_object_get(err, "field")), "size");
    json_decref(j);
}

static void test_errmap_errno_translation(void **state)
{
    struct st_err e;
    (void)state;
    st_fail_errno(&e, 28 /* ENOSPC */, "write %s", "x");
    assert_int_equal(e.code, ST_NO_SPACE);
    st_fail_errno(&e, -107 /* ENOTCONN, negative accepted */, "read");
    assert_int_equal(e.code, ST_UNAVAILABLE);
    st_fail_errno(&e, 2 /* ENOENT */, "open");
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_non_null(strstr(e.msg, "open: "));
}

/* Seen writing fuzz_router and fuzz_flexvdi (their invariants fail on it): a message with a
 * client's bytes ("no route for GET /%ff") or cut inside a character made every envelope's
 * json_pack fail, and the client got 500 "out of memory" for bad input. */
static void test_errmap_envelopes_of_messages_that_were_not_utf8(void **state)
{
    struct st_err e;
    char cut[300];
    (void)state;
    st_fail_field(&e, ST_NOT_FOUND, "", "no route for %s %s", "GET", "/\xff\xc3x\xed\xa0\x80");
    assert_string_equal(e.msg, "no route for GET /??x???");
    memset(cut, 0, sizeof cut);
    for (size_t i = 0; i + 2 < sizeof cut; i += 2)
        memcpy(cut + i, "\xc3\xa9", 2); /* é, cut by msg's 256 bytes after 255 */
    st_fail(&e, ST_INVALID, "%s", cut);
    assert_int_equal(strlen(e.msg), 255);
    assert_int_equal(e.msg[254], '?');
    st_fail(&e, ST_INVALID, "%s", "caf\xc3\xa9 \xf0\x9f\x98\x80 ok");
    assert_string_equal(e.msg, "caf\xc3\xa9 \xf0\x9f\x98\x80 ok");
    for (size_t d = 0; api_dialects[d]; d++) {
        unsigned status = 0;
        json_t *j = api_dialects[d]->error_body(&e, &status);
        assert_non_null(j);
        assert_int_equal(status, 400);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errmap_standard_status_for_every_code),
        cmocka_unit_test(test_errmap_every_dialect_names_every_code),
        cmocka_unit_test(test_errmap_flexvdi_envelope_is_error_message),
        cmocka_unit_test(test_errmap_native_envelope_names_code_and_field),
        cmocka_unit_test(test_errmap_errno_translation),
        cmocka_unit_test(test_errmap_envelopes_of_messages_that_were_not_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
