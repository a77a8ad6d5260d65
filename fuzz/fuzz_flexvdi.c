/* fuzz_flexvdi.c — libFuzzer harness for flexVDI's JSON bodies.
 *
 * The input is a request body, parsed as the server parses it (json_loadb with
 * JSON_REJECT_DUPLICATES). An object goes through what POST /tasks/create checks before
 * it queues a job: "type", "repeat" and "retries", then the dialect's static
 * task_params()/parse_params() into struct core_op_params, then core's own
 * core_task_check(), once per role and under two size limits; and through what POST
 * /authenticate checks. Beyond "no crash, no leak": every refusal carries a code of bad
 * input (never 500) and a message, and flexVDI's envelope for it is a 4xx
 * {"status":"error","message"}; every accepted body passes core's check, its params are
 * the body's own strings, and a higher role accepts what a lower one did. The same
 * object then serves as a job's outcome and its strings as error messages for the
 * task rendering (task_json, success_msg, error_msg), which must stay bounded and
 * terminated. The dialect file is included for its static functions, as
 * tests/unit/test_task.c does. Not reached: core_job_submit and core_login, which need
 * a catalogue. */
#include "../src/core/task_internal.h" /* core_task_check */
#include "../src/api/flexvdi.c"

#include <stdint.h>

static struct stowage *big, *small; /* the default image size limit, and an odd small one */

static void fail(const char *why, const struct st_err *e)
{
    fprintf(stderr, "fuzz_flexvdi: invariant broken: %s (code %d, field '%s', msg '%s')\n", why,
            e ? (int)e->code : -1, e ? e->field : "", e ? e->msg : "");
    abort();
}

static void check_terminated(const char *s, size_t size, const char *what)
{
    if (!memchr(s, '\0', size))
        fail(what, NULL);
}

/* A refusal of client input: a 4xx code, a message, and flexVDI's envelope. */
static void check_refusal(const struct st_err *e)
{
    unsigned status = 0;
    check_terminated(e->msg, sizeof e->msg, "unterminated message");
    check_terminated(e->field, sizeof e->field, "unterminated field");
    if (e->code != ST_INVALID && e->code != ST_FORBIDDEN && e->code != ST_TOO_LARGE)
        fail("bad input refused with a code that is not bad input", e);
    if (!e->msg[0])
        fail("a refusal without a message", e);
    json_t *j = flexvdi_error(e, &status);
    if (!j || status < 400 || status > 499 || strcmp(field(j, "status"), "error") ||
        strcmp(field(j, "message"), e->msg))
        fail("flexVDI's envelope is not a 4xx {status: error, message}", e);
    json_decref(j);
}

static const uint64_t *size_slot(const struct core_op_params *p, const struct fv_field *f)
{
    return (const uint64_t *)(const void *)((const char *)p + f->slot);
}

static const char *const *str_slot(const struct core_op_params *p, const struct fv_field *f)
{
    return (const char *const *)(const void *)((const char *)p + f->slot);
}

/* Accepted by flexVDI and by core: every param is the body's own value. */
static void check_accepted(struct stowage *st, const struct fv_type *ft, json_t *body,
                           const struct core_op_params *p)
{
    for (int i = 0; i < FV_MAX_FIELDS && ft->fields[i].name; i++) {
        const struct fv_field *f = &ft->fields[i];
        json_t *v = json_object_get(body, f->name);
        if (!v || json_is_null(v))
            continue; /* core's row says which it needs, and it accepted */
        if (f->kind == FV_MB) {
            uint64_t bytes = *size_slot(p, f);
            if (bytes == 0 || bytes % MIB || bytes > core_config(st)->max_image_size)
                fail("an accepted size is not whole MB under the limit", NULL);
        } else if (*str_slot(p, f) != json_string_value(v)) {
            fail("a param is not the body's string", NULL);
        }
    }
}

