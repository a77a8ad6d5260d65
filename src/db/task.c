/* task.c — rows of task: queued, claimed by a worker, completed with a result.
 *
 * Each state change is one statement, so it is atomic without an explicit
 * transaction; the WHERE clauses name the state a row must be in, so a cancel
 * and a claim racing for the same row cannot both win. */
#include "db_internal.h"

#include <stdlib.h>
#include <string.h>

#define TASK_COLS                                                                                  \
    "id, type, state, result, progress, result_msg, owner, created_at, started_at, finished_at, "  \
    "result_json"

static void read_task(struct db_query *st, void *item)
{
    struct db_task *t = item;
    db_col_text(st, 0, t->id, sizeof t->id);
    db_col_text(st, 1, t->type, sizeof t->type);
    db_col_text(st, 2, t->state, sizeof t->state);
    db_col_text(st, 3, t->result, sizeof t->result);
    t->progress = (int)db_col_int64(st, 4);
    db_col_text(st, 5, t->result_msg, sizeof t->result_msg);
    db_col_text(st, 6, t->owner, sizeof t->owner);
    t->created_at = db_col_int64(st, 7);
    t->started_at = db_col_int64(st, 8);
    t->finished_at = db_col_int64(st, 9);
    db_col_text(st, 10, t->result_json, sizeof t->result_json);
}

int db_task_insert(struct db_conn *c, const struct db_task *t, const char *params_json,
                   struct st_err *e)
{
    static const char sql[] =
        "INSERT INTO task (id, type, params_json, owner, created_at, state, started_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, t->id);
    db_bind_text(st, 2, t->type);
    db_bind_text(st, 3, params_json);
    db_bind_text(st, 4, t->owner);
    db_bind_int64(st, 5, t->created_at);
    db_bind_text(st, 6, strcmp(t->state, "running") == 0 ? "running" : "queued");
    db_bind_int64(st, 7, strcmp(t->state, "running") == 0 ? t->started_at : 0);
    return db_exec_stmt(c, st, e, "insert task");
}

int db_task_get(struct db_conn *c, const char *id, struct db_task *out, struct st_err *e)
{
    static const char sql[] = "SELECT " TASK_COLS " FROM task WHERE id = ?1";
    return db_one_by_text(c, sql, id, read_task, out, "task", e);
}

int db_task_list(struct db_conn *c, struct db_task **out, size_t *n, struct st_err *e)
{
    static const char sql[] = "SELECT " TASK_COLS " FROM task ORDER BY created_at, rowid";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    return db_collect(c, st, sizeof **out, read_task, out, n, "list tasks", e);
}

int db_task_claim(struct db_conn *c, int64_t now, struct db_task *out, char **params_json,
                  struct st_err *e)
{
    static const char sql[] =
        "UPDATE task SET state = 'running', started_at = ?1 WHERE state = 'queued' AND id = "
        "(SELECT id FROM task WHERE state = 'queued' ORDER BY created_at, rowid LIMIT 1) "
        "RETURNING " TASK_COLS ", params_json";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_int64(st, 1, now);
    enum db_step rc = db_step(st);
    if (rc == DB_ERROR)
        return db_fail_stmt(c, st, e, "claim task");
    if (rc == DB_DONE) {
        db_reset(st);
        return st_fail(e, ST_NOT_FOUND, "no queued task");
    }
    read_task(st, out);
    const char *p = db_col_str(st, 11);
    *params_json = strdup(p ? p : "{}");
    /* Stepping to the end completes the statement (and its implicit transaction). */
    while ((rc = db_step(st)) == DB_ROW)
        ;
    if (rc != DB_DONE) {
        free(*params_json);
        *params_json = NULL;
        return db_fail_stmt(c, st, e, "claim task");
    }
    db_reset(st);
    if (!*params_json)
        return st_fail(e, ST_INTERNAL, "out of memory");
    return 0;
}

int db_task_params(struct db_conn *c, const char *id, char **params_json, struct st_err *e)
{
    static const char sql[] = "SELECT params_json FROM task WHERE id = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, id);
    enum db_step rc = db_step(st);
    if (rc == DB_ERROR)
        return db_fail_stmt(c, st, e, "task params");
    const char *p = rc == DB_ROW ? db_col_str(st, 0) : NULL;
    *params_json = rc == DB_ROW ? strdup(p ? p : "{}") : NULL;
    db_reset(st);
    if (rc == DB_DONE)
        return st_fail(e, ST_NOT_FOUND, "task '%s' not found", id);
    return *params_json ? 0 : st_fail(e, ST_INTERNAL, "out of memory");
}

int db_task_set_progress(struct db_conn *c, const char *id, int progress, struct st_err *e)
{
    static const char sql[] = "UPDATE task SET progress = ?2 WHERE id = ?1 AND state = 'running'";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, id);
    db_bind_int64(st, 2, progress < 0 ? 0 : progress > 100 ? 100 : progress);
    return db_exec_stmt(c, st, e, "set task progress");
}

int db_task_finish(struct db_conn *c, const char *id, const char *result, const char *msg,
                   const char *result_json, int64_t now, struct st_err *e)
{
    static const char sql[] =
        "UPDATE task SET state = 'completed', result = ?2, result_msg = ?3, result_json = ?4, "
        "finished_at = ?5, progress = CASE WHEN ?2 = 'success' THEN 100 ELSE progress END "
        "WHERE id = ?1 AND state = 'running'";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, result);
    db_bind_text(st, 3, msg);
    db_bind_text(st, 4, result_json ? result_json : "{}");
    db_bind_int64(st, 5, now);
    if (db_exec_stmt(c, st, e, "finish task"))
        return -1;
    if (db_changes(c) == 0)
        return st_fail(e, ST_CONFLICT, "task '%s' is not running", id);
    return 0;
}

int db_task_revoke_queued(struct db_conn *c, const char *id, const char *msg, int64_t now,
                          int *changed, struct st_err *e)
{
    static const char sql[] =
        "UPDATE task SET state = 'completed', result = 'revoked', "
        "result_msg = ?2, finished_at = ?3 WHERE id = ?1 AND state = 'queued'";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, msg);
    db_bind_int64(st, 3, now);
    if (db_exec_stmt(c, st, e, "revoke task"))
        return -1;
    *changed = db_changes(c) > 0;
    return 0;
}

int db_task_prune(struct db_conn *c, int64_t before, struct st_err *e)
{
    static const char sql[] = "DELETE FROM task WHERE state = 'completed' AND finished_at < ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_int64(st, 1, before);
    return db_exec_stmt(c, st, e, "prune tasks");
}

/* Deleted images keep their rows (names may be reused, recovery needs them) and those
 * rows hold a foreign key on the volume: they go with it. Caller holds a transaction. */
int db_volume_drop(struct db_conn *c, const char *id, struct st_err *e)
{
    static const char images[] = "DELETE FROM image WHERE volume_id = ?1 AND status = 'deleted'";
    static const char volume[] = "DELETE FROM volume WHERE id = ?1";
    struct db_query *st = db_stmt_key(c, images, id, e);
    if (!st || db_exec_stmt(c, st, e, "forget deleted images"))
        return -1;
    return db_exec_by_text(c, volume, id, "delete volume", "volume", e);
}
