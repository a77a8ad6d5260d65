/* db_internal.h — the statement layer the table files of src/db/ share, and the contract an
 * engine's driver fills.
 *
 * The table files (storage.c, image.c, task.c, auth.c) prepare literal SQL with db_stmt(),
 * bind, step and read columns through the helpers below and never see the engine. db.c keeps
 * what every engine shares: the pool, the per-connection statement cache, transactions and
 * the migration bookkeeping. An engine is one file filling struct db_driver (sqlite.c; the
 * only file that includes its client library). A new engine is one more such file and one
 * more row in db.c's driver table.
 *
 * The contract a driver keeps:
 * - SQL. Table files write SQL that SQLite and PostgreSQL both accept: numbered placeholders
 *   ?1..?N (an engine spelling them otherwise, e.g. $1, has its prepare rewrite them outside
 *   quoted text); ON CONFLICT (…) DO NOTHING / DO UPDATE SET x = excluded.x, never
 *   INSERT OR …; RETURNING; times bound by the caller as unix seconds, never an engine's
 *   clock function; the table "user" quoted. Tables listed in insertion order (task) order
 *   by a column named rowid: SQLite's own, and another engine's schema declares it (an
 *   identity column). Whatever cannot be portable — pragmas, the write-lock BEGIN, the DDL
 *   of the migrations — lives in the driver.
 * - Types. Parameters are text, int64 or NULL; bound text is not copied and stays valid
 *   until the statement is reset. Every integer column reads as int64 (SQL NULL as 0),
 *   text as a NUL-ended string (NULL for SQL NULL) valid until the next step or reset. A
 *   bind that fails (index out of range) makes the next step fail with that cause.
 * - Statements. prepare() is per connection and db.c caches the result for the connection's
 *   life (persistent is a hint that it will be reused); reset() also clears the bindings; a
 *   statement that returns rows (RETURNING too) completes when stepped to DB_DONE.
 * - Errors. After any failed call on a connection, last_error() names the cause until the
 *   next call on it: a unique, check or not-null violation is ST_EXISTS, a foreign key is
 *   ST_IN_USE, busy/locked/serialization failure (after the driver's own wait, ~10 s) is
 *   ST_UNAVAILABLE, a full disk ST_NO_SPACE, anything else ST_INTERNAL.
 * - Transactions. begin() takes the write lock at once (SQLite BEGIN IMMEDIATE): no other
 *   writer commits between a transaction's first read and its commit, which the callers'
 *   read-then-write relies on. A failed commit leaves the transaction for rollback();
 *   rollback() outside a transaction does nothing; in_transaction() tells which (a failure the
 *   engine answers by rolling the whole transaction back, a full disk or an I/O error, is
 *   seen there). savepoint() nests one level inside the transaction: the group commit runs
 *   each member in its own.
 * - Opening. open() once per catalogue (target: for SQLite the file), conn_open() per pooled
 *   connection, tune() on each before use: durability and locking settings (WAL,
 *   synchronous=FULL, foreign keys on, busy timeout). migrations is the engine's own list of
 *   numbered scripts; exec_script() runs one (several statements, no parameters) and db.c
 *   applies the missing ones in order, each in its own transaction, recorded in
 *   schema_version. */
#ifndef STOWAGE_DB_INTERNAL_H
#define STOWAGE_DB_INTERNAL_H

#include <stdint.h>

#include "stowage/db.h"

#define DB_STMT_CACHE 96

/* A prepared statement. A driver's own statement struct starts with this one. */
struct db_query {
    const struct db_driver *drv;
};

enum db_step { DB_ERROR = -1, DB_DONE = 0, DB_ROW = 1 };

enum db_savepoint { DB_SP_OPEN, DB_SP_RELEASE, DB_SP_ROLLBACK };

struct db_driver {
    const char *name;
    const struct db_migration *migrations; /* ends with {0, NULL, NULL} */

