/* recover.c — after a restart, make each volume agree with the catalogue again.
 *
 * The write protocols (image.c, clone.c) order their steps so that every crash
 * leaves something recovery can decide without guessing:
 *   images/<uuid>.<fmt> with an active row          → fine
 *   images/<uuid>.<fmt> with a 'saving' row         → renamed after the row learnt what
 *                                                     the bytes are: roll forward to active
 *   images/… with a deleted row, another volume's
 *   row, or no row                                  → never committed (a create of one
 *                                                     request killed before its row's
 *                                                     commit) or being deleted: remove
 *   clones/<id>.<fmt> without its row               → committed file, row never written: remove
 *   clones/<id>@<snap>.<fmt> without its row        → a snapshot's, the same
 *   .staging/<uuid>.upload of a 'saving' row that
 *   already has its checksum                        → verified and fsynced, crashed before
 *                                                     the rename: finish the commit
 *   .staging/<uuid>.upload of a 'saving' row        → a resumable upload: keep (it expires)
 *   anything else in .staging/                      → an interrupted task: remove
 *   a 'saving' row with no bytes anywhere           → remove the row
 *   a releasing row (image.unmanage) whose file is
 *   still in images/ / back under its origin        → the release is undone / finished
 *   an active row without its file                  → cannot happen by construction; if it
 *                                                     does, the row turns 'error', loudly
 * Files whose names are not ours are left alone, and so is every file the catalogue
 * knows under another volume. In a directory recovery cannot prove is this volume's own
 * (it is not the directory recorded at registration, or another volume uses the same
 * one) nothing is removed: what would have been is logged instead. */
#include "core_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct names {
    char (*v)[256];
    time_t *mtime;
    size_t n, cap;
};

static int collect(void *ud, const char *name, const struct stat *st)
{
    struct names *ns = ud;
    if (!S_ISREG(st->st_mode) || strlen(name) >= 256)
        return 0;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 64;
        char(*v)[256] = realloc(ns->v, cap * sizeof *v);
        time_t *m = realloc(ns->mtime, cap * sizeof *m);
        if (v)
            ns->v = v;
        if (m)
            ns->mtime = m;
        if (!v || !m)
            return -1;
        ns->cap = cap;
    }
    snprintf(ns->v[ns->n], 256, "%s", name);
    ns->mtime[ns->n] = st->st_mtime;
    ns->n++;
    return 0;
}

static int list_dir(const struct backend_ops *ops, struct be_volume *be, const char *dir,
                    struct names *ns, struct st_err *e)
{
    memset(ns, 0, sizeof *ns);
    int rc = ops->list(be, dir, collect, ns);
    if (rc < 0 && rc != -ENOENT) /* nothing there yet */
        return be_fail(e, rc, dir);
    return 0;
}

static void names_free(struct names *ns)
{
    free(ns->v);
    free(ns->mtime);
}

static struct db_image *row_of(struct db_image *rows, size_t n, const char *uuid, size_t uuid_len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(rows[i].uuid) == uuid_len && strncmp(rows[i].uuid, uuid, uuid_len) == 0)
            return &rows[i];
    return NULL;
}

/* "<36-char uuid><suffix>" → 1 with the suffix's start, else 0 (not our name). */
static int split_uuid(const char *name, const char **suffix)
{
    if (strlen(name) < 37 || name[8] != '-' || name[13] != '-' || name[18] != '-' ||
        name[23] != '-')
        return 0;
    *suffix = name + 36;
    return 1;
}

/* What one recovery run works on. doubt: why the directory may not be the volume's
 * own ("" when it is). */
struct scope {
    struct stowage *st;
    const char *volume_id;
    const struct backend_ops *ops;
    struct be_volume *be;
    char doubt[600];
};

static void drop(const struct scope *sc, const char *dir, const char *name, const char *why)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (sc->doubt[0]) {
        fprintf(stderr, "stowaged: recovery: volume %s: would remove %s (%s); left alone: %s\n",
                sc->volume_id, path, why, sc->doubt);
        return;
    }
    int rc = sc->ops->discard(sc->be, path);
    fprintf(stderr, "stowaged: recovery: %s %s (%s)\n", rc == 0 ? "removed" : "could not remove",
            path, why);
}

