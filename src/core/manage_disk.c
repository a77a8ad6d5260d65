/* manage_disk.c — volume_create: an unused disk becomes an XFS volume under the state dir.
 *
 * A disk is formatted only when nothing says it holds anything: libblkid sees no
 * signature on it or its partitions (filesystem, partition table, RAID member), it is
 * not mounted, not held by md/dm, not the disk of a volume, and the kernel grants an
 * exclusive open. mkfs.xfs runs without -f, so it refuses an existing signature too.
 * Formatting, mirrors and mounts are sys/'s, the one room that changes the system.
 * Whatever fails after the disk was touched is undone in reverse (unmount, rmdir, wipe
 * the signature we wrote, stop the mirror we built): a failed volume_create leaves the disk blank
 * again and nothing in the catalogue. */
#include "task_internal.h"

#include "stowage/sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct vc {
    struct stowage *st;
    const char *storage_id, *volume_id;
    const char *disk_ids[2];
    size_t n_disks; /* 1, or 2 for a mirror */
    struct probe_disk disk[2];
    char claims[2][128];
    size_t n_claims;
    char dev[64]; /* what gets the filesystem: the disk, or the md mirror */
    char dir[DB_PATH];
    int made_md, made_fs, made_dir, mounted;
};

/* ---- is the disk unused? ---- */

static void describe(const struct probe_disk *d, char *out, size_t len)
{
    if (d->fs_type[0])
        snprintf(out, len, "%s%s%s%s", d->fs_type, d->fs_uuid[0] ? " (UUID " : "", d->fs_uuid,
                 d->fs_uuid[0] ? ")" : "");
    else if (d->pt_type[0])
        snprintf(out, len, "a %s partition table", d->pt_type);
    else
        snprintf(out, len, "partitions");
}

static int refuse_used(const struct probe_disk *d, const char *field, struct st_err *e)
{
    char what[128];
    if (d->has_signature < 0)
        return st_fail_field(e, ST_CONFLICT, field,
                             "disk '%s' (%s) could not be read to prove it is blank", d->id,
                             d->host_device);
    if (d->has_signature > 0) {
        describe(d, what, sizeof what);
        return st_fail_field(e, ST_CONFLICT, field,
                             "disk '%s' (%s) is not blank: libblkid sees %s; only disks "
                             "without any signature are formatted",
                             d->id, d->host_device, what);
    }
    if (d->mounted)
        return st_fail_field(e, ST_IN_USE, field, "disk '%s' (%s) is mounted", d->id,
                             d->host_device);
    if (d->holder[0])
        return st_fail_field(e, ST_IN_USE, field, "disk '%s' (%s) is held by /dev/%s", d->id,
                             d->host_device, d->holder);
    if (d->readonly)
        return st_fail_field(e, ST_CONFLICT, field, "disk '%s' (%s) is read-only", d->id,
                             d->host_device);
    return 0;
}

/* The kernel refuses O_EXCL on a block device that anything holds (a mount, md, dm,
 * another exclusive opener): the last word on "unused". */
static int exclusive(const struct probe_disk *d, const char *field, struct st_err *e)
{
    int fd = open(d->host_device, O_RDONLY | O_EXCL | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == EBUSY)
        return st_fail_field(e, ST_IN_USE, field, "disk '%s' (%s) is in use (busy)", d->id,
                             d->host_device);
    return st_fail_errno(e, errno, "open %s", d->host_device);
}

/* Find the disk in the latest probe, then look at it again now: the list may be a
 * probe period old. */
static int pick_disk(struct vc *v, size_t i, struct st_err *e)
{
    const char *id = v->disk_ids[i], *field = i ? "mirror_disk" : "disk";
    struct core_disk_view *all = NULL;
    char name[32] = "", volume[DB_ID] = "";
    size_t n = 0;

    if (core_disks(v->st, &all, &n, e))
        return -1;
    for (size_t k = 0; k < n; k++) {
        if (strcmp(all[k].disk.id, id) == 0) {
            snprintf(name, sizeof name, "%s", all[k].disk.name);
            snprintf(volume, sizeof volume, "%s", all[k].volume_id);
        }
    }
    free(all);
    if (!name[0])
        return st_fail_field(e, ST_NOT_FOUND, field, "disk '%s' is not a disk of this host", id);
    if (volume[0])
        return st_fail_field(e, ST_IN_USE, field, "disk '%s' already carries volume '%s'", id,
                             volume);
    if (probe_disk_one(name, &v->disk[i], e))
        return -1;
    if (strcmp(v->disk[i].id, id) != 0)
        return st_fail_field(e, ST_CONFLICT, field, "disk '%s' went away (%s is now '%s')", id,
                             name, v->disk[i].id);
    return refuse_used(&v->disk[i], field, e) || exclusive(&v->disk[i], field, e) ? -1 : 0;
}

