/* test_db.c — the catalogue's neutral statement layer over the real default driver, on a
 * real database file: errors coded as the driver contract says, transactions that roll
 * back, migrations recorded once, the portable upserts, bound times, the statement cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/db/db_internal.h"

struct fx {
    char dir[256];
    char path[300];
    struct db *db;
    struct db_conn *c;
};

static int open_db(struct fx *fx)
{
    struct st_err e = {0};
    if (db_open(&fx->db, fx->path, 2, &e)) {
        fprintf(stderr, "db_open: %s\n", e.msg);
        return -1;
    }
    fx->c = db_acquire(fx->db);
    return 0;
}

static void close_db(struct fx *fx)
{
    db_release(fx->db, fx->c);
    db_close(fx->db);
    fx->c = NULL;
    fx->db = NULL;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "%s/stowage-test-db-XXXXXX", tmp);
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/stowage.db", fx->dir);
    *state = fx;
    return open_db(fx);
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    static const char *const tails[] = {"", "-wal", "-shm"};
    char p[320];

    if (fx->db)
        close_db(fx);
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        snprintf(p, sizeof p, "%s%s", fx->path, tails[i]);
        unlink(p);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void add_storage(struct db_conn *c, const char *id)
{
    struct db_storage s = {.created_at = 1000};
    struct st_err e = {0};
    snprintf(s.id, sizeof s.id, "%s", id);
    snprintf(s.name, sizeof s.name, "Storage %s", id);
    assert_int_equal(db_storage_insert(c, &s, &e), 0);
}

static void add_volume(struct db_conn *c, const char *storage, const char *id)
{
    struct db_volume v = {.created_at = 1000};
    struct st_err e = {0};
    snprintf(v.id, sizeof v.id, "%s", id);
    snprintf(v.storage_id, sizeof v.storage_id, "%s", storage);
    snprintf(v.kind, sizeof v.kind, "local");
    assert_int_equal(db_volume_insert(c, &v, &e), 0);
}

static int64_t count_rows(struct db_conn *c, const char *sql)
{
    struct st_err e = {0};
    struct db_query *q = db_stmt(c, sql, &e);
    assert_non_null(q);
    assert_int_equal(db_step(q), DB_ROW);
    int64_t n = db_col_int64(q, 0);
    db_reset(q);
    return n;
}

static void test_db_open_records_each_migration_once(void **state)
{
    struct fx *fx = *state;
    static const char sql[] =
        "SELECT version, name, applied_at FROM schema_version ORDER BY version";
    int64_t applied[16] = {0};
    size_t n_mig = 0;
    struct st_err e = {0};

    while (db_migrations[n_mig].sql)
        n_mig++;
    assert_true(n_mig >= 2 && n_mig <= 16);
    assert_int_equal(db_schema_version(fx->db), db_migrations[n_mig - 1].version);

    struct db_query *q = db_stmt(fx->c, sql, &e);
    assert_non_null(q);
    for (size_t i = 0; i < n_mig; i++) {
        char name[64];
        assert_int_equal(db_step(q), DB_ROW);
        assert_int_equal(db_col_int64(q, 0), db_migrations[i].version);
        db_col_text(q, 1, name, sizeof name);
        assert_string_equal(name, db_migrations[i].name);
        applied[i] = db_col_int64(q, 2);
        assert_true(applied[i] > 1600000000 && applied[i] <= (int64_t)time(NULL));
    }
    assert_int_equal(db_step(q), DB_DONE);
    db_reset(q);

    /* A second open finds nothing to do: same rows, same times. */
    close_db(fx);
    assert_int_equal(open_db(fx), 0);
    assert_int_equal(db_schema_version(fx->db), db_migrations[n_mig - 1].version);
    q = db_stmt(fx->c, sql, &e);
    assert_non_null(q);
    for (size_t i = 0; i < n_mig; i++) {
        assert_int_equal(db_step(q), DB_ROW);
        assert_int_equal(db_col_int64(q, 2), applied[i]);
    }
    assert_int_equal(db_step(q), DB_DONE);
    db_reset(q);
}

