/* db.c — the catalogue over any driver: the connection pool, the statement cache, the
 * statement helpers, transactions and migrations. Nothing here knows the engine. */
#include "db_internal.h"
#include "stowage/group.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The engines this build knows. db_open takes the first: choosing another (a config key,
 * the catalogue's URL) is for when there is another. */
static const struct db_driver *const drivers[] = {&db_sqlite_driver};

/* A writer's change, as a member of a group commit (db_group). */
struct db_write {
    db_member_fn fn;
    void *ud;
};

struct db {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const struct db_driver *drv;
    void *shared;
    struct db_conn *conns;
    unsigned n;
    int schema_version;
    /* the group commit, and what it did */
    struct st_group group;
    atomic_uint_fast64_t commits, members;
};

static void run_batch(void *ctx, struct st_group_member *batch, size_t n);

int db_fail(struct db_conn *c, struct st_err *e, const char *what)
{
    const char *msg = NULL;
    enum st_code code = c->drv->last_error(c->h, &msg);
    return st_fail(e, code, "%s: %s", what, msg ? msg : "error");
}

int db_fail_stmt(struct db_conn *c, struct db_query *q, struct st_err *e, const char *what)
{
    db_fail(c, e, what);
    db_reset(q);
    return -1;
}

struct db_query *db_stmt(struct db_conn *c, const char *sql, struct st_err *e)
{
    for (int i = 0; i < c->n_cached; i++) {
        if (c->cache[i].sql == sql) {
            db_reset(c->cache[i].q);
            return c->cache[i].q;
        }
    }
    struct db_query *q = c->drv->prepare(c->h, sql, c->n_cached < DB_STMT_CACHE);
    if (!q) {
        db_fail(c, e, "prepare");
        return NULL;
    }
    if (c->n_cached < DB_STMT_CACHE) {
        c->cache[c->n_cached].sql = sql;
        c->cache[c->n_cached].q = q;
        c->n_cached++;
    } else {
        /* Cache full: a bug in the caller's count of statements, not fatal. */
        fprintf(stderr, "stowaged: db statement cache full\n");
    }
    return q;
}

int db_exec_stmt(struct db_conn *c, struct db_query *q, struct st_err *e, const char *what)
{
    if (db_step(q) == DB_ERROR)
        return db_fail_stmt(c, q, e, what);
    db_reset(q);
    return 0;
}

int64_t db_changes(struct db_conn *c)
{
    return c->drv->changes(c->h);
}

int db_exec_changed(struct db_conn *c, struct db_query *q, const char *what, const char *kind,
                    const char *key, struct st_err *e)
{
    if (db_exec_stmt(c, q, e, what))
        return -1;
    if (db_changes(c) == 0)
        return st_fail(e, ST_NOT_FOUND, "%s '%s' not found", kind, key);
    return 0;
}

void db_bind_text(struct db_query *q, int idx, const char *v)
{
    q->drv->bind_text(q, idx, v ? v : "");
}

void db_col_text(struct db_query *q, int col, char *out, size_t outlen)
{
    const char *t = db_col_str(q, col);
    snprintf(out, outlen, "%s", t ? t : "");
}

int db_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap <= n)
        ncap *= 2;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

int db_collect(struct db_conn *c, struct db_query *q, size_t elem, db_read_fn read, void *out,
               size_t *n, const char *what, struct st_err *e)
{
    char *arr = NULL;
    size_t cnt = 0, cap = 0;
    enum db_step rc;

    while ((rc = db_step(q)) == DB_ROW) {
        if (db_grow((void **)&arr, &cap, cnt, elem)) {
            db_reset(q);
            free(arr);
            return st_fail(e, ST_INTERNAL, "out of memory");
        }
        read(q, arr + cnt++ * elem);
    }
    if (rc != DB_DONE) {
        free(arr);
        return db_fail_stmt(c, q, e, what);
    }
    db_reset(q);
    *(void **)out = arr;
    *n = cnt;
    return 0;
}

