/* test_task.c — tasks: params checked per type, the flexVDI rendering (time format,
 * state/result mapping, type codes), and the engine on a real catalogue: a queued task
 * cancelled, a running one found by a restart, queued ones run after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/core/task_internal.h"
#include "stowage/path.h"
/* The flexVDI rendering is private to its dialect: test it where it lives. */
#include "../../src/api/flexvdi.c"

/* A context for the dialect's checks: only its limits are read. */
static struct stowage *ctx(void)
{
    static struct stowage *st;
    if (!st) {
        st = core_new();
        core_config(st)->max_image_size = 1ULL << 40;
    }
    return st;
}

static const struct st_config *cfg(void)
{
    return core_config(ctx());
}

/* What POST /tasks/create checks: flexVDI's fields, then core's own check of the op. */
static int check_json(const char *type, json_t *p, enum st_role role, json_t **clean,
                      struct st_err *e)
{
    const struct fv_type *ft;
    struct core_op_params op;
    *clean = NULL;
    if (task_params(ctx(), type, p, role, &ft, &op, e))
        return -1;
    int rc = core_task_check(cfg(), ft->op, &op, role, clean, e);
    if (rc)
        own_names(ft, e);
    return rc;
}

/* A minimal valid body per type. */
static const struct {
    const char *type;
    const char *json;
} valid[] = {
    {"istorage_create", "{\"image_storage_id\":\"s\",\"name\":\"S\"}"},
    {"istorage_modify", "{\"image_storage_id\":\"s\"}"},
    {"istorage_delete", "{\"image_storage_id\":\"s\"}"},
    {"volume_create", "{\"image_storage_id\":\"s\",\"volume_id\":\"v\","
                      "\"primary_disk_id\":\"3500253887013e77e\"}"},
    {"volume_delete", "{\"volume_id\":\"v\"}"},
    {"evolume_create", "{\"image_storage_id\":\"s\",\"volume_id\":\"v\",\"mount_point\":\"/m\"}"},
    {"evolume_delete", "{\"volume_id\":\"v\"}"},
    {"image_create", "{\"image_id\":\"i\",\"volume_id\":\"v\",\"image_storage_id\":\"s\","
                     "\"size_mb\":1}"},
    {"image_copy", "{\"image_id\":\"i\",\"volume_id\":\"v\",\"image_storage_id\":\"s\","
                   "\"source_image_id\":\"j\",\"source_volume_id\":\"w\"}"},
    {"image_release", "{\"image_id\":\"i\"}"},
    {"image_delete", "{\"image_id\":\"i\"}"},
    {"guest_clone", "{\"image_id\":\"i\",\"guest_id\":\"g\"}"},
    {"clone_delete", "{\"clone_id\":\"c\"}"},
};
#define N_VALID (sizeof valid / sizeof *valid)

static int check(const char *type, const char *json, enum st_role role, json_t **clean,
                 struct st_err *e)
{
    json_t *p = json_loads(json, JSON_ALLOW_NUL, NULL);
    assert_non_null(p);
    int rc = check_json(type, p, role, clean, e);
    json_decref(p);
    return rc;
}

static void test_task_check_accepts_every_type_and_keeps_only_its_fields(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        json_t *p = json_loads(valid[i].json, 0, NULL), *clean = NULL;
        struct st_err e;
        json_object_set_new(p, "repeat", json_string("0"));
        json_object_set_new(p, "something_else", json_true());
        assert_int_equal(check_json(valid[i].type, p, ROLE_SUPERADMIN, &clean, &e), 0);
        assert_null(json_object_get(clean, "repeat"));
        assert_null(json_object_get(clean, "something_else"));
        assert_int_equal(json_object_size(clean), json_object_size(p) - 2);
        json_decref(clean);
        json_decref(p);
    }
}

/* Dropping any required field is refused with that field named. */
static void test_task_check_names_each_missing_required_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        const struct fv_type *tt = fv_type_named(valid[i].type);
        assert_non_null(tt);
        const struct core_task_type *ct = core_task_type(core_op_name(tt->op));
        assert_non_null(ct);
        for (int f = 0; f < FV_MAX_FIELDS && tt->fields[f].name; f++) {
            int required = 0; /* core's row says which of its params an operation needs */
            for (int k = 0; k < CORE_TASK_MAX_FIELDS && ct->fields[k].name; k++)
                if (strcmp(ct->fields[k].name, tt->fields[f].neutral) == 0)
                    required = ct->fields[k].required;
            if (!required)
                continue;
            json_t *p = json_loads(valid[i].json, 0, NULL), *clean = (json_t *)1;
            struct st_err e;
            json_object_del(p, tt->fields[f].name);
            assert_int_equal(check_json(valid[i].type, p, ROLE_SUPERADMIN, &clean, &e), -1);
            assert_null(clean);
            assert_int_equal(e.code, ST_INVALID);
            assert_string_equal(e.field, tt->fields[f].name);
            json_decref(p);
        }
    }
}