/* The SQLite driver's tuning, read back through the neutral layer. */
static void test_db_connections_are_wal_full_sync_with_foreign_keys(void **state)
{
    struct fx *fx = *state;
    struct st_err e = {0};
    struct db_conn *other = db_acquire(fx->db);
    struct db_conn *conns[] = {fx->c, other};
    char mode[16];

    for (size_t i = 0; i < 2; i++) {
        struct db_query *q = db_stmt(conns[i], "PRAGMA journal_mode", &e);
        assert_non_null(q);
        assert_int_equal(db_step(q), DB_ROW);
        db_col_text(q, 0, mode, sizeof mode);
        assert_string_equal(mode, "wal");
        db_reset(q);
        assert_int_equal(count_rows(conns[i], "PRAGMA synchronous"), 2); /* FULL */
        assert_int_equal(count_rows(conns[i], "PRAGMA foreign_keys"), 1);
    }
    db_release(fx->db, other);
}

static void test_db_duplicate_id_is_exists_with_its_cause(void **state)
{
    struct fx *fx = *state;
    struct db_storage s = {.id = "s1", .name = "again", .created_at = 1000};
    struct st_err e = {0};

    add_storage(fx->c, "s1");
    assert_int_equal(db_storage_insert(fx->c, &s, &e), -1);
    assert_int_equal(e.code, ST_EXISTS);
    assert_string_equal(e.msg, "insert image storage: UNIQUE constraint failed: image_storage.id");

    struct db_storage got;
    assert_int_equal(db_storage_get(fx->c, "s1", &got, &e), 0);
    assert_string_equal(got.name, "Storage s1");
}

static void test_db_foreign_key_refusal_is_in_use(void **state)
{
    struct fx *fx = *state;
    struct st_err e = {0};

    add_storage(fx->c, "s1");
    add_volume(fx->c, "s1", "v1");
    assert_int_equal(db_storage_delete(fx->c, "s1", &e), -1);
    assert_int_equal(e.code, ST_IN_USE);
    assert_string_equal(e.msg, "delete image storage: FOREIGN KEY constraint failed");
    struct db_volume v;
    assert_int_equal(db_volume_get(fx->c, "v1", &v, &e), 0);
    assert_string_equal(v.storage_id, "s1");
}

static void test_db_one_without_row_is_not_found_with_message(void **state)
{
    struct fx *fx = *state;
    struct db_storage got;
    struct db_task t;
    struct st_err e = {0};

    assert_int_equal(db_storage_get(fx->c, "nope", &got, &e), -1);
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_string_equal(e.msg, "image storage 'nope' not found");
    assert_int_equal(db_task_get(fx->c, "t-missing", &t, &e), -1);
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_string_equal(e.msg, "task 't-missing' not found");
}

static void test_db_change_of_no_row_is_not_found(void **state)
{
    struct fx *fx = *state;
    struct db_storage s = {.id = "ghost", .name = "x"};
    struct st_err e = {0};

    assert_int_equal(db_storage_update(fx->c, &s, &e), -1);
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_string_equal(e.msg, "image storage 'ghost' not found");

    add_storage(fx->c, "ghost");
    assert_int_equal(db_storage_update(fx->c, &s, &e), 0);
    assert_int_equal(db_changes(fx->c), 1);
    struct db_storage got;
    assert_int_equal(db_storage_get(fx->c, "ghost", &got, &e), 0);
    assert_string_equal(got.name, "x");
}

static void test_db_rolled_back_transaction_leaves_nothing(void **state)
{
    struct fx *fx = *state;
    struct db_storage got;
    struct st_err e = {0};

    assert_int_equal(db_begin(fx->c, &e), 0);
    add_storage(fx->c, "gone");
    add_volume(fx->c, "gone", "vgone");
    db_rollback(fx->c);
    assert_false(fx->c->drv->in_transaction(fx->c->h));
    assert_int_equal(db_storage_get(fx->c, "gone", &got, &e), -1);
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_int_equal(count_rows(fx->c, "SELECT count(*) FROM volume"), 0);

    assert_int_equal(db_begin(fx->c, &e), 0);
    add_storage(fx->c, "kept");
    assert_int_equal(db_commit(fx->c, &e), 0);
    assert_int_equal(db_storage_get(fx->c, "kept", &got, &e), 0);
    assert_string_equal(got.name, "Storage kept");
}

static void test_db_release_inside_transaction_rolls_back(void **state)
{
    struct fx *fx = *state;
    struct db_storage got;
    struct st_err e = {0};

    assert_int_equal(db_begin(fx->c, &e), 0);
    add_storage(fx->c, "forgotten");
    db_release(fx->db, fx->c);
    fx->c = db_acquire(fx->db);
    assert_false(fx->c->drv->in_transaction(fx->c->h));
    assert_int_equal(db_storage_get(fx->c, "forgotten", &got, &e), -1);
    assert_int_equal(e.code, ST_NOT_FOUND);
}

