/* db_internal.h — what the table files of src/db/ share: the connection and its statement cache. */
#ifndef STOWAGE_DB_INTERNAL_H
#define STOWAGE_DB_INTERNAL_H

#include <sqlite3.h>

#include "stowage/db.h"

#define DB_STMT_CACHE 96

struct db_conn {
    sqlite3 *h;
    struct {
        const char *sql; /* a string literal: its address is the key */
        sqlite3_stmt *stmt;
    } cache[DB_STMT_CACHE];
    int n_cached;
    int in_use;
};

/* A prepared statement for a literal SQL string, reset and with bindings cleared. */
sqlite3_stmt *db_stmt(struct db_conn *c, const char *sql, struct st_err *e);
/* Fill e from the connection's last error; returns -1. Constraint errors map to ST_EXISTS. */
int db_fail(struct db_conn *c, struct st_err *e, const char *what);
/* Run a statement that returns no rows; 0 or -1. */
int db_exec_stmt(struct db_conn *c, sqlite3_stmt *s, struct st_err *e, const char *what);
/* The same for an UPDATE/DELETE of one row: ST_NOT_FOUND "<kind> '<key>' not found" when it
 * touched none. */
int db_exec_changed(struct db_conn *c, sqlite3_stmt *s, const char *what, const char *kind,
                    const char *key, struct st_err *e);
void db_bind_text(sqlite3_stmt *s, int idx, const char *v);
void db_col_text(sqlite3_stmt *s, int col, char *out, size_t outlen);
/* Grow *arr (of elem-sized items) so that index n fits; 0 or -1. */
int db_grow(void **arr, size_t *cap, size_t n, size_t elem);

typedef void (*db_read_fn)(sqlite3_stmt *s, void *item);
/* Step a bound statement to its end, reading each row with read into a malloc'd array of
 * elem-sized items (*out, *n). The statement is reset either way. */
int db_collect(struct db_conn *c, sqlite3_stmt *s, size_t elem, db_read_fn read, void *out,
               size_t *n, const char *what, struct st_err *e);
/* Step once: a row is read into item (0); no row is ST_NOT_FOUND with the message
 * "<kind> '<key>' not found" (-1). */
int db_one(struct db_conn *c, sqlite3_stmt *s, db_read_fn read, void *item, const char *kind,
           const char *key, struct st_err *e);

#endif
