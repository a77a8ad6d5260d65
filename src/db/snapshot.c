/* snapshot.c — rows of snapshot (a clone's frozen copies, gone with the clone) and of
 * imagestore (the image servers added at run time). */
#include "db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SNAP_COLS                                                                                  \
    "s.clone_id, s.name, s.path, s.format, s.size, s.note, s.created_at, c.volume_id, "            \
    "c.guest_id, c.image_uuid"

static void read_snapshot(struct db_query *st, void *item)
{
    struct db_snapshot *s = item;
    db_col_text(st, 0, s->clone_id, sizeof s->clone_id);
    db_col_text(st, 1, s->name, sizeof s->name);
    db_col_text(st, 2, s->path, sizeof s->path);
    db_col_text(st, 3, s->format, sizeof s->format);
    s->size = (uint64_t)db_col_int64(st, 4);
    db_col_text(st, 5, s->note, sizeof s->note);
    s->created_at = db_col_int64(st, 6);
    db_col_text(st, 7, s->volume_id, sizeof s->volume_id);
    db_col_text(st, 8, s->guest_id, sizeof s->guest_id);
    db_col_text(st, 9, s->image_uuid, sizeof s->image_uuid);
}

int db_snapshot_insert(struct db_conn *c, const struct db_snapshot *s, struct st_err *e)
{
    static const char sql[] = "INSERT INTO snapshot (clone_id, name, path, format, size, note, "
                              "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, s->clone_id);
    db_bind_text(st, 2, s->name);
    db_bind_text(st, 3, s->path);
    db_bind_text(st, 4, s->format);
    db_bind_int64(st, 5, (int64_t)s->size);
    db_bind_text(st, 6, s->note);
    db_bind_int64(st, 7, s->created_at ? s->created_at : (int64_t)time(NULL));
    if (db_exec_stmt(c, st, e, "insert snapshot")) {
        if (e && e->code == ST_EXISTS)
            st_fail(e, ST_EXISTS, "snapshot '%s' of clone '%s' already exists", s->name,
                    s->clone_id);
        return -1;
    }
    return 0;
}

int db_snapshot_get(struct db_conn *c, const char *clone_id, const char *name,
                    struct db_snapshot *out, struct st_err *e)
{
    static const char sql[] = "SELECT " SNAP_COLS " FROM snapshot s JOIN clone c ON "
                              "c.clone_id = s.clone_id WHERE s.clone_id = ?1 AND s.name = ?2";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, clone_id);
    db_bind_text(st, 2, name);
    return db_one(c, st, read_snapshot, out, "snapshot", name, e);
}

int db_snapshot_list(struct db_conn *c, const char *clone_id, const char *volume_id,
                     struct db_snapshot **out, size_t *n, struct st_err *e)
{
    static const char sql[] = "SELECT " SNAP_COLS " FROM snapshot s JOIN clone c ON "
                              "c.clone_id = s.clone_id WHERE (?1 = '' OR s.clone_id = ?1) AND "
                              "(?2 = '' OR c.volume_id = ?2) ORDER BY s.clone_id, s.created_at, "
                              "s.name";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, clone_id);
    db_bind_text(st, 2, volume_id);
    return db_collect(c, st, sizeof **out, read_snapshot, out, n, "list snapshots", e);
}

int db_snapshot_delete(struct db_conn *c, const char *clone_id, const char *name, struct st_err *e)
{
    static const char sql[] = "DELETE FROM snapshot WHERE clone_id = ?1 AND name = ?2";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, clone_id);
    db_bind_text(st, 2, name);
    return db_exec_changed(c, st, "delete snapshot", "snapshot", name, e);
}

/* ---- image servers added at run time ---- */

static void read_imagestore(struct db_query *st, void *item)
{
    struct db_imagestore *s = item;
    db_col_text(st, 0, s->name, sizeof s->name);
    db_col_text(st, 1, s->url, sizeof s->url);
    s->created_at = db_col_int64(st, 2);
}

int db_imagestore_list(struct db_conn *c, struct db_imagestore **out, size_t *n, struct st_err *e)
{
    static const char sql[] = "SELECT name, url, created_at FROM imagestore ORDER BY name";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    return db_collect(c, st, sizeof **out, read_imagestore, out, n, "list image servers", e);
}

int db_imagestore_insert(struct db_conn *c, const char *name, const char *url, struct st_err *e)
{
    static const char sql[] = "INSERT INTO imagestore (name, url, created_at) VALUES (?1, ?2, ?3)";
    struct db_query *st = db_stmt(c, sql, e);
    if (!st)
        return -1;
    db_bind_text(st, 1, name);
    db_bind_text(st, 2, url);
    db_bind_int64(st, 3, (int64_t)time(NULL));
    if (db_exec_stmt(c, st, e, "insert image server")) {
        if (e && e->code == ST_EXISTS)
            st_fail(e, ST_EXISTS, "image server '%s' already exists", name);
        return -1;
    }
    return 0;
}

int db_imagestore_delete(struct db_conn *c, const char *name, struct st_err *e)
{
    static const char sql[] = "DELETE FROM imagestore WHERE name = ?1";
    return db_exec_by_text(c, sql, name, "delete image server", "image server", e);
}
