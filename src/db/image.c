/* image.c — rows of image and clone. */
#include "db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define IMAGE_COLS                                                                                 \
    "uuid, name, volume_id, format, virtual_size, actual_size, status, checksum_sha256, "          \
    "owner, guest_id, parent_uuid, created_at, updated_at, generation"
/* What SELECTs read: the row and its metadata (inserts take the defaults of 001/006). */
#define IMAGE_READ                                                                                 \
    IMAGE_COLS ", alias, version, description, tags, ostype, access, resize, deploy, dc_bound"

static void read_image(struct db_query *st, void *item)
{
    struct db_image *im = item;
    db_col_text(st, 0, im->uuid, sizeof im->uuid);
    db_col_text(st, 1, im->name, sizeof im->name);
    db_col_text(st, 2, im->volume_id, sizeof im->volume_id);
    db_col_text(st, 3, im->format, sizeof im->format);
    im->virtual_size = (uint64_t)db_col_int64(st, 4);
    im->actual_size = (uint64_t)db_col_int64(st, 5);
    db_col_text(st, 6, im->status, sizeof im->status);
    db_col_text(st, 7, im->sha256, sizeof im->sha256);
    db_col_text(st, 8, im->owner, sizeof im->owner);
    db_col_text(st, 9, im->guest_id, sizeof im->guest_id);
    db_col_text(st, 10, im->parent_uuid, sizeof im->parent_uuid);
    im->created_at = db_col_int64(st, 11);
    im->updated_at = db_col_int64(st, 12);
    im->generation = db_col_int64(st, 13);
    db_col_text(st, 14, im->meta.alias, sizeof im->meta.alias);
    db_col_text(st, 15, im->meta.version, sizeof im->meta.version);
    db_col_text(st, 16, im->meta.description, sizeof im->meta.description);
    db_col_text(st, 17, im->meta.tags, sizeof im->meta.tags);
    im->meta.ostype = (int)db_col_int64(st, 18);
    im->meta.access = (int)db_col_int64(st, 19);
    im->meta.resize = db_col_int64(st, 20) != 0;
    im->meta.deploy = db_col_int64(st, 21) != 0;
    im->meta.dc_bound = db_col_int64(st, 22) != 0;
    im->storage_id[0] = '\0';
}

static void read_image_listed(struct db_query *st, void *item)
{
    struct db_image *im = item;
    read_image(st, item);
    db_col_text(st, 23, im->storage_id, sizeof im->storage_id);
}

int db_image_list_live(struct db_conn *c, struct db_image **out, size_t *n, struct st_err *e)
{
    static const char sql[] =
        "SELECT " IMAGE_READ ", (SELECT v.image_storage_id FROM volume v WHERE v.id = volume_id) "
        "FROM image WHERE status != 'deleted' ORDER BY name";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    return db_collect(c, st, sizeof **out, read_image_listed, out, n, "list images", e);
}

int db_image_set_meta(struct db_conn *c, const char *uuid, const struct db_image_meta *m,
                      struct st_err *e)
{
    static const char sql[] =
        "UPDATE image SET alias = ?2, version = ?3, description = ?4, tags = ?5, access = ?6, "
        "resize = ?7, deploy = ?8, dc_bound = ?9, updated_at = ?10, ostype = ?11, "
        "generation = generation + 1 WHERE uuid = ?1 AND status != 'deleted'";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, uuid);
    db_bind_text(st, 2, m->alias);
    db_bind_text(st, 3, m->version);
    db_bind_text(st, 4, m->description);
    db_bind_text(st, 5, m->tags);
    db_bind_int64(st, 6, m->access);
    db_bind_int64(st, 7, m->resize);
    db_bind_int64(st, 8, m->deploy);
    db_bind_int64(st, 9, m->dc_bound);
    db_bind_int64(st, 10, (int64_t)time(NULL));
    db_bind_int64(st, 11, m->ostype);
    return db_exec_changed(c, st, "set image metadata", "image", uuid, e);
}