/* ---- the md mirror ---- */

static int md_create(struct vc *v, struct st_err *e)
{
    if (sys_md_create(v->disk[0].host_device, v->disk[1].host_device, v->dev, sizeof v->dev, e))
        return -1;
    v->made_md = 1;
    return 0;
}

static void md_destroy(struct vc *v)
{
    struct st_err e;
    if (sys_md_destroy(v->dev, v->disk[0].host_device, v->disk[1].host_device, &e))
        fprintf(stderr, "stowaged: volume_create: undoing %s: %s\n", v->dev, e.msg);
}

/* ---- filesystem and mount ---- */

static int make_dir(struct vc *v, struct st_err *e)
{
    struct dirent *de;
    int empty = 1;

    snprintf(v->dir, sizeof v->dir, "%s/volumes", v->st->cfg.state_dir);
    if (mkdir(v->dir, 0700) != 0 && errno != EEXIST)
        return st_fail_errno(e, errno, "mkdir %s", v->dir);
    core_volume_mount_dir(v->st, v->volume_id, v->dir, sizeof v->dir);
    if (mkdir(v->dir, 0700) == 0) {
        v->made_dir = 1;
        return 0;
    }
    if (errno != EEXIST)
        return st_fail_errno(e, errno, "mkdir %s", v->dir);
    /* Left behind by a volume whose directory could not be removed: only an empty
     * directory that is not a mount point will do. */
    DIR *d = probe_is_mount_point(v->dir) == 0 ? opendir(v->dir) : NULL;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = 0;
    if (d)
        closedir(d);
    if (!d || !empty)
        return st_fail(e, ST_CONFLICT, "%s exists and is not an empty directory", v->dir);
    v->made_dir = 1;
    return 0;
}

static int make_fs(struct vc *v, struct st_err *e)
{
    if (sys_mkfs_xfs(v->dev, e))
        return -1;
    v->made_fs = 1;
    return 0;
}

static int mount_fs(struct vc *v, struct st_err *e)
{
    if (sys_mount_xfs(v->dev, v->dir, e))
        return -1;
    v->mounted = 1;
    return 0;
}

static void undo(struct vc *v)
{
    struct st_err e;
    if (v->mounted && sys_umount(v->dir, &e))
        fprintf(stderr, "stowaged: volume_create: %s\n", e.msg);
    if (v->made_dir && rmdir(v->dir) != 0)
        fprintf(stderr, "stowaged: volume_create: rmdir %s: %s\n", v->dir, strerror(errno));
    if (v->made_fs) {
        /* Only the signature we wrote a moment ago, on a disk that was blank. */
        if (sys_wipe_xfs(v->dev, &e))
            fprintf(stderr, "stowaged: volume_create: wiping %s: %s\n", v->dev, e.msg);
    }
    if (v->made_md)
        md_destroy(v);
}

/* ---- the task ---- */

/* The directory the volume will be mounted on must not be inside another volume. */
static int check_place(struct vc *v, struct st_err *e)
{
    struct db_volume *row = calloc(1, sizeof *row);
    if (!row)
        return st_fail(e, ST_INTERNAL, "out of memory");
    char dir[DB_PATH];
    core_volume_mount_dir(v->st, v->volume_id, dir, sizeof dir);
    snprintf(row->id, sizeof row->id, "%s", v->volume_id);
    snprintf(row->kind, sizeof row->kind, "%s", be_kind_from(BE_FORMATTED));
    json_t *params = json_pack("{s:s}", "mount_point", dir);
    int rc = core_volume_set_params(row, params, e) || core_manage_check_place(v->st, row, e);
    json_decref(params);
    free(row);
    return rc ? -1 : 0;
}

