/* backup_image.c — images kept on backup storages: added from a URL (through fetch.c's
 * guard) or from a catalogue image, deleted from some or all of their backup storages,
 * and restored into a catalogue volume.
 *
 * Every copy goes through the backend vtable of its place, so any kind that fills the
 * write protocol holds them (a directory, a Gluster volume, an RBD pool). The bytes are
 * read once and written to every named backup storage's .staging/<uuid>.task at the
 * same offset (zero blocks left as holes), hashed (SHA-256) on the way, flushed,
 * inspected, then published as images/<uuid>.<fmt>; only then do the rows turn Ready.
 * The rows are written 'Downloading' before the first byte, so a restart finds what a
 * crash interrupted (the job's restart check) and removes its copies and rows. Any
 * failure removes every staging object, every published copy of this try and the rows. */
#include "task_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CATALOGUE_URL "stowage://image/"
#define MAX_COPIES 16
#define WRITE_BUF (4u << 20)
#define ZERO_BLOCK (64u << 10)

/* ---- a backup storage's place, opened for one job ---- */

struct place {
    struct db_backup_storage row;
    json_t *params;
    struct core_vol_ref v; /* ops and session; priv unused */
};

static int place_open(struct stowage *st, const char *uuid, struct place *p, struct st_err *e)
{
    const struct be_env env = {st->cfg.state_dir, st->cfg.gluster_cli, st->cfg.gluster_timeout_ms};
    json_error_t je;
    int err;

    memset(p, 0, sizeof *p);
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bs_get(c, uuid, &p->row, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    p->v.ops = be_ops_for(p->row.kind);
    if (!p->v.ops || !(p->params = json_loads(p->row.params, 0, &je)))
        return st_fail(e, ST_INTERNAL, "backup storage %s: its place cannot be read", uuid);
    const struct be_params bp = {p->row.uuid, p->params, &env};
    if (p->v.ops->open(&bp, &p->v.be, e))
        return -1;
    if ((err = p->v.ops->init(p->v.be)) < 0)
        return be_fail(e, err, p->row.url);
    return 0;
}

static void place_close(struct place *p)
{
    if (p->v.be)
        p->v.ops->close(p->v.be);
    p->v.be = NULL;
    json_decref(p->params);
    p->params = NULL;
}

/* ---- the writer: one stream of bytes into several staging objects ---- */

struct dest {
    const struct core_vol_ref *v;
    struct be_file *f;
    char staging[96];
    char final[128];
    int staged, published;
};

struct writer {
    struct dest d[MAX_COPIES];
    size_t n;
    gnutls_hash_hd_t sha256;
    char *buf;
    size_t fill;
    uint64_t off, max_size, expect;
    const struct core_progress *p;
    int percent;
};

static int all_zero(const char *b, size_t n)
{
    return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Write the buffer into every destination, runs of data blocks in one write each. */
static int writer_flush(struct writer *w, struct st_err *e)
{
    size_t done = w->n ? 0 : w->fill; /* no destination: a hasher */
    while (done < w->fill) {
        size_t n = w->fill - done < ZERO_BLOCK ? w->fill - done : ZERO_BLOCK, run = 0;
        if (all_zero(w->buf + done, n)) {
            done += n;
            continue;
        }
        while (done + run < w->fill) {
            size_t k = w->fill - done - run < ZERO_BLOCK ? w->fill - done - run : ZERO_BLOCK;
            if (run && all_zero(w->buf + done + run, k))
                break;
            run += k;
        }
        for (size_t i = 0; i < w->n; i++)
            if (core_pwrite_all(w->d[i].v, w->d[i].f, w->buf + done, run, w->off + done, e))
                return -1;
        done += run;
    }
    for (size_t i = 0; w->fill && i < w->n; i++)
        if (w->d[i].v->ops->start_writeback)
            w->d[i].v->ops->start_writeback(w->d[i].f, w->off, w->fill);
    w->off += w->fill;
    w->fill = 0;
    return 0;
}

/* len more bytes are in the buffer at fill (put there by the caller): hashed, and written
 * out when the buffer is full. */
static int writer_took(struct writer *w, size_t len, struct st_err *e)
{
    if (w->p && w->p->cancel && atomic_load(w->p->cancel))
        return st_fail(e, ST_CONFLICT, "cancelled");
    if (w->off + w->fill + len > w->max_size)
        return st_fail_field(e, ST_TOO_LARGE, "url",
                             "the image is larger than the limit of %llu bytes",
                             (unsigned long long)w->max_size);
    gnutls_hash(w->sha256, w->buf + w->fill, len);
    w->fill += len;
    if (w->fill == WRITE_BUF && writer_flush(w, e))
        return -1;
    if (w->p && w->p->fn && w->expect) {
        int pct = (int)((w->off + w->fill) * 99 / w->expect);
        if (pct != w->percent && pct <= 99)
            w->p->fn(w->p->ud, w->percent = pct);
    }
    return 0;
}

static int writer_feed(void *ud, const void *buf, size_t len, struct st_err *e)
{
    struct writer *w = ud;
    while (len) {
        size_t n = WRITE_BUF - w->fill < len ? WRITE_BUF - w->fill : len;
        memcpy(w->buf + w->fill, buf, n);
        if (writer_took(w, n, e))
            return -1;
        buf = (const char *)buf + n;
        len -= n;
    }
    return 0;
}

static int writer_init(struct writer *w, struct stowage *st, const struct core_progress *p,
                       struct st_err *e)
{
    memset(w, 0, sizeof *w);
    w->max_size = st->cfg.max_image_size;
    w->p = p;
    if (!(w->buf = malloc(WRITE_BUF)) || gnutls_hash_init(&w->sha256, GNUTLS_DIG_SHA256) < 0)
        return st_fail(e, ST_INTERNAL, "out of memory");
    return 0;
}

/* A new staging object for the destination at v. */
static int writer_add(struct writer *w, const struct core_vol_ref *v, const char *uuid,
                      struct st_err *e)
{
    struct dest *d = &w->d[w->n];
    d->v = v;
    core_staging_path(uuid, TASK_SUFFIX, d->staging, sizeof d->staging);
    if (core_open_staging(v, d->staging, &d->f, e))
        return -1;
    d->staged = 1;
    w->n++;
    return 0;
}

/* The last bytes in, every copy sized (trailing holes) and durable; hex gets the SHA-256. */
static int writer_end(struct writer *w, char hex[65], struct st_err *e)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char d[32];
    if (writer_flush(w, e))
        return -1;
    for (size_t i = 0; i < w->n; i++) {
        int rc = w->d[i].v->ops->ftruncate(w->d[i].f, w->off);
        if (rc < 0 || (rc = w->d[i].v->ops->flush(w->d[i].f)) < 0)
            return be_fail(e, rc, "write the copy");
    }
    gnutls_hash_output(w->sha256, d);
    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}

/* Remove what this try made: staging objects, and published copies when undo is set. */
static void writer_free(struct writer *w, int undo)
{
    for (size_t i = 0; i < w->n; i++) {
        struct dest *d = &w->d[i];
        if (d->f)
            d->v->ops->close_file(d->f);
        if (d->staged)
            d->v->ops->discard(d->v->be, d->staging);
        if (undo && d->published)
            d->v->ops->remove(d->v->be, d->final);
    }
    if (w->sha256)
        gnutls_hash_deinit(w->sha256, NULL);
    free(w->buf);
}

/* Feed the file f of v (size bytes) to the writer: data extents read straight into its
 * buffer, holes as zeros. */
static int read_file(struct writer *w, const struct core_vol_ref *v, struct be_file *f,
                     uint64_t size, struct st_err *e)
{
    static const char zeros[ZERO_BLOCK];
    uint64_t off = 0;
    w->expect = size;
    while (off < size) {
        uint64_t data = size, hole = size;
        int r = v->ops->next_data(f, off, &data, &hole);
        if (r == -ENXIO)
            data = hole = size;
        else if (r < 0)
            return be_fail(e, r, "map the source's extents");
        if (hole > size)
            hole = size;
        for (; off < data; off += ZERO_BLOCK < data - off ? ZERO_BLOCK : data - off)
            if (writer_feed(w, zeros, ZERO_BLOCK < data - off ? ZERO_BLOCK : data - off, e))
                return -1;
        while (off < hole) {
            size_t room = WRITE_BUF - w->fill;
            size_t want = hole - off < room ? (size_t)(hole - off) : room;
            ssize_t n = v->ops->pread(f, w->buf + w->fill, want, off);
            if (n <= 0)
                return n ? be_fail(e, (int)n, "read the source")
                         : st_fail(e, ST_INTERNAL, "the source shrank");
            if (writer_took(w, (size_t)n, e))
                return -1;
            off += (uint64_t)n;
        }
    }
    return 0;
}

/* ---- views ---- */

static void ref_view(const struct db_image_backup *r, const char *bs_url,
                     struct core_bimage_ref *out)
{
    memset(out, 0, sizeof *out);
    CORE_COPY_TEXT(out, r, bs_uuid);
    if (r->install_path[0]) /* "" until the copy is published */
        snprintf(out->install_path, sizeof out->install_path, "%s/%s", bs_url, r->install_path);
    CORE_COPY_TEXT(out, r, status);
    out->created_at = r->created_at;
    out->last_op_at = r->last_op_at;
}

/* The url of the backup storage a copy is on: looked up once per query for a run of copies
 * on the same one (the usual case). */
struct bs_url {
    struct db_backup_storage row;
    int known;
};

static const char *url_of(struct db_conn *c, struct bs_url *u, const char *bs_uuid)
{
    struct st_err ignore;
    if (!u->known || strcmp(u->row.uuid, bs_uuid) != 0) {
        u->known = db_bs_get(c, bs_uuid, &u->row, &ignore) == 0;
        if (!u->known)
            return "";
    }
    return u->row.url;
}

static int image_view(struct db_conn *c, const struct db_backup_image *b, struct bs_url *u,
                      struct core_bimage *out, struct st_err *e)
{
    struct db_image_backup *refs = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    CORE_COPY_TEXT(out, b, uuid);
    CORE_COPY_TEXT(out, b, name);
    CORE_COPY_TEXT(out, b, description);
    CORE_COPY_TEXT(out, b, url);
    CORE_COPY_TEXT(out, b, media_type);
    CORE_COPY_TEXT(out, b, guest_os_type);
    CORE_COPY_TEXT(out, b, platform);
    CORE_COPY_TEXT(out, b, format);
    CORE_COPY_TEXT(out, b, state);
    CORE_COPY_TEXT(out, b, status);
    CORE_COPY_TEXT(out, b, sha256);
    out->size = (uint64_t)b->size;
    out->actual_size = (uint64_t)b->actual_size;
    out->system = b->system;
    out->created_at = b->created_at;
    out->last_op_at = b->last_op_at;
    if (db_ibackup_list(c, b->uuid, &refs, &n, e))
        return -1;
    if (n && !(out->refs = calloc(n, sizeof *out->refs))) {
        free(refs);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        ref_view(&refs[i], url_of(c, u, refs[i].bs_uuid), &out->refs[i]);
    out->n_refs = n;
    free(refs);
    return 0;
}

int core_bimage_query(struct stowage *st, const struct st_query *q, struct core_bimage **out,
                      size_t *n, int64_t *total, struct st_err *e)
{
    struct db_backup_image *rows = NULL;
    struct bs_url *u = calloc(1, sizeof *u);
    size_t cnt = 0;
    if (!u)
        return st_fail(e, ST_INTERNAL, "out of memory");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bimage_query(c, q, out ? &rows : NULL, &cnt, total, e);
    if (rc == 0 && out) {
        if (!(*out = calloc(cnt ? cnt : 1, sizeof **out)))
            rc = st_fail(e, ST_INTERNAL, "out of memory");
        for (size_t i = 0; rc == 0 && i < cnt; i++)
            rc = image_view(c, &rows[i], u, &(*out)[i], e);
        if (rc && *out) {
            core_bimages_free(*out, cnt);
            *out = NULL;
        }
        *n = rc ? 0 : cnt;
    }
    db_release(st->db, c);
    free(rows);
    free(u);
    return rc;
}

int core_bimage_get(struct stowage *st, const char *uuid, struct core_bimage *out, struct st_err *e)
{
    struct db_backup_image b;
    struct bs_url *u = calloc(1, sizeof *u);
    if (!u)
        return st_fail(e, ST_INTERNAL, "out of memory");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bimage_get(c, uuid, &b, e);
    if (rc == 0)
        rc = image_view(c, &b, u, out, e);
    db_release(st->db, c);
    free(u);
    return rc;
}

void core_bimages_free(struct core_bimage *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].refs);
    free(v);
}

