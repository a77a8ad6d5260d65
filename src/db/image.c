/* image.c — rows of image and clone. */
#include "db_internal.h"

#include <stdlib.h>
#include <time.h>

#define IMAGE_COLS                                                                                 \
    "uuid, name, volume_id, format, virtual_size, actual_size, status, checksum_sha256, "          \
    "owner, guest_id, parent_uuid, created_at, updated_at, generation"

static void read_image(sqlite3_stmt *st, struct db_image *im)
{
    db_col_text(st, 0, im->uuid, sizeof im->uuid);
    db_col_text(st, 1, im->name, sizeof im->name);
    db_col_text(st, 2, im->volume_id, sizeof im->volume_id);
    db_col_text(st, 3, im->format, sizeof im->format);
    im->virtual_size = (uint64_t)sqlite3_column_int64(st, 4);
    im->actual_size = (uint64_t)sqlite3_column_int64(st, 5);
    db_col_text(st, 6, im->status, sizeof im->status);
    db_col_text(st, 7, im->sha256, sizeof im->sha256);
    db_col_text(st, 8, im->owner, sizeof im->owner);
    db_col_text(st, 9, im->guest_id, sizeof im->guest_id);
    db_col_text(st, 10, im->parent_uuid, sizeof im->parent_uuid);
    im->created_at = sqlite3_column_int64(st, 11);
    im->updated_at = sqlite3_column_int64(st, 12);
    im->generation = sqlite3_column_int64(st, 13);
}

int db_image_list_volume(struct db_conn *c, const char *volume_id, struct db_image **out, size_t *n,
                         struct st_err *e)
{
    static const char sql[] = "SELECT " IMAGE_COLS " FROM image WHERE volume_id = ?1 "
                              "AND status = 'active' ORDER BY name";
    sqlite3_stmt *st = db_stmt(c, sql, e);
    struct db_image *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    if (!st)
        return -1;
    db_bind_text(st, 1, volume_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (db_grow((void **)&arr, &cap, cnt, sizeof *arr)) {
            sqlite3_reset(st);
            free(arr);
            return st_fail(e, ST_INTERNAL, "out of memory");
        }
        read_image(st, &arr[cnt++]);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(arr);
        return db_fail(c, e, "list images");
    }
    *out = arr;
    *n = cnt;
    return 0;
}

int db_image_insert(struct db_conn *c, const struct db_image *im, struct st_err *e)
{
    static const char sql[] =
        "INSERT INTO image (" IMAGE_COLS ", size_mb) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 1, (?5 + 1048575) / 1048576)";
    sqlite3_stmt *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, im->uuid);
    db_bind_text(st, 2, im->name);
    db_bind_text(st, 3, im->volume_id);
    db_bind_text(st, 4, im->format);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)im->virtual_size);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)im->actual_size);
    db_bind_text(st, 7, im->status);
    db_bind_text(st, 8, im->sha256);
    db_bind_text(st, 9, im->owner);
    db_bind_text(st, 10, im->guest_id);
    db_bind_text(st, 11, im->parent_uuid);
    sqlite3_bind_int64(st, 12, im->created_at ? im->created_at : (int64_t)time(NULL));
    return db_exec_stmt(c, st, e, "insert image");
}

int db_clone_list_volume(struct db_conn *c, const char *volume_id, struct db_clone **out, size_t *n,
                         struct st_err *e)
{
    static const char sql[] =
        "SELECT c.clone_id, c.image_uuid, c.guest_id, c.volume_id, c.path, c.format, "
        "c.created_at, i.name FROM clone c JOIN image i ON i.uuid = c.image_uuid "
        "WHERE c.volume_id = ?1 ORDER BY c.clone_id";
    sqlite3_stmt *st = db_stmt(c, sql, e);
    struct db_clone *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    if (!st)
        return -1;
    db_bind_text(st, 1, volume_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (db_grow((void **)&arr, &cap, cnt, sizeof *arr)) {
            sqlite3_reset(st);
            free(arr);
            return st_fail(e, ST_INTERNAL, "out of memory");
        }
        struct db_clone *cl = &arr[cnt++];
        db_col_text(st, 0, cl->clone_id, sizeof cl->clone_id);
        db_col_text(st, 1, cl->image_uuid, sizeof cl->image_uuid);
        db_col_text(st, 2, cl->guest_id, sizeof cl->guest_id);
        db_col_text(st, 3, cl->volume_id, sizeof cl->volume_id);
        db_col_text(st, 4, cl->path, sizeof cl->path);
        db_col_text(st, 5, cl->format, sizeof cl->format);
        cl->created_at = sqlite3_column_int64(st, 6);
        db_col_text(st, 7, cl->image_name, sizeof cl->image_name);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(arr);
        return db_fail(c, e, "list clones");
    }
    *out = arr;
    *n = cnt;
    return 0;
}
