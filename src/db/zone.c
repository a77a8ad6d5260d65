/* zone.c — rows of zone (ZStack's named groups) and which backup storages are attached
 * to each (zone_attachment). Queries go through query.c over the allow-list below. */
#include "db_internal.h"

#include <stdio.h>
#include <string.h>

#define ZONE_COLS "uuid, name, description, state, created_at, last_op_at"

static const struct db_qfield zone_fields[] = {
    {"uuid", "uuid", 0},
    {"name", "name", 0},
    {"description", "description", 0},
    {"state", "state", 0},
    {"created_at", "created_at", 1},
    {"last_op_at", "last_op_at", 1},
};

static void read_zone(struct db_query *q, void *item)
{
    struct db_zone *z = item;
    db_col_text(q, 0, z->uuid, sizeof z->uuid);
    db_col_text(q, 1, z->name, sizeof z->name);
    db_col_text(q, 2, z->description, sizeof z->description);
    db_col_text(q, 3, z->state, sizeof z->state);
    z->created_at = db_col_int64(q, 4);
    z->last_op_at = db_col_int64(q, 5);
}

static const struct db_table zone_table = {
    "zone",
    ZONE_COLS,
    zone_fields,
    sizeof zone_fields / sizeof *zone_fields,
    " ORDER BY created_at",
    sizeof(struct db_zone),
    read_zone,
    "zones",
};

int db_zone_insert(struct db_conn *c, const struct db_zone *z, struct st_err *e)
{
    static const char sql[] = "INSERT INTO zone (" ZONE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, z->uuid);
    db_bind_text(q, 2, z->name);
    db_bind_text(q, 3, z->description);
    db_bind_text(q, 4, z->state);
    db_bind_int64(q, 5, z->created_at);
    db_bind_int64(q, 6, z->last_op_at);
    return db_exec_stmt(c, q, e, "insert zone");
}

int db_zone_get(struct db_conn *c, const char *uuid, struct db_zone *out, struct st_err *e)
{
    static const char sql[] = "SELECT " ZONE_COLS " FROM zone WHERE uuid = ?1";
    return db_one_by_text(c, sql, uuid, read_zone, out, "zone", e);
}

int db_zone_update(struct db_conn *c, const struct db_zone *z, struct st_err *e)
{
    static const char sql[] = "UPDATE zone SET name = ?2, description = ?3, state = ?4, "
                              "last_op_at = ?5 WHERE uuid = ?1";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, z->uuid);
    db_bind_text(q, 2, z->name);
    db_bind_text(q, 3, z->description);
    db_bind_text(q, 4, z->state);
    db_bind_int64(q, 5, z->last_op_at);
    return db_exec_changed(c, q, "update zone", "zone", z->uuid, e);
}

int db_zone_delete(struct db_conn *c, const char *uuid, struct st_err *e)
{
    static const char detach[] = "DELETE FROM zone_attachment WHERE zone_uuid = ?1";
    static const char sql[] = "DELETE FROM zone WHERE uuid = ?1";
    struct db_query *q = db_stmt_key(c, detach, uuid, e);
    if (!q || db_exec_stmt(c, q, e, "detach the zone's backup storages"))
        return -1;
    return db_exec_by_text(c, sql, uuid, "delete zone", "zone", e);
}

int db_zone_query(struct db_conn *c, const struct st_query *sq, struct db_zone **out, size_t *n,
                  int64_t *total, struct st_err *e)
{
    return db_table_query(c, &zone_table, sq, out, n, total, e);
}

int db_zone_attach(struct db_conn *c, const char *zone, const char *bs, struct st_err *e)
{
    static const char sql[] = "INSERT INTO zone_attachment (bs_uuid, zone_uuid) VALUES (?1, ?2)";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, bs);
    db_bind_text(q, 2, zone);
    if (db_exec_stmt(c, q, e, "attach backup storage") == 0)
        return 0;
    if (e->code == ST_EXISTS)
        st_fail(e, ST_EXISTS, "backup storage %s is already attached to zone %s", bs, zone);
    return -1;
}

int db_zone_detach(struct db_conn *c, const char *zone, const char *bs, struct st_err *e)
{
    static const char sql[] = "DELETE FROM zone_attachment WHERE bs_uuid = ?1 AND zone_uuid = ?2";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, bs);
    db_bind_text(q, 2, zone);
    if (db_exec_stmt(c, q, e, "detach backup storage"))
        return -1;
    if (db_changes(c) == 0)
        return st_fail(e, ST_NOT_FOUND, "backup storage %s is not attached to zone %s", bs, zone);
    return 0;
}

int db_zone_backup_storages(struct db_conn *c, const char *zone, char (**out)[DB_ID], size_t *n,
                            struct st_err *e)
{
    static const char sql[] =
        "SELECT bs_uuid FROM zone_attachment WHERE zone_uuid = ?1 ORDER BY bs_uuid";
    return db_collect_by_text(c, sql, zone, DB_ID, db_read_id, out, n,
                              "list a zone's backup storages", e);
}