    int (*open)(const char *target, void **shared, struct st_err *e);
    void (*close)(void *shared);
    int (*conn_open)(void *shared, void **h, struct st_err *e);
    void (*conn_close)(void *h);
    /* 0, or -1 with last_error set (as are the rest taking h or a query) */
    int (*tune)(void *h);
    int (*exec_script)(void *h, const char *sql);
    /* Foreign-key enforcement on or off for the connection (outside a transaction), and a
     * check that no row breaks one (0, or -1 naming a table): a migration whose first line
     * is "-- rebuilds tables" runs with enforcement off and is checked before it commits. */
    int (*foreign_keys)(void *h, int on);
    int (*foreign_key_check)(void *h);

    struct db_query *(*prepare)(void *h, const char *sql, int persistent);
    void (*finalize)(struct db_query *q);
    void (*bind_text)(struct db_query *q, int idx, const char *v);
    void (*bind_int64)(struct db_query *q, int idx, int64_t v);
    void (*bind_null)(struct db_query *q, int idx);
    enum db_step (*step)(struct db_query *q);
    const char *(*col_text)(struct db_query *q, int col);
    int64_t (*col_int64)(struct db_query *q, int col);
    int (*col_is_null)(struct db_query *q, int col);
    void (*reset)(struct db_query *q);
    int64_t (*changes)(void *h); /* rows touched by the last completed statement */

    int (*begin)(void *h);
    int (*commit)(void *h);
    void (*rollback)(void *h);
    /* Inside a transaction: open a savepoint, release it, or roll back to it (and keep it
     * open for the release that follows). 0 or -1. */
    int (*savepoint)(void *h, enum db_savepoint op);
    int (*in_transaction)(void *h);
    enum st_code (*last_error)(void *h, const char **msg);
};

extern const struct db_driver db_sqlite_driver;

struct db_conn {
    const struct db_driver *drv;
    void *h;
    struct {
        const char *sql; /* a string literal: its address is the key */
        struct db_query *q;
    } cache[DB_STMT_CACHE];
    int n_cached;
    int in_use;
};

/* A prepared statement for a literal SQL string, reset and with bindings cleared. */
struct db_query *db_stmt(struct db_conn *c, const char *sql, struct st_err *e);
/* Fill e from the connection's last error, coded as the contract says; returns -1. */
int db_fail(struct db_conn *c, struct st_err *e, const char *what);
/* The same for a statement whose step failed, which is then reset: the error is read first,
 * as a reset may clear it. */
int db_fail_stmt(struct db_conn *c, struct db_query *q, struct st_err *e, const char *what);
/* Run a statement that returns no rows; 0 or -1. */
int db_exec_stmt(struct db_conn *c, struct db_query *q, struct st_err *e, const char *what);
/* The same for an UPDATE/DELETE of one row: ST_NOT_FOUND "<kind> '<key>' not found" when it
 * touched none. */
int db_exec_changed(struct db_conn *c, struct db_query *q, const char *what, const char *kind,
                    const char *key, struct st_err *e);
/* Rows touched by the connection's last completed statement. */
int64_t db_changes(struct db_conn *c);
/* NULL binds the empty string: the schema's text columns are NOT NULL DEFAULT ''. */
void db_bind_text(struct db_query *q, int idx, const char *v);
void db_col_text(struct db_query *q, int col, char *out, size_t outlen);
/* Grow *arr (of elem-sized items) so that index n fits; 0 or -1. */
int db_grow(void **arr, size_t *cap, size_t n, size_t elem);

static inline void db_bind_int64(struct db_query *q, int idx, int64_t v)
{
    q->drv->bind_int64(q, idx, v);
}

static inline void db_bind_null(struct db_query *q, int idx)
{
    q->drv->bind_null(q, idx);
}

static inline enum db_step db_step(struct db_query *q)
{
    return q->drv->step(q);
}

static inline void db_reset(struct db_query *q)
{
    q->drv->reset(q);
}

static inline int64_t db_col_int64(struct db_query *q, int col)
{
    return q->drv->col_int64(q, col);
}

/* The column's text as the driver holds it (NULL for SQL NULL), until the next step. */
static inline const char *db_col_str(struct db_query *q, int col)
{
    return q->drv->col_text(q, col);
}