/* What POST /tasks/create checks, for one role under one limit; 0 when accepted. */
static int check_task(struct stowage *st, json_t *body, enum st_role role)
{
    struct st_err e = {0};
    const char *type;
    int64_t ignored;
    const struct fv_type *ft = NULL;
    struct core_op_params p;

    if (http_json_string(body, "type", 1, 31, &type, &e) ||
        http_json_int(body, "repeat", 0, 0, INT32_MAX, &ignored, &e) < 0 ||
        http_json_int(body, "retries", 0, 0, INT32_MAX, &ignored, &e) < 0) {
        check_refusal(&e);
        return -1;
    }
    if (task_params(st, type, body, role, &ft, &p, &e)) {
        check_refusal(&e);
        if (e.code == ST_FORBIDDEN && ft && role >= core_op_role(ft->op))
            fail("refused a role that may run the type", &e);
        return -1;
    }
    if (!ft || role < core_op_role(ft->op))
        fail("accepted a role that may not run the type", NULL);
    /* What a value must be is core's check; its refusal is worded in flexVDI's names. */
    json_t *clean = NULL;
    if (core_task_check(core_config(st), ft->op, &p, role, &clean, &e)) {
        own_names(ft, &e);
        check_refusal(&e);
        return -1;
    }
    json_decref(clean);
    check_accepted(st, ft, body, &p);
    return 0;
}

static void check_authenticate(json_t *body)
{
    struct st_err e = {0};
    const char *user, *pass;
    if (http_json_string(body, "username", 1, 64, &user, &e) ||
        http_json_string(body, "password", 1, 1024, &pass, &e)) {
        check_refusal(&e);
        return;
    }
    if (!user || !pass || strlen(user) > 64 || strlen(pass) > 1024)
        fail("accepted credentials out of bounds", NULL);
}

/* The body as a job of every operation, its strings as error messages. */
static void check_rendering(json_t *body)
{
    struct core_job j;
    char out[64];
    const char *k;
    json_t *v;

    memset(&j, 0, sizeof j);
    j.outcome = body;
    snprintf(j.state, sizeof j.state, "completed");
    snprintf(j.result, sizeof j.result, "success");
    j.created_at = json_integer_value(json_object_get(body, "created_at"));
    j.finished_at = json_integer_value(json_object_get(body, "finished_at"));
    for (int op = 0; op <= CORE_OP_COUNT; op++) {
        snprintf(j.op, sizeof j.op, "%s", op < CORE_OP_COUNT ? core_op_name(op) : "no.such");
        json_t *t = task_json(&j);
        if (!t)
            fail("a task does not render", NULL);
        json_decref(t);
        /* small buffers: what a success says is cut, never overrun */
        memset(out, 'Z', sizeof out);
        success_msg(&j, out, 1 + (size_t)op * 4);
        check_terminated(out, 1 + (size_t)op * 4, "an unterminated success message");
    }
    json_object_foreach(body, k, v)
    {
        const char *s = json_string_value(v);
        if (!s)
            continue;
        snprintf(j.error, sizeof j.error, "%s", s);
        snprintf(j.result, sizeof j.result, "error");
        json_t *t = task_json(&j);
        if (!t)
            fail("a failed task does not render", NULL);
        json_decref(t);
        for (size_t len = 1; len < sizeof out; len += 7) {
            memset(out, 'Z', sizeof out);
            error_msg(s, out, len);
            check_terminated(out, len, "an unterminated error message");
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!(big = core_new()) || !(small = core_new()))
        abort();
    cfg_defaults(core_config(big));
    cfg_defaults(core_config(small));
    core_config(small)->max_image_size = (3ULL << 20) + 5;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);

    if (!body) {
        check_terminated(je.text, sizeof je.text, "an unterminated JSON error");
        return 0;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    for (int s = 0; s < 2; s++) {
        struct stowage *st = s ? small : big;
        int accepted_below = 0;
        for (enum st_role role = ROLE_NONE; role <= ROLE_SUPERADMIN; role++) {
            int ok = check_task(st, body, role) == 0;
            if (accepted_below && !ok)
                fail("a higher role refuses what a lower one may do", NULL);
            accepted_below |= ok;
        }
    }
    check_authenticate(body);
    check_rendering(body);
    json_decref(body);
    return 0;
}
