/* sqlite.c — the SQLite driver: the one file of stowage that speaks sqlite3_*.
 *
 * One database file, opened once per pooled connection (no shared cache, no mutex: a
 * connection is used by one thread at a time). Each connection prepares its BEGIN IMMEDIATE
 * and COMMIT once, as the table files' statements are. ?NNN placeholders and rowid are
 * SQLite's own, so prepare passes the SQL through untouched.
 *
 * Checkpoints. SQLite's autocheckpoint copies the log into the database (and fsyncs both)
 * inside whichever COMMIT passed 1000 pages: in a group commit that stalls every member of
 * the batch. The connections' WAL hook replaces it: past the same size it wakes a thread
 * of the driver's own, which runs a passive checkpoint on a connection of its own (FULL,
 * as every connection), never blocking a reader or a writer. */
#include "db_internal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_TIMEOUT_MS 10000
#define CHECKPOINT_PAGES 1000 /* SQLite's own autocheckpoint threshold */

/* What the connections of one database file share: its path and the checkpointer. */
struct sq_shared {
    char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started, due, quit;
};

struct sq_conn {
    sqlite3 *h;
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *sp[3]; /* SAVEPOINT, RELEASE, ROLLBACK TO, by enum db_savepoint */
    int pending;         /* a failure SQLite does not record on the handle (bind, malloc) */
};

struct sq_query {
    struct db_query q; /* first: db.c and the table files see only this */
    sqlite3_stmt *s;
    struct sq_conn *c;
    int bind_rc; /* the first failed bind since the last reset */
};

static struct sq_query *sq(struct db_query *q)
{
    return (struct sq_query *)q;
}

/* ---- checkpoints, off the commits' path ---- */

static void checkpoint(sqlite3 **h, const char *path)
{
    if (!*h) {
        if (sqlite3_open_v2(path, h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK) {
            fprintf(stderr, "stowaged: checkpoint: cannot open %s: %s\n", path,
                    *h ? sqlite3_errmsg(*h) : "out of memory");
            sqlite3_close(*h);
            *h = NULL;
            return;
        }
        sqlite3_busy_timeout(*h, BUSY_TIMEOUT_MS);
        sqlite3_exec(*h, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    }
    int rc = sqlite3_wal_checkpoint_v2(*h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        fprintf(stderr, "stowaged: checkpoint of %s: %s\n", path, sqlite3_errmsg(*h));
}

static void *checkpointer(void *arg)
{
    struct sq_shared *s = arg;
    sqlite3 *h = NULL;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->due && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->quit)
            break;
        s->due = 0;
        pthread_mutex_unlock(&s->mu);
        checkpoint(&h, s->path);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    sqlite3_close(h);
    return NULL;
}

/* After every commit, on the committing connection: the log's size in pages. */
static int on_wal_commit(void *arg, sqlite3 *h, const char *db, int pages)
{
    struct sq_shared *s = arg;
    (void)h;
    (void)db;
    if (pages < CHECKPOINT_PAGES)
        return SQLITE_OK;
    pthread_mutex_lock(&s->mu);
    if (!s->started && !s->quit && pthread_create(&s->thread, NULL, checkpointer, s) == 0)
        s->started = 1;
    s->due = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return SQLITE_OK;
}

static int sq_open(const char *target, void **shared, struct st_err *e)
{
    struct sq_shared *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(target))) {
        free(s);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    *shared = s;
    return 0;
}

static void sq_close(void *shared)
{
    struct sq_shared *s = shared;
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->path);
    free(s);
}

static void sq_conn_close(void *h)
{
    struct sq_conn *c = h;
    if (!c)
        return;
    sqlite3_finalize(c->begin);
    sqlite3_finalize(c->commit);
    for (int i = 0; i < 3; i++)
        sqlite3_finalize(c->sp[i]);
    sqlite3_close(c->h);
    free(c);
}

static int prepare_tx(struct sq_conn *c, struct st_err *e)
{
    static const char *const sp[3] = {"SAVEPOINT member", "RELEASE member", "ROLLBACK TO member"};
    sqlite3_stmt **out[5] = {&c->begin, &c->commit, &c->sp[0], &c->sp[1], &c->sp[2]};
    const char *sql[5] = {"BEGIN IMMEDIATE", "COMMIT", sp[0], sp[1], sp[2]};

    for (int i = 0; i < 5; i++)
        if (sqlite3_prepare_v3(c->h, sql[i], -1, SQLITE_PREPARE_PERSISTENT, out[i], NULL) !=
            SQLITE_OK)
            return st_fail(e, ST_INTERNAL, "sqlite: %s", sqlite3_errmsg(c->h));
    return 0;
}

