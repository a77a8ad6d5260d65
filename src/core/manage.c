/* manage.c — the image storage and volume tasks: rows, mounts and their undoing.
 *
 * Deleting never destroys data: a deleted volume's directory and disk keep every
 * byte they had (a disk stowage formatted keeps its filesystem: wipe it yourself to
 * reuse it). Every delete refuses while something still lives in what it deletes.
 * Formatting a disk for volume_create is in manage_disk.c. */
#include "core_internal.h"
#include "task_internal.h"

#include "stowage/path.h"
#include "stowage/sys.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- image storages ---- */

int core_manage_istorage_create(struct core_task_ctx *t, struct st_err *e)
{
    struct stowage *st = t->st;
    struct db_storage s = {0};
    const char *id = core_task_str(t, "storage");
    struct st_err ignore;

    snprintf(s.id, sizeof s.id, "%s", id);
    snprintf(s.name, sizeof s.name, "%s", core_task_str(t, "name"));
    snprintf(s.description, sizeof s.description, "%s", core_task_str(t, "description"));
    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0 && db_storage_get(c, id, &(struct db_storage){0}, &ignore) == 0)
        rc = st_fail(e, ST_EXISTS, "image storage '%s' already exists", id);
    if (rc == 0)
        rc = db_storage_insert(c, &s, e);
    if (rc == 0)
        rc = db_host_add(c, id, st->hostname, e); /* this host serves it */
    if (core_txn_end(st, c, rc, e))
        return -1;
    core_bump(st);
    t->result = json_pack("{s:s, s:s}", "storage", id, "host", st->hostname);
    return 0;
}

int core_manage_istorage_modify(struct core_task_ctx *t, struct st_err *e)
{
    struct stowage *st = t->st;
    struct db_storage s;
    const char *id = core_task_str(t, "storage");

    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = db_storage_get(c, id, &s, e);
    if (rc == 0) {
        /* Only what the client sent changes; an empty description clears it. */
        if (json_object_get(t->params, "name"))
            snprintf(s.name, sizeof s.name, "%s", core_task_str(t, "name"));
        if (json_object_get(t->params, "description"))
            snprintf(s.description, sizeof s.description, "%s", core_task_str(t, "description"));
        rc = db_storage_update(c, &s, e);
    }
    if (core_txn_end(st, c, rc, e))
        return -1;
    core_bump(st);
    t->result = json_pack("{s:s}", "storage", id);
    return 0;
}

/* "a, b, c" of the first volumes, for messages. */
static void list_ids(const struct db_volume *v, size_t n, char *out, size_t len)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && i < 5 && off < len; i++)
        off += (size_t)snprintf(out + off, len - off, "%s%s", i ? ", " : "", v[i].id);
    if (n > 5 && off < len)
        snprintf(out + off, len - off, ", ...");
}

int core_manage_istorage_delete(struct core_task_ctx *t, struct st_err *e)
{
    struct stowage *st = t->st;
    const char *id = core_task_str(t, "storage");
    struct db_storage s;
    struct db_volume *vols = NULL;
    size_t n = 0;
    char names[256];

    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = db_storage_get(c, id, &s, e);
    if (rc == 0)
        rc = db_volume_list(c, id, &vols, &n, e);
    if (rc == 0 && n > 0) {
        list_ids(vols, n, names, sizeof names);
        rc =
            st_fail(e, ST_IN_USE, "image storage '%s' still has %zu volume%s (%s); delete %s first",
                    id, n, n == 1 ? "" : "s", names, n == 1 ? "it" : "them");
    }
    if (rc == 0)
        rc = db_storage_delete(c, id, e); /* its host rows go with it */
    rc = core_txn_end(st, c, rc, e);
    free(vols);
    if (rc)
        return -1;
    core_bump(st);
    t->result = json_pack("{s:s}", "storage", id);
    return 0;
}

/* ---- volume rows ---- */

int core_manage_check_new_volume(struct stowage *st, const char *storage_id, const char *volume_id,
                                 struct st_err *e)
{
    struct db_storage s;
    struct db_volume v;
    struct st_err ignore;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_storage_get(c, storage_id, &s, e);
    if (rc == 0 && db_volume_get(c, volume_id, &v, &ignore) == 0)
        rc = st_fail(e, ST_EXISTS, "volume '%s' already exists (in image storage '%s')", volume_id,
                     v.storage_id);
    db_release(st->db, c);
    return rc;
}