int db_one(struct db_conn *c, struct db_query *q, db_read_fn read, void *item, const char *kind,
           const char *key, struct st_err *e)
{
    enum db_step rc = db_step(q);
    if (rc == DB_ERROR)
        return db_fail_stmt(c, q, e, kind);
    if (rc == DB_ROW)
        read(q, item);
    db_reset(q);
    if (rc == DB_ROW)
        return 0;
    return st_fail(e, ST_NOT_FOUND, "%s '%s' not found", kind, key);
}

/* ---- statements that pick their rows by one text, ?1 ---- */

struct db_query *db_stmt_key(struct db_conn *c, const char *sql, const char *key, struct st_err *e)
{
    struct db_query *q = db_stmt(c, sql, e);
    if (q)
        db_bind_text(q, 1, key);
    return q;
}

int db_collect_by_text(struct db_conn *c, const char *sql, const char *key, size_t elem,
                       db_read_fn read, void *out, size_t *n, const char *what, struct st_err *e)
{
    struct db_query *q = db_stmt_key(c, sql, key, e);
    return q ? db_collect(c, q, elem, read, out, n, what, e) : -1;
}

int db_one_by_text(struct db_conn *c, const char *sql, const char *key, db_read_fn read, void *item,
                   const char *kind, struct st_err *e)
{
    struct db_query *q = db_stmt_key(c, sql, key, e);
    return q ? db_one(c, q, read, item, kind, key, e) : -1;
}

int db_exec_by_text(struct db_conn *c, const char *sql, const char *key, const char *what,
                    const char *kind, struct st_err *e)
{
    struct db_query *q = db_stmt_key(c, sql, key, e);
    return q ? db_exec_changed(c, q, what, kind, key, e) : -1;
}

int db_set_text(struct db_conn *c, const char *sql, const char *key, const char *value,
                const char *what, const char *kind, struct st_err *e)
{
    struct db_query *q = db_stmt_key(c, sql, key, e);
    if (!q)
        return -1;
    db_bind_text(q, 2, value);
    return db_exec_changed(c, q, what, kind, key, e);
}

void db_read_id(struct db_query *q, void *item)
{
    db_col_text(q, 0, item, DB_ID);
}

struct db_text {
    char *buf;
    size_t len;
};

static void read_text(struct db_query *q, void *item)
{
    const struct db_text *t = item;
    db_col_text(q, 0, t->buf, t->len);
}

int db_get_text(struct db_conn *c, const char *sql, const char *key, char *out, size_t len,
                const char *kind, struct st_err *e)
{
    return db_one_by_text(c, sql, key, read_text, &(struct db_text){out, len}, kind, e);
}

/* ---- migrations ---- */

static int read_version(struct db_conn *c, int *v, struct st_err *e)
{
    static const char sql[] = "SELECT max(version) FROM schema_version";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    enum db_step rc = db_step(q);
    if (rc == DB_ERROR)
        return db_fail_stmt(c, q, e, "schema version");
    *v = rc == DB_ROW ? (int)db_col_int64(q, 0) : 0; /* max() of no rows is NULL: 0 */
    db_reset(q);
    return 0;
}

static int record(struct db_conn *c, const struct db_migration *m, struct st_err *e)
{
    static const char sql[] =
        "INSERT INTO schema_version (version, name, applied_at) VALUES (?1, ?2, ?3)";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_int64(q, 1, m->version);
    db_bind_text(q, 2, m->name);
    db_bind_int64(q, 3, (int64_t)time(NULL));
    return db_exec_stmt(c, q, e, "record migration");
}

/* One migration in its own transaction. The version is read again under the write lock:
 * another daemon sharing the catalogue may have applied it while this one waited. */