int db_image_alias_taken(struct db_conn *c, const char *alias, const char *version,
                         const char *except_uuid, char *name, struct st_err *e)
{
    static const char sql[] =
        "SELECT name FROM image WHERE lower(CASE alias WHEN '' THEN name ELSE alias END) = "
        "lower(?1) AND "
        "version = ?2 AND uuid != ?3 AND status != 'deleted' LIMIT 1";
    struct db_query *st = db_stmt(c, sql, e);
    enum db_step rc;
    if (!st)
        return -1;
    db_bind_text(st, 1, alias);
    db_bind_text(st, 2, version);
    db_bind_text(st, 3, except_uuid);
    rc = db_step(st);
    if (rc == DB_ROW)
        db_col_text(st, 0, name, DB_ID);
    if (rc == DB_ERROR)
        return db_fail_stmt(c, st, e, "check alias");
    db_reset(st);
    return rc == DB_ROW;
}

int db_image_list_volume(struct db_conn *c, const char *volume_id, struct db_image **out, size_t *n,
                         struct st_err *e)
{
    static const char sql[] = "SELECT " IMAGE_READ " FROM image WHERE volume_id = ?1 "
                              "AND status = 'active' ORDER BY name";
    return db_collect_by_text(c, sql, volume_id, sizeof **out, read_image, out, n, "list images",
                              e);
}

int db_image_insert(struct db_conn *c, const struct db_image *im, struct st_err *e)
{
    static const char sql[] =
        "INSERT INTO image (" IMAGE_COLS ", size_mb) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 1, (?5 + 1048575) / 1048576)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, im->uuid);
    db_bind_text(st, 2, im->name);
    db_bind_text(st, 3, im->volume_id);
    db_bind_text(st, 4, im->format);
    db_bind_int64(st, 5, (int64_t)im->virtual_size);
    db_bind_int64(st, 6, (int64_t)im->actual_size);
    db_bind_text(st, 7, im->status);
    db_bind_text(st, 8, im->sha256);
    db_bind_text(st, 9, im->owner);
    db_bind_text(st, 10, im->guest_id);
    db_bind_text(st, 11, im->parent_uuid);
    db_bind_int64(st, 12, im->created_at ? im->created_at : (int64_t)time(NULL));
    return db_exec_stmt(c, st, e, "insert image");
}

#define CLONE_COLS                                                                                 \
    "c.clone_id, c.image_uuid, c.guest_id, c.volume_id, c.path, c.format, c.created_at, i.name"

static void read_clone(struct db_query *st, void *item)
{
    struct db_clone *cl = item;
    db_col_text(st, 0, cl->clone_id, sizeof cl->clone_id);
    db_col_text(st, 1, cl->image_uuid, sizeof cl->image_uuid);
    db_col_text(st, 2, cl->guest_id, sizeof cl->guest_id);
    db_col_text(st, 3, cl->volume_id, sizeof cl->volume_id);
    db_col_text(st, 4, cl->path, sizeof cl->path);
    db_col_text(st, 5, cl->format, sizeof cl->format);
    cl->created_at = db_col_int64(st, 6);
    db_col_text(st, 7, cl->image_name, sizeof cl->image_name);
}

int db_clone_list_volume(struct db_conn *c, const char *volume_id, struct db_clone **out, size_t *n,
                         struct st_err *e)
{
    static const char sql[] = "SELECT " CLONE_COLS " FROM clone c JOIN image i ON "
                              "i.uuid = c.image_uuid WHERE c.volume_id = ?1 ORDER BY c.clone_id";
    return db_collect_by_text(c, sql, volume_id, sizeof **out, read_clone, out, n, "list clones",
                              e);
}

