/* storage.c — rows of image_storage, host, volume and disk. */
#include "db_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int db_storage_insert(struct db_conn *c, const struct db_storage *s, struct st_err *e)
{
    static const char sql[] =
        "INSERT INTO image_storage (id, name, description, created_at) VALUES (?1, ?2, ?3, ?4)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, s->id);
    db_bind_text(st, 2, s->name);
    db_bind_text(st, 3, s->description);
    db_bind_int64(st, 4, s->created_at ? s->created_at : (int64_t)time(NULL));
    return db_exec_stmt(c, st, e, "insert image storage");
}

static void read_storage(struct db_query *st, void *item)
{
    struct db_storage *out = item;
    db_col_text(st, 0, out->id, sizeof out->id);
    db_col_text(st, 1, out->name, sizeof out->name);
    db_col_text(st, 2, out->description, sizeof out->description);
    out->created_at = db_col_int64(st, 3);
}

int db_storage_get(struct db_conn *c, const char *id, struct db_storage *out, struct st_err *e)
{
    static const char sql[] =
        "SELECT id, name, description, created_at FROM image_storage WHERE id = ?1";
    return db_one_by_text(c, sql, id, read_storage, out, "image storage", e);
}

int db_storage_list(struct db_conn *c, struct db_storage **out, size_t *n, struct st_err *e)
{
    static const char sql[] =
        "SELECT id, name, description, created_at FROM image_storage ORDER BY id";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    return db_collect(c, st, sizeof **out, read_storage, out, n, "list image storages", e);
}

int db_storage_update(struct db_conn *c, const struct db_storage *s, struct st_err *e)
{
    static const char sql[] = "UPDATE image_storage SET name = ?2, description = ?3 WHERE id = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, s->id);
    db_bind_text(st, 2, s->name);
    db_bind_text(st, 3, s->description);
    return db_exec_changed(c, st, "update image storage", "image storage", s->id, e);
}

int db_storage_delete(struct db_conn *c, const char *id, struct st_err *e)
{
    static const char sql[] = "DELETE FROM image_storage WHERE id = ?1";
    return db_exec_by_text(c, sql, id, "delete image storage", "image storage", e);
}

int db_host_add(struct db_conn *c, const char *storage_id, const char *host, struct st_err *e)
{
    static const char sql[] = "INSERT INTO host (image_storage_id, name) VALUES (?1, ?2) "
                              "ON CONFLICT (image_storage_id, name) DO NOTHING";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, storage_id);
    db_bind_text(st, 2, host);
    return db_exec_stmt(c, st, e, "add host");
}

static void read_host(struct db_query *st, void *item)
{
    db_col_text(st, 0, item, 256);
}

int db_host_list(struct db_conn *c, const char *storage_id, char (**out)[256], size_t *n,
                 struct st_err *e)
{
    static const char sql[] = "SELECT name FROM host WHERE image_storage_id = ?1 ORDER BY name";
    return db_collect_by_text(c, sql, storage_id, sizeof **out, read_host, out, n, "list hosts", e);
}

#define VOLUME_COLS                                                                                \
    "id, image_storage_id, kind, params, primary_disk_id, secondary_disk_id, status, "             \
    "status_msg, created_at"

static void read_volume(struct db_query *st, void *item)
{
    struct db_volume *v = item;
    db_col_text(st, 0, v->id, sizeof v->id);
    db_col_text(st, 1, v->storage_id, sizeof v->storage_id);
    db_col_text(st, 2, v->kind, sizeof v->kind);
    db_col_text(st, 3, v->params, sizeof v->params);
    db_col_text(st, 4, v->primary_disk_id, sizeof v->primary_disk_id);
    db_col_text(st, 5, v->secondary_disk_id, sizeof v->secondary_disk_id);
    db_col_text(st, 6, v->status, sizeof v->status);
    db_col_text(st, 7, v->status_msg, sizeof v->status_msg);
    v->created_at = db_col_int64(st, 8);
}