/* No other volume is, holds or lies in v's place; checked inside the transaction that
 * inserts v, so two registrations of one directory cannot both pass. */
static int place_free(struct db_conn *c, const struct db_volume *v, struct st_err *e)
{
    struct db_volume *vols = NULL;
    size_t n = 0;
    int rc = db_volume_list(c, NULL, &vols, &n, e);
    if (rc == 0)
        rc = core_volume_check_place(v, vols, n, "volume", e);
    free(vols);
    return rc;
}

int core_manage_check_place(struct stowage *st, const struct db_volume *v, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = place_free(c, v, e);
    db_release(st->db, c);
    return rc;
}

/* Insert the row (with what its backend records of the place) and start probing it; on
 * failure nothing of it is left. */
int core_manage_register_volume(struct stowage *st, const struct db_volume *in, struct st_err *e)
{
    struct db_storage s;
    struct st_err ignore;
    struct db_volume *v = malloc(sizeof *v);
    if (!v)
        return st_fail(e, ST_INTERNAL, "out of memory");
    *v = *in;
    if (core_volume_prepare(st, v, e)) {
        free(v);
        return -1;
    }
    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = db_storage_get(c, v->storage_id, &s, e); /* not deleted meanwhile */
    if (rc == 0)
        rc = place_free(c, v, e);
    if (rc == 0)
        rc = db_volume_insert(c, v, e);
    rc = core_txn_end(st, c, rc, e);
    if (rc == 0 && core_volumes_add(st, v, e)) {
        c = db_acquire(st->db);
        if (db_begin(c, &ignore) || db_volume_drop(c, v->id, &ignore) || db_commit(c, &ignore))
            db_rollback(c);
        db_release(st->db, c);
        rc = -1;
    }
    free(v);
    if (rc)
        return -1;
    core_bump(st);
    return 0;
}

/* Refuse while images or clones live on the volume. */
static int check_empty(struct db_conn *c, const char *id, struct st_err *e)
{
    int64_t images = 0, clones = 0;
    if (db_volume_usage(c, id, &images, &clones, e))
        return -1;
    if (images == 0 && clones == 0)
        return 0;
    return st_fail(
        e, ST_IN_USE, "volume '%s' still holds %lld image%s and %lld clone%s; delete them first",
        id, (long long)images, images == 1 ? "" : "s", (long long)clones, clones == 1 ? "" : "s");
}

static int drop_row(struct stowage *st, const char *id, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = check_empty(c, id, e);
    if (rc == 0)
        rc = db_volume_drop(c, id, e);
    return core_txn_end(st, c, rc, e);
}

/* Where a volume of this kind comes from (the config only, when the kind is unknown). */
static enum be_origin origin_of(const char *kind)
{
    const struct be_kind *k = be_kind(kind);
    return k ? k->origin : BE_FROM_CONFIG;
}

/* The operation that deletes a volume of this kind (messages name operations neutrally;
 * each dialect words them in its own names). */
static const char *delete_op_of(const char *kind)
{
    switch (origin_of(kind)) {
    case BE_FORMATTED:
        return core_op_name(CORE_OP_VOLUME_DELETE);
    case BE_REGISTERED:
        return core_op_name(CORE_OP_EXTERNAL_DELETE);
    default:
        return "the operations of its kind";
    }
}

/* The volume the client means, of the kind the task handles. */
static int load_volume(struct core_task_ctx *t, enum be_origin origin, struct db_volume *v,
                       struct st_err *e)
{
    const char *id = core_task_str(t, "volume"), *sid = core_task_str(t, "storage");
    struct db_conn *c = db_acquire(t->st->db);
    int rc = db_volume_get(c, id, v, e);
    if (rc == 0)
        rc = check_empty(c, id, e); /* early, for a clear answer; checked again below */
    db_release(t->st->db, c);
    if (rc)
        return -1;
    if (*sid && strcmp(sid, v->storage_id) != 0)
        return st_fail(e, ST_NOT_FOUND, "volume '%s' is not in image storage '%s' (it is in '%s')",
                       id, sid, v->storage_id);
    if (origin_of(v->kind) != origin)
        return st_fail_field(e, ST_INVALID, "volume", "volume '%s' is %s, not %s: use %s", id,
                             v->kind, be_kind_from(origin), delete_op_of(v->kind));
    return 0;
}

