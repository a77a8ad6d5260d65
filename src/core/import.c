/* import.c — image.import: an image from an IMGAPI server (or any server that serves an
 * IMGAPI manifest and a file), streamed through the write protocol.
 *
 * The manifest (at most 8192 bytes of JSON, exactly one file) says the file's SHA-1,
 * its size and its compression. The file is fetched through fetch.c's guard, and each
 * piece is hashed as it came (SHA-1, checked against the manifest), decompressed
 * (unpack.c), hashed as it will be stored (SHA-256 for the catalogue, SHA-1 for our own
 * IMGAPI manifests) and written at its offset into .staging/<uuid>.task — zero blocks
 * are left as holes — then flushed, inspected and published like every other write.
 * Nothing is held beyond the fetch's and the decoder's buffers and one write buffer.
 * Any failure, a cancel included, removes the staging object and the row.
 *
 * The messages are the ones Danube Cloud's import gives (esdc-ce's
 * ImportImageSerializer): they read well in any dialect. */
#include "core_internal.h"

#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uuid/uuid.h>

#define MANIFEST_MAX 8192
#define MANIFEST_TIMEOUT_MS 10000
#define WRITE_BUF (4u << 20)
#define ZERO_BLOCK (64u << 10)

static int hex_of(const char *s, size_t len)
{
    if (!s || strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

static int canonical_uuid(const char *s)
{
    uuid_t u;
    char canon[37];
    if (!s || strlen(s) != 36 || uuid_parse(s, u) != 0)
        return 0;
    uuid_unparse_lower(u, canon);
    return strcmp(canon, s) == 0;
}

/* esdc's ostype from the manifest's os: 1 Linux, 2 SunOS, 3 BSD, 4 Windows; 0 other. */
static int ostype_of(const char *os)
{
    static const struct {
        const char *os;
        int type;
    } map[] = {{"linux", 1}, {"smartos", 2}, {"illumos", 2}, {"solaris", 2},
               {"bsd", 3},   {"freebsd", 3}, {"openbsd", 3}, {"windows", 4}};
    for (size_t i = 0; os && i < sizeof map / sizeof *map; i++)
        if (strcasecmp(os, map[i].os) == 0)
            return map[i].type;
    return 0;
}

static int manifest_fail(struct st_err *e, enum st_code code, const char *msg)
{
    return st_fail_field(e, code, "manifest_url", "%s", msg);
}

/* What the manifest says, in core_manifest; the refusals in esdc's words. */
static int parse_manifest(const char *text, size_t len, struct core_manifest *m, struct st_err *e)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *files, *f0, *v;
    int rc = -1;

    memset(m, 0, sizeof *m);
    if (!j)
        return manifest_fail(e, ST_INVALID, "Could not parse image manifest.");
    files = json_object_get(j, "files");
    f0 = json_array_get(files, 0);
    const char *uuid = json_string_value(json_object_get(j, "uuid"));
    const char *version = json_string_value(json_object_get(j, "version"));
    const char *sha1 = json_string_value(json_object_get(f0, "sha1"));
    const char *comp = json_string_value(json_object_get(f0, "compression"));
    json_t *size = json_object_get(f0, "size");
    if (!json_is_object(j) || !json_is_object(f0) || !canonical_uuid(uuid) || !version ||
        strlen(version) > 16 || !hex_of(sha1, 40) || !json_is_integer(size) ||
        json_integer_value(size) < 0 ||
        (comp && strcmp(comp, "none") && strcmp(comp, "gzip") && strcmp(comp, "bzip2") &&
         strcmp(comp, "xz"))) {
        manifest_fail(e, ST_INVALID, "Invalid image manifest.");
        goto out;
    }
    if (json_array_size(files) > 1) {
        manifest_fail(e, ST_INVALID, "Multiple files inside manifest are not supported.");
        goto out;
    }
    snprintf(m->uuid, sizeof m->uuid, "%s", uuid);
    snprintf(m->version, sizeof m->version, "%s", version);
    for (size_t i = 0; i < 40; i++)
        m->sha1[i] = (char)(sha1[i] | 0x20); /* lower case */
    m->size = (uint64_t)json_integer_value(size);
    snprintf(m->compression, sizeof m->compression, "%s", comp ? comp : "none");
    if ((v = json_object_get(j, "name")) && json_is_string(v))
        snprintf(m->name, sizeof m->name, "%s", json_string_value(v));
    if ((v = json_object_get(j, "description")) && json_is_string(v))
        snprintf(m->description, sizeof m->description, "%.128s", json_string_value(v));
    m->ostype = ostype_of(json_string_value(json_object_get(j, "os")));
    rc = 0;
out:
    json_decref(j);
    return rc;
}

int core_manifest_fetch(struct stowage *st, const char *url, struct core_manifest *m,
                        struct st_err *e)
{
    char *text = NULL;
    size_t len = 0;
    struct st_err fe;
    struct db_image other;

    if (core_fetch_small(st, url, MANIFEST_MAX, MANIFEST_TIMEOUT_MS, &text, &len, &fe)) {
        st_fail_field(e, fe.code == ST_FORBIDDEN || fe.code == ST_INVALID ? fe.code : ST_INVALID,
                      "manifest_url", "Image manifest URL is unreachable (%s).", fe.msg);
        return -1;
    }
    int rc = parse_manifest(text, len, m, e);
    free(text);
    if (rc)
        return -1;
    if (core_image_row(st, m->uuid, &other, &fe) == 0)
        return st_fail_field(e, ST_EXISTS, "manifest_url",
                             "Image UUID is already registered by image \"%s\".", other.name);
    return 0;
}

/* ---- streaming the file in ---- */

/* The receiving thread (libcurl's callbacks) checks the wire's SHA-1, decompresses and
 * fills one buffer while a writer thread hashes the other (SHA-256, and the SHA-1 of the
 * decompressed bytes) and writes it: two cores share the work of one stream. */
struct import {
    struct stowage *st;
    const struct core_vol_ref *v;
    struct be_file *f;
    const struct core_progress *p;
    struct core_unpack *unpack;
    gnutls_hash_hd_t wire_sha1, sha1, sha256;
    int compressed;
    char *bufs[2]; /* the receiver fills bufs[cur]; the writer owns the other while busy */
    int cur;
    size_t fill;
    uint64_t off; /* the file offset of bufs[cur] */
    uint64_t wire, expect, max_size;
    int percent, sink_failed;
    /* the writer */
    pthread_t writer;
    int writer_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const char *job; /* a buffer to hash and write, NULL when the writer is idle */
    size_t job_len;
    uint64_t job_off;
    int stop, failed;
    struct st_err werr;
};

static int all_zero(const char *b, size_t n)
{
    return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Write buf at off, leaving zero blocks as holes (the file is sized at the end). No
 * start_writeback here (uploads have one): an early writeback blocks the writer whenever
 * the disk's queue is full; the kernel's own writeback runs beside it, and the commit's
 * fsync ends it (bench/REPORT.md). */
static int write_buf(struct import *im, const char *buf, size_t len, uint64_t off, struct st_err *e)
{
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < ZERO_BLOCK ? len - done : ZERO_BLOCK;
        size_t run = 0;
        if (all_zero(buf + done, n)) {
            done += n;
            continue;
        }
        /* a run of data blocks goes in one write */
        while (done + run < len) {
            size_t k = len - done - run < ZERO_BLOCK ? len - done - run : ZERO_BLOCK;
            if (run && all_zero(buf + done + run, k))
                break;
            run += k;
        }
        if (core_pwrite_all(im->v, im->f, buf + done, run, off + done, e))
            return -1;
        done += run;
    }
    return 0;
}

static void *writer_main(void *ud)
{
    struct import *im = ud;
    pthread_mutex_lock(&im->mu);
    for (;;) {
        while (!im->job && !im->stop)
            pthread_cond_wait(&im->cv, &im->mu);
        if (!im->job)
            break;
        const char *buf = im->job;
        size_t len = im->job_len;
        uint64_t off = im->job_off;
        int skip = im->failed;
        pthread_mutex_unlock(&im->mu);
        struct st_err e;
        int rc = 0;
        if (!skip) {
            if (im->compressed)
                gnutls_hash(im->sha1, buf, len);
            gnutls_hash(im->sha256, buf, len);
            rc = write_buf(im, buf, len, off, &e);
        }
        pthread_mutex_lock(&im->mu);
        if (rc && !im->failed) {
            im->failed = 1;
            im->werr = e;
        }
        im->job = NULL;
        pthread_cond_broadcast(&im->cv);
    }
    pthread_mutex_unlock(&im->mu);
    return NULL;
}

/* Wait for the writer to be idle; -1 with its error when it failed. */
static int writer_idle(struct import *im, struct st_err *e)
{
    pthread_mutex_lock(&im->mu);
    while (im->job)
        pthread_cond_wait(&im->cv, &im->mu);
    int failed = im->failed;
    if (failed)
        *e = im->werr;
    pthread_mutex_unlock(&im->mu);
    return failed ? -1 : 0;
}

/* Hand the filled buffer to the writer and go on filling the other. */
static int flush_buf(struct import *im, struct st_err *e)
{
    if (writer_idle(im, e))
        return -1;
    if (!im->fill)
        return 0;
    pthread_mutex_lock(&im->mu);
    im->job = im->bufs[im->cur];
    im->job_len = im->fill;
    im->job_off = im->off;
    pthread_cond_broadcast(&im->cv);
    pthread_mutex_unlock(&im->mu);
    im->cur ^= 1;
    im->off += im->fill;
    im->fill = 0;
    return 0;
}

static int writer_start(struct import *im, struct st_err *e)
{
    pthread_mutex_init(&im->mu, NULL);
    pthread_cond_init(&im->cv, NULL);
    if (pthread_create(&im->writer, NULL, writer_main, im) != 0) {
        pthread_cond_destroy(&im->cv);
        pthread_mutex_destroy(&im->mu);
        return st_fail(e, ST_INTERNAL, "cannot start the import's writer thread");
    }
    im->writer_started = 1;
    return 0;
}

/* Let the writer finish what it has (or skip it after a failure), then join it. */
static void writer_stop(struct import *im)
{
    if (!im->writer_started)
        return;
    pthread_mutex_lock(&im->mu);
    im->stop = 1;
    pthread_cond_broadcast(&im->cv);
    pthread_mutex_unlock(&im->mu);
    pthread_join(im->writer, NULL);
    pthread_cond_destroy(&im->cv);
    pthread_mutex_destroy(&im->mu);
    im->writer_started = 0;
}

static int to_file(void *ud, const void *buf, size_t len, struct st_err *e)
{
    struct import *im = ud;
    if (im->off + im->fill + len > im->max_size)
        return st_fail_field(e, ST_TOO_LARGE, "file",
                             "the image is larger than the limit of %llu bytes",
                             (unsigned long long)im->max_size);
    while (len) {
        size_t n = WRITE_BUF - im->fill < len ? WRITE_BUF - im->fill : len;
        memcpy(im->bufs[im->cur] + im->fill, buf, n);
        im->fill += n;
        buf = (const char *)buf + n;
        len -= n;
        if (im->fill == WRITE_BUF && flush_buf(im, e))
            return -1;
    }
    return 0;
}

static int from_wire(void *ud, const void *buf, size_t len, struct st_err *e)
{
    struct import *im = ud;
    gnutls_hash(im->wire_sha1, buf, len);
    im->wire += len;
    if (im->p && im->p->fn && im->expect) {
        int pct = (int)(im->wire * 99 / im->expect);
        if (pct != im->percent)
            im->p->fn(im->p->ud, im->percent = pct);
    }
    if (core_unpack_feed(im->unpack, buf, len, e)) {
        im->sink_failed = 1;
        return -1;
    }
    return 0;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void digest(gnutls_hash_hd_t h, size_t n, char *out)
{
    unsigned char d[32];
    gnutls_hash_output(h, d);
    hex(d, n, out);
}

/* Fetch, check against the manifest, size; 0 or -1 with e. */
static int stream_in(struct import *im, const struct core_import_req *rq, char wire[41],
                     struct st_err *e)
{
    struct st_err fe;
    struct core_fetch f = {.url = rq->file_url,
                           .max_bytes = rq->manifest->size,
                           .sink = from_wire,
                           .ud = im,
                           .cancel = im->p ? im->p->cancel : NULL};
    int rc = core_fetch_run(im->st, &f, &fe);
    if (rc && (im->sink_failed || (f.cancel && atomic_load(f.cancel)))) {
        *e = fe;
        return -1;
    }
    if (rc && fe.code == ST_TOO_LARGE)
        return st_fail_field(e, ST_INVALID, "file_url",
                             "Image file size mismatch: the manifest says %llu bytes, the file "
                             "has more.",
                             (unsigned long long)rq->manifest->size);
    if (rc)
        return st_fail_field(e, fe.code == ST_FORBIDDEN ? ST_FORBIDDEN : ST_INVALID, "file_url",
                             "Image file URL is unreachable (%s).", fe.msg);
    if (f.received != rq->manifest->size)
        return st_fail_field(e, ST_INVALID, "file_url",
                             "Image file size mismatch: the manifest says %llu bytes, the file "
                             "has %llu.",
                             (unsigned long long)rq->manifest->size,
                             (unsigned long long)f.received);
    digest(im->wire_sha1, 20, wire);
    if (strcmp(wire, rq->manifest->sha1) != 0)
        return st_fail_field(e, ST_INVALID, "file_url",
                             "Image file checksum mismatch: the manifest says sha1 %s, the file "
                             "has %s.",
                             rq->manifest->sha1, wire);
    if (core_unpack_end(im->unpack, e) || flush_buf(im, e) || writer_idle(im, e))
        return -1;
    int trc = im->v->ops->ftruncate(im->f, im->off); /* trailing holes */
    return trc < 0 ? be_fail(e, trc, "size the image") : 0;
}

static int progress_out(void *ud, const void *buf, size_t len, struct st_err *e)
{
    struct import *im = ud;
    if (to_file(im, buf, len, e))
        return -1;
    return 0;
}

int core_image_import(struct stowage *st, const struct core_import_req *rq,
                      const struct core_progress *p, struct db_image *out, struct st_err *e)
{
    struct core_vol_ref v = {0};
    struct import im = {.st = st, .v = &v, .p = p, .max_size = st->cfg.max_image_size};
    char staging[96], key[64], wire[41], sha1[41];
    struct fmt_info info;
    int rc = -1, reserved = 0, staged = 0;

    key[0] = '\0';
    if (core_volume_acquire(st, rq->volume_id, &v, e))
        return -1;
    if (core_image_reserve(st, rq->name, rq->manifest->uuid, rq->volume_id, rq->owner, out, e))
        goto out;
    reserved = 1;
    struct db_conn *c;
    if ((rc = core_image_set_meta_unique(st, out, &rq->meta, e)))
        goto out;
    rc = -1;
    snprintf(key, sizeof key, "image:%s", out->uuid);
    if (core_claim(st, key, "an import of this image", e)) {
        key[0] = '\0';
        goto out;
    }
    core_staging_path(out->uuid, TASK_SUFFIX, staging, sizeof staging);
    if (core_open_staging(&v, staging, &im.f, e))
        goto out;
    staged = 1;
    im.expect = rq->manifest->size;
    im.compressed = strcmp(rq->manifest->compression, "none") != 0;
    if (!(im.bufs[0] = malloc(WRITE_BUF)) || !(im.bufs[1] = malloc(WRITE_BUF)) ||
        gnutls_hash_init(&im.wire_sha1, GNUTLS_DIG_SHA1) < 0 ||
        gnutls_hash_init(&im.sha1, GNUTLS_DIG_SHA1) < 0 ||
        gnutls_hash_init(&im.sha256, GNUTLS_DIG_SHA256) < 0) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    if (writer_start(&im, e) ||
        core_unpack_new(rq->manifest->compression, progress_out, &im, &im.unpack, e))
        goto out;
    rc = stream_in(&im, rq, wire, e);
    writer_stop(&im); /* idle already when the stream succeeded */
    if (rc) {
        rc = -1;
        goto out;
    }
    rc = -1;
    if (im.compressed)
        digest(im.sha1, 20, sha1);
    else
        snprintf(sha1, sizeof sha1, "%s", wire);
    digest(im.sha256, 32, out->sha256);
    if (core_inspect_accepted(st, &v, im.f, "", &info, e))
        goto out;
    snprintf(out->format, sizeof out->format, "%s", fmt_name(info.format));
    out->virtual_size = info.virtual_size;
    out->actual_size = info.actual_size;
    staged = 0; /* the commit discards it itself when it fails */
    if (core_image_commit(st, &v, im.f, staging, out, e))
        goto out;
    c = db_acquire(st->db);
    struct st_err ignore;
    db_image_set_sha1(c, out->uuid, sha1, &ignore);
    db_release(st->db, c);
    if (p && p->fn)
        p->fn(p->ud, 100);
    rc = 0;
out:
    writer_stop(&im); /* before the file closes */
    if (rc && staged)
        v.ops->discard(v.be, staging);
    if (im.f)
        v.ops->close_file(im.f);
    if (rc && reserved && strcmp(out->status, "active") != 0) {
        core_image_discard(st, out->uuid);
        core_bump(st);
    }
    core_unpack_free(im.unpack);
    if (im.wire_sha1)
        gnutls_hash_deinit(im.wire_sha1, NULL);
    if (im.sha1)
        gnutls_hash_deinit(im.sha1, NULL);
    if (im.sha256)
        gnutls_hash_deinit(im.sha256, NULL);
    free(im.bufs[0]);
    free(im.bufs[1]);
    if (key[0])
        core_unclaim(st, key);
    core_volume_release(&v);
    return rc;
}
