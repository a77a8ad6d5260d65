/* snapshot.c — a clone's state frozen at one instant, and new images made of it.
 *
 * A snapshot is a copy of the clone's file, clones/<clone>@<name>.<fmt>, on the clone's
 * volume: a reflink where the filesystem shares blocks (one atomic clone of the file's
 * extents, so the copy is the file at one instant), else a sparse copy. The guest goes
 * on writing its clone; the copy is never opened for writing again. A qcow2 copy keeps
 * the clone's backing reference (../images/<uuid>.<fmt>), which the flattening never
 * follows: the chain is the catalogue's (the snapshot, then its clone's image).
 *
 * snapshot.image reads that chain through the backends with format/'s qcow2 mapper
 * (which layer holds each guest range, data, zeros or deflated clusters) and writes the
 * guest's bytes as a new raw image: staging, holes for zeros, fsync, inspect, rename,
 * fsync dir, then the row turns active — the commit of every image.
 *
 * Order of a snapshot: file first (staging, fsync, rename, fsync dir), row last; a crash
 * between leaves a file without a row, which recovery removes. Delete: row first. '@'
 * never occurs in a clone id, so a snapshot's file is never taken for a clone's. */
#include "core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FLAT_CHUNK (4u << 20)
#define ZERO_PAGE 65536u

static void snapshot_from_row(const struct db_snapshot *row, int status, struct core_snapshot *o)
{
    memset(o, 0, sizeof *o);
    memcpy(o->clone_id, row->clone_id, sizeof o->clone_id);
    memcpy(o->guest_id, row->guest_id, sizeof o->guest_id);
    memcpy(o->name, row->name, sizeof o->name);
    memcpy(o->note, row->note, sizeof o->note);
    memcpy(o->volume_id, row->volume_id, sizeof o->volume_id);
    memcpy(o->image_uuid, row->image_uuid, sizeof o->image_uuid);
    o->size = row->size;
    o->created_at = row->created_at;
    o->status = status;
}

/* One operation at a time on a snapshot: "snapshot:<clone>@<name>". */
static int claim(struct stowage *st, const char *clone_id, const char *name, char *key, size_t len,
                 struct st_err *e)
{
    char what[160];
    snprintf(key, len, "snapshot:%s@%s", clone_id, name);
    snprintf(what, sizeof what, "snapshot '%s' of clone '%s'", name, clone_id);
    return core_claim(st, key, what, e);
}

/* 1 ok, 2 while an operation holds it, 4 when its file is gone (looked at through v). */
static int status_of(struct stowage *st, const struct core_vol_ref *v, const struct db_snapshot *s)
{
    char key[160];
    struct stat sb;
    struct st_err e;
    if (claim(st, s->clone_id, s->name, key, sizeof key, &e))
        return 2;
    core_unclaim(st, key);
    if (v && v->ops->stat(v->be, s->path, &sb) == -ENOENT)
        return 4;
    return 1;
}