/* ---- adding an image ---- */

/* The new image's uuid: the client's, else the job's id without dashes. */
static void new_uuid(const struct core_task_ctx *t, char out[CORE_ID])
{
    const char *u = core_task_str(t, "uuid");
    if (*u) {
        snprintf(out, CORE_ID, "%s", u);
        return;
    }
    char *o = out;
    for (const char *p = t->id; *p && o < out + CORE_ID - 1; p++)
        if (*p != '-')
            *o++ = *p;
    *o = '\0';
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

/* The catalogue image a stowage:// URL names (active), or -1. */
static int catalogue_source(struct stowage *st, const char *url, struct db_image *im,
                            struct st_err *e)
{
    const char *uuid = url + strlen(CATALOGUE_URL);
    if (core_image_row(st, uuid, im, e) || strcmp(im->status, "active") != 0)
        return st_fail_field(e, ST_NOT_FOUND, "url", "no active catalogue image has uuid '%.64s'",
                             uuid);
    return 0;
}

int core_bimage_precheck_add(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *url = json_string_value(json_object_get(params, "url"));
    const char *sha = json_string_value(json_object_get(params, "sha256"));
    const char *uuid = json_string_value(json_object_get(params, "uuid"));
    const json_t *bss = json_object_get(params, "backup_storages");
    struct db_backup_storage *b = malloc(sizeof *b);
    struct db_backup_image bi;
    struct db_image im;
    size_t i;
    json_t *v;
    int rc = -1;

    if (!b)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (strncmp(url, CATALOGUE_URL, strlen(CATALOGUE_URL)) == 0) {
        if (catalogue_source(st, url, &im, e))
            goto out;
    } else if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        st_fail_field(e, ST_INVALID, "url",
                      "url must be http://, https:// or " CATALOGUE_URL "{uuid}: '%.64s' is none",
                      url);
        goto out;
    } else if (strlen(url) > 1024) {
        st_fail_field(e, ST_INVALID, "url", "url is longer than 1024 bytes");
        goto out;
    }
    if (sha && !is_hex64(sha)) {
        st_fail_field(e, ST_INVALID, "sha256", "sha256 must be 64 lowercase hex digits");
        goto out;
    }
    if (json_array_size(bss) == 0 || json_array_size(bss) > MAX_COPIES) {
        st_fail_field(e, ST_INVALID, "backup_storages",
                      "backupStorageUuids must name 1 to %d backup storages", MAX_COPIES);
        goto out;
    }
    struct db_conn *c = db_acquire(st->db);
    rc = uuid && db_bimage_get(c, uuid, &bi, e) == 0
             ? st_fail_field(e, ST_EXISTS, "uuid", "image %s already exists", uuid)
             : 0;
    json_array_foreach(bss, i, v)
    {
        for (size_t k = 0; rc == 0 && k < i; k++)
            if (json_equal(v, json_array_get(bss, k)))
                rc = st_fail_field(e, ST_INVALID, "backup_storages",
                                   "backup storage %s is named twice", json_string_value(v));
        if (rc == 0)
            rc = db_bs_get(c, json_string_value(v), b, e);
        if (rc == 0 && strcmp(b->state, "Enabled") != 0)
            rc = st_fail_field(e, ST_CONFLICT, "backup_storages",
                               "backup storage %s is %s: no image can be added to it", b->uuid,
                               b->state);
    }
    db_release(st->db, c);
out:
    free(b);
    return rc;
}