static void test_db_bad_bind_fails_the_step_with_its_cause(void **state)
{
    struct fx *fx = *state;
    static const char sql[] = "SELECT count(*) FROM image_storage WHERE id = ?1";
    struct st_err e = {0};
    struct db_query *q = db_stmt(fx->c, sql, &e);

    assert_non_null(q);
    db_bind_text(q, 5, "x");
    assert_int_equal(db_exec_stmt(fx->c, q, &e, "bad bind"), -1);
    assert_int_equal(e.code, ST_INTERNAL);
    assert_string_equal(e.msg, "bad bind: column index out of range");

    /* The reset clears the failure: the same statement bound right runs. */
    q = db_stmt(fx->c, sql, &e);
    db_bind_text(q, 1, "x");
    assert_int_equal(db_step(q), DB_ROW);
    assert_int_equal(db_col_int64(q, 0), 0);
    db_reset(q);
}

static void test_db_columns_read_null_text_and_int64(void **state)
{
    struct fx *fx = *state;
    struct st_err e = {0};
    char out[8] = "junk";
    struct db_query *q = db_stmt(fx->c, "SELECT NULL, ?1, ?2, ?3", &e);

    assert_non_null(q);
    db_bind_null(q, 1);
    db_bind_int64(q, 2, INT64_C(9007199254740993)); /* beyond a double's exact range */
    db_bind_text(q, 3, NULL);
    assert_int_equal(db_step(q), DB_ROW);
    assert_true(db_col_is_null(q, 0));
    assert_null(db_col_str(q, 0));
    db_col_text(q, 0, out, sizeof out);
    assert_string_equal(out, "");
    assert_true(db_col_is_null(q, 1));
    assert_false(db_col_is_null(q, 2));
    assert_true(db_col_int64(q, 2) == INT64_C(9007199254740993));
    assert_false(db_col_is_null(q, 3)); /* NULL text binds '' */
    assert_string_equal(db_col_str(q, 3), "");
    assert_int_equal(db_step(q), DB_DONE);
    db_reset(q);
}

static void test_db_statement_is_prepared_once_per_connection(void **state)
{
    struct fx *fx = *state;
    static const char sql[] = "SELECT 41 + 1";
    struct st_err e = {0};

    int before = fx->c->n_cached;
    struct db_query *a = db_stmt(fx->c, sql, &e);
    assert_non_null(a);
    assert_int_equal(db_step(a), DB_ROW); /* left mid-way: the next db_stmt resets it */
    struct db_query *b = db_stmt(fx->c, sql, &e);
    assert_ptr_equal(a, b);
    assert_int_equal(fx->c->n_cached, before + 1);
    assert_int_equal(db_step(b), DB_ROW);
    assert_int_equal(db_col_int64(b, 0), 42);
    db_reset(b);

    struct db_conn *other = db_acquire(fx->db);
    struct db_query *o = db_stmt(other, sql, &e);
    assert_non_null(o);
    assert_ptr_not_equal(o, a);
    db_release(fx->db, other);
}