int db_clone_list_guest(struct db_conn *c, const char *guest_id, struct db_clone **out, size_t *n,
                        struct st_err *e)
{
    static const char sql[] = "SELECT " CLONE_COLS " FROM clone c JOIN image i ON "
                              "i.uuid = c.image_uuid WHERE c.guest_id = ?1 ORDER BY "
                              "c.created_at, c.rowid";
    return db_collect_by_text(c, sql, guest_id, sizeof **out, read_clone, out, n, "list clones", e);
}

int db_clone_list_image(struct db_conn *c, const char *uuid, struct db_clone **out, size_t *n,
                        struct st_err *e)
{
    static const char sql[] = "SELECT " CLONE_COLS " FROM clone c JOIN image i ON "
                              "i.uuid = c.image_uuid WHERE c.image_uuid = ?1 ORDER BY c.clone_id";
    return db_collect_by_text(c, sql, uuid, sizeof **out, read_clone, out, n, "list clones", e);
}

int db_image_get(struct db_conn *c, const char *uuid, struct db_image *out, struct st_err *e)
{
    static const char sql[] = "SELECT " IMAGE_READ " FROM image WHERE uuid = ?1";
    return db_one_by_text(c, sql, uuid, read_image, out, "image", e);
}

int db_image_by_name(struct db_conn *c, const char *name, struct db_image *out, struct st_err *e)
{
    static const char sql[] =
        "SELECT " IMAGE_READ " FROM image WHERE name = ?1 AND status != 'deleted'";
    return db_one_by_text(c, sql, name, read_image, out, "image", e);
}

int db_image_list_volume_all(struct db_conn *c, const char *volume_id, struct db_image **out,
                             size_t *n, struct st_err *e)
{
    static const char sql[] = "SELECT " IMAGE_READ " FROM image WHERE volume_id = ?1";
    return db_collect_by_text(c, sql, volume_id, sizeof **out, read_image, out, n, "list images",
                              e);
}

int db_image_set_data(struct db_conn *c, const char *uuid, const char *format,
                      uint64_t virtual_size, uint64_t actual_size, const char *sha256,
                      struct st_err *e)
{
    static const char sql[] = "UPDATE image SET format = ?2, virtual_size = ?3, actual_size = ?4, "
                              "size_mb = (?3 + 1048575) / 1048576, checksum_sha256 = ?5, "
                              "updated_at = ?6, generation = generation + 1 WHERE uuid = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, uuid);
    db_bind_text(st, 2, format);
    db_bind_int64(st, 3, (int64_t)virtual_size);
    db_bind_int64(st, 4, (int64_t)actual_size);
    db_bind_text(st, 5, sha256);
    db_bind_int64(st, 6, (int64_t)time(NULL));
    return db_exec_changed(c, st, "set image data", "image", uuid, e);
}

int db_image_set_status(struct db_conn *c, const char *uuid, const char *status, struct st_err *e)
{
    static const char sql[] = "UPDATE image SET status = ?2, updated_at = ?3, "
                              "generation = generation + 1 WHERE uuid = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, uuid);
    db_bind_text(st, 2, status);
    db_bind_int64(st, 3, (int64_t)time(NULL));
    return db_exec_changed(c, st, "set image status", "image", uuid, e);
}

int db_image_set_guest(struct db_conn *c, const char *uuid, const char *guest_id, struct st_err *e)
{
    static const char sql[] = "UPDATE image SET guest_id = ?2, updated_at = ?3, "
                              "generation = generation + 1 WHERE uuid = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, uuid);
    db_bind_text(st, 2, guest_id);
    db_bind_int64(st, 3, (int64_t)time(NULL));
    return db_exec_changed(c, st, "set image guest", "image", uuid, e);
}

int db_image_touch(struct db_conn *c, const char *uuid, struct st_err *e)
{
    static const char sql[] = "UPDATE image SET updated_at = ?2 WHERE uuid = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, uuid);
    db_bind_int64(st, 2, (int64_t)time(NULL));
    return db_exec_changed(c, st, "touch image", "image", uuid, e);
}

