/* storage.c — image storages: the config's initial ones, and the assembled view
 * (rows + live volume state + disks) that every dialect renders. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A configured volume must be a place of its own: not the directory of another volume
 * (however it is spelled), not inside one, not around one. Said at start, naming both. */
static int check_place(struct db_conn *c, const struct db_volume *v, struct st_err *e)
{
    struct db_volume *rows = NULL;
    size_t n = 0;
    struct st_err why;

    if (db_volume_list(c, NULL, &rows, &n, e))
        return -1;
    int rc = core_volume_check_place(v, rows, n, "volume", &why);
    free(rows);
    if (rc)
        st_fail_field(e, why.code, "storages", "volume '%s': %s", v->id, why.msg);
    return rc;
}

/* Insert one configured volume unless it exists; its backend records what only the place
 * can tell (a directory that is a mount point when registered must stay one). */
static int apply_volume(struct stowage *st, struct db_conn *c, const char *storage_id,
                        const struct cfg_volume *cv, int *added, struct st_err *e)
{
    struct db_volume v = {0};
    struct st_err ignore;

    if (db_volume_get(c, cv->id, &v, &ignore) == 0) {
        if (strcmp(v.storage_id, storage_id) != 0)
            return st_fail(e, ST_EXISTS, "volume '%s' already belongs to storage '%s'", cv->id,
                           v.storage_id);
        return check_place(c, &v, e);
    }
    memset(&v, 0, sizeof v);
    snprintf(v.id, sizeof v.id, "%s", cv->id);
    snprintf(v.storage_id, sizeof v.storage_id, "%s", storage_id);
    snprintf(v.kind, sizeof v.kind, "%s", cv->kind);
    if (core_volume_set_params(&v, cv->params, e) || core_volume_prepare(st, &v, e))
        return st_fail_field(e, e->code, "storages", "volume '%s': %.200s", cv->id, e->msg);
    if (check_place(c, &v, e) || db_volume_insert(c, &v, e))
        return -1;
    *added = 1;
    return 0;
}

int core_storage_apply_config(struct stowage *st, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int added = 0;

    if (db_begin(c, e))
        goto fail;
    for (size_t i = 0; i < st->cfg.n_storages; i++) {
        const struct cfg_storage *cs = &st->cfg.storages[i];
        struct db_storage s = {0};
        struct st_err ignore;

        if (db_storage_get(c, cs->id, &s, &ignore) != 0) {
            snprintf(s.id, sizeof s.id, "%s", cs->id);
            snprintf(s.name, sizeof s.name, "%s", cs->name ? cs->name : cs->id);
            snprintf(s.description, sizeof s.description, "%s",
                     cs->description ? cs->description : "");
            if (db_storage_insert(c, &s, e))
                goto fail;
            added = 1;
        }
        if (db_host_add(c, cs->id, st->hostname, e))
            goto fail;
        for (size_t k = 0; k < cs->n_volumes; k++)
            if (apply_volume(st, c, cs->id, &cs->volumes[k], &added, e))
                goto fail;
    }
    if (db_commit(c, e))
        goto fail;
    db_release(st->db, c);
    if (added)
        core_bump(st);
    return 0;
fail:
    db_rollback(c);
    db_release(st->db, c);
    return -1;
}