int core_guest_clones(struct stowage *st, const char *guest, struct core_clone **out, size_t *n,
                      struct st_err *e)
{
    struct db_clone *rows = NULL;
    size_t cnt = 0;
    *out = NULL;
    *n = 0;
    if (!core_valid_id(guest))
        return st_fail(e, ST_NOT_FOUND, "guest '%.64s' has no clone", guest ? guest : "");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_clone_list_guest(c, guest, &rows, &cnt, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    if (cnt == 0) {
        free(rows);
        return st_fail(e, ST_NOT_FOUND, "guest '%s' has no clone", guest);
    }
    if (!(*out = calloc(cnt, sizeof **out))) {
        free(rows);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < cnt; i++)
        core_clone_from_row(&rows[i], &(*out)[i]);
    *n = cnt;
    free(rows);
    return 0;
}

int core_snapshot_list(struct stowage *st, const char *clone_id, struct core_snapshot **out,
                       size_t *n, struct st_err *e)
{
    struct db_snapshot *rows = NULL;
    size_t cnt = 0;
    struct core_vol_ref v = {0};
    struct st_err ignore;
    *out = NULL;
    *n = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_snapshot_list(c, clone_id, "", &rows, &cnt, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    if (cnt && core_volume_acquire(st, rows[0].volume_id, &v, &ignore))
        v.ops = NULL; /* an absent volume: no file can be looked at */
    if (!(*out = calloc(cnt ? cnt : 1, sizeof **out))) {
        rc = st_fail(e, ST_INTERNAL, "out of memory");
    } else {
        for (size_t i = 0; i < cnt; i++)
            snapshot_from_row(&rows[i], status_of(st, v.ops ? &v : NULL, &rows[i]), &(*out)[i]);
        *n = cnt;
    }
    if (v.ops)
        core_volume_release(&v);
    free(rows);
    return rc;
}

static int snapshot_row(struct stowage *st, const char *clone_id, const char *name,
                        struct db_snapshot *out, struct st_err *e)
{
    if (!core_valid_id(clone_id) || !core_valid_id(name))
        return st_fail(e, ST_NOT_FOUND, "snapshot '%.64s' not found", name ? name : "");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_snapshot_get(c, clone_id, name, out, e);
    db_release(st->db, c);
    return rc;
}

int core_snapshot_get(struct stowage *st, const char *clone_id, const char *name,
                      struct core_snapshot *out, struct st_err *e)
{
    struct db_snapshot row;
    struct core_vol_ref v;
    struct st_err ignore;
    if (snapshot_row(st, clone_id, name, &row, e))
        return -1;
    int have = core_volume_acquire(st, row.volume_id, &v, &ignore) == 0;
    snapshot_from_row(&row, status_of(st, have ? &v : NULL, &row), out);
    if (have)
        core_volume_release(&v);
    return 0;
}

/* ---- snapshot.create, snapshot.delete ---- */

int core_snapshot_create(struct stowage *st, const char *clone_id, const char *name,
                         const char *note, struct db_snapshot *out, struct st_err *e)
{
    struct db_clone cl;
    struct core_vol_ref v = {0};
    struct be_file *src = NULL, *dst = NULL;
    char key[160], id[DB_ID * 2 + 2], staging[200];
    int rc = -1, held = 0, acquired = 0;

    if (core_clone_get(st, clone_id, &cl, e))
        return -1;
    if (!core_valid_id(name))
        return st_fail_field(e, ST_INVALID, "snapshot",
                             "snapshot names match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$");
    memset(out, 0, sizeof *out);
    if (snapshot_row(st, clone_id, name, out, e) == 0)
        return st_fail_field(e, ST_EXISTS, "snapshot", "snapshot '%s' of clone '%s' exists", name,
                             clone_id);
    if (claim(st, clone_id, name, key, sizeof key, e))
        return -1;
    held = 1;
    if (core_volume_acquire(st, cl.volume_id, &v, e))
        goto out;
    acquired = 1;
    memset(out, 0, sizeof *out);
    snprintf(out->clone_id, sizeof out->clone_id, "%s", clone_id);
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->note, sizeof out->note, "%s", note ? note : "");
    snprintf(out->format, sizeof out->format, "%s", cl.format);
    snprintf(out->path, sizeof out->path, "clones/%s@%s.%s", clone_id, name, cl.format);
    snprintf(out->volume_id, sizeof out->volume_id, "%s", cl.volume_id);
    snprintf(out->guest_id, sizeof out->guest_id, "%s", cl.guest_id);
    snprintf(out->image_uuid, sizeof out->image_uuid, "%s", cl.image_uuid);
    snprintf(id, sizeof id, "%s@%s", clone_id, name);
    core_staging_path(id, ".snapshot" TASK_SUFFIX, staging, sizeof staging);
    if ((rc = v.ops->open_file(v.be, cl.path, O_RDONLY, 0, &src)) < 0) {
        rc = be_fail(e, rc, "open the clone");
        goto out;
    }
    if ((rc = core_open_staging(&v, staging, &dst, e)))
        goto out;
    if ((rc = core_copy_file(&v, src, &v, dst, NULL, e)) ||
        (rc = core_file_size(&v, dst, &out->size, e))) {
        v.ops->discard(v.be, staging);
        goto out;
    }
    if ((rc = core_publish_clone_file(&v, dst, staging, out->path, "snapshot", e)))
        goto out;
    struct db_conn *c = db_acquire(st->db);
    rc = db_snapshot_insert(c, out, e);
    db_release(st->db, c);
    if (rc) {
        v.ops->remove(v.be, out->path);
        goto out;
    }
    core_bump(st);
out:
    if (dst)
        v.ops->close_file(dst);
    if (src)
        v.ops->close_file(src);
    if (acquired)
        core_volume_release(&v);
    if (held)
        core_unclaim(st, key);
    return rc ? -1 : 0;
}

int core_snapshot_delete(struct stowage *st, const char *clone_id, const char *name,
                         struct st_err *e)
{
    struct db_snapshot s;
    struct core_vol_ref v;
    struct st_err ignore;
    char key[160];