int db_image_set_upload(struct db_conn *c, const char *uuid, uint64_t staging_ino, uint64_t total,
                        struct st_err *e)
{
    static const char sql[] =
        "UPDATE image SET staging_ino = ?2, upload_total = ?3 WHERE uuid = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, uuid);
    db_bind_int64(st, 2, (int64_t)staging_ino);
    db_bind_int64(st, 3, total == UINT64_MAX ? -1 : (int64_t)total);
    return db_exec_changed(c, st, "record upload", "image", uuid, e);
}

static void read_upload(struct db_query *st, void *item)
{
    uint64_t *v = item;
    int64_t total = db_col_int64(st, 1);
    v[0] = (uint64_t)db_col_int64(st, 0);
    v[1] = total < 0 ? UINT64_MAX : (uint64_t)total;
}

int db_image_get_upload(struct db_conn *c, const char *uuid, uint64_t *staging_ino, uint64_t *total,
                        struct st_err *e)
{
    static const char sql[] = "SELECT staging_ino, upload_total FROM image WHERE uuid = ?1";
    uint64_t v[2];
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, uuid);
    if (db_one(c, st, read_upload, v, "image", uuid, e))
        return -1;
    *staging_ino = v[0];
    *total = v[1];
    return 0;
}

int db_image_delete_row(struct db_conn *c, const char *uuid, struct st_err *e)
{
    static const char sql[] = "DELETE FROM image WHERE uuid = ?1";
    return db_exec_by_text(c, sql, uuid, "delete image row", "image", e);
}

int db_volume_usage(struct db_conn *c, const char *volume_id, int64_t *images, int64_t *clones,
                    struct st_err *e)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM image WHERE volume_id = ?1 AND status != 'deleted'), "
        "(SELECT count(*) FROM clone WHERE volume_id = ?1)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, volume_id);
    if (db_step(st) != DB_ROW)
        return db_fail_stmt(c, st, e, "volume usage");
    *images = db_col_int64(st, 0);
    *clones = db_col_int64(st, 1);
    db_reset(st);
    return 0;
}

int db_clone_insert(struct db_conn *c, const struct db_clone *cl, struct st_err *e)
{
    static const char sql[] = "INSERT INTO clone (clone_id, image_uuid, guest_id, volume_id, "
                              "path, format, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, cl->clone_id);
    db_bind_text(st, 2, cl->image_uuid);
    db_bind_text(st, 3, cl->guest_id);
    db_bind_text(st, 4, cl->volume_id);
    db_bind_text(st, 5, cl->path);
    db_bind_text(st, 6, cl->format);
    db_bind_int64(st, 7, cl->created_at ? cl->created_at : (int64_t)time(NULL));
    if (db_exec_stmt(c, st, e, "insert clone")) {
        if (e && e->code == ST_EXISTS)
            st_fail(e, ST_EXISTS, "clone '%s' already exists", cl->clone_id);
        return -1;
    }
    return 0;
}

int db_clone_get(struct db_conn *c, const char *clone_id, struct db_clone *out, struct st_err *e)
{
    static const char sql[] = "SELECT " CLONE_COLS " FROM clone c JOIN image i ON "
                              "i.uuid = c.image_uuid WHERE c.clone_id = ?1";
    return db_one_by_text(c, sql, clone_id, read_clone, out, "clone", e);
}

int db_clone_delete(struct db_conn *c, const char *clone_id, struct st_err *e)
{
    static const char sql[] = "DELETE FROM clone WHERE clone_id = ?1";
    return db_exec_by_text(c, sql, clone_id, "delete clone", "clone", e);
}