static void test_task_check_unknown_type_names_the_type_field(void **state)
{
    json_t *clean;
    struct st_err e;
    (void)state;
    assert_int_equal(check("guest_create", "{}", ROLE_SUPERADMIN, &clean, &e), -1);
    assert_int_equal(e.code, ST_INVALID);
    assert_string_equal(e.field, "type");
    assert_string_equal(e.msg, "unknown task type 'guest_create'");
    assert_int_equal(check(NULL, "{}", ROLE_SUPERADMIN, &clean, &e), -1);
    assert_string_equal(e.field, "type");
}

static void test_task_check_storage_types_need_superadmin_image_types_admin(void **state)
{
    json_t *clean;
    struct st_err e;
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        int storage = strstr(valid[i].type, "storage") || strstr(valid[i].type, "volume_");
        int rc = check(valid[i].type, valid[i].json, ROLE_ADMIN, &clean, &e);
        if (storage) {
            assert_int_equal(rc, -1);
            assert_int_equal(e.code, ST_FORBIDDEN);
        } else {
            assert_int_equal(rc, 0);
            json_decref(clean);
        }
        assert_int_equal(check(valid[i].type, valid[i].json, ROLE_READER, &clean, &e), -1);
        assert_int_equal(e.code, ST_FORBIDDEN);
    }
    check("volume_delete", "{\"volume_id\":\"v\"}", ROLE_ADMIN, &clean, &e);
    assert_string_equal(e.msg, "role admin may not run volume_delete (needs superadmin)");
}

static void test_task_check_size_mb_takes_numbers_and_digit_strings(void **state)
{
    static const char head[] =
        "{\"image_id\":\"i\",\"volume_id\":\"v\",\"image_storage_id\":\"s\",";
    static const struct {
        const char *size;
        int rc;
        enum st_code code;
    } cases[] = {
        {"\"size_mb\":16}", 0, ST_OK},
        {"\"size_mb\":\"16\"}", 0, ST_OK},
        {"\"size_mb\":\"1.5\"}", -1, ST_INVALID},
        {"\"size_mb\":1.5}", -1, ST_INVALID},
        {"\"size_mb\":\"\"}", -1, ST_INVALID},
        {"\"size_mb\":-4}", -1, ST_INVALID},
        {"\"size_mb\":0}", -1, ST_INVALID},
        {"\"size_mb\":1048576}", 0, ST_OK},
        {"\"size_mb\":1048577}", -1, ST_TOO_LARGE},
        {"\"size_mb\":true}", -1, ST_INVALID},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char json[256];
        json_t *clean = NULL;
        struct st_err e;
        snprintf(json, sizeof json, "%s%s", head, cases[i].size);
        int rc = check("image_create", json, ROLE_ADMIN, &clean, &e);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            /* core takes the size in bytes */
            assert_true(json_integer_value(json_object_get(clean, "size")) % (1 << 20) == 0);
            assert_true(json_integer_value(json_object_get(clean, "size")) > 0);
            json_decref(clean);
        } else {
            assert_int_equal(e.code, cases[i].code);
            assert_string_equal(e.field, "size_mb");
        }
    }
}