/* The rows of the new image and its copies, 'Downloading', in one transaction. */
static int rows_begin(struct core_task_ctx *t, struct db_backup_image *bi, struct place *pl,
                      size_t n, struct st_err *e)
{
    struct db_conn *c = db_acquire(t->st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = db_bimage_insert(c, bi, e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct db_image_backup r = {0};
        snprintf(r.image_uuid, sizeof r.image_uuid, "%s", bi->uuid);
        snprintf(r.bs_uuid, sizeof r.bs_uuid, "%s", pl[i].row.uuid);
        snprintf(r.status, sizeof r.status, "Downloading");
        r.created_at = r.last_op_at = bi->created_at;
        rc = db_ibackup_insert(c, &r, e);
    }
    return core_txn_end(t->st, c, rc, e);
}

/* Each copy moved to its final name (the same on every place). */
static int publish_all(struct writer *w, struct place *pl, const struct db_backup_image *bi,
                       struct st_err *e)
{
    for (size_t i = 0; i < w->n; i++) {
        struct dest *d = &w->d[i];
        int moved = 0, rc;
        snprintf(d->final, sizeof d->final, "images/%s.%s", bi->uuid, bi->format);
        if ((rc = d->v->ops->publish(d->v->be, d->staging, d->final, &moved)) < 0 || moved)
            d->staged = 0;
        d->published = moved;
        if (rc < 0)
            return be_fail(e, rc, pl[i].row.url);
    }
    return 0;
}

static int rows_ready(struct core_task_ctx *t, struct db_backup_image *bi, struct writer *w,
                      struct st_err *e)
{
    struct db_conn *c = db_acquire(t->st->db);
    int rc = db_begin(c, e);
    bi->last_op_at = time(NULL);
    if (rc == 0)
        rc = db_bimage_ready(c, bi, w->d[0].final, e);
    if (rc == 0 && (t->result = json_pack("{s:s}", "backup_image", bi->uuid)) &&
        (rc = core_task_record_success(t, c, e)) == 0)
        rc = db_commit(c, e);
    else {
        if (rc == 0)
            rc = st_fail(e, ST_INTERNAL, "out of memory");
        db_rollback(c);
    }
    if (rc == 0)
        t->recorded = 1;
    db_release(t->st->db, c);
    return rc;
}

static void rows_forget(struct stowage *st, const char *uuid)
{
    struct st_err ignore;
    struct db_conn *c = db_acquire(st->db);
    db_bimage_delete(c, uuid, &ignore);
    db_release(st->db, c);
}

static int fetch_source(struct stowage *st, struct writer *w, const char *url, struct st_err *e)
{
    struct st_err fe;
    struct core_fetch f = {.url = url,
                           .max_bytes = st->cfg.max_image_size,
                           .sink = writer_feed,
                           .ud = w,
                           .cancel = w->p ? w->p->cancel : NULL};
    if (core_fetch_run(st, &f, &fe) == 0)
        return 0;
    if (fe.field[0] && strcmp(fe.field, "url") == 0) {
        *e = fe;
        return -1;
    }
    return st_fail_field(e,
                         fe.code == ST_FORBIDDEN || fe.code == ST_CONFLICT ? fe.code : ST_INVALID,
                         "url", "the image's url cannot be fetched (%s)", fe.msg);
}

/* ---- the fast path: the kernel copies, a thread hashes ---- */

struct hasher {
    struct writer w; /* without destinations */
    struct core_progress p;
    atomic_int stop;
    const struct core_vol_ref *v;
    struct be_file *f;
    uint64_t size;
    char hex[65];
    int rc;
    struct st_err e;
};

static void *hash_main(void *ud)
{
    struct hasher *h = ud;
    h->rc = read_file(&h->w, h->v, h->f, h->size, &h->e) || writer_end(&h->w, h->hex, &h->e);
    return NULL;
}

/* Copy the data extents of sf into every destination in the kernel (as cp does) while
 * another thread reads the same bytes and hashes them: computed gets their SHA-256.
 * 1 when the kernel cannot copy between these places (the first copy refused), 0, or -1. */
static int kernel_copy(struct stowage *st, struct writer *w, const struct core_vol_ref *sv,
                       struct be_file *sf, uint64_t size, char computed[65], struct st_err *e)
{
    struct hasher *h;
    pthread_t th;
    uint64_t off = 0;
    int rc = -1, first = 1;

    for (size_t i = 0; i < w->n; i++)
        if (w->d[i].v->ops != sv->ops || !sv->ops->copy_range)
            return 1;
    if (!(h = calloc(1, sizeof *h)))
        return st_fail(e, ST_INTERNAL, "out of memory");
    h->v = sv, h->f = sf, h->size = size, h->p.cancel = &h->stop;
    if (writer_init(&h->w, st, &h->p, e)) {
        writer_free(&h->w, 0);
        free(h);
        return -1;
    }
    if (pthread_create(&th, NULL, hash_main, h) != 0) {
        writer_free(&h->w, 0);
        free(h);
        return 1;
    }
    while (off < size) {
        uint64_t data = size, hole = size;
        int r = sv->ops->next_data(sf, off, &data, &hole);
        if (r < 0 && r != -ENXIO) {
            be_fail(e, r, "map the source's extents");
            goto out;
        }
        if (r == -ENXIO || hole > size)
            hole = size;
        for (off = r == -ENXIO ? size : data; off < hole;) {
            size_t want = hole - off < (64u << 20) ? (size_t)(hole - off) : (64u << 20);
            if (w->p && w->p->cancel && atomic_load(w->p->cancel)) {
                st_fail(e, ST_CONFLICT, "cancelled");
                goto out;
            }
            for (size_t i = 0; i < w->n; i++)
                for (size_t done = 0; done < want;) {
                    ssize_t k =
                        sv->ops->copy_range(sf, off + done, w->d[i].f, off + done, want - done);
                    if (k < 0 && first && (k == -EXDEV || k == -EOPNOTSUPP || k == -ENOSYS)) {
                        rc = 1; /* not between these places: the caller writes every byte */
                        goto out;
                    }
                    if (k <= 0) {
                        k ? be_fail(e, (int)k, "copy")
                          : st_fail(e, ST_INTERNAL, "the source shrank");
                        goto out;
                    }
                    done += (size_t)k;
                }
            first = 0;
            off += want;
            if (w->p && w->p->fn)
                w->p->fn(w->p->ud, (int)(off * 99 / size));
        }
    }
    /* Sized (trailing holes) and made durable while the hasher may still be reading: the
     * writer's end then finds nothing left to flush. */
    for (size_t i = 0; i < w->n; i++) {
        int r = w->d[i].v->ops->ftruncate(w->d[i].f, size);
        if (r < 0 || (r = w->d[i].v->ops->flush(w->d[i].f)) < 0) {
            be_fail(e, r, "write the copy");
            goto out;
        }
    }
    w->off = size;
    rc = 0;
out:
    if (rc)
        atomic_store(&h->stop, 1);
    pthread_join(th, NULL);
    if (rc == 0 && h->rc) {
        *e = h->e;
        rc = -1;
    }
    if (rc == 0)
        memcpy(computed, h->hex, 65);
    writer_free(&h->w, 0);
    free(h);
    return rc;
}

/* Copy a catalogue image's bytes, read through its volume's backend while it is held
 * (it cannot be deleted under the copy): in the kernel where the places allow it, else
 * fed to the writer. recorded gets the SHA-256 the catalogue has, computed the one of
 * the bytes read when the kernel copied them ("" when the writer hashed them). */
static int copy_catalogue(struct stowage *st, struct writer *w, const char *url, char recorded[65],
                          char computed[65], struct st_err *e)
{
    struct core_vol_ref v = {0};
    struct be_file *f = NULL;
    struct db_image im;
    char key[64], path[128];
    uint64_t size;
    int rc = -1, err;

    if (catalogue_source(st, url, &im, e))
        return -1;
    snprintf(key, sizeof key, "image:%s", im.uuid);
    if (core_claim_shared(st, key, im.name, e))
        return -1;
    if (core_volume_acquire(st, im.volume_id, &v, e))
        goto out;
    core_image_path(&im, path, sizeof path);
    if ((err = v.ops->open_file(v.be, path, O_RDONLY, 0, &f)) < 0) {
        be_fail(e, err, "open the catalogue image");
        goto out;
    }
    if (core_file_size(&v, f, &size, e))
        goto out;
    computed[0] = '\0';
    int k = kernel_copy(st, w, &v, f, size, computed, e);
    if (k < 0 || (k == 1 && read_file(w, &v, f, size, e)))
        goto out;
    snprintf(recorded, 65, "%s", im.sha256);
    rc = 0;
out:
    if (f)
        v.ops->close_file(f);
    core_volume_release(&v);
    core_unclaim(st, key);
    return rc;
}

int core_bimage_add(struct core_task_ctx *t, struct st_err *e)
{
    struct stowage *st = t->st;
    const json_t *bss = json_object_get(t->params, "backup_storages");
    const char *url = core_task_str(t, "url"), *want_sha = core_task_str(t, "sha256");
    size_t n = json_array_size(bss), opened = 0;
    struct place *pl = calloc(n ? n : 1, sizeof *pl);
    struct db_backup_image bi = {0};
    struct writer w = {0};
    struct fmt_info info;
    char key[96] = "", sha[65], recorded[65] = "", computed[65] = "";
    int rc = -1, rows = 0, ok = 0;

    if (!pl)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (core_bimage_precheck_add(st, t->params, e))
        goto out;
    new_uuid(t, bi.uuid);
    snprintf(key, sizeof key, "backup-image:%s", bi.uuid);
    if (core_claim(st, key, "a change of this image", e)) {
        key[0] = '\0';
        goto out;
    }
    snprintf(bi.name, sizeof bi.name, "%s", core_task_str(t, "name"));
    snprintf(bi.description, sizeof bi.description, "%s", core_task_str(t, "description"));
    snprintf(bi.url, sizeof bi.url, "%s", url);
    snprintf(bi.media_type, sizeof bi.media_type, "%s",
             *core_task_str(t, "media_type") ? core_task_str(t, "media_type")
                                             : "RootVolumeTemplate");
    snprintf(bi.guest_os_type, sizeof bi.guest_os_type, "%s", core_task_str(t, "guest_os_type"));
    snprintf(bi.platform, sizeof bi.platform, "%s",
             *core_task_str(t, "platform") ? core_task_str(t, "platform") : "Linux");
    snprintf(bi.state, sizeof bi.state, "Enabled");
    snprintf(bi.status, sizeof bi.status, "Downloading");
    bi.created_at = bi.last_op_at = time(NULL);
    for (; opened < n; opened++)
        if (place_open(st, json_string_value(json_array_get(bss, opened)), &pl[opened], e)) {
            opened++;
            goto out;
        }
    if (rows_begin(t, &bi, pl, n, e))
        goto out;
    rows = 1;
    if (writer_init(&w, st, t->progress, e))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (writer_add(&w, &pl[i].v, bi.uuid, e))
            goto out;
    if (strncmp(url, CATALOGUE_URL, strlen(CATALOGUE_URL)) == 0) {
        if (copy_catalogue(st, &w, url, recorded, computed, e))
            goto out;
    } else if (fetch_source(st, &w, url, e)) {
        goto out;
    }
    if (writer_end(&w, sha, e))
        goto out;
    if (computed[0]) /* the kernel copied: the hasher read the bytes */
        memcpy(sha, computed, sizeof sha);
    if (*want_sha && strcmp(want_sha, sha) != 0) {
        st_fail_field(e, ST_INVALID, "sha256", "sha256 mismatch: expected %s, the image has %s",
                      want_sha, sha);
        goto out;
    }
    if (recorded[0] && strcmp(recorded, sha) != 0) {
        st_fail_field(e, ST_INTERNAL, "url",
                      "the catalogue image's bytes have sha256 %s, not the %s recorded", sha,
                      recorded);
        goto out;
    }
    if (core_inspect_accepted(st, w.d[0].v, w.d[0].f, core_task_str(t, "format"), &info, e))
        goto out;
    snprintf(bi.format, sizeof bi.format, "%s", fmt_name(info.format));
    snprintf(bi.sha256, sizeof bi.sha256, "%s", sha);
    bi.size = (int64_t)info.virtual_size;
    bi.actual_size = (int64_t)info.actual_size;
    if (publish_all(&w, pl, &bi, e) || rows_ready(t, &bi, &w, e))
        goto out;
    ok = 1;
    rc = 0;
out:
    writer_free(&w, !ok);
    if (rows && !ok)
        rows_forget(st, bi.uuid);
    if (rows)
        core_bump(st);
    for (size_t i = 0; i < opened; i++)
        place_close(&pl[i]);
    free(pl);
    if (key[0])
        core_unclaim(st, key);
    return rc;
}

/* ---- removing copies ---- */

struct by_prefix {
    const struct core_vol_ref *v;
    char prefix[CORE_ID + 1];
};

static int remove_named(void *ud, const char *name, const struct stat *sb)
{
    struct by_prefix *bp = ud;
    char rel[CORE_ID + 96];
    (void)sb;
    if (strncmp(name, bp->prefix, strlen(bp->prefix)) == 0) {
        snprintf(rel, sizeof rel, "images/%s", name);
        bp->v->ops->remove(bp->v->be, rel);
    }
    return 0;
}

/* The copy of image uuid on a place: its published object (install_path, or any
 * images/<uuid>.* when a crash came before the path was recorded) and its staging
 * object. 0, or -1 when the published object is there but cannot be removed. */
static int remove_copy(const struct core_vol_ref *v, const char *uuid, const char *install_path,
                       struct st_err *e)
{
    char staging[96];
    core_staging_path(uuid, TASK_SUFFIX, staging, sizeof staging);
    v->ops->discard(v->be, staging);
    if (!install_path[0]) {
        struct by_prefix bp = {v, ""};
        snprintf(bp.prefix, sizeof bp.prefix, "%s.", uuid);
        v->ops->list(v->be, "images", remove_named, &bp);
        return 0;
    }
    int rc = v->ops->remove(v->be, install_path);
    return rc < 0 && rc != -ENOENT ? be_fail(e, rc, install_path) : 0;
}

/* Remove the copies of uuid on the backup storages named in only (NULL: all), and
 * their rows; the image's row goes with its last copy. */
static int drop_copies(struct stowage *st, const char *uuid, const json_t *only, struct st_err *e)
{
    struct db_image_backup *refs = NULL;
    size_t n = 0, left = 0, i, k;
    struct place *pl = malloc(sizeof *pl);
    json_t *v;
    int rc = -1;

    struct db_conn *c = db_acquire(st->db);
    if (!pl || db_ibackup_list(c, uuid, &refs, &n, e)) {
        if (!pl)
            st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) {
        int chosen = !only;
        json_array_foreach(only, k, v) chosen |= strcmp(json_string_value(v), refs[i].bs_uuid) == 0;
        if (!chosen) {
            left++;
            continue;
        }
        int opened = place_open(st, refs[i].bs_uuid, pl, e) == 0;
        int removed = opened && remove_copy(&pl->v, uuid, refs[i].install_path, e) == 0;
        place_close(pl);
        if (!removed || db_ibackup_delete(c, uuid, refs[i].bs_uuid, e))
            goto out;
    }
    rc = left ? 0 : db_bimage_delete(c, uuid, e);
out:
    db_release(st->db, c);
    core_bump(st);
    free(refs);
    free(pl);
    return rc;
}

int core_bimage_add_done(struct core_task_ctx *t, int64_t started_at)
{
    struct db_backup_image bi;
    char uuid[CORE_ID];
    struct st_err e;
    (void)started_at;
    new_uuid(t, uuid);
    struct db_conn *c = db_acquire(t->st->db);
    int found = db_bimage_get(c, uuid, &bi, &e) == 0;
    db_release(t->st->db, c);
    if (found && strcmp(bi.status, "Ready") == 0) {
        t->result = json_pack("{s:s}", "backup_image", uuid);
        return 1;
    }
    /* interrupted: what it staged or published goes, then its rows */
    return found && drop_copies(t->st, uuid, NULL, &e) ? -1 : 0;
}

/* ---- deleting ---- */

int core_bimage_precheck_delete(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *uuid = json_string_value(json_object_get(params, "uuid"));
    const json_t *only = json_object_get(params, "backup_storages");
    struct db_image_backup *refs = NULL;
    struct db_backup_image bi;
    size_t n = 0, i, k;
    json_t *v;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bimage_get(c, uuid, &bi, e);
    if (rc == 0)
        rc = db_ibackup_list(c, uuid, &refs, &n, e);
    db_release(st->db, c);
    json_array_foreach(only, k, v)
    {
        int held = 0;
        for (i = 0; rc == 0 && i < n; i++)
            held |= strcmp(refs[i].bs_uuid, json_string_value(v)) == 0;
        if (rc == 0 && !held)
            rc = st_fail_field(e, ST_NOT_FOUND, "backup_storages",
                               "image %s has no copy on backup storage %s", uuid,
                               json_string_value(v));
    }
    if (rc == 0 && strcmp(bi.status, "Ready") != 0)
        rc = st_fail(e, ST_CONFLICT, "image %s is still %s", uuid, bi.status);
    free(refs);
    return rc;
}

int core_bimage_delete(struct core_task_ctx *t, struct st_err *e)
{
    const char *uuid = core_task_str(t, "uuid");
    char key[96];
    if (core_bimage_precheck_delete(t->st, t->params, e))
        return -1;
    snprintf(key, sizeof key, "backup-image:%s", uuid);
    if (core_claim(t->st, key, "a change of this image", e))
        return -1;
    int rc = drop_copies(t->st, uuid, json_object_get(t->params, "backup_storages"), e);
    core_unclaim(t->st, key);
    if (rc == 0 && !(t->result = json_object()))
        rc = st_fail(e, ST_INTERNAL, "out of memory");
    return rc;
}

int core_bimage_drop_bs(struct stowage *st, const char *bs_uuid, struct st_err *e)
{
    char(*uuids)[DB_ID] = NULL;
    size_t n = 0;
    json_t *only = json_pack("[s]", bs_uuid);
    struct db_conn *c = db_acquire(st->db);
    int rc = only ? db_ibackup_images_on(c, bs_uuid, &uuids, &n, e)
                  : st_fail(e, ST_INTERNAL, "out of memory");
    db_release(st->db, c);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct st_err ignore; /* a place out of reach keeps its files; the rows go anyway */
        drop_copies(st, uuids[i], only, &ignore);
    }
    json_decref(only);
    free(uuids);
    return rc;
}

