/* clone.c — copy-on-write children of images, one per guest.
 *
 * A clone lives on its image's volume as clones/<clone_id>.qcow2: a qcow2 v3
 * overlay whose backing file is "../images/<uuid>.<fmt>" — relative to the
 * overlay, so the volume can be mounted anywhere (or reached as gluster://)
 * and qemu still finds the base. Writing it costs a header and empty tables
 * whatever the base's size. With clone_mode "reflink", raw images on a
 * filesystem that shares blocks get a reflinked raw clone instead.
 *
 * Order: the file is committed first (staging, fsync, rename, fsync dir), then
 * the row is inserted. A crash between the two leaves a file without a row,
 * which recovery removes; never a row without its file. */
#include "core_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void core_clone_from_row(const struct db_clone *row, struct core_clone *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->clone_id, row->clone_id, sizeof out->clone_id);
    memcpy(out->image_uuid, row->image_uuid, sizeof out->image_uuid);
    memcpy(out->image_name, row->image_name, sizeof out->image_name);
    memcpy(out->guest_id, row->guest_id, sizeof out->guest_id);
    memcpy(out->volume_id, row->volume_id, sizeof out->volume_id);
    out->created_at = row->created_at;
}

int core_clone_get(struct stowage *st, const char *clone_id, struct db_clone *out, struct st_err *e)
{
    if (!core_valid_id(clone_id))
        return st_fail(e, ST_NOT_FOUND, "clone '%.64s' not found", clone_id ? clone_id : "");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_clone_get(c, clone_id, out, e);
    db_release(st->db, c);
    return rc;
}

/* "<image>_<guest>" (the name flexVDI clients expect), when it is a valid, free id. */
static int pick_id(struct stowage *st, const struct db_image *im, const char *guest, char *out,
                   size_t len, struct st_err *e)
{
    struct db_clone existing;
    struct st_err ignore;
    snprintf(out, len, "%s_%s", im->name, guest);
    if (core_valid_id(out) && core_clone_get(st, out, &existing, &ignore) != 0)
        return 0;
    return st_fail_field(e, ST_INVALID, "clone",
                         "give a clone id: '%s_%s' is taken or not a valid id", im->name, guest);
}

static int share_blocks(struct stowage *st, const struct db_image *im)
{
    return st->cfg.clone_reflink && strcmp(im->format, "raw") == 0;
}

int core_clone_create(struct stowage *st, const char *image_name, const char *guest_id,
                      const char *clone_id, const struct core_also *also, struct db_clone *out,
                      struct st_err *e)
{
    struct db_image im;
    struct core_vol_ref v;
    struct be_file *f = NULL;
    char staging[128], base[128], key[64], ckey[96], what[96];
    int rc = -1;

    if (!core_valid_id(guest_id))
        return st_fail_field(e, ST_INVALID, "guest",
                             "guest ids match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$");
    if (clone_id && *clone_id && !core_valid_id(clone_id))
        return st_fail_field(e, ST_INVALID, "clone",
                             "clone ids match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$");
    if (core_image_by_name(st, image_name, &im, e))
        return -1;
    if (strcmp(im.status, "active") != 0)
        return st_fail(e, ST_CONFLICT, "image '%s' has no data yet (%s)", image_name, im.status);
    if (im.virtual_size == 0)
        return st_fail_field(e, ST_INVALID, "image", "image '%s' is empty: nothing to clone",
                             image_name);
    memset(out, 0, sizeof *out);
    if (clone_id && *clone_id)
        snprintf(out->clone_id, sizeof out->clone_id, "%s", clone_id);
    else if (pick_id(st, &im, guest_id, out->clone_id, sizeof out->clone_id, e))
        return -1;
    /* Not while the image is being deleted (other clones of it may be made meanwhile),
     * and one create per clone id at a time: they would share a staging file. */
    snprintf(key, sizeof key, "image:%s", im.uuid);
    snprintf(ckey, sizeof ckey, "clone:%s", out->clone_id);
    snprintf(what, sizeof what, "clone '%s'", out->clone_id);
    if (core_claim_shared(st, key, image_name, e))
        return -1;
    if (core_claim(st, ckey, what, e)) {
        core_unclaim(st, key);
        return -1;
    }
    if (core_volume_acquire(st, im.volume_id, &v, e))
        goto out;

    snprintf(out->image_uuid, sizeof out->image_uuid, "%s", im.uuid);
    snprintf(out->image_name, sizeof out->image_name, "%s", im.name);
    snprintf(out->guest_id, sizeof out->guest_id, "%s", guest_id);
    snprintf(out->volume_id, sizeof out->volume_id, "%s", im.volume_id);
    core_staging_path(out->clone_id, ".clone" TASK_SUFFIX, staging, sizeof staging);
    core_image_path(&im, base, sizeof base);

    struct db_clone existing;
    struct st_err ignore;
    if (core_clone_get(st, out->clone_id, &existing, &ignore) == 0) {
        st_fail_field(e, ST_EXISTS, "clone", "clone '%s' already exists", out->clone_id);
        goto out;
    }
    /* The backend makes the child (a qcow2 overlay, or a raw reflink where blocks can be
     * shared); then the protocol: flush, publish, and the row last. */
    struct be_clone_req rq = {base, im.format, im.virtual_size, staging, share_blocks(st, &im), ""};
    if ((rc = v.ops->clone(v.be, &rq, &f, e)))
        goto out;
    snprintf(out->format, sizeof out->format, "%s", rq.format);
    snprintf(out->path, sizeof out->path, "clones/%s.%s", out->clone_id, out->format);
    if ((rc = core_publish_clone_file(&v, f, staging, out->path, "clone", e)))
        goto out;
    /* Closed before the commit: once the row says the clone is there, what is left to
     * do here takes microseconds (a client may act on the clone at once). */
    v.ops->close_file(f);
    f = NULL;
    struct db_conn *c = db_acquire(st->db);
    rc = db_begin(c, e);
    if (rc == 0 && (rc = db_clone_insert(c, out, e)) == 0 && also)
        rc = also->fn(c, out, also->ud, e);
    rc = core_txn_end(st, c, rc, e);
    if (rc) {
        v.ops->remove(v.be, out->path);
        goto out;
    }
    core_bump(st);
out:
    if (f)
        v.ops->close_file(f);
    core_volume_release(&v);
    core_unclaim(st, ckey);
    core_unclaim(st, key);
    return rc ? -1 : 0;
}

int core_clone_delete(struct stowage *st, const char *clone_id, struct st_err *e)
{
    struct db_clone cl;
    struct core_vol_ref v;
    struct st_err ignore;

    struct db_snapshot *snaps = NULL;
    size_t n = 0;

    if (core_clone_get(st, clone_id, &cl, e))
        return -1;
    /* Its snapshots' rows go with its own (ON DELETE CASCADE); their files after. */
    struct db_conn *c = db_acquire(st->db);
    int rc = db_snapshot_list(c, clone_id, "", &snaps, &n, e);
    if (rc == 0)
        rc = db_clone_delete(c, clone_id, e);
    db_release(st->db, c);
    if (rc) {
        free(snaps);
        return -1;
    }
    core_bump(st);
    /* Row first: a file left by a crash or an absent volume is removed by recovery. */
    if (core_volume_acquire(st, cl.volume_id, &v, &ignore) == 0) {
        core_snapshot_remove_files(st, &v, snaps, n);
        v.ops->remove(v.be, cl.path);
        core_volume_release(&v);
    }
    free(snaps);
    return 0;
}