/* Stop tracking, unmount what stowage mounted, drop the row, remove its directory. */
/* kept (a JSON object) says which device keeps which filesystem when one was unmounted. */
static int delete_volume(struct core_task_ctx *t, const struct db_volume *v, json_t *kept,
                         struct st_err *e)
{
    struct stowage *st = t->st;
    struct probe_mount m;
    struct st_err ignore;
    char dir[DB_PATH];
    core_volume_mount_dir(st, v->id, dir, sizeof dir);
    /* Only what stowage formatted is unmounted, at the place it mounted it. */
    int unmount = origin_of(v->kind) == BE_FORMATTED && probe_is_mount_point(dir) == 1;

    /* Waits for data operations that borrowed it; none can start after this, so the
     * check below is final before anything is unmounted. */
    core_volumes_remove(st, v->id);
    struct db_conn *c = db_acquire(st->db);
    int busy = check_empty(c, v->id, e);
    db_release(st->db, c);
    if (busy)
        goto restore;
    if (unmount && probe_mount_of(dir, &m, &ignore) == 0)
        json_object_set_new(kept, "device", json_string(m.source)),
            json_object_set_new(kept, "filesystem", json_string(m.fstype));
    if (unmount && sys_umount(dir, e))
        goto restore;
    if (drop_row(st, v->id, e)) {
        if (unmount)
            fprintf(stderr, "stowaged: volume %s: unmounted but still catalogued: %s\n", v->id,
                    e->msg);
        goto restore;
    }
    if (unmount && rmdir(dir) != 0)
        fprintf(stderr, "stowaged: volume %s: rmdir %s: %s\n", v->id, dir, strerror(errno));
    core_bump(st);
    return 0;
restore:
    if (core_volumes_add(st, v, &ignore))
        fprintf(stderr, "stowaged: volume %s: %s\n", v->id, ignore.msg);
    return -1;
}

static int delete_task(struct core_task_ctx *t, enum be_origin origin, struct st_err *e)
{
    struct db_volume v;
    char key[96];
    const char *id = core_task_str(t, "volume");
    json_t *kept = json_object();

    snprintf(key, sizeof key, "volume:%s", id);
    if (core_claim(t->st, key, id, e))
        return -1;
    int rc = load_volume(t, origin, &v, e);
    if (rc == 0)
        rc = delete_volume(t, &v, kept, e);
    core_unclaim(t->st, key);
    if (rc == 0 && kept)
        json_object_set_new(kept, "volume", json_string(id));
    if (rc == 0)
        t->result = json_incref(kept);
    json_decref(kept);
    return rc ? -1 : 0;
}

int core_manage_volume_delete(struct core_task_ctx *t, struct st_err *e)
{
    return delete_task(t, BE_FORMATTED, e);
}

int core_manage_evolume_delete(struct core_task_ctx *t, struct st_err *e)
{
    return delete_task(t, BE_REGISTERED, e);
}

/* ---- external volumes ---- */

/* The resolved mount point must be a directory under one of mount_roots (also
 * resolved): a symlink that leads out of them is judged by where it leads. */