int db_volume_insert(struct db_conn *c, const struct db_volume *v, struct st_err *e)
{
    static const char sql[] =
        "INSERT INTO volume (" VOLUME_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'unknown', '', ?7)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, v->id);
    db_bind_text(st, 2, v->storage_id);
    db_bind_text(st, 3, v->kind);
    db_bind_text(st, 4, v->params[0] ? v->params : "{}");
    db_bind_text(st, 5, v->primary_disk_id);
    db_bind_text(st, 6, v->secondary_disk_id);
    db_bind_int64(st, 7, v->created_at ? v->created_at : (int64_t)time(NULL));
    return db_exec_stmt(c, st, e, "insert volume");
}

int db_volume_set_params(struct db_conn *c, const char *id, const char *params_json,
                         struct st_err *e)
{
    static const char sql[] = "UPDATE volume SET params = ?2 WHERE id = ?1";
    return db_set_text(c, sql, id, params_json, "set volume params", "volume", e);
}

int db_volume_get(struct db_conn *c, const char *id, struct db_volume *out, struct st_err *e)
{
    static const char sql[] = "SELECT " VOLUME_COLS " FROM volume WHERE id = ?1";
    return db_one_by_text(c, sql, id, read_volume, out, "volume", e);
}

int db_volume_list(struct db_conn *c, const char *storage_id, struct db_volume **out, size_t *n,
                   struct st_err *e)
{
    static const char sql_all[] = "SELECT " VOLUME_COLS " FROM volume ORDER BY id";
    static const char sql_one[] =
        "SELECT " VOLUME_COLS " FROM volume WHERE image_storage_id = ?1 ORDER BY id";
    struct db_query *st = db_stmt(c, storage_id ? sql_one : sql_all, e);
    if (!st)
        return -1;
    if (storage_id)
        db_bind_text(st, 1, storage_id);
    return db_collect(c, st, sizeof **out, read_volume, out, n, "list volumes", e);
}

int db_volume_set_status(struct db_conn *c, const char *id, const char *status, const char *msg,
                         struct st_err *e)
{
    static const char sql[] = "UPDATE volume SET status = ?2, status_msg = ?3, "
                              "probed_at = ?4 WHERE id = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, status);
    db_bind_text(st, 3, msg);
    db_bind_int64(st, 4, (int64_t)time(NULL));
    return db_exec_stmt(c, st, e, "set volume status");
}

int db_volume_set_disks(struct db_conn *c, const char *id, const char *primary,
                        const char *secondary, struct st_err *e)
{
    static const char sql[] =
        "UPDATE volume SET primary_disk_id = ?2, secondary_disk_id = ?3 WHERE id = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, id);
    db_bind_text(st, 2, primary);
    db_bind_text(st, 3, secondary);
    return db_exec_stmt(c, st, e, "set volume disks");
}

int db_disk_replace_all(struct db_conn *c, const struct db_disk *d, size_t n, struct st_err *e)
{
    static const char del[] = "DELETE FROM disk";
    /* A disk seen twice in one probe keeps its last sighting, as a replace would. */
    static const char ins[] =
        "INSERT INTO disk (physical_disk_id, vendor, product_number, host_device, volume_id) "
        "VALUES (?1, ?2, ?3, ?4, (SELECT id FROM volume WHERE id = ?5)) "
        "ON CONFLICT (physical_disk_id) DO UPDATE SET vendor = excluded.vendor, "
        "product_number = excluded.product_number, host_device = excluded.host_device, "
        "volume_id = excluded.volume_id";
    struct db_query *st = db_stmt(c, del, e);
    if (!st || db_exec_stmt(c, st, e, "clear disks"))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!(st = db_stmt(c, ins, e)))
            return -1;
        db_bind_text(st, 1, d[i].id);
        db_bind_text(st, 2, d[i].vendor);
        db_bind_text(st, 3, d[i].product_number);
        db_bind_text(st, 4, d[i].host_device);
        db_bind_text(st, 5, d[i].volume_id);
        if (db_exec_stmt(c, st, e, "insert disk"))
            return -1;
    }
    return 0;
}