static void test_task_check_field_kinds(void **state)
{
    static const struct {
        const char *type, *json, *field;
    } bad[] = {
        {"image_delete", "{\"image_id\":\"a/b\"}", "image_id"},
        {"image_delete", "{\"image_id\":\".hidden\"}", "image_id"},
        {"image_delete", "{\"image_id\":7}", "image_id"},
        {"image_create",
         "{\"image_id\":\"i\",\"volume_id\":\"v\",\"image_storage_id\":\"s\",\"size_mb\":1,"
         "\"format\":\"vmdk\"}",
         "format"},
        {"evolume_create", "{\"image_storage_id\":\"s\",\"volume_id\":\"v\",\"mount_point\":\"m\"}",
         "mount_point"},
        {"volume_create",
         "{\"image_storage_id\":\"s\",\"volume_id\":\"v\",\"primary_disk_id\":\"a b\"}",
         "primary_disk_id"},
        {"istorage_create", "{\"image_storage_id\":\"s\",\"name\":\"\"}", "name"},
        {"istorage_modify", "{\"image_storage_id\":\"s\",\"description\":\"a\\u0000b\"}",
         "description"},
        {"guest_clone", "{\"image_id\":\"i\",\"guest_id\":\"g\",\"clone_id\":\"\"}", "clone_id"},
    };
    json_t *clean;
    struct st_err e;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(check(bad[i].type, bad[i].json, ROLE_SUPERADMIN, &clean, &e), -1);
        assert_int_equal(e.code, ST_INVALID);
        assert_string_equal(e.field, bad[i].field);
    }
    /* an optional field that is null counts as absent; a long serial-based disk id is fine */
    assert_int_equal(check("guest_clone",
                           "{\"image_id\":\"i\",\"guest_id\":\"g\",\"clone_id\":null}", ROLE_ADMIN,
                           &clean, &e),
                     0);
    json_decref(clean);
    assert_int_equal(
        check("volume_create",
              "{\"image_storage_id\":\"s\",\"volume_id\":\"v\",\"primary_disk_id\":"
              "\"1ATA_QEMU_HARDDISK_QM00001_0123456789012345678901234567890123456789\"}",
              ROLE_SUPERADMIN, &clean, &e),
        0);
    json_decref(clean);
}

static void test_path_under_compares_whole_components(void **state)
{
    (void)state;
    assert_true(st_path_under("/srv/roots/a", "/srv/roots"));
    assert_true(st_path_under("/srv/roots", "/srv/roots"));
    assert_true(st_path_under("/anything", "/"));
    assert_false(st_path_under("/srv/rootsX/a", "/srv/roots"));
    assert_false(st_path_under("/srv", "/srv/roots"));
    assert_false(st_path_under("/srv/roots", ""));
    /* a root written with a trailing slash holds what it held without one */
    assert_true(st_path_under("/srv/roots/a", "/srv/roots/"));
    assert_true(st_path_under("/srv/roots", "/srv/roots//"));
}

/* ---- flexVDI rendering ---- */

static void test_flexvdi_time_is_utc_and_empty_before_it_happens(void **state)
{
    char out[20];
    (void)state;
    flexvdi_time(1454518662, out);
    assert_string_equal(out, "2016-02-03 16:57:42");
    flexvdi_time(0, out);
    assert_string_equal(out, "");
}

/* Seen reviewing what fuzz_flexvdi renders (its regression input overflows under ASan):
 * a time past 9999-12-31 left the buffer unterminated (strftime fails), and task_json
 * read past it. */
static void test_flexvdi_time_past_the_year_9999_is_empty(void **state)
{
    char out[20];
    (void)state;
    memset(out, 'Z', sizeof out);
    flexvdi_time(253402300799, out);
    assert_string_equal(out, "9999-12-31 23:59:59");
    memset(out, 'Z', sizeof out);
    flexvdi_time(253402300800, out);
    assert_string_equal(out, "");
    flexvdi_time(INT64_MAX, out);
    assert_string_equal(out, "");
}

/* fuzz_flexvdi's outcome check (UBSan): rounding a size near INT64_MAX up to MB overflowed. */
static void test_flexvdi_image_created_message_rounds_any_size_up_to_mb(void **state)
{
    struct core_job v = {0};
    char msg[256];
    (void)state;
    snprintf(v.op, sizeof v.op, "%s", core_op_name(CORE_OP_IMAGE_CREATE));
    v.outcome = json_pack("{s:s, s:s, s:I, s:s}", "name", "i", "volume", "v", "size",
                          (json_int_t)INT64_MAX, "format", "raw");
    success_msg(&v, msg, sizeof msg);
    assert_string_equal(msg, "image 'i' created on volume 'v' (8796093022208 MB, raw)");
    json_object_set_new(v.outcome, "size", json_integer((1 << 20) + 1));
    success_msg(&v, msg, sizeof msg);
    assert_string_equal(msg, "image 'i' created on volume 'v' (2 MB, raw)");
    json_decref(v.outcome);
}

