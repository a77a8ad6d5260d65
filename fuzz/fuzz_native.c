/* fuzz_native.c — libFuzzer harness for the native dialect's JSON bodies.
 *
 * The input is a request body, parsed as the server parses it (json_loadb with
 * JSON_REJECT_DUPLICATES). An object goes through what POST /v1/tokens checks before it
 * mints a token (create_token: "role", "owner", core_role_parse, core_valid_id). Beyond
 * "no crash, no leak": every refusal is ST_INVALID with a field and a message, and the
 * native envelope for it is a 400 {"error":{"code","message","field"}}; an accepted body
 * names one of the three roles exactly (core_role_name reads it back) and an owner that
 * fits a principal. The dialect file is included for its static functions, as
 * tests/unit/test_task.c does with flexVDI's. Not reached: core_token_create, which needs
 * a catalogue. The native dialect has no other JSON body today. */
#include "../src/api/native.c"

#include <stdint.h>

static void fail(const char *why, const struct st_err *e)
{
    fprintf(stderr, "fuzz_native: invariant broken: %s (code %d, field '%s', msg '%s')\n", why,
            e ? (int)e->code : -1, e ? e->field : "", e ? e->msg : "");
    abort();
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void check_refusal(const struct st_err *e)
{
    unsigned status = 0;
    if (!memchr(e->msg, '\0', sizeof e->msg) || !memchr(e->field, '\0', sizeof e->field))
        fail("an unterminated error", NULL);
    if (e->code != ST_INVALID || !e->msg[0] || !e->field[0])
        fail("a refusal without ST_INVALID, a field and a message", e);
    json_t *j = native_error(e, &status);
    json_t *err = json_object_get(j, "error");
    if (!j || status != 400 || strcmp(str(err, "code"), st_code_name(e->code)) ||
        strcmp(str(err, "message"), e->msg) || strcmp(str(err, "field"), e->field))
        fail("the native envelope is not a 400 {error: {code, message, field}}", e);
    json_decref(j);
}

/* create_token's checks, up to core_token_create; 0 when accepted. */
static int check_token_body(json_t *body)
{
    struct st_err e = {0};
    const char *role_s, *owner;
    enum st_role role;

    if (http_json_string(body, "role", 1, 16, &role_s, &e) ||
        http_json_string(body, "owner", 0, 64, &owner, &e)) {
        check_refusal(&e);
        return -1;
    }
    if (core_role_parse(role_s, &role)) {
        st_fail_field(&e, ST_INVALID, "role", "role must be reader, admin or superadmin");
        check_refusal(&e);
        return -1;
    }
    if (owner && !core_valid_id(owner)) {
        st_fail_field(&e, ST_INVALID, "owner", "owner must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}");
        check_refusal(&e);
        return -1;
    }
    if (role < ROLE_READER || role > ROLE_SUPERADMIN || strcmp(core_role_name(role), role_s))
        fail("accepted a role that does not read back", NULL);
    if (owner && (strlen(owner) >= sizeof((struct st_principal *)0)->owner || !owner[0]))
        fail("accepted an owner that does not fit a principal", NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);

    if (!body) {
        if (!memchr(je.text, '\0', sizeof je.text))
            fail("an unterminated JSON error", NULL);
        return 0;
    }
    if (json_is_object(body))
        check_token_body(body);
    json_decref(body);
    return 0;
}
