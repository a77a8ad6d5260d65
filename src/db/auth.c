/* auth.c — rows of token and user. Only hashes of secrets are stored. */
#include "db_internal.h"

#include <time.h>

int db_token_insert(struct db_conn *c, const struct db_token *t, const char *hash_hex,
                    struct st_err *e)
{
    static const char sql[] = "INSERT INTO token (id, hash, role, owner, kind, created_at, "
                              "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, t->id);
    db_bind_text(st, 2, hash_hex);
    db_bind_text(st, 3, t->role);
    db_bind_text(st, 4, t->owner);
    db_bind_text(st, 5, t->kind);
    db_bind_int64(st, 6, (int64_t)time(NULL));
    db_bind_int64(st, 7, t->expires_at);
    return db_exec_stmt(c, st, e, "insert token");
}

int db_token_find(struct db_conn *c, const char *hash_hex, int64_t now, struct db_token *out,
                  struct st_err *e)
{
    static const char sql[] = "SELECT id, role, owner, kind, expires_at FROM token "
                              "WHERE hash = ?1 AND (expires_at = 0 OR expires_at > ?2)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, hash_hex);
    db_bind_int64(st, 2, now);
    enum db_step rc = db_step(st);
    if (rc == DB_ROW) {
        db_col_text(st, 0, out->id, sizeof out->id);
        db_col_text(st, 1, out->role, sizeof out->role);
        db_col_text(st, 2, out->owner, sizeof out->owner);
        db_col_text(st, 3, out->kind, sizeof out->kind);
        out->expires_at = db_col_int64(st, 4);
        db_reset(st);
        return 0;
    }
    if (rc != DB_DONE)
        return db_fail_stmt(c, st, e, "find token");
    db_reset(st);
    return st_fail(e, ST_UNAUTHORIZED, "unknown or expired token");
}

int db_token_delete(struct db_conn *c, const char *hash_hex, struct st_err *e)
{
    static const char sql[] = "DELETE FROM token WHERE hash = ?1";
    struct db_query *st = db_stmt_key(c, sql, hash_hex, e);
    return st ? db_exec_stmt(c, st, e, "delete token") : -1;
}

int db_token_count(struct db_conn *c, const char *role, int64_t *n, struct st_err *e)
{
    static const char sql[] = "SELECT count(*) FROM token WHERE role = ?1 AND kind = 'token'";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, role);
    if (db_step(st) != DB_ROW)
        return db_fail_stmt(c, st, e, "count tokens");
    *n = db_col_int64(st, 0);
    db_reset(st);
    return 0;
}

int db_user_upsert(struct db_conn *c, const char *name, const char *password_hash, const char *role,
                   struct st_err *e)
{
    static const char sql[] =
        "INSERT INTO \"user\" (name, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, "
        "role = excluded.role";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, name);
    db_bind_text(st, 2, password_hash);
    db_bind_text(st, 3, role);
    db_bind_int64(st, 4, (int64_t)time(NULL));
    return db_exec_stmt(c, st, e, "upsert user");
}

int db_user_get(struct db_conn *c, const char *name, char *password_hash, size_t hash_len,
                char *role, size_t role_len, struct st_err *e)
{
    static const char sql[] = "SELECT password_hash, role FROM \"user\" WHERE name = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, name);
    enum db_step rc = db_step(st);
    if (rc == DB_ROW) {
        db_col_text(st, 0, password_hash, hash_len);
        db_col_text(st, 1, role, role_len);
        db_reset(st);
        return 0;
    }
    if (rc != DB_DONE)
        return db_fail_stmt(c, st, e, "get user");
    db_reset(st);
    return st_fail(e, ST_UNAUTHORIZED, "unknown user or wrong password");
}

int db_user_set_digest(struct db_conn *c, const char *name, const char *digest_hash,
                       struct st_err *e)
{
    static const char sql[] = "UPDATE \"user\" SET digest_hash = ?2 WHERE name = ?1";
    return db_set_text(c, sql, name, digest_hash, "set user digest", "user", e);
}

int db_user_get_digest(struct db_conn *c, const char *name, char *out, size_t len, struct st_err *e)
{
    static const char sql[] = "SELECT digest_hash FROM \"user\" WHERE name = ?1";
    return db_get_text(c, sql, name, out, len, "user", e);
}