/* The live image (any volume but this one) that owns a uuid-named file: 1 with its name
 * and volume, else 0. */
static int image_elsewhere(const struct scope *sc, const char *name, char *owner, size_t olen,
                           char *vol, size_t vlen)
{
    struct db_image im;
    struct st_err e;
    char uuid[37];
    snprintf(uuid, sizeof uuid, "%.36s", name);
    struct db_conn *c = db_acquire(sc->st->db);
    int found = db_image_get(c, uuid, &im, &e) == 0;
    db_release(sc->st->db, c);
    if (!found || strcmp(im.status, "deleted") == 0 || strcmp(im.volume_id, sc->volume_id) == 0)
        return 0;
    snprintf(owner, olen, "image %s", im.name);
    snprintf(vol, vlen, "%s", im.volume_id);
    return 1;
}

static void left_alone(const struct scope *sc, const char *dir, const char *name, const char *owner,
                       const char *vol)
{
    fprintf(stderr, "stowaged: recovery: volume %s: left %s/%s alone: it is %s of volume '%s'\n",
            sc->volume_id, dir, name, owner, vol);
}

static void set_status(struct stowage *st, const char *uuid, const char *status)
{
    struct st_err e;
    struct db_conn *c = db_acquire(st->db);
    if (db_image_set_status(c, uuid, status, &e))
        fprintf(stderr, "stowaged: recovery: image %s: %s\n", uuid, e.msg);
    db_release(st->db, c);
}

static void recover_images(const struct scope *sc, struct db_image *rows, size_t n, char *seen,
                           struct names *ns)
{
    struct stowage *st = sc->st;
    for (size_t i = 0; i < ns->n; i++) {
        const char *name = ns->v[i], *suffix;
        char owner[100], vol[DB_ID];
        if (!split_uuid(name, &suffix) || suffix[0] != '.')
            continue;
        struct db_image *im = row_of(rows, n, name, 36);
        int ours = im && strcmp(suffix + 1, im->format) == 0;
        if (ours && strcmp(im->status, "active") == 0) {
            seen[im - rows] = 1;
        } else if (ours && strcmp(im->status, "saving") == 0) {
            set_status(st, im->uuid, "active");
            snprintf(im->status, sizeof im->status, "active");
            seen[im - rows] = 1;
            fprintf(stderr, "stowaged: recovery: image %s (%s) completed its commit\n", im->name,
                    im->uuid);
        } else if (!im && image_elsewhere(sc, name, owner, sizeof owner, vol, sizeof vol)) {
            left_alone(sc, "images", name, owner, vol);
        } else {
            drop(sc, "images", name, im ? im->status : "no row");
        }
    }
}

/* clones/<clone>@<name>.<fmt>: a snapshot's file, kept while its row says it is there. */
static void recover_snapshot(const struct scope *sc, const char *file, const char *clone_id,
                             const char *name)
{
    struct db_snapshot s;
    struct st_err e;
    char path[300];
    if (!core_valid_id(clone_id) || !core_valid_id(name))
        return;
    snprintf(path, sizeof path, "clones/%s", file);
    struct db_conn *c = db_acquire(sc->st->db);
    int found = db_snapshot_get(c, clone_id, name, &s, &e) == 0;
    db_release(sc->st->db, c);
    if (found && strcmp(s.volume_id, sc->volume_id) != 0) {
        char owner[100];
        snprintf(owner, sizeof owner, "snapshot %s@%s", clone_id, name);
        left_alone(sc, "clones", file, owner, s.volume_id);
    } else if (!found || strcmp(s.path, path) != 0) {
        drop(sc, "clones", file, "no row");
    }
}

