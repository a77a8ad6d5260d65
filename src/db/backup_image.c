/* backup_image.c — rows of images kept on backup storages (backup_image) and of their
 * copies (image_backup, one per backup storage). Queries go through query.c over the
 * allow-list below, as backup storages' do. */
#include "db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BI_COLS                                                                                    \
    "uuid, name, description, url, media_type, guest_os_type, platform, format, state, "           \
    "status, size, actual_size, sha256, system, created_at, last_op_at"

static const struct db_qfield bi_fields[] = {
    {"uuid", "uuid", 0},
    {"name", "name", 0},
    {"description", "description", 0},
    {"url", "url", 0},
    {"media_type", "media_type", 0},
    {"guest_os_type", "guest_os_type", 0},
    {"platform", "platform", 0},
    {"format", "format", 0},
    {"state", "state", 0},
    {"status", "status", 0},
    {"size", "size", 1},
    {"actual_size", "actual_size", 1},
    {"sha256", "sha256", 0},
    {"system", "system", 1},
    {"created_at", "created_at", 1},
    {"last_op_at", "last_op_at", 1},
};

static void read_bi(struct db_query *q, void *item)
{
    struct db_backup_image *b = item;
    db_col_text(q, 0, b->uuid, sizeof b->uuid);
    db_col_text(q, 1, b->name, sizeof b->name);
    db_col_text(q, 2, b->description, sizeof b->description);
    db_col_text(q, 3, b->url, sizeof b->url);
    db_col_text(q, 4, b->media_type, sizeof b->media_type);
    db_col_text(q, 5, b->guest_os_type, sizeof b->guest_os_type);
    db_col_text(q, 6, b->platform, sizeof b->platform);
    db_col_text(q, 7, b->format, sizeof b->format);
    db_col_text(q, 8, b->state, sizeof b->state);
    db_col_text(q, 9, b->status, sizeof b->status);
    b->size = db_col_int64(q, 10);
    b->actual_size = db_col_int64(q, 11);
    db_col_text(q, 12, b->sha256, sizeof b->sha256);
    b->system = (int)db_col_int64(q, 13);
    b->created_at = db_col_int64(q, 14);
    b->last_op_at = db_col_int64(q, 15);
}

int db_bimage_insert(struct db_conn *c, const struct db_backup_image *b, struct st_err *e)
{
    static const char sql[] = "INSERT INTO backup_image (" BI_COLS ") VALUES (?1, ?2, ?3, ?4, "
                              "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, b->uuid);
    db_bind_text(q, 2, b->name);
    db_bind_text(q, 3, b->description);
    db_bind_text(q, 4, b->url);
    db_bind_text(q, 5, b->media_type);
    db_bind_text(q, 6, b->guest_os_type);
    db_bind_text(q, 7, b->platform);
    db_bind_text(q, 8, b->format);
    db_bind_text(q, 9, b->state);
    db_bind_text(q, 10, b->status);
    db_bind_int64(q, 11, b->size);
    db_bind_int64(q, 12, b->actual_size);
    db_bind_text(q, 13, b->sha256);
    db_bind_int64(q, 14, b->system);
    db_bind_int64(q, 15, b->created_at);
    db_bind_int64(q, 16, b->last_op_at);
    return db_exec_stmt(c, q, e, "insert backup image");
}

int db_bimage_get(struct db_conn *c, const char *uuid, struct db_backup_image *out,
                  struct st_err *e)
{
    static const char sql[] = "SELECT " BI_COLS " FROM backup_image WHERE uuid = ?1";
    return db_one_by_text(c, sql, uuid, read_bi, out, "image", e);
}