static int check(struct vc *v, struct st_err *e)
{
    if (core_manage_check_new_volume(v->st, v->storage_id, v->volume_id, e) || check_place(v, e))
        return -1;
    if (v->n_disks == 2 && strcmp(v->disk_ids[0], v->disk_ids[1]) == 0)
        /* worded as flexVDI's clients have read it since before operations were neutral */
        return st_fail_field(e, ST_INVALID, "mirror_disk",
                             "secondary_disk_id must be another disk than primary_disk_id");
    if (v->n_disks == 2 && sys_md_usable("mirror_disk", e))
        return -1;
    for (size_t i = 0; i < v->n_disks; i++) {
        snprintf(v->claims[i], sizeof v->claims[i], "disk:%s", v->disk_ids[i]);
        if (core_claim(v->st, v->claims[i], v->disk_ids[i], e))
            return -1;
        v->n_claims++;
        if (pick_disk(v, i, e))
            return -1;
    }
    return 0;
}

static int build(struct vc *v, struct st_err *e)
{
    struct db_volume row = {0};

    if (v->n_disks == 2) {
        if (md_create(v, e))
            return -1;
    } else {
        snprintf(v->dev, sizeof v->dev, "%s", v->disk[0].host_device);
    }
    if (make_fs(v, e) || make_dir(v, e) || mount_fs(v, e))
        goto fail;
    snprintf(row.id, sizeof row.id, "%s", v->volume_id);
    snprintf(row.storage_id, sizeof row.storage_id, "%s", v->storage_id);
    snprintf(row.kind, sizeof row.kind, "%s", be_kind_from(BE_FORMATTED));
    json_t *params = json_pack("{s:s}", "mount_point", v->dir);
    int bad = core_volume_set_params(&row, params, e);
    json_decref(params);
    if (bad)
        goto fail;
    snprintf(row.primary_disk_id, sizeof row.primary_disk_id, "%s", v->disk_ids[0]);
    snprintf(row.secondary_disk_id, sizeof row.secondary_disk_id, "%s",
             v->n_disks == 2 ? v->disk_ids[1] : "");
    if (core_manage_register_volume(v->st, &row, e))
        goto fail;
    return 0;
fail:
    undo(v);
    return -1;
}

int core_manage_volume_create(struct core_task_ctx *t, struct st_err *e)
{
    struct vc *v = calloc(1, sizeof *v);
    char key[96];

    if (!v)
        return st_fail(e, ST_INTERNAL, "out of memory");
    v->st = t->st;
    v->storage_id = core_task_str(t, "storage");
    v->volume_id = core_task_str(t, "volume");
    v->disk_ids[0] = core_task_str(t, "disk");
    v->disk_ids[1] = core_task_str(t, "mirror_disk");
    v->n_disks = *v->disk_ids[1] ? 2 : 1;
    snprintf(key, sizeof key, "volume:%s", v->volume_id);
    int rc = core_claim(t->st, key, v->volume_id, e);
    if (rc == 0) {
        rc = check(v, e) || build(v, e) ? -1 : 0;
        core_unclaim(t->st, key);
    }
    for (size_t i = 0; i < v->n_claims; i++)
        core_unclaim(t->st, v->claims[i]);
    if (rc == 0)
        t->result = json_pack("{s:s, s:s, s:s, s:s}", "volume", v->volume_id, "device", v->dev,
                              "filesystem", "xfs", "mount_point", v->dir);
    free(v);
    return rc;
}

/* After a restart: the row is inserted last, so it says the volume was made. Without
 * it, a mount the dead process made under the state dir is taken down again; the disk
 * keeps the filesystem that was made on it (whether it held data before cannot be
 * known any more, so it is not wiped). */
int core_manage_volume_create_done(struct core_task_ctx *t, int64_t started_at)
{
    struct db_volume v;
    struct st_err e;
    char dir[DB_PATH];
    const char *id = core_task_str(t, "volume");

    if (core_manage_evolume_create_done(t, started_at) == 1)
        return 1;
    struct db_conn *c = db_acquire(t->st->db);
    int exists = db_volume_get(c, id, &v, &e) == 0;
    db_release(t->st->db, c);
    core_volume_mount_dir(t->st, id, dir, sizeof dir);
    if (exists || access(dir, F_OK) != 0)
        return 0;
    if (probe_is_mount_point(dir) == 1 && sys_umount(dir, &e)) {
        fprintf(stderr, "stowaged: interrupted volume_create of '%s': %s\n", id, e.msg);
        return 0;
    }
    if (rmdir(dir) != 0)
        fprintf(stderr, "stowaged: interrupted volume_create of '%s': rmdir %s: %s\n", id, dir,
                strerror(errno));
    else
        fprintf(stderr, "stowaged: interrupted volume_create of '%s': %s taken down\n", id, dir);
    return 0;
}