static void recover_clones(const struct scope *sc, struct names *ns)
{
    struct stowage *st = sc->st;
    for (size_t i = 0; i < ns->n; i++) {
        char id[256], path[300];
        struct db_clone cl;
        struct st_err e;
        const char *dot = strrchr(ns->v[i], '.');
        if (!dot || dot == ns->v[i])
            continue;
        snprintf(id, sizeof id, "%.*s", (int)(dot - ns->v[i]), ns->v[i]);
        char *at = strchr(id, '@');
        if (at) {
            *at = '\0';
            recover_snapshot(sc, ns->v[i], id, at + 1);
            continue;
        }
        if (!core_valid_id(id))
            continue;
        snprintf(path, sizeof path, "clones/%s", ns->v[i]);
        struct db_conn *c = db_acquire(st->db);
        int found = db_clone_get(c, id, &cl, &e) == 0;
        db_release(st->db, c);
        if (found && strcmp(cl.volume_id, sc->volume_id) != 0) {
            char owner[100];
            snprintf(owner, sizeof owner, "clone %s", cl.clone_id);
            left_alone(sc, "clones", ns->v[i], owner, cl.volume_id);
        } else if (!found || strcmp(cl.path, path) != 0) {
            drop(sc, "clones", ns->v[i], "no row");
        }
    }
}

/* Only the file the upload created is rolled forward: one link, the recorded inode. */
static int staging_is_ours(const struct scope *sc, const struct db_image *im, const char *path)
{
    struct stat sb;
    struct st_err e;
    uint64_t ino = 0, total;
    struct db_conn *c = db_acquire(sc->st->db);
    int rc = db_image_get_upload(c, im->uuid, &ino, &total, &e);
    db_release(sc->st->db, c);
    if (rc || sc->ops->stat(sc->be, path, &sb) != 0)
        return 0;
    if (S_ISREG(sb.st_mode) && sb.st_nlink == 1 && (!ino || (uint64_t)sb.st_ino == ino))
        return 1;
    fprintf(stderr,
            "stowaged: recovery: volume %s: %s is not the file image %s staged; not "
            "committed\n",
            sc->volume_id, path, im->name);
    return 0;
}

static void recover_staging(const struct scope *sc, struct db_image *rows, size_t n, char *seen,
                            char *staged, struct names *ns)
{
    struct stowage *st = sc->st;
    const struct backend_ops *ops = sc->ops;
    struct be_volume *be = sc->be;
    for (size_t i = 0; i < ns->n; i++) {
        const char *name = ns->v[i], *suffix;
        char owner[100], vol[DB_ID];
        struct db_image *im = NULL;
        int upload = split_uuid(name, &suffix) && strcmp(suffix, UPLOAD_SUFFIX) == 0;
        if (upload)
            im = row_of(rows, n, name, 36);
        if (upload && !im && image_elsewhere(sc, name, owner, sizeof owner, vol, sizeof vol)) {
            left_alone(sc, STAGING_DIR, name, owner, vol);
            continue;
        }
        if (im && strcmp(im->status, "saving") == 0 && im->sha256[0]) {
            char from[300], to[128];
            snprintf(from, sizeof from, STAGING_DIR "/%s", name);
            core_image_path(im, to, sizeof to);
            int moved;
            if (staging_is_ours(sc, im, from) && ops->publish(be, from, to, &moved) == 0) {
                set_status(st, im->uuid, "active");
                snprintf(im->status, sizeof im->status, "active");
                seen[im - rows] = 1;
                fprintf(stderr, "stowaged: recovery: image %s (%s) completed its commit\n",
                        im->name, im->uuid);
                continue;
            }
        }
        if (im && strcmp(im->status, "saving") == 0) {
            staged[im - rows] = 1; /* a resumable upload */
            continue;
        }
        drop(sc, STAGING_DIR, name, "interrupted");
    }
}

/* Is the place the volume's own? Fills sc->doubt when it cannot be proved; records the
 * place's identity on a volume registered before it was recorded. */
static int judge_directory(struct scope *sc, struct st_err *e)
{
    struct db_volume *vols = NULL, *self = NULL;
    size_t nv = 0;
    struct db_conn *c = db_acquire(sc->st->db);
    int rc = db_volume_list(c, NULL, &vols, &nv, e);
    db_release(sc->st->db, c);
    if (rc)
        return -1;
    for (size_t i = 0; i < nv; i++)
        if (strcmp(vols[i].id, sc->volume_id) == 0)
            self = &vols[i];
    if (!self) {
        free(vols);
        return st_fail(e, ST_NOT_FOUND, "volume '%s' not found", sc->volume_id);
    }
    core_volume_doubt(sc->st, self, sc->ops, sc->be, vols, nv, sc->doubt, sizeof sc->doubt);
    if (sc->doubt[0])
        fprintf(stderr,
                "stowaged: recovery: volume %s: nothing is removed, no image changes status: %s\n",
                sc->volume_id, sc->doubt);
    free(vols);
    return 0;
}