static json_t *render(const char *state, const char *result, int64_t finished)
{
    struct core_job v = {0};
    snprintf(v.id, sizeof v.id, "86725e2d-6277-434e-84ad-4d5d174f405f");
    snprintf(v.op, sizeof v.op, "image.copy");
    snprintf(v.state, sizeof v.state, "%s", state);
    snprintf(v.result, sizeof v.result, "%s", result);
    snprintf(v.error, sizeof v.error, "m");
    v.created_at = 1454518662;
    v.finished_at = finished;
    v.progress = 42;
    return task_json(&v);
}

static void test_flexvdi_task_maps_queued_and_revoked(void **state)
{
    static const struct {
        const char *state, *result;
        int64_t finished;
        const char *want_state, *want_result, *want_execution;
    } cases[] = {
        {"queued", "pending", 0, "running", "pending", ""},
        {"running", "pending", 0, "running", "pending", ""},
        {"completed", "success", 1454518683, "completed", "success", "2016-02-03 16:58:03"},
        {"completed", "error", 1454518683, "completed", "error", "2016-02-03 16:58:03"},
        {"completed", "revoked", 1454518683, "completed", "error", "2016-02-03 16:58:03"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = render(cases[i].state, cases[i].result, cases[i].finished);
        assert_int_equal(json_object_size(j), 9);
        assert_string_equal(json_string_value(json_object_get(j, "state")), cases[i].want_state);
        assert_string_equal(json_string_value(json_object_get(j, "result")), cases[i].want_result);
        assert_string_equal(json_string_value(json_object_get(j, "execution")),
                            cases[i].want_execution);
        assert_string_equal(json_string_value(json_object_get(j, "when")), "2016-02-03 16:57:42");
        assert_int_equal(json_integer_value(json_object_get(j, "task_type")), 109);
        assert_string_equal(json_string_value(json_object_get(j, "task_type_str")), "image_copy");
        assert_int_equal(json_integer_value(json_object_get(j, "progress")), 42);
        json_decref(j);
    }
}

static void test_flexvdi_codes_cover_every_task_type_once(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_FV_TYPES; i++) {
        assert_non_null(core_op_name(fv_types[i].op));
        assert_true(fv_types[i].code > 100);
        for (size_t k = i + 1; k < N_FV_TYPES; k++) {
            assert_int_not_equal(fv_types[i].code, fv_types[k].code);
            assert_int_not_equal(fv_types[i].op, fv_types[k].op);
        }
    }
    assert_int_equal(N_FV_TYPES, N_VALID);
    assert_null(fv_type_named("guest_action"));
}

/* ---- the engine on a real catalogue ---- */

struct env {
    struct stowage *st;
    char dir[64];
};

