/* db.c — opening the catalogue: pragmas, migrations, the connection pool, statement cache. */
#include "db_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct db {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_conn *conns;
    unsigned n;
    int schema_version;
};

int db_fail(struct db_conn *c, struct st_err *e, const char *what)
{
    int rc = sqlite3_extended_errcode(c->h);
    enum st_code code = ST_INTERNAL;

    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        code = (rc == SQLITE_CONSTRAINT_FOREIGNKEY || rc == SQLITE_CONSTRAINT_TRIGGER) ? ST_IN_USE
                                                                                       : ST_EXISTS;
    else if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        code = ST_UNAVAILABLE;
    else if ((rc & 0xff) == SQLITE_FULL)
        code = ST_NO_SPACE;
    return st_fail(e, code, "%s: %s", what, sqlite3_errmsg(c->h));
}

sqlite3_stmt *db_stmt(struct db_conn *c, const char *sql, struct st_err *e)
{
    for (int i = 0; i < c->n_cached; i++) {
        if (c->cache[i].sql == sql) {
            sqlite3_reset(c->cache[i].stmt);
            sqlite3_clear_bindings(c->cache[i].stmt);
            return c->cache[i].stmt;
        }
    }
    sqlite3_stmt *s = NULL;
    unsigned flags = c->n_cached < DB_STMT_CACHE ? SQLITE_PREPARE_PERSISTENT : 0;
    if (sqlite3_prepare_v3(c->h, sql, -1, flags, &s, NULL) != SQLITE_OK) {
        db_fail(c, e, "prepare");
        return NULL;
    }
    if (c->n_cached < DB_STMT_CACHE) {
        c->cache[c->n_cached].sql = sql;
        c->cache[c->n_cached].stmt = s;
        c->n_cached++;
    } else {
        /* Cache full: a bug in the caller's count of statements, not fatal. */
        fprintf(stderr, "stowaged: db statement cache full\n");
    }
    return s;
}

int db_exec_stmt(struct db_conn *c, sqlite3_stmt *s, struct st_err *e, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        db_fail(c, e, what);
        sqlite3_reset(s);
        return -1;
    }
    sqlite3_reset(s);
    return 0;
}

int db_exec_changed(struct db_conn *c, sqlite3_stmt *s, const char *what, const char *kind,
                    const char *key, struct st_err *e)
{
    if (db_exec_stmt(c, s, e, what))
        return -1;
    if (sqlite3_changes(c->h) == 0)
        return st_fail(e, ST_NOT_FOUND, "%s '%s' not found", kind, key);
    return 0;
}

void db_bind_text(sqlite3_stmt *s, int idx, const char *v)
{
    sqlite3_bind_text(s, idx, v ? v : "", -1, SQLITE_STATIC);
}

void db_col_text(sqlite3_stmt *s, int col, char *out, size_t outlen)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
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

int db_collect(struct db_conn *c, sqlite3_stmt *s, size_t elem, db_read_fn read, void *out,
               size_t *n, const char *what, struct st_err *e)
{
    char *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (db_grow((void **)&arr, &cap, cnt, elem)) {
            sqlite3_reset(s);
            free(arr);
            return st_fail(e, ST_INTERNAL, "out of memory");
        }
        read(s, arr + cnt++ * elem);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        free(arr);
        return db_fail(c, e, what);
    }
    *(void **)out = arr;
    *n = cnt;
    return 0;
}

int db_one(struct db_conn *c, sqlite3_stmt *s, db_read_fn read, void *item, const char *kind,
           const char *key, struct st_err *e)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        read(s, item);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc != SQLITE_DONE)
        return db_fail(c, e, kind);
    return st_fail(e, ST_NOT_FOUND, "%s '%s' not found", kind, key);
}

static int exec(sqlite3 *h, const char *sql, struct st_err *e)
{
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        st_fail(e, ST_INTERNAL, "sqlite: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int open_conn(sqlite3 **out, const char *path, struct st_err *e)
{
    sqlite3 *h = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;

    if (sqlite3_open_v2(path, &h, flags, NULL) != SQLITE_OK) {
        st_fail(e, ST_INTERNAL, "cannot open database %s: %s", path,
                h ? sqlite3_errmsg(h) : "out of memory");
        sqlite3_close(h);
        return -1;
    }
    sqlite3_extended_result_codes(h, 1);
    sqlite3_busy_timeout(h, 10000);
    if (exec(h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", e)) {
        sqlite3_close(h);
        return -1;
    }
    *out = h;
    return 0;
}

static int current_version(sqlite3 *h)
{
    sqlite3_stmt *s = NULL;
    int v = 0;
    if (sqlite3_prepare_v2(h, "SELECT max(version) FROM schema_version", -1, &s, NULL) ==
            SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Apply every migration newer than the recorded version, each in its own transaction. */
static int migrate(sqlite3 *h, int *version, struct st_err *e)
{
    if (exec(h,
             "CREATE TABLE IF NOT EXISTS schema_version ("
             " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
             e))
        return -1;
    int v = current_version(h);
    for (const struct db_migration *m = db_migrations; m->sql; m++) {
        if (m->version <= v)
            continue;
        char rec[256];
        snprintf(rec, sizeof rec,
                 "INSERT INTO schema_version VALUES (%d, '%s', strftime('%%s','now'));", m->version,
                 m->name);
        if (exec(h, "BEGIN IMMEDIATE", e))
            return -1;
        if (exec(h, m->sql, e) || exec(h, rec, e)) {
            char why[sizeof e->msg];
            snprintf(why, sizeof why, "%s", e ? e->msg : "");
            exec(h, "ROLLBACK", NULL);
            return st_fail(e, ST_INTERNAL, "migration %s failed: %s", m->name, why);
        }
        if (exec(h, "COMMIT", e))
            return -1;
        v = m->version;
    }
    *version = v;
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
    for (unsigned i = 0; i < pool_size; i++) {
        if (open_conn(&db->conns[i].h, path, e))
            goto fail;
        db->n++;
    }
    if (migrate(db->conns[0].h, &db->schema_version, e))
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
            sqlite3_finalize(db->conns[i].cache[k].stmt);
        sqlite3_close(db->conns[i].h);
    }
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->cv);
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
    if (!sqlite3_get_autocommit(c->h)) {
        /* A caller forgot to commit: never hand a connection on inside a transaction. */
        fprintf(stderr, "stowaged: db connection released inside a transaction; rolling back\n");
        sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_lock(&db->mu);
    c->in_use = 0;
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
}

int db_begin(struct db_conn *c, struct st_err *e)
{
    sqlite3_stmt *s = db_stmt(c, "BEGIN IMMEDIATE", e);
    return s ? db_exec_stmt(c, s, e, "begin") : -1;
}

int db_commit(struct db_conn *c, struct st_err *e)
{
    sqlite3_stmt *s = db_stmt(c, "COMMIT", e);
    if (!s || db_exec_stmt(c, s, e, "commit")) {
        db_rollback(c);
        return -1;
    }
    return 0;
}

void db_rollback(struct db_conn *c)
{
    if (!sqlite3_get_autocommit(c->h))
        sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
}