static int apply(struct db_conn *c, const struct db_migration *m, struct st_err *e)
{
    char why[sizeof e->msg];
    int v = 0, rc = -1;
    int rebuild = strncmp(m->sql, "-- rebuilds tables\n", 19) == 0;

    if (rebuild && c->drv->foreign_keys(c->h, 0))
        return db_fail(c, e, m->name);
    if (db_begin(c, e))
        goto out;
    if (read_version(c, &v, e))
        goto fail;
    if (m->version > v) {
        if (c->drv->exec_script(c->h, m->sql) || (rebuild && c->drv->foreign_key_check(c->h))) {
            db_fail(c, e, m->name);
            goto fail;
        }
        if (record(c, m, e))
            goto fail;
    }
    rc = db_commit(c, e);
    goto out;
fail:
    snprintf(why, sizeof why, "%s", e ? e->msg : "");
    db_rollback(c);
    rc = st_fail(e, ST_INTERNAL, "migration %s failed: %s", m->name, why);
out:
    if (rebuild && c->drv->foreign_keys(c->h, 1) && rc == 0)
        rc = db_fail(c, e, m->name);
    return rc;
}

/* Apply every migration newer than the recorded version, in order. */
static int migrate(struct db_conn *c, int *version, struct st_err *e)
{
    static const char table[] =
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)";
    int v = 0;

    if (c->drv->exec_script(c->h, table))
        return db_fail(c, e, "schema_version");
    if (read_version(c, &v, e))
        return -1;
    for (const struct db_migration *m = c->drv->migrations; m->sql; m++) {
        if (m->version <= v)
            continue;
        if (apply(c, m, e))
            return -1;
        v = m->version;
    }
    *version = v;
    return 0;
}

/* ---- opening and the pool ---- */

static int open_conn(struct db *db, struct db_conn *c, struct st_err *e)
{
    c->drv = db->drv;
    if (db->drv->conn_open(db->shared, &c->h, e))
        return -1;
    if (db->drv->tune(c->h)) {
        const char *msg = NULL;
        db->drv->last_error(c->h, &msg);
        st_fail(e, ST_INTERNAL, "%s: %s", db->drv->name, msg ? msg : "error");
        db->drv->conn_close(c->h);
        c->h = NULL;
        return -1;
    }
    return 0;
}

int db_open(struct db **out, const char *path, unsigned pool_size, struct st_err *e)
{
    struct db *db = calloc(1, sizeof *db);
    if (!db)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (pool_size < 1)
        pool_size = 1;
    db->conns = calloc(pool_size, sizeof *db->conns);
    if (!db->conns) {
        free(db);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->cv, NULL);
    st_group_init(&db->group, run_batch, NULL, db, 0);
    db->drv = drivers[0];
    if (db->drv->open(path, &db->shared, e))
        goto fail;
    for (unsigned i = 0; i < pool_size; i++) {
        if (open_conn(db, &db->conns[i], e))
            goto fail;
        db->n++;
    }
    if (migrate(&db->conns[0], &db->schema_version, e))
        goto fail;
    *out = db;
    return 0;
fail:
    db_close(db);
    return -1;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    for (unsigned i = 0; i < db->n; i++) {
        for (int k = 0; k < db->conns[i].n_cached; k++)
            db->drv->finalize(db->conns[i].cache[k].q);
        db->drv->conn_close(db->conns[i].h);
    }
    if (db->shared)
        db->drv->close(db->shared);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->cv);
    st_group_destroy(&db->group);
    free(db->conns);
    free(db);
}

int db_schema_version(struct db *db)
{
    return db->schema_version;
}

struct db_conn *db_acquire(struct db *db)
{
    pthread_mutex_lock(&db->mu);
    for (;;) {
        for (unsigned i = 0; i < db->n; i++) {
            if (!db->conns[i].in_use) {
                db->conns[i].in_use = 1;
                pthread_mutex_unlock(&db->mu);
                return &db->conns[i];
            }
        }
        pthread_cond_wait(&db->cv, &db->mu);
    }
}

void db_release(struct db *db, struct db_conn *c)
{
    if (!c)
        return;
    if (c->drv->in_transaction(c->h)) {
        /* A caller forgot to commit: never hand a connection on inside a transaction. */
        fprintf(stderr, "stowaged: db connection released inside a transaction; rolling back\n");
        c->drv->rollback(c->h);
    }
    pthread_mutex_lock(&db->mu);
    c->in_use = 0;
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
}