static int sq_conn_open(void *shared, void **h, struct st_err *e)
{
    struct sq_shared *s = shared;
    const char *path = s->path;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    struct sq_conn *c = calloc(1, sizeof *c);

    if (!c)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (sqlite3_open_v2(path, &c->h, flags, NULL) != SQLITE_OK) {
        st_fail(e, ST_INTERNAL, "cannot open database %s: %s", path,
                c->h ? sqlite3_errmsg(c->h) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(c->h, 1);
    sqlite3_wal_hook(c->h, on_wal_commit, s); /* replaces the autocheckpoint */
    if (prepare_tx(c, e))
        goto fail;
    *h = c;
    return 0;
fail:
    sq_conn_close(c);
    return -1;
}

static int sq_tune(void *h)
{
    struct sq_conn *c = h;
    c->pending = SQLITE_OK;
    sqlite3_busy_timeout(c->h, BUSY_TIMEOUT_MS);
    return sqlite3_exec(c->h,
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                        NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : -1;
}

static int sq_exec_script(void *h, const char *sql)
{
    struct sq_conn *c = h;
    c->pending = SQLITE_OK;
    return sqlite3_exec(c->h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int sq_foreign_keys(void *h, int on)
{
    return sq_exec_script(h, on ? "PRAGMA foreign_keys = ON" : "PRAGMA foreign_keys = OFF");
}

/* Any row that PRAGMA foreign_key_check returns breaks a foreign key. */
static int sq_foreign_key_check(void *h)
{
    struct sq_conn *c = h;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(c->h, "PRAGMA foreign_key_check", -1, &q, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE)
        return 0;
    c->pending = rc == SQLITE_ROW ? SQLITE_CONSTRAINT : rc;
    return -1;
}

static struct db_query *sq_prepare(void *h, const char *sql, int persistent)
{
    struct sq_conn *c = h;
    struct sq_query *q = calloc(1, sizeof *q);

    c->pending = SQLITE_OK;
    if (!q) {
        c->pending = SQLITE_NOMEM;
        return NULL;
    }
    if (sqlite3_prepare_v3(c->h, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &q->s,
                           NULL) != SQLITE_OK) {
        free(q);
        return NULL;
    }
    q->q.drv = &db_sqlite_driver;
    q->c = c;
    return &q->q;
}

static void sq_finalize(struct db_query *q)
{
    if (!q)
        return;
    sqlite3_finalize(sq(q)->s);
    free(sq(q));
}

static void bound(struct sq_query *q, int rc)
{
    if (rc != SQLITE_OK && q->bind_rc == SQLITE_OK)
        q->bind_rc = rc;
}

/* SQLITE_STATIC: the contract keeps bound text alive until the reset. */
static void sq_bind_text(struct db_query *q, int idx, const char *v)
{
    bound(sq(q), sqlite3_bind_text(sq(q)->s, idx, v, -1, SQLITE_STATIC));
}

static void sq_bind_int64(struct db_query *q, int idx, int64_t v)
{
    bound(sq(q), sqlite3_bind_int64(sq(q)->s, idx, (sqlite3_int64)v));
}

static void sq_bind_null(struct db_query *q, int idx)
{
    bound(sq(q), sqlite3_bind_null(sq(q)->s, idx));
}

static enum db_step sq_step(struct db_query *q)
{
    struct sq_query *s = sq(q);
    s->c->pending = s->bind_rc;
    if (s->bind_rc != SQLITE_OK)
        return DB_ERROR;
    int rc = sqlite3_step(s->s);
    return rc == SQLITE_ROW ? DB_ROW : rc == SQLITE_DONE ? DB_DONE : DB_ERROR;
}

static const char *sq_col_text(struct db_query *q, int col)
{
    return (const char *)sqlite3_column_text(sq(q)->s, col);
}

static int64_t sq_col_int64(struct db_query *q, int col)
{
    return sqlite3_column_int64(sq(q)->s, col);
}

static int sq_col_is_null(struct db_query *q, int col)
{
    return sqlite3_column_type(sq(q)->s, col) == SQLITE_NULL;
}

static void sq_reset(struct db_query *q)
{
    sqlite3_reset(sq(q)->s);
    sqlite3_clear_bindings(sq(q)->s);
    sq(q)->bind_rc = SQLITE_OK;
}

static int64_t sq_changes(void *h)
{
    return sqlite3_changes(((struct sq_conn *)h)->h);
}

/* Step a prepared BEGIN/COMMIT; the reset keeps the error on the handle for last_error. */
static int run_tx(struct sq_conn *c, sqlite3_stmt *s)
{
    c->pending = SQLITE_OK;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_begin(void *h)
{
    return run_tx(h, ((struct sq_conn *)h)->begin);
}

static int sq_commit(void *h)
{
    return run_tx(h, ((struct sq_conn *)h)->commit);
}

static int sq_savepoint(void *h, enum db_savepoint op)
{
    return run_tx(h, ((struct sq_conn *)h)->sp[op]);
}

static void sq_rollback(void *h)
{
    struct sq_conn *c = h;
    if (!sqlite3_get_autocommit(c->h))
        sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
}

static int sq_in_transaction(void *h)
{
    return !sqlite3_get_autocommit(((struct sq_conn *)h)->h);
}

static enum st_code code_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return rc == SQLITE_CONSTRAINT_FOREIGNKEY || rc == SQLITE_CONSTRAINT_TRIGGER ? ST_IN_USE
                                                                                     : ST_EXISTS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ST_UNAVAILABLE;
    case SQLITE_FULL:
        return ST_NO_SPACE;
    default:
        return ST_INTERNAL;
    }
}

static enum st_code sq_last_error(void *h, const char **msg)
{
    struct sq_conn *c = h;
    if (c->pending != SQLITE_OK) {
        *msg = sqlite3_errstr(c->pending);
        return code_of(c->pending);
    }
    *msg = sqlite3_errmsg(c->h);
    return code_of(sqlite3_extended_errcode(c->h));
}

const struct db_driver db_sqlite_driver = {
    .name = "sqlite",
    .migrations = db_migrations,
    .open = sq_open,
    .close = sq_close,
    .conn_open = sq_conn_open,
    .conn_close = sq_conn_close,
    .tune = sq_tune,
    .exec_script = sq_exec_script,
    .foreign_keys = sq_foreign_keys,
    .foreign_key_check = sq_foreign_key_check,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .bind_text = sq_bind_text,
    .bind_int64 = sq_bind_int64,
    .bind_null = sq_bind_null,
    .step = sq_step,
    .col_text = sq_col_text,
    .col_int64 = sq_col_int64,
    .col_is_null = sq_col_is_null,
    .reset = sq_reset,
    .changes = sq_changes,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .in_transaction = sq_in_transaction,
    .last_error = sq_last_error,
};