int core_recover_volume(struct stowage *st, const char *volume_id, const struct backend_ops *ops,
                        struct be_volume *be, struct st_err *e)
{
    struct db_image *rows = NULL;
    size_t n = 0;
    struct names images = {0}, clones = {0}, staging = {0};
    char *seen = NULL, *staged = NULL;
    struct scope *sc = calloc(1, sizeof *sc);
    struct db_conn *c;
    int rc = -1, lrc;

    if (!sc)
        return st_fail(e, ST_INTERNAL, "out of memory");
    sc->st = st;
    sc->volume_id = volume_id;
    sc->ops = ops;
    sc->be = be;
    if (judge_directory(sc, e))
        goto out;
    c = db_acquire(st->db);
    lrc = db_image_list_volume_all(c, volume_id, &rows, &n, e);
    db_release(st->db, c);
    if (lrc)
        goto out;
    seen = calloc(n + 1, 1);
    staged = calloc(n + 1, 1);
    if (!seen || !staged) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    if (list_dir(ops, be, "images", &images, e) || list_dir(ops, be, "clones", &clones, e) ||
        list_dir(ops, be, STAGING_DIR, &staging, e))
        goto out;
    recover_images(sc, rows, n, seen, &images);
    recover_clones(sc, &clones);
    recover_staging(sc, rows, n, seen, staged, &staging);
    if (core_recover_releases(st, volume_id, ops, be, rows, n, seen, e))
        goto out;
    for (size_t i = 0; i < n && !sc->doubt[0]; i++) {
        if (strcmp(rows[i].status, "active") == 0 && !seen[i]) {
            fprintf(stderr, "stowaged: recovery: image %s (%s) has no file on volume %s\n",
                    rows[i].name, rows[i].uuid, volume_id);
            set_status(st, rows[i].uuid, "error");
        } else if (strcmp(rows[i].status, "saving") == 0 && !staged[i]) {
            /* Nothing of it was ever staged. No operation of this run can hold such a row
             * now: the volume refuses them until this recovery is done, and an upload makes
             * its row only once it holds the volume. */
            core_image_discard(st, rows[i].uuid);
        }
    }
    core_bump(st);
    rc = 0;
out:
    names_free(&images);
    names_free(&clones);
    names_free(&staging);
    free(seen);
    free(staged);
    free(rows);
    free(sc);
    return rc;
}

int core_expire_uploads(struct stowage *st, const char *volume_id, const struct backend_ops *ops,
                        struct be_volume *be, struct st_err *e)
{
    struct names staging;
    struct scope sc = {.st = st, .volume_id = volume_id, .ops = ops, .be = be};
    time_t now = time(NULL);

    if (list_dir(ops, be, STAGING_DIR, &staging, e))
        return -1;
    for (size_t i = 0; i < staging.n; i++) {
        const char *name = staging.v[i], *suffix;
        char uuid[37], key[64];
        struct st_err busy;
        if (!split_uuid(name, &suffix) || strcmp(suffix, UPLOAD_SUFFIX) != 0 ||
            now - staging.mtime[i] < (time_t)st->cfg.staging_expiry_s)
            continue;
        snprintf(uuid, sizeof uuid, "%.36s", name);
        snprintf(key, sizeof key, "image:%s", uuid);
        if (core_claim(st, key, "expiry", &busy))
            continue; /* an upload is writing it right now */
        struct db_image im;
        struct db_conn *c = db_acquire(st->db);
        int have = db_image_get(c, uuid, &im, &busy) == 0;
        db_release(st->db, c);
        int theirs = have && strcmp(im.status, "deleted") != 0 &&
                     strcmp(im.volume_id, volume_id) != 0; /* another volume's to expire */
        if (!theirs)
            drop(&sc, STAGING_DIR, name, "upload expired");
        if (have && strcmp(im.status, "saving") == 0 && strcmp(im.volume_id, volume_id) == 0)
            core_image_discard(st, uuid);
        core_unclaim(st, key);
        core_bump(st);
    }
    names_free(&staging);
    return 0;
}
