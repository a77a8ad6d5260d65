/* backup.c — rows of backup_storage, its zones and the image backups on it. Queries go
 * through query.c over the allow-list below: the neutral names a dialect may filter and
 * sort by. */
#include "db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BS_COLS                                                                                    \
    "uuid, name, description, type, url, kind, params_json, hostname, username, ssh_port, "        \
    "state, status, status_msg, total, available, created_at, last_op_at"

static const struct db_qfield bs_fields[] = {
    {"uuid", "uuid", 0},
    {"name", "name", 0},
    {"description", "description", 0},
    {"type", "type", 0},
    {"url", "url", 0},
    {"hostname", "hostname", 0},
    {"username", "username", 0},
    {"ssh_port", "ssh_port", 1},
    {"state", "state", 0},
    {"status", "status", 0},
    {"total", "total", 1},
    {"available", "available", 1},
    {"created_at", "created_at", 1},
    {"last_op_at", "last_op_at", 1},
    {"fsid", "fsid", 0}, /* a Ceph backup storage's cluster and pool */
    {"pool", "pool", 0},
};

static void read_bs(struct db_query *q, void *item)
{
    struct db_backup_storage *b = item;
    db_col_text(q, 0, b->uuid, sizeof b->uuid);
    db_col_text(q, 1, b->name, sizeof b->name);
    db_col_text(q, 2, b->description, sizeof b->description);
    db_col_text(q, 3, b->type, sizeof b->type);
    db_col_text(q, 4, b->url, sizeof b->url);
    db_col_text(q, 5, b->kind, sizeof b->kind);
    db_col_text(q, 6, b->params, sizeof b->params);
    db_col_text(q, 7, b->hostname, sizeof b->hostname);
    db_col_text(q, 8, b->username, sizeof b->username);
    b->ssh_port = db_col_int64(q, 9);
    db_col_text(q, 10, b->state, sizeof b->state);
    db_col_text(q, 11, b->status, sizeof b->status);
    db_col_text(q, 12, b->status_msg, sizeof b->status_msg);
    b->total = db_col_int64(q, 13);
    b->available = db_col_int64(q, 14);
    b->created_at = db_col_int64(q, 15);
    b->last_op_at = db_col_int64(q, 16);
}

int db_bs_insert(struct db_conn *c, const struct db_backup_storage *b, struct st_err *e)
{
    static const char sql[] = "INSERT INTO backup_storage (" BS_COLS ") VALUES (?1, ?2, ?3, ?4, "
                              "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, b->uuid);
    db_bind_text(q, 2, b->name);
    db_bind_text(q, 3, b->description);
    db_bind_text(q, 4, b->type);
    db_bind_text(q, 5, b->url);
    db_bind_text(q, 6, b->kind);
    db_bind_text(q, 7, b->params);
    db_bind_text(q, 8, b->hostname);
    db_bind_text(q, 9, b->username);
    db_bind_int64(q, 10, b->ssh_port);
    db_bind_text(q, 11, b->state);
    db_bind_text(q, 12, b->status);
    db_bind_text(q, 13, b->status_msg);
    db_bind_int64(q, 14, b->total);
    db_bind_int64(q, 15, b->available);
    db_bind_int64(q, 16, b->created_at);
    db_bind_int64(q, 17, b->last_op_at);
    return db_exec_stmt(c, q, e, "insert backup storage");
}

int db_bs_get(struct db_conn *c, const char *uuid, struct db_backup_storage *out, struct st_err *e)
{
    static const char sql[] = "SELECT " BS_COLS " FROM backup_storage WHERE uuid = ?1";
    return db_one_by_text(c, sql, uuid, read_bs, out, "backup storage", e);
}

int db_bs_update(struct db_conn *c, const struct db_backup_storage *b, struct st_err *e)
{
    static const char sql[] =
        "UPDATE backup_storage SET name = ?2, description = ?3, url = ?4, params_json = ?5, "
        "hostname = ?6, username = ?7, ssh_port = ?8, state = ?9, status = ?10, "
        "status_msg = ?11, total = ?12, available = ?13, last_op_at = ?14 WHERE uuid = ?1";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, b->uuid);
    db_bind_text(q, 2, b->name);
    db_bind_text(q, 3, b->description);
    db_bind_text(q, 4, b->url);
    db_bind_text(q, 5, b->params);
    db_bind_text(q, 6, b->hostname);
    db_bind_text(q, 7, b->username);
    db_bind_int64(q, 8, b->ssh_port);
    db_bind_text(q, 9, b->state);
    db_bind_text(q, 10, b->status);
    db_bind_text(q, 11, b->status_msg);
    db_bind_int64(q, 12, b->total);
    db_bind_int64(q, 13, b->available);
    db_bind_int64(q, 14, b->last_op_at);
    return db_exec_changed(c, q, "update backup storage", "backup storage", b->uuid, e);
}

int db_bs_set_status(struct db_conn *c, const struct db_backup_storage *b, struct st_err *e)
{
    static const char sql[] = "UPDATE backup_storage SET status = ?2, status_msg = ?3, "
                              "total = ?4, available = ?5 WHERE uuid = ?1";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, b->uuid);
    db_bind_text(q, 2, b->status);
    db_bind_text(q, 3, b->status_msg);
    db_bind_int64(q, 4, b->total);
    db_bind_int64(q, 5, b->available);
    return db_exec_changed(c, q, "record backup storage status", "backup storage", b->uuid, e);
}

int db_bs_delete(struct db_conn *c, const char *uuid, struct st_err *e)
{
    static const char del_backups[] = "DELETE FROM image_backup WHERE bs_uuid = ?1";
    static const char del_images[] =
        "DELETE FROM backup_image WHERE uuid NOT IN (SELECT image_uuid FROM image_backup)";
    static const char sql[] = "DELETE FROM backup_storage WHERE uuid = ?1";
    struct db_query *q = db_stmt_key(c, del_backups, uuid, e);
    if (!q || db_exec_stmt(c, q, e, "delete image backups"))
        return -1;
    /* an image whose last copy was there goes with it */
    if (!(q = db_stmt(c, del_images, e)) || db_exec_stmt(c, q, e, "delete backup images"))
        return -1;
    return db_exec_by_text(c, sql, uuid, "delete backup storage", "backup storage", e);
}

static const struct db_table bs_table = {
    "backup_storage",
    BS_COLS,
    bs_fields,
    sizeof bs_fields / sizeof *bs_fields,
    " ORDER BY created_at",
    sizeof(struct db_backup_storage),
    read_bs,
    "backup storages",
};

int db_bs_query(struct db_conn *c, const struct st_query *sq, struct db_backup_storage **out,
                size_t *n, int64_t *total, struct st_err *e)
{
    return db_table_query(c, &bs_table, sq, out, n, total, e);
}

int db_bs_backup_count(struct db_conn *c, const char *uuid, int64_t *n, struct st_err *e)
{
    static const char sql[] =
        "SELECT count(*) FROM image_backup WHERE bs_uuid = ?1 AND status <> 'Deleted'";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, uuid);
    if (db_step(q) != DB_ROW)
        return db_fail_stmt(c, q, e, "count image backups");
    *n = db_col_int64(q, 0);
    db_reset(q);
    return 0;
}

int db_bs_zones(struct db_conn *c, const char *uuid, char (**out)[DB_ID], size_t *n,
                struct st_err *e)
{
    static const char sql[] =
        "SELECT zone_uuid FROM zone_attachment WHERE bs_uuid = ?1 ORDER BY zone_uuid";
    return db_collect_by_text(c, sql, uuid, DB_ID, db_read_id, out, n, "list zones", e);
}