int db_clone_count_image(struct db_conn *c, const char *uuid, int64_t *n, char *names,
                         size_t names_len, struct st_err *e)
{
    static const char sql[] = "SELECT clone_id FROM clone WHERE image_uuid = ?1 ORDER BY clone_id";
    struct db_query *st = db_stmt(c, sql, e);
    size_t off = 0;
    enum db_step rc;

    if (!st)
        return -1;
    db_bind_text(st, 1, uuid);
    *n = 0;
    if (names_len)
        names[0] = '\0';
    while ((rc = db_step(st)) == DB_ROW) {
        const char *id = db_col_str(st, 0);
        if (off < names_len && *n < 5) {
            int w = snprintf(names + off, names_len - off, "%s%s", *n ? ", " : "", id ? id : "");
            off += w > 0 ? (size_t)w : 0;
        }
        (*n)++;
    }
    if (rc != DB_DONE)
        return db_fail_stmt(c, st, e, "count clones");
    db_reset(st);
    return 0;
}

/* ---- where an adopted image's file came from (migration 006) ---- */

int db_image_set_origin(struct db_conn *c, const char *uuid, const char *origin, struct st_err *e)
{
    static const char sql[] = "UPDATE image SET origin = ?2 WHERE uuid = ?1";
    return db_set_text(c, sql, uuid, origin, "record the image's origin", "image", e);
}

int db_image_get_origin(struct db_conn *c, const char *uuid, char *out, size_t len,
                        struct st_err *e)
{
    return db_get_text(c, "SELECT origin FROM image WHERE uuid = ?1", uuid, out, len, "image", e);
}

/* ---- what an adoption records, and a release under way (migration 013) ---- */

int db_image_set_adopted(struct db_conn *c, const char *uuid, const char *origin,
                         const char *description, const char *properties, struct st_err *e)
{
    static const char sql[] =
        "UPDATE image SET origin = ?2, description = ?3, properties = ?4 WHERE uuid = ?1";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, uuid);
    db_bind_text(st, 2, origin);
    db_bind_text(st, 3, description);
    db_bind_text(st, 4, properties);
    return db_exec_changed(c, st, "record the adopted image", "image", uuid, e);
}

int db_image_get_properties(struct db_conn *c, const char *uuid, char *out, size_t len,
                            struct st_err *e)
{
    static const char sql[] = "SELECT properties FROM image WHERE uuid = ?1";
    return db_get_text(c, sql, uuid, out, len, "image", e);
}

int db_image_set_releasing(struct db_conn *c, const char *uuid, const char *to, struct st_err *e)
{
    static const char sql[] = "UPDATE image SET releasing = ?2 != '', "
                              "origin = CASE ?2 WHEN '' THEN origin ELSE ?2 END WHERE uuid = ?1";
    return db_set_text(c, sql, uuid, to, "mark the image's release", "image", e);
}

static void read_release(struct db_query *st, void *item)
{
    struct db_release *r = item;
    db_col_text(st, 0, r->uuid, sizeof r->uuid);
    db_col_text(st, 1, r->origin, sizeof r->origin);
}

int db_image_list_releasing(struct db_conn *c, const char *volume_id, struct db_release **out,
                            size_t *n, struct st_err *e)
{
    static const char sql[] =
        "SELECT uuid, origin FROM image WHERE volume_id = ?1 AND releasing != 0";
    return db_collect_by_text(c, sql, volume_id, sizeof **out, read_release, out, n,
                              "list releases", e);
}

/* ---- an image's SHA-1 for IMGAPI manifests (migration 008) ---- */

int db_image_set_sha1(struct db_conn *c, const char *uuid, const char *sha1, struct st_err *e)
{
    static const char sql[] = "UPDATE image SET sha1 = ?2 WHERE uuid = ?1";
    return db_set_text(c, sql, uuid, sha1, "record the image's sha1", "image", e);
}

int db_image_get_sha1(struct db_conn *c, const char *uuid, char *out, size_t len, struct st_err *e)
{
    return db_get_text(c, "SELECT sha1 FROM image WHERE uuid = ?1", uuid, out, len, "image", e);
}