    if (snapshot_row(st, clone_id, name, &s, e))
        return -1;
    if (claim(st, clone_id, name, key, sizeof key, e))
        return -1;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_snapshot_delete(c, clone_id, name, e);
    db_release(st->db, c);
    if (rc == 0) {
        core_bump(st);
        /* Row first: a file left by a crash or an absent volume is removed by recovery. */
        if (core_volume_acquire(st, s.volume_id, &v, &ignore) == 0) {
            v.ops->remove(v.be, s.path);
            core_volume_release(&v);
        }
    }
    core_unclaim(st, key);
    return rc;
}

void core_snapshot_remove_files(struct stowage *st, const struct core_vol_ref *v,
                                const struct db_snapshot *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v->ops->remove(v->be, s[i].path);
}

/* ---- flattening: the guest's bytes of a chain of layers ---- */

struct layer {
    const struct core_vol_ref *v;
    struct be_file *f;
    uint64_t size;                    /* of the file */
    uint64_t virtual_size;            /* guest bytes it has; past them it reads as zeros */
    struct fmt_qcow2_map *map;        /* NULL: raw */
    unsigned char *cluster;           /* the last inflated cluster */
    uint64_t cluster_at, cluster_len; /* its guest offset (UINT64_MAX none) and size */
};

struct chain {
    struct layer l[2]; /* the snapshot, then its clone's image (when the snapshot has one) */
    int n;
};

static ssize_t layer_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    struct layer *l = ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t r = l->v->ops->pread(l->f, (char *)buf + done, len - done, off + done);
        if (r < 0)
            return r;
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

/* Bytes of a layer's file; what lies past its end reads as zeros (as in qemu). */
static int file_read(struct layer *l, uint64_t off, unsigned char *buf, size_t len,
                     struct st_err *e)
{
    ssize_t r = off < l->size ? layer_pread(l, buf, len, off) : 0;
    if (r < 0)
        return be_fail(e, (int)r, "read snapshot chain");
    memset(buf + r, 0, len - (size_t)r);
    return 0;
}

static int inflate_cluster(struct layer *l, const struct fmt_extent *x, struct st_err *e)
{
    unsigned char *in = malloc(x->clen ? x->clen : 1);
    z_stream z = {0};
    int rc = -1;
    if (!in)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (file_read(l, x->host, in, (size_t)x->clen, e))
        goto out;
    if (inflateInit2(&z, -12) != Z_OK) {
        st_fail(e, ST_INTERNAL, "zlib: %s", z.msg ? z.msg : "init failed");
        goto out;
    }
    z.next_in = in;
    z.avail_in = (uInt)x->clen;
    z.next_out = l->cluster;
    z.avail_out = (uInt)l->cluster_len;
    int zr = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    if ((zr != Z_STREAM_END && zr != Z_BUF_ERROR) || z.avail_out != 0) {
        st_fail(e, ST_INVALID, "a compressed cluster at guest offset %llu does not inflate",
                (unsigned long long)x->cluster);
        goto out;
    }
    l->cluster_at = x->cluster;
    rc = 0;
out:
    free(in);
    return rc;
}

static int guest_read(struct chain *ch, int i, uint64_t off, unsigned char *buf, size_t len,
                      struct st_err *e)
{
    struct layer *l = &ch->l[i];
    if (i >= ch->n || off >= l->virtual_size) {
        memset(buf, 0, len);
        return 0;
    }
    if (len > l->virtual_size - off) {
        size_t in = (size_t)(l->virtual_size - off);
        memset(buf + in, 0, len - in);
        len = in;
    }
    if (!l->map)
        return file_read(l, off, buf, len, e);
    while (len > 0) {
        struct fmt_extent x;
        int rc = fmt_qcow2_map_get(l->map, off, len, &x);
        if (rc < 0)
            return st_fail(e, ST_INVALID, "the qcow2 tables of layer %d are broken (%s)", i,
                           strerror(-rc));
        size_t n = (size_t)x.len;
        switch (x.kind) {
        case FMT_EXT_DATA:
            rc = file_read(l, x.host, buf, n, e);
            break;
        case FMT_EXT_ZERO:
            memset(buf, 0, n);
            break;
        case FMT_EXT_BACKING:
            rc = guest_read(ch, i + 1, off, buf, n, e);
            break;
        case FMT_EXT_COMPRESSED:
            if (l->cluster_at != x.cluster)
                rc = inflate_cluster(l, &x, e);
            if (rc == 0)
                memcpy(buf, l->cluster + (off - x.cluster), n);
            break;
        }
        if (rc)
            return -1;
        buf += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Open one layer: raw (and iso) bytes as they are, qcow2 through the mapper. */
static int layer_open(struct layer *l, const struct core_vol_ref *v, const char *path,
                      const char *format, struct st_err *e)
{
    char why[160];
    memset(l, 0, sizeof *l);
    l->v = v;
    l->cluster_at = UINT64_MAX;
    int raw = strcmp(format, "raw") == 0 || strcmp(format, "iso") == 0;
    if (!raw && strcmp(format, "qcow2") != 0)
        return st_fail_field(e, ST_INVALID, "snapshot",
                             "a chain with a %s layer cannot be flattened (raw and qcow2 can)",
                             format);
    int rc = v->ops->open_file(v->be, path, O_RDONLY, 0, &l->f);
    if (rc < 0)
        return be_fail(e, rc, "open snapshot chain");
    if (core_file_size(v, l->f, &l->size, e))
        return -1;
    l->virtual_size = l->size;
    if (raw)
        return 0;
    struct fmt_source src = {l, layer_pread, l->size};
    if ((rc = fmt_qcow2_map_open(&src, &l->map, why, sizeof why)) < 0)
        return rc == -EINVAL ? st_fail_field(e, ST_INVALID, "snapshot", "%s: %s", path, why)
                             : be_fail(e, rc, "read qcow2 header");
    l->virtual_size = fmt_qcow2_map_size(l->map);
    l->cluster_len = fmt_qcow2_map_cluster_size(l->map);
    return 0;
}

static void chain_close(struct chain *ch)
{
    for (int i = 0; i < 2; i++) {
        struct layer *l = &ch->l[i];
        if (l->f)
            l->v->ops->close_file(l->f);
        fmt_qcow2_map_close(l->map);
        free(l->cluster);
        l->f = NULL;
        l->map = NULL;
        l->cluster = NULL;
    }
}

/* The snapshot, then (when its top is a qcow2 that has one) the clone's image. */
static int chain_open(struct stowage *st, struct chain *ch, const struct core_vol_ref *v,
                      const struct db_snapshot *s, struct db_image *base, struct st_err *e)
{
    memset(ch, 0, sizeof *ch);
    if (core_image_row(st, s->image_uuid, base, e))
        return -1;
    ch->n = 1;
    if (layer_open(&ch->l[0], v, s->path, s->format, e))
        return -1;
    if (!ch->l[0].map || !fmt_qcow2_map_has_backing(ch->l[0].map))
        return 0;
    char path[128];
    core_image_path(base, path, sizeof path);
    ch->n = 2;
    if (layer_open(&ch->l[1], v, path, base->format, e))
        return -1;
    if (ch->l[1].map && fmt_qcow2_map_has_backing(ch->l[1].map))
        return st_fail_field(e, ST_INVALID, "snapshot", "image %s has a backing file", base->name);
    return 0;
}

static int chain_clusters(struct chain *ch, struct st_err *e)
{
    for (int i = 0; i < ch->n; i++)
        if (ch->l[i].map && !(ch->l[i].cluster = malloc((size_t)ch->l[i].cluster_len)))
            return st_fail(e, ST_INTERNAL, "out of memory");
    return 0;
}

int core_snapshot_image_check(struct stowage *st, const char *clone_id, const char *name,
                              struct st_err *e)
{
    struct db_snapshot s;
    struct db_image base;
    struct core_vol_ref v;
    struct chain ch;
    if (snapshot_row(st, clone_id, name, &s, e) || core_volume_acquire(st, s.volume_id, &v, e))
        return -1;
    int status = status_of(st, &v, &s), rc = -1;
    if (status != 1)
        st_fail_field(e, ST_PRECONDITION, "snapshot", "snapshot '%s' is %s", name,
                      status == 2 ? "in use by another operation" : "lost (its file is gone)");
    else
        rc = chain_open(st, &ch, &v, &s, &base, e);
    if (status == 1)
        chain_close(&ch);
    core_volume_release(&v);
    return rc;
}

/* Write the chain's guest bytes into df: zero pages stay holes (df is new and empty). */
static int flatten(struct chain *ch, const struct core_vol_ref *dv, struct be_file *df,
                   const struct core_progress *p, struct st_err *e)
{
    uint64_t size = ch->l[0].virtual_size;
    unsigned char *buf = malloc(FLAT_CHUNK);
    static const unsigned char zero[ZERO_PAGE];
    int rc = 0;
    if (!buf)
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (uint64_t off = 0; off < size && rc == 0; off += FLAT_CHUNK) {
        size_t len = size - off < FLAT_CHUNK ? (size_t)(size - off) : FLAT_CHUNK;
        if (p && p->cancel && atomic_load(p->cancel)) {
            rc = st_fail(e, ST_CONFLICT, "cancelled");
            break;
        }
        if ((rc = guest_read(ch, 0, off, buf, len, e)))
            break;
        for (size_t at = 0; at < len && rc == 0; at += ZERO_PAGE) {
            size_t n = len - at < ZERO_PAGE ? len - at : ZERO_PAGE;
            if (memcmp(buf + at, zero, n) != 0)
                rc = core_pwrite_all(dv, df, buf + at, n, off + at, e);
        }
        if (p && p->fn)
            p->fn(p->ud, (int)((off + len) * 99 / size));
    }
    free(buf);
    if (rc == 0 && (rc = dv->ops->ftruncate(df, size)) < 0)
        rc = be_fail(e, rc, "size the image");
    return rc;
}

int core_snapshot_image(struct stowage *st, const struct core_snapshot_image_req *rq,
                        const struct core_progress *p, struct db_image *out, struct st_err *e)
{
    struct db_snapshot s;
    struct db_image base;
    struct core_vol_ref sv = {0}, dv = {0};
    struct be_file *df = NULL;
    struct chain ch = {0};
    char key[160], staging[96];
    struct fmt_info info;
    int rc = -1, reserved = 0, staged = 0, held = 0;

    if (snapshot_row(st, rq->clone_id, rq->snapshot, &s, e))
        return -1;
    if (claim(st, s.clone_id, s.name, key, sizeof key, e))
        return -1;
    held = 1;
    if (core_volume_acquire(st, s.volume_id, &sv, e))
        goto out;
    if (core_volume_acquire(st, rq->volume_id, &dv, e))
        goto out;
    if (chain_open(st, &ch, &sv, &s, &base, e) || chain_clusters(&ch, e))
        goto out;
    if (ch.l[0].virtual_size == 0 || ch.l[0].virtual_size > st->cfg.max_image_size) {
        st_fail_field(e, ch.l[0].virtual_size ? ST_TOO_LARGE : ST_INVALID, "snapshot",
                      "the snapshot's virtual size %llu is not 1 up to max_image_size",
                      (unsigned long long)ch.l[0].virtual_size);
        goto out;
    }
    if (core_image_reserve(st, rq->name, NULL, rq->volume_id, rq->owner, out, e))
        goto out;
    reserved = 1;
    if (core_image_set_meta_unique(st, out, &rq->meta, e))
        goto out;
    core_staging_path(out->uuid, TASK_SUFFIX, staging, sizeof staging);
    if (core_open_staging(&dv, staging, &df, e))
        goto out;
    staged = 1;
    if (flatten(&ch, &dv, df, p, e))
        goto out;
    /* The guest's bytes as raw: one whose first sector looks like another format is
     * refused like any upload would be (qemu would probe it as that format). */
    if (core_inspect_accepted(st, &dv, df, "raw", &info, e))
        goto out;
    snprintf(out->format, sizeof out->format, "raw");
    out->virtual_size = ch.l[0].virtual_size;
    out->actual_size = info.actual_size;
    staged = 0; /* the commit discards it itself when it fails */
    if (core_image_commit(st, &dv, df, staging, out, e))
        goto out;
    if (p && p->fn)
        p->fn(p->ud, 100);
    rc = 0;
out:
    if (rc && staged)
        dv.ops->discard(dv.be, staging);
    if (df)
        dv.ops->close_file(df);
    chain_close(&ch);
    if (rc && reserved && strcmp(out->status, "active") != 0) {
        core_image_discard(st, out->uuid);
        core_bump(st);
    }
    if (dv.ops)
        core_volume_release(&dv);
    if (sv.ops)
        core_volume_release(&sv);
    if (held)
        core_unclaim(st, key);
    return rc;
}