int core_storage_ids(struct stowage *st, char (**ids)[CORE_ID], size_t *n, struct st_err *e)
{
    struct db_storage *rows = NULL;
    size_t cnt = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_storage_list(c, &rows, &cnt, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    *ids = calloc(cnt ? cnt : 1, sizeof **ids);
    if (!*ids) {
        free(rows);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < cnt; i++)
        snprintf((*ids)[i], DB_ID, "%s", rows[i].id);
    *n = cnt;
    free(rows);
    return 0;
}

void core_storage_view_free(struct core_storage_view *v)
{
    for (size_t i = 0; i < v->n_volumes; i++) {
        free(v->volumes[i].images);
        free(v->volumes[i].clones);
        json_decref(v->volumes[i].details);
    }
    free(v->volumes);
    free(v->hosts);
    free(v->disks);
    memset(v, 0, sizeof *v);
}

static void volume_from_row(const struct db_volume *row, struct core_volume_view *out)
{
    memcpy(out->id, row->id, sizeof out->id);
    memcpy(out->storage_id, row->storage_id, sizeof out->storage_id);
    memcpy(out->kind, row->kind, sizeof out->kind);
    memcpy(out->primary_disk_id, row->primary_disk_id, sizeof out->primary_disk_id);
    memcpy(out->secondary_disk_id, row->secondary_disk_id, sizeof out->secondary_disk_id);
}

/* The active images and the clones of a volume, as views. */
static int load_contents(struct db_conn *c, struct core_volume_view *vv, struct st_err *e)
{
    struct db_image *im = NULL;
    struct db_clone *cl = NULL;
    size_t ni = 0, nc = 0;
    int rc = -1;

    if (db_image_list_volume(c, vv->id, &im, &ni, e) ||
        db_clone_list_volume(c, vv->id, &cl, &nc, e))
        goto out;
    vv->images = calloc(ni ? ni : 1, sizeof *vv->images);
    vv->clones = calloc(nc ? nc : 1, sizeof *vv->clones);
    if (!vv->images || !vv->clones) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    for (; vv->n_images < ni; vv->n_images++)
        core_image_from_row(&im[vv->n_images], &vv->images[vv->n_images]);
    for (; vv->n_clones < nc; vv->n_clones++)
        core_clone_from_row(&cl[vv->n_clones], &vv->clones[vv->n_clones]);
    rc = 0;
out:
    free(im);
    free(cl);
    return rc;
}

static int load_rows(struct stowage *st, const char *id, struct core_storage_view *out,
                     struct st_err *e)
{
    struct db_storage srow;
    struct db_volume *vols = NULL;
    size_t nv = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = -1;

    if (db_storage_get(c, id, &srow, e) || db_host_list(c, id, &out->hosts, &out->n_hosts, e) ||
        db_volume_list(c, id, &vols, &nv, e))
        goto out;
    memcpy(out->id, srow.id, sizeof out->id);
    memcpy(out->name, srow.name, sizeof out->name);
    memcpy(out->description, srow.description, sizeof out->description);
    out->created_at = srow.created_at;
    out->volumes = calloc(nv ? nv : 1, sizeof *out->volumes);
    if (!out->volumes) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nv; i++) {
        struct core_volume_view *vv = &out->volumes[i];
        volume_from_row(&vols[i], vv);
        out->n_volumes++;
        if (load_contents(c, vv, e))
            goto out;
    }
    rc = 0;
out:
    db_release(st->db, c);
    free(vols);
    return rc;
}

static struct core_volume_view *find_volume(struct core_storage_view *v, const char *id)
{
    for (size_t i = 0; i < v->n_volumes; i++)
        if (strcmp(v->volumes[i].id, id) == 0)
            return &v->volumes[i];
    return NULL;
}

/* A disk no volume uses that volume_create would refuse anyway (see manage_disk.c): it
 * carries a signature, is mounted (or swap), or is held by md/dm — such as the disk the
 * host itself runs from. */
static int in_other_use(const struct probe_disk *d)
{
    return d->has_signature != 0 || d->mounted || d->holder[0];
}

/* Disks usable on this storage: unused ones and those carrying its volumes. */
static int attach_disks(struct stowage *st, struct core_storage_view *v, struct st_err *e)
{
    struct core_disk_view *all = NULL;
    size_t n = 0;

    if (core_disks(st, &all, &n, e))
        return -1;
    v->disks = calloc(n ? n : 1, sizeof *v->disks);
    if (!v->disks) {
        free(all);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct core_volume_view *vv = all[i].volume_id[0] ? find_volume(v, all[i].volume_id) : NULL;
        if (all[i].volume_id[0] ? !vv : in_other_use(&all[i].disk))
            continue;
        struct core_disk *d = &v->disks[v->n_disks++];
        snprintf(d->id, sizeof d->id, "%s", all[i].disk.id);
        snprintf(d->vendor, sizeof d->vendor, "%s", all[i].disk.vendor);
        snprintf(d->model, sizeof d->model, "%s", all[i].disk.model);
        snprintf(d->host_device, sizeof d->host_device, "%s", all[i].disk.host_device);
        snprintf(d->volume_id, sizeof d->volume_id, "%s", all[i].volume_id);
    }
    free(all);
    return 0;
}

int core_storage_view(struct stowage *st, const char *id, struct core_storage_view *out,
                      struct st_err *e)
{
    memset(out, 0, sizeof *out);
    if (load_rows(st, id, out, e))
        goto fail;
    for (size_t i = 0; i < out->n_volumes; i++)
        core_volume_fill_view(st, &out->volumes[i]);
    if (attach_disks(st, out, e))
        goto fail;
    return 0;
fail:
    core_storage_view_free(out);
    return -1;
}