static void test_db_portable_upserts_keep_one_row_each(void **state)
{
    struct fx *fx = *state;
    struct st_err e = {0};
    char(*hosts)[256] = NULL;
    size_t n = 0;

    add_storage(fx->c, "s1");
    add_volume(fx->c, "s1", "v1");
    assert_int_equal(db_host_add(fx->c, "s1", "node-a", &e), 0);
    assert_int_equal(db_host_add(fx->c, "s1", "node-a", &e), 0);
    assert_int_equal(db_host_list(fx->c, "s1", &hosts, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(hosts[0], "node-a");
    free(hosts);

    struct db_disk d[2] = {
        {.id = "wwn-1", .vendor = "old", .host_device = "sda", .volume_id = "v1"},
        {.id = "wwn-1", .vendor = "new", .host_device = "sdb", .volume_id = "gone"},
    };
    assert_int_equal(db_disk_replace_all(fx->c, d, 2, &e), 0);
    static const char sql[] = "SELECT vendor, host_device, volume_id FROM disk";
    struct db_query *q = db_stmt(fx->c, sql, &e);
    char v[16], h[16];
    assert_int_equal(db_step(q), DB_ROW);
    db_col_text(q, 0, v, sizeof v);
    db_col_text(q, 1, h, sizeof h);
    assert_string_equal(v, "new");
    assert_string_equal(h, "sdb");
    assert_true(db_col_is_null(q, 2)); /* an unknown volume is no volume */
    assert_int_equal(db_step(q), DB_DONE);
    db_reset(q);

    char hash[64], role[16];
    assert_int_equal(db_user_upsert(fx->c, "ann", "h1", "reader", &e), 0);
    assert_int_equal(db_user_upsert(fx->c, "ann", "h2", "admin", &e), 0);
    assert_int_equal(db_user_get(fx->c, "ann", hash, sizeof hash, role, sizeof role, &e), 0);
    assert_string_equal(hash, "h2");
    assert_string_equal(role, "admin");
    assert_int_equal(count_rows(fx->c, "SELECT count(*) FROM \"user\""), 1);
}

static void test_db_image_change_stamps_now_and_bumps_generation(void **state)
{
    struct fx *fx = *state;
    struct db_image im = {.uuid = "11111111-2222-3333-4444-555555555555",
                          .name = "img",
                          .volume_id = "v1",
                          .format = "raw",
                          .status = "saving",
                          .virtual_size = 3 * 1048576 + 1,
                          .created_at = 1000};
    struct db_image got;
    struct st_err e = {0};

    add_storage(fx->c, "s1");
    add_volume(fx->c, "s1", "v1");
    assert_int_equal(db_image_insert(fx->c, &im, &e), 0);
    assert_int_equal(count_rows(fx->c, "SELECT size_mb FROM image"), 4);
    int64_t t0 = (int64_t)time(NULL);
    assert_int_equal(db_image_set_status(fx->c, im.uuid, "active", &e), 0);
    int64_t t1 = (int64_t)time(NULL);
    assert_int_equal(db_image_get(fx->c, im.uuid, &got, &e), 0);
    assert_string_equal(got.status, "active");
    assert_true(got.updated_at >= t0 && got.updated_at <= t1);
    assert_int_equal(got.created_at, 1000);
    assert_int_equal(got.generation, 2);

    assert_int_equal(db_image_set_status(fx->c, "no-such-uuid", "active", &e), -1);
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_string_equal(e.msg, "image 'no-such-uuid' not found");
}

static void test_db_task_claim_takes_rows_of_one_second_in_insertion_order(void **state)
{
    struct fx *fx = *state;
    static const char *const ids[] = {"t-c", "t-a", "t-b"};
    struct st_err e = {0};

    for (size_t i = 0; i < 3; i++) {
        struct db_task t = {.type = "image_delete", .state = "queued", .created_at = 5000};
        snprintf(t.id, sizeof t.id, "%s", ids[i]);
        assert_int_equal(db_task_insert(fx->c, &t, "{\"n\":1}", &e), 0);
    }
    for (size_t i = 0; i < 3; i++) {
        struct db_task got;
        char *params = NULL;
        assert_int_equal(db_task_claim(fx->c, 6000 + (int64_t)i, &got, &params, &e), 0);
        assert_string_equal(got.id, ids[i]);
        assert_string_equal(got.state, "running");
        assert_int_equal(got.started_at, 6000 + (int64_t)i);
        assert_string_equal(params, "{\"n\":1}");
        free(params);
    }
    struct db_task none;
    char *params = NULL;
    assert_int_equal(db_task_claim(fx->c, 7000, &none, &params, &e), -1);
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_string_equal(e.msg, "no queued task");
    assert_null(params);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_db_open_records_each_migration_once),
        T(test_db_connections_are_wal_full_sync_with_foreign_keys),
        T(test_db_duplicate_id_is_exists_with_its_cause),
        T(test_db_foreign_key_refusal_is_in_use),
        T(test_db_one_without_row_is_not_found_with_message),
        T(test_db_change_of_no_row_is_not_found),
        T(test_db_rolled_back_transaction_leaves_nothing),
        T(test_db_release_inside_transaction_rolls_back),
        T(test_db_bad_bind_fails_the_step_with_its_cause),
        T(test_db_columns_read_null_text_and_int64),
        T(test_db_statement_is_prepared_once_per_connection),
        T(test_db_portable_upserts_keep_one_row_each),
        T(test_db_image_change_stamps_now_and_bumps_generation),
        T(test_db_task_claim_takes_rows_of_one_second_in_insertion_order),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