/* ---- transactions ---- */

int db_begin(struct db_conn *c, struct st_err *e)
{
    return c->drv->begin(c->h) ? db_fail(c, e, "begin") : 0;
}

int db_commit(struct db_conn *c, struct st_err *e)
{
    if (c->drv->commit(c->h)) {
        db_fail(c, e, "commit");
        db_rollback(c);
        return -1;
    }
    return 0;
}

void db_rollback(struct db_conn *c)
{
    c->drv->rollback(c->h);
}

/* ---- group commit ---- */

/* Every member of the batch from m on that has not failed on its own fails with e. */
static void fail_from(struct st_group_member *m, const struct st_err *e)
{
    for (; m; m = m->next) {
        if (m->rc == 0) {
            m->rc = -1;
            m->err = *e;
        }
    }
}

/* One member in its own savepoint, so that its failure is undone alone. 0, or -1 when the
 * batch cannot go on (e says why): the transaction is gone or a member's changes could not
 * be set apart. */
static int run_member(struct db_conn *c, struct st_group_member *m, struct st_err *e)
{
    const struct db_driver *drv = c->drv;
    const struct db_write *w = m->ud;

    if (drv->savepoint(c->h, DB_SP_OPEN)) {
        m->rc = db_fail(c, &m->err, "savepoint");
        if (drv->in_transaction(c->h))
            return 0;
    } else if ((m->rc = w->fn(c, w->ud, &m->err)) == 0) {
        if (drv->savepoint(c->h, DB_SP_RELEASE) == 0)
            return 0;
        m->rc = db_fail(c, &m->err, "release savepoint");
    } else if (drv->in_transaction(c->h) && drv->savepoint(c->h, DB_SP_ROLLBACK) == 0 &&
               drv->savepoint(c->h, DB_SP_RELEASE) == 0) {
        return 0;
    }
    return st_fail(e, m->err.code == ST_OK ? ST_INTERNAL : m->err.code,
                   "the batch's transaction was lost: %s", m->err.msg);
}

/* A batch of db_group's members in one transaction (the group's step). */
static void run_batch(void *ctx, struct st_group_member *batch, size_t n)
{
    struct db *db = ctx;
    struct st_err e;
    struct db_conn *c = db_acquire(db);

    if (db_begin(c, &e)) {
        fail_from(batch, &e);
        goto out;
    }
    for (struct st_group_member *m = batch; m; m = m->next) {
        if (run_member(c, m, &e)) {
            /* every member's changes go with the transaction */
            fail_from(batch, &e);
            db_rollback(c);
            goto out;
        }
    }
    if (db_commit(c, &e)) {
        fail_from(batch, &e);
        goto out;
    }
    atomic_fetch_add(&db->commits, 1);
    atomic_fetch_add(&db->members, n);
out:
    db_release(db, c);
}

int db_group(struct db *db, db_member_fn fn, void *ud, struct st_err *e)
{
    struct db_write w = {fn, ud};
    return st_group_join(&db->group, &w, e);
}

void db_group_all(struct db *db, db_member_fn fn, void *const *uds, size_t n, int *rcs,
                  struct st_err *errs)
{
    struct st_group_member *ms = calloc(n ? n : 1, sizeof *ms);
    struct db_write *ws = calloc(n ? n : 1, sizeof *ws);

    if (!ms || !ws) { /* one at a time, then */
        for (size_t i = 0; i < n; i++)
            rcs[i] = db_group(db, fn, uds[i], &errs[i]);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        ws[i] = (struct db_write){fn, uds[i]};
        ms[i].ud = &ws[i];
    }
    st_group_join_all(&db->group, ms, n);
    for (size_t i = 0; i < n; i++) {
        if ((rcs[i] = ms[i].rc) != 0)
            errs[i] = ms[i].err;
    }
out:
    free(ms);
    free(ws);
}

void db_group_counts(struct db *db, uint64_t *commits, uint64_t *members)
{
    *commits = atomic_load(&db->commits);
    *members = atomic_load(&db->members);
}