int db_bimage_ready(struct db_conn *c, const struct db_backup_image *b, const char *install_path,
                    struct st_err *e)
{
    static const char img[] =
        "UPDATE backup_image SET status = 'Ready', format = ?2, size = ?3, actual_size = ?4, "
        "sha256 = ?5, last_op_at = ?6 WHERE uuid = ?1";
    static const char refs[] = "UPDATE image_backup SET status = 'Ready', last_op_at = ?2, "
                               "install_path = ?3 WHERE image_uuid = ?1";
    struct db_query *q = db_stmt(c, img, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, b->uuid);
    db_bind_text(q, 2, b->format);
    db_bind_int64(q, 3, b->size);
    db_bind_int64(q, 4, b->actual_size);
    db_bind_text(q, 5, b->sha256);
    db_bind_int64(q, 6, b->last_op_at);
    if (db_exec_changed(c, q, "ready backup image", "image", b->uuid, e))
        return -1;
    if (!(q = db_stmt(c, refs, e)))
        return -1;
    db_bind_text(q, 1, b->uuid);
    db_bind_int64(q, 2, b->last_op_at);
    db_bind_text(q, 3, install_path);
    return db_exec_stmt(c, q, e, "ready image backups");
}

int db_bimage_delete(struct db_conn *c, const char *uuid, struct st_err *e)
{
    static const char refs[] = "DELETE FROM image_backup WHERE image_uuid = ?1";
    static const char img[] = "DELETE FROM backup_image WHERE uuid = ?1";
    struct db_query *q = db_stmt_key(c, refs, uuid, e);
    if (!q || db_exec_stmt(c, q, e, "delete image backups"))
        return -1;
    return db_exec_by_text(c, img, uuid, "delete backup image", "image", e);
}

static const struct db_table bi_table = {
    "backup_image",
    BI_COLS,
    bi_fields,
    sizeof bi_fields / sizeof *bi_fields,
    " ORDER BY created_at",
    sizeof(struct db_backup_image),
    read_bi,
    "backup images",
};

int db_bimage_query(struct db_conn *c, const struct st_query *sq, struct db_backup_image **out,
                    size_t *n, int64_t *total, struct st_err *e)
{
    return db_table_query(c, &bi_table, sq, out, n, total, e);
}

/* ---- the copies ---- */

static void read_ref(struct db_query *q, void *item)
{
    struct db_image_backup *r = item;
    db_col_text(q, 0, r->image_uuid, sizeof r->image_uuid);
    db_col_text(q, 1, r->bs_uuid, sizeof r->bs_uuid);
    db_col_text(q, 2, r->install_path, sizeof r->install_path);
    db_col_text(q, 3, r->status, sizeof r->status);
    r->created_at = db_col_int64(q, 4);
    r->last_op_at = db_col_int64(q, 5);
}

int db_ibackup_insert(struct db_conn *c, const struct db_image_backup *r, struct st_err *e)
{
    static const char sql[] = "INSERT INTO image_backup (image_uuid, bs_uuid, install_path, "
                              "status, created_at, last_op_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, r->image_uuid);
    db_bind_text(q, 2, r->bs_uuid);
    db_bind_text(q, 3, r->install_path);
    db_bind_text(q, 4, r->status);
    db_bind_int64(q, 5, r->created_at);
    db_bind_int64(q, 6, r->last_op_at);
    return db_exec_stmt(c, q, e, "insert image backup");
}

int db_ibackup_list(struct db_conn *c, const char *image_uuid, struct db_image_backup **out,
                    size_t *n, struct st_err *e)
{
    static const char sql[] = "SELECT image_uuid, bs_uuid, install_path, status, created_at, "
                              "last_op_at FROM image_backup WHERE image_uuid = ?1 "
                              "ORDER BY created_at, bs_uuid";
    return db_collect_by_text(c, sql, image_uuid, sizeof **out, read_ref, out, n,
                              "list image backups", e);
}

int db_ibackup_delete(struct db_conn *c, const char *image_uuid, const char *bs_uuid,
                      struct st_err *e)
{
    static const char sql[] = "DELETE FROM image_backup WHERE image_uuid = ?1 AND bs_uuid = ?2";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, image_uuid);
    db_bind_text(q, 2, bs_uuid);
    return db_exec_changed(c, q, "delete image backup", "image backup", bs_uuid, e);
}

int db_ibackup_images_on(struct db_conn *c, const char *bs_uuid, char (**out)[DB_ID], size_t *n,
                         struct st_err *e)
{
    static const char sql[] = "SELECT image_uuid FROM image_backup WHERE bs_uuid = ?1";
    return db_collect_by_text(c, sql, bs_uuid, DB_ID, db_read_id, out, n, "list image backups", e);
}