static int allowed_dir(struct stowage *st, const char *mount_point, char *real, struct st_err *e)
{
    char root[PATH_MAX];
    struct stat sb;

    if (st->cfg.n_mount_roots == 0)
        return st_fail_field(e, ST_FORBIDDEN, "mount_point",
                             "external volumes are disabled: the config key mount_roots lists no "
                             "directory");
    if (!realpath(mount_point, real))
        return st_fail_field(e, errno == ENOENT ? ST_NOT_FOUND : ST_INVALID, "mount_point",
                             "mount_point %s: %s", mount_point, strerror(errno));
    if (stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return st_fail_field(e, ST_INVALID, "mount_point", "mount_point %s is not a directory",
                             mount_point);
    for (size_t i = 0; i < st->cfg.n_mount_roots; i++)
        if (realpath(st->cfg.mount_roots[i], root) && st_path_under(real, root))
            return 0;
    return st_fail_field(e, ST_FORBIDDEN, "mount_point",
                         "mount_point %s (really %s) is not under any directory of the config key "
                         "mount_roots",
                         mount_point, real);
}

int core_manage_evolume_create(struct core_task_ctx *t, struct st_err *e)
{
    struct stowage *st = t->st;
    const char *sid = core_task_str(t, "storage"), *id = core_task_str(t, "volume");
    struct db_volume v = {0};
    char key[96], real[PATH_MAX];
    json_t *params = NULL;

    snprintf(key, sizeof key, "volume:%s", id);
    if (core_claim(st, key, id, e))
        return -1;
    int rc = core_manage_check_new_volume(st, sid, id, e);
    if (rc == 0)
        rc = allowed_dir(st, core_task_str(t, "mount_point"), real, e);
    if (rc == 0) {
        snprintf(v.id, sizeof v.id, "%s", id);
        snprintf(v.storage_id, sizeof v.storage_id, "%s", sid);
        snprintf(v.kind, sizeof v.kind, "%s", be_kind_from(BE_REGISTERED));
        params = json_pack("{s:s}", "mount_point", real);
        rc = core_volume_set_params(&v, params, e) || core_volume_prepare(st, &v, e) ||
                     core_manage_register_volume(st, &v, e)
                 ? -1
                 : 0;
    }
    core_unclaim(st, key);
    json_decref(params);
    if (rc)
        return -1;
    /* A mount when registered must stay one (else writes land in the parent fs). */
    params = core_volume_params(&v);
    t->result = json_pack("{s:s, s:s, s:b}", "volume", id, "mount_point", real, "require_mount",
                          json_is_true(json_object_get(params, "require_mount")));
    json_decref(params);
    return 0;
}

/* ---- after a restart: did the body's effect commit before the process died? ---- */

static int storage_row(struct stowage *st, const char *id, struct db_storage *s, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_storage_get(c, id, s, e);
    db_release(st->db, c);
    return rc;
}

static int volume_row(struct stowage *st, const char *id, struct db_volume *v, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_volume_get(c, id, v, e);
    db_release(st->db, c);
    return rc;
}

int core_manage_istorage_create_done(struct core_task_ctx *t, int64_t started_at)
{
    struct db_storage s;
    struct st_err e;
    const char *id = core_task_str(t, "storage");
    if (storage_row(t->st, id, &s, &e) || s.created_at < started_at)
        return 0;
    t->result = json_pack("{s:s}", "storage", id);
    return 1;
}

int core_manage_istorage_modify_done(struct core_task_ctx *t, int64_t started_at)
{
    struct db_storage s;
    struct st_err e;
    const char *id = core_task_str(t, "storage");
    if (storage_row(t->st, id, &s, &e) ||
        (json_object_get(t->params, "name") && strcmp(s.name, core_task_str(t, "name"))) ||
        (json_object_get(t->params, "description") &&
         strcmp(s.description, core_task_str(t, "description"))))
        return 0;
    t->result = json_pack("{s:s}", "storage", id);
    return 1;
}

int core_manage_istorage_delete_done(struct core_task_ctx *t, int64_t started_at)
{
    struct db_storage s;
    struct st_err e;
    const char *id = core_task_str(t, "storage");
    if (storage_row(t->st, id, &s, &e) == 0 || e.code != ST_NOT_FOUND)
        return 0;
    t->result = json_pack("{s:s}", "storage", id);
    return 1;
}

int core_manage_evolume_create_done(struct core_task_ctx *t, int64_t started_at)
{
    struct db_volume v;
    struct st_err e;
    const char *id = core_task_str(t, "volume");
    if (volume_row(t->st, id, &v, &e) || v.created_at < started_at)
        return 0;
    json_t *params = core_volume_params(&v);
    t->result = json_pack("{s:s, s:O}", "volume", id, "mount_point",
                          json_object_get(params, "mount_point"));
    json_decref(params);
    return 1;
}

int core_manage_volume_delete_done(struct core_task_ctx *t, int64_t started_at)
{
    struct db_volume v;
    struct st_err e;
    const char *id = core_task_str(t, "volume");
    if (volume_row(t->st, id, &v, &e) == 0 || e.code != ST_NOT_FOUND)
        return 0;
    t->result = json_pack("{s:s}", "volume", id);
    return 1;
}