static inline int db_col_is_null(struct db_query *q, int col)
{
    return q->drv->col_is_null(q, col);
}

typedef void (*db_read_fn)(struct db_query *q, void *item);
/* Step a bound statement to its end, reading each row with read into a malloc'd array of
 * elem-sized items (*out, *n). The statement is reset either way. */
int db_collect(struct db_conn *c, struct db_query *q, size_t elem, db_read_fn read, void *out,
               size_t *n, const char *what, struct st_err *e);
/* Step once: a row is read into item (0); no row is ST_NOT_FOUND with the message
 * "<kind> '<key>' not found" (-1). */
int db_one(struct db_conn *c, struct db_query *q, db_read_fn read, void *item, const char *kind,
           const char *key, struct st_err *e);

/* The same for statements whose ?1 is one text, key (the one a not-found message names):
 * db_stmt with ?1 bound; db_collect, db_one or db_exec_changed of it; and an UPDATE whose
 * ?2 is one more text. Each returns what the call it ends in returns. */
struct db_query *db_stmt_key(struct db_conn *c, const char *sql, const char *key, struct st_err *e);
int db_collect_by_text(struct db_conn *c, const char *sql, const char *key, size_t elem,
                       db_read_fn read, void *out, size_t *n, const char *what, struct st_err *e);
int db_one_by_text(struct db_conn *c, const char *sql, const char *key, db_read_fn read, void *item,
                   const char *kind, struct st_err *e);
int db_exec_by_text(struct db_conn *c, const char *sql, const char *key, const char *what,
                    const char *kind, struct st_err *e);
int db_set_text(struct db_conn *c, const char *sql, const char *key, const char *value,
                const char *what, const char *kind, struct st_err *e);
/* A read_fn for a first column that is an id, into a char[DB_ID]. */
void db_read_id(struct db_query *q, void *item);
/* The one text column of the row that sql selects by ?1 = key, into out (len bytes). */
int db_get_text(struct db_conn *c, const char *sql, const char *key, char *out, size_t len,
                const char *kind, struct st_err *e);

/* ---- queries (query.c): a struct st_query as SQL over one table ---- */

/* A field a resource may be queried and sorted by: its neutral name, its column, and
 * whether the column holds integers (values must then be integers). */
struct db_qfield {
    const char *name;
    const char *column;
    int integer;
};

#define DB_WHERE_MAX_BINDS 128

/* " WHERE …" with numbered placeholders from ?1, and what binds them. */
struct db_where {
    char sql[4096];
    int n_binds;
    struct {
        const char *text; /* into vals, or NULL: integer */
        int64_t integer;
    } binds[DB_WHERE_MAX_BINDS];
    char *vals; /* copies of the list items (owned) */
};

/* Build w (and an " ORDER BY …" in order, "" when q names no sort) from q over allow;
 * ST_INVALID naming a field outside allow or a value of the wrong type. */
int db_where_build(const struct db_qfield *allow, size_t n_allow, const struct st_query *q,
                   struct db_where *w, char *order, size_t order_len, struct st_err *e);
void db_where_bind(struct db_query *s, const struct db_where *w);
void db_where_free(struct db_where *w);
/* A queryable table: its columns as read rows them, its allow-list, its own order. */
struct db_table {
    const char *name;
    const char *cols;
    const struct db_qfield *fields;
    size_t n_fields;
    const char *order; /* " ORDER BY …" when q names no sort; rowid breaks ties */
    size_t elem;       /* a row's struct */
    db_read_fn read;
    const char *what; /* "backup storages", for messages */
};
/* The rows of t that q selects, in q's window (*out malloc'd, *n), and how many match in
 * all (*total, before the window; total may be NULL). out NULL: the count alone. */
int db_table_query(struct db_conn *c, const struct db_table *t, const struct st_query *q, void *out,
                   size_t *n, int64_t *total, struct st_err *e);
/* A statement for SQL built at run time (not cached); finalize it with db_stmt_free. */
struct db_query *db_stmt_dynamic(struct db_conn *c, const char *sql, struct st_err *e);
void db_stmt_free(struct db_query *q);

#endif