static int setup(void **state)
{
    struct env *v = calloc(1, sizeof *v);
    struct st_err e;
    snprintf(v->dir, sizeof v->dir, "/tmp/stowage-test-task-XXXXXX");
    if (!v || !mkdtemp(v->dir))
        return -1;
    v->st = core_new();
    cfg_defaults(core_config(v->st));
    if (cfg_set_state_dir(core_config(v->st), v->dir, &e) || cfg_finish(core_config(v->st), &e) ||
        core_open(v->st, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    *state = v;
    return 0;
}

static int teardown(void **state)
{
    struct env *v = *state;
    char cmd[128];
    core_tasks_stop(v->st);
    core_free(v->st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", v->dir);
    if (system(cmd) != 0)
        return -1;
    free(v);
    return 0;
}

static const struct st_principal root = {ROLE_SUPERADMIN, "ops", 0};

static void submit_storage(struct stowage *st, const char *id, char out[37])
{
    struct st_err e;
    struct core_op_params p = {.storage = id, .name = id};
    assert_int_equal(core_job_submit(st, CORE_OP_STORAGE_CREATE, &p, &root, out, &e), 0);
}

/* core_job_get into a job that may hold the last one's outcome. */
static int job_get(struct stowage *st, const char *id, struct core_job *v, struct st_err *e)
{
    core_job_free(v);
    return core_job_get(st, id, v, e);
}

static void wait_completed(struct stowage *st, const char *id, struct core_job *v)
{
    struct st_err e;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(job_get(st, id, v, &e), 0);
        if (strcmp(v->state, "completed") == 0)
            return;
        usleep(10 * 1000);
    }
    fail_msg("task %s did not complete", id);
}

static void test_task_queued_without_workers_can_be_cancelled(void **state)
{
    struct env *env = *state;
    struct core_job v = {0};
    struct st_err e;
    char id[37];

    submit_storage(env->st, "a", id);
    assert_int_equal(job_get(env->st, id, &v, &e), 0);
    assert_string_equal(v.state, "queued");
    assert_string_equal(v.result, "pending");
    assert_string_equal(v.owner, "ops");
    assert_true(v.created_at > 0 && v.finished_at == 0);
    assert_int_equal(core_job_cancel(env->st, id, &e), 0);
    assert_int_equal(job_get(env->st, id, &v, &e), 0);
    assert_string_equal(v.state, "completed");
    assert_string_equal(v.result, "revoked");
    assert_string_equal(v.error, "cancelled before it started");
    assert_int_equal(core_job_cancel(env->st, id, &e), -1);
    assert_int_equal(e.code, ST_CONFLICT);
    assert_int_equal(core_job_cancel(env->st, "no-such-task", &e), -1);
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_int_equal(job_get(env->st, "x/../../etc", &v, &e), -1);
    assert_int_equal(e.code, ST_NOT_FOUND);
    core_job_free(&v);
}

/* What a killed daemon leaves: one row running (claimed), one queued. A start marks
 * the first interrupted and runs the second. */
static void test_task_restart_interrupts_running_and_runs_queued(void **state)
{
    struct env *env = *state;
    struct core_job v = {0}, *list = NULL;
    struct db_task claimed;
    struct st_err e;
    char cut[37], waiting[37], *params = NULL;
    size_t n = 0;

    submit_storage(env->st, "first", cut);
    submit_storage(env->st, "second", waiting);
    struct db_conn *c = db_acquire(env->st->db);
    assert_int_equal(db_task_claim(c, time(NULL), &claimed, &params, &e), 0);
    db_release(env->st->db, c);
    assert_string_equal(claimed.id, cut);
    assert_string_equal(params, "{\"name\":\"first\",\"storage\":\"first\"}");
    free(params);

    assert_int_equal(core_tasks_start(env->st, &e), 0);
    assert_int_equal(job_get(env->st, cut, &v, &e), 0);
    assert_string_equal(v.state, "completed");
    assert_string_equal(v.result, "error");
    assert_string_equal(v.error, "interrupted by restart");
    assert_true(v.finished_at > 0);

    wait_completed(env->st, waiting, &v);
    assert_string_equal(v.result, "success");
    assert_int_equal(v.progress, 100);
    assert_true(v.started_at >= v.created_at && v.finished_at >= v.started_at);
    struct db_storage s;
    c = db_acquire(env->st->db);
    assert_int_equal(db_storage_get(c, "second", &s, &e), 0);
    assert_int_not_equal(db_storage_get(c, "first", &s, &e), 0);
    db_release(env->st->db, c);

    assert_int_equal(core_job_list(env->st, &list, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, cut);
    assert_string_equal(list[1].id, waiting);
    core_jobs_free(list, n);
    core_job_free(&v);
}

/* The effect committed, then the process died before the row said so: the next start
 * sees the effect and completes the row as a success. */
static void test_task_restart_completes_a_task_whose_effect_had_committed(void **state)
{
    struct env *env = *state;
    struct core_job v = {0};
    struct db_task claimed;
    struct db_storage s = {0};
    struct st_err e;
    char id[37], *params = NULL;

    submit_storage(env->st, "made", id);
    struct db_conn *c = db_acquire(env->st->db);
    assert_int_equal(db_task_claim(c, time(NULL), &claimed, &params, &e), 0);
    snprintf(s.id, sizeof s.id, "made");
    snprintf(s.name, sizeof s.name, "made");
    assert_int_equal(db_storage_insert(c, &s, &e), 0);
    db_release(env->st->db, c);
    free(params);

    assert_int_equal(core_tasks_start(env->st, &e), 0);
    assert_int_equal(job_get(env->st, id, &v, &e), 0);
    assert_string_equal(v.state, "completed");
    assert_string_equal(v.result, "success");
    assert_string_equal(json_string_value(json_object_get(v.outcome, "storage")), "made");
    assert_true(json_is_true(json_object_get(v.outcome, "before_restart")));
    char msg[256];
    success_msg(&v, msg, sizeof msg); /* and flexVDI words it so */
    assert_string_equal(msg, "image storage 'made' created (done before a restart)");
    core_job_free(&v);
    assert_int_equal(v.progress, 100);
    core_job_free(&v);
}

static void test_task_failure_is_recorded_with_its_message(void **state)
{
    struct env *env = *state;
    struct core_job v = {0};
    struct st_err e;
    char id[37];

    assert_int_equal(core_tasks_start(env->st, &e), 0);
    submit_storage(env->st, "dup", id);
    wait_completed(env->st, id, &v);
    assert_string_equal(v.result, "success");
    submit_storage(env->st, "dup", id);
    wait_completed(env->st, id, &v);
    assert_string_equal(v.result, "error");
    assert_string_equal(v.error, "image storage 'dup' already exists");
    assert_int_equal(v.progress, 0);
    /* a completed task cannot be cancelled */
    assert_int_equal(core_job_cancel(env->st, id, &e), -1);
    assert_int_equal(e.code, ST_CONFLICT);
    core_job_free(&v);
}

/* Idle workers get their tasks handed over at submit (inserted running, no claim); a
 * burst larger than the pool also queues. Each runs once, and the rows say so. */
static void test_task_burst_on_idle_workers_runs_each_once(void **state)
{
    struct env *env = *state;
    struct core_job v = {0};
    struct st_err e;
    char ids[24][37], name[16];

    assert_int_equal(core_tasks_start(env->st, &e), 0);
    usleep(50 * 1000); /* let the workers go idle */
    for (int i = 0; i < 24; i++) {
        snprintf(name, sizeof name, "burst%d", i);
        submit_storage(env->st, name, ids[i]);
    }
    struct db_conn *c = db_acquire(env->st->db);
    for (int i = 0; i < 24; i++) {
        struct db_storage s;
        wait_completed(env->st, ids[i], &v);
        assert_string_equal(v.result, "success");
        assert_true(v.started_at >= v.created_at && v.finished_at >= v.started_at);
        snprintf(name, sizeof name, "burst%d", i);
        assert_int_equal(db_storage_get(c, name, &s, &e), 0);
    }
    db_release(env->st->db, c);
    core_job_free(&v);
}

/* A row inserted running for an idle worker is, after a crash, what a claimed one is. */
static void test_task_handed_over_row_is_interrupted_by_restart(void **state)
{
    struct env *env = *state;
    struct core_job v = {0};
    struct db_task t = {0};
    struct st_err e;

    snprintf(t.id, sizeof t.id, "0b5e7c52-3a1c-4bb7-9d43-1c2b4a5d6e7f");
    snprintf(t.type, sizeof t.type, "storage.create");
    snprintf(t.state, sizeof t.state, "running");
    t.created_at = t.started_at = time(NULL);
    struct db_conn *c = db_acquire(env->st->db);
    assert_int_equal(db_task_insert(c, &t, "{\"storage\":\"h\",\"name\":\"h\"}", &e), 0);
    db_release(env->st->db, c);
    assert_int_equal(job_get(env->st, t.id, &v, &e), 0);
    assert_string_equal(v.state, "running");
    assert_int_equal(v.started_at, t.started_at);

    assert_int_equal(core_tasks_start(env->st, &e), 0);
    assert_int_equal(job_get(env->st, t.id, &v, &e), 0);
    assert_string_equal(v.state, "completed");
    assert_string_equal(v.result, "error");
    assert_string_equal(v.error, "interrupted by restart");
    core_job_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_check_accepts_every_type_and_keeps_only_its_fields),
        cmocka_unit_test(test_task_check_names_each_missing_required_field),
        cmocka_unit_test(test_task_check_unknown_type_names_the_type_field),
        cmocka_unit_test(test_task_check_storage_types_need_superadmin_image_types_admin),
        cmocka_unit_test(test_task_check_size_mb_takes_numbers_and_digit_strings),
        cmocka_unit_test(test_task_check_field_kinds),
        cmocka_unit_test(test_path_under_compares_whole_components),
        cmocka_unit_test(test_flexvdi_time_is_utc_and_empty_before_it_happens),
        cmocka_unit_test(test_flexvdi_time_past_the_year_9999_is_empty),
        cmocka_unit_test(test_flexvdi_image_created_message_rounds_any_size_up_to_mb),
        cmocka_unit_test(test_flexvdi_task_maps_queued_and_revoked),
        cmocka_unit_test(test_flexvdi_codes_cover_every_task_type_once),
        cmocka_unit_test_setup_teardown(test_task_queued_without_workers_can_be_cancelled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_task_restart_interrupts_running_and_runs_queued, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_task_restart_completes_a_task_whose_effect_had_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_burst_on_idle_workers_runs_each_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_task_handed_over_row_is_interrupted_by_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_task_failure_is_recorded_with_its_message, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