/* ---- restoring into the catalogue ---- */

int core_bimage_precheck_restore(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *uuid = json_string_value(json_object_get(params, "uuid"));
    const char *storage = json_string_value(json_object_get(params, "storage"));
    const char *volume = json_string_value(json_object_get(params, "volume"));
    char(*ids)[CORE_ID] = NULL;
    struct db_backup_image bi;
    struct db_image im;
    size_t n = 0;
    int in = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bimage_get(c, uuid, &bi, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    if (strcmp(bi.status, "Ready") != 0)
        return st_fail(e, ST_CONFLICT, "image %s is still %s", uuid, bi.status);
    if (core_volume_ids(st, storage, &ids, &n, e))
        return -1;
    for (size_t i = 0; i < n; i++)
        in |= strcmp(ids[i], volume) == 0;
    free(ids);
    if (!in)
        return st_fail_field(e, ST_NOT_FOUND, "volume", "image storage '%s' has no volume '%s'",
                             storage, volume);
    if (core_image_by_name(st, json_string_value(json_object_get(params, "name")), &im, e) == 0)
        return st_fail_field(e, ST_EXISTS, "name", "an image called '%s' exists already", im.name);
    return 0;
}

/* The copy to read: on the named backup storage, else the first Ready one. */
static int pick_copy(struct stowage *st, const char *uuid, const char *bs,
                     struct db_image_backup *out, struct st_err *e)
{
    struct db_image_backup *refs = NULL;
    size_t n = 0;
    int rc = -1;
    struct db_conn *c = db_acquire(st->db);
    if (db_ibackup_list(c, uuid, &refs, &n, e) == 0) {
        for (size_t i = 0; rc && i < n; i++)
            if (strcmp(refs[i].status, "Ready") == 0 &&
                (!*bs || strcmp(refs[i].bs_uuid, bs) == 0)) {
                *out = refs[i];
                rc = 0;
            }
        if (rc)
            st_fail_field(e, ST_NOT_FOUND, "backup_storage", "image %s has no ready copy%s%s", uuid,
                          *bs ? " on backup storage " : "", bs);
    }
    db_release(st->db, c);
    free(refs);
    return rc;
}

int core_bimage_restore(struct core_task_ctx *t, struct st_err *e)
{
    struct stowage *st = t->st;
    const char *uuid = core_task_str(t, "uuid"), *volume = core_task_str(t, "volume");
    struct place *pl = calloc(1, sizeof *pl);
    struct core_vol_ref dv = {0};
    struct db_backup_image bi;
    struct db_image_backup ref;
    struct db_image im = {0};
    struct be_file *src = NULL;
    struct writer w = {0};
    struct fmt_info info;
    char key[96], sha[65];
    uint64_t size;
    int rc = -1, reserved = 0, err;

    if (!pl)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (core_bimage_precheck_restore(st, t->params, e)) {
        free(pl);
        return -1;
    }
    snprintf(key, sizeof key, "backup-image:%s", uuid);
    if (core_claim_shared(st, key, "a restore of this image", e)) {
        free(pl);
        return -1;
    }
    struct db_conn *c = db_acquire(st->db);
    rc = db_bimage_get(c, uuid, &bi, e);
    db_release(st->db, c);
    if (rc || (rc = -1, pick_copy(st, uuid, core_task_str(t, "backup_storage"), &ref, e)) ||
        place_open(st, ref.bs_uuid, pl, e))
        goto out;
    if ((err = pl->v.ops->open_file(pl->v.be, ref.install_path, O_RDONLY, 0, &src)) < 0) {
        be_fail(e, err, "open the image's copy");
        goto out;
    }
    if (core_file_size(&pl->v, src, &size, e) || core_volume_acquire(st, volume, &dv, e) ||
        core_image_reserve(st, core_task_str(t, "name"), NULL, volume, t->owner, &im, e))
        goto out;
    reserved = 1;
    if (writer_init(&w, st, t->progress, e) || writer_add(&w, &dv, im.uuid, e) ||
        read_file(&w, &pl->v, src, size, e) || writer_end(&w, sha, e))
        goto out;
    if (strcmp(sha, bi.sha256) != 0) {
        st_fail(e, ST_INTERNAL, "the copy on backup storage %s has sha256 %s, not the %s recorded",
                ref.bs_uuid, sha, bi.sha256);
        goto out;
    }
    if (core_inspect_accepted(st, &dv, w.d[0].f, bi.format, &info, e))
        goto out;
    snprintf(im.format, sizeof im.format, "%s", fmt_name(info.format));
    snprintf(im.sha256, sizeof im.sha256, "%s", sha);
    im.virtual_size = info.virtual_size;
    im.actual_size = info.actual_size;
    w.d[0].staged = 0; /* the commit removes it itself when it fails */
    if (core_image_commit(st, &dv, w.d[0].f, w.d[0].staging, &im, e))
        goto out;
    t->result = json_pack("{s:s, s:s, s:s, s:s, s:s}", "backup_image", uuid, "image", im.uuid,
                          "name", im.name, "volume", volume, "format", im.format);
    rc = t->result ? 0 : st_fail(e, ST_INTERNAL, "out of memory");
out:
    writer_free(&w, 0);
    if (rc && reserved && strcmp(im.status, "active") != 0)
        core_image_discard(st, im.uuid);
    if (reserved)
        core_bump(st);
    if (src)
        pl->v.ops->close_file(src);
    core_volume_release(&dv);
    place_close(pl);
    free(pl);
    core_unclaim(st, key);
    return rc;
}
