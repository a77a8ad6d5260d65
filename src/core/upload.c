/* upload.c — streaming an image in: staging, checksum, inspection, commit, resume.
 *
 * The HTTP thread only copies each chunk into a fill buffer. A full buffer goes to two
 * threads of the upload at once: the writer writes it to the staging file (a slow
 * backend, a Gluster write over the network, never blocks the event loop) while the
 * hasher hashes it, so receiving, hashing and writing run in a pipeline and an upload
 * goes at the slowest of the three (SHA-256 or the disk), not at their sum on the HTTP
 * thread. On a backend with AIO (each write a network round trip) the writer only starts
 * a buffer's write and takes the next one: up to WRITE_BEHIND buffers are in flight, each
 * waited for in order and only then free again, so the cluster always has writes queued.
 * When no buffer is free the feeder is put to sleep (MHD suspend) and woken once the
 * writer and the hasher are done with one. Nothing is held in memory beyond these
 * buffers (two, or WRITE_BEHIND + 2 with AIO), whatever the image size. The first write
 * that fails fails the upload; what is in flight is still waited for, and drain() waits
 * for all of it before a commit or a removal. The hash sees the bytes in file
 * order: buffers are handed on one at a time, and a resume's staged prefix is read back
 * and hashed by the writer before the first new buffer.
 *
 * The staging file is .staging/<uuid>.upload. A client that goes away leaves
 * it (and the 'saving' row) for a resume with Content-Range; a refusal, a
 * wrong checksum or a write error removes both. The file is the upload's own:
 * created with O_EXCL (a name planted there is replaced, never opened), its inode
 * recorded in the row, and a resume accepts only that inode with one link — a hard
 * link planted in .staging can never make an upload write outside it. An empty PUT
 * with "Content-Range: bytes * /TOTAL" commits bytes that are all staged already. */
#include "core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define UPLOAD_BUF (4u << 20)
/* Buffers whose writes may be in flight at once (backends with AIO). One: the block's
 * write goes on while the next block is received and hashed. More did not make RBD
 * uploads faster on 2 cores (short of CPU, not of round trips: bench/REPORT.md), and each
 * one adds its timeout to the 503 of a cluster that died (its writes fail one after the
 * other, each after rados_osd_op_timeout). */
#define WRITE_BEHIND 1
#define UPLOAD_BUFS (WRITE_BEHIND + 2)

/* A buffer the writer started an AIO write of. */
struct in_flight {
    char *buf;
    struct be_aio *aio;
    size_t len;
};

struct core_upload {
    struct stowage *st;
    struct db_image img;
    char key[64];
    struct core_vol_ref v;
    struct be_file *f;
    char staging[96];
    char declared[16];
    int has_range;
    uint64_t staged;         /* bytes already in the staging file when this request began */
    uint64_t next;           /* file offset of the next byte offered */
    uint64_t end;            /* where this request's bytes end, UINT64_MAX if unknown */
    uint64_t total;          /* the whole image's size, UINT64_MAX if unknown */
    uint64_t ino;            /* the staging file's inode, as recorded in the row */
    uint64_t declared_total; /* the total an earlier request declared, UINT64_MAX if none */
    char expect[65];
    gnutls_hash_hd_t hash;

    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *fill_buf, *io_buf;
    size_t fill, io_len;
    uint64_t fill_off, io_off;
    char *bufs[UPLOAD_BUFS]; /* every buffer, for release() */
    size_t nbufs;
    char *spare[UPLOAD_BUFS]; /* free for the next fill */
    size_t nspare;
    struct in_flight q[WRITE_BEHIND]; /* the writer's own: its AIO writes, oldest at qhead */
    unsigned qhead, qlen, depth;      /* depth: WRITE_BEHIND with AIO, else 0 */
    pthread_t hasher;
    int hasher_started;
    int write_todo; /* the writer has io_buf (or the rehash) to do */
    int hash_todo;  /* the hasher has io_buf to hash */
    int quit, failed, sleeping, rehash;
    int thrown; /* staging file and row removed after a failure */
    struct st_err err;
    void (*sleep)(void *);
    void (*wake)(void *);
    void *wake_ud;
};

/* ---- the writer thread ---- */

/* A resumed upload's checksum covers the bytes staged before: read them back once. */
static int rehash_prefix(struct core_upload *u, struct st_err *e)
{
    uint64_t off = 0;
    while (off < u->staged) {
        uint64_t left = u->staged - off;
        size_t want = left < UPLOAD_BUF ? (size_t)left : UPLOAD_BUF;
        ssize_t n = u->v.ops->pread(u->f, u->io_buf, want, off);
        if (n <= 0)
            return be_fail(e, n < 0 ? (int)n : -EIO, "read back staged bytes");
        gnutls_hash(u->hash, u->io_buf, (size_t)n);
        off += (uint64_t)n;
    }
    return 0;
}

/* The next full buffer can go to the writer and the hasher. Caller holds mu. */
static int can_hand_over(const struct core_upload *u)
{
    return !u->write_todo && !u->hash_todo && u->nspare > 0;
}

/* The writer or the hasher is done with its part of io_buf, or a buffer is free again.
 * Caller holds mu. */
static void part_done(struct core_upload *u)
{
    if (u->sleeping && can_hand_over(u)) {
        u->sleeping = 0;
        u->wake(u->wake_ud); /* after the feeder slept, under the same lock: never lost */
    }
    pthread_cond_broadcast(&u->cv);
}

static void fail_write(struct core_upload *u, const struct st_err *e)
{
    if (!u->failed) {
        u->failed = 1;
        u->err = *e;
    }
}

/* buf is written: free once the hasher is done with it too. Caller holds mu. */
static void give_back(struct core_upload *u, char *buf)
{
    while (buf == u->io_buf && u->hash_todo)
        pthread_cond_wait(&u->cv, &u->mu);
    u->spare[u->nspare++] = buf;
    part_done(u);
}

/* A buffer's write started (1: in flight, the writer waits for it later) or done (0),
 * or -1 with e. */
static int write_block(struct core_upload *u, char *buf, size_t len, uint64_t off, struct st_err *e)
{
    const struct backend_ops *ops = u->v.ops;
    if (u->depth) {
        struct be_aio *a;
        int rc = ops->aio_start(u->f, 1, buf, len, off, &a);
        if (rc < 0)
            return be_fail(e, rc, "write");
        u->q[(u->qhead + u->qlen) % WRITE_BEHIND] = (struct in_flight){buf, a, len};
        u->qlen++;
        return 1;
    }
    if (core_pwrite_all(&u->v, u->f, buf, len, off, e))
        return -1;
    if (ops->start_writeback)
        ops->start_writeback(u->f, off, len);
    return 0;
}

/* Wait for the oldest write in flight; its buffer is free again. Caller holds mu. */
static void reap(struct core_upload *u)
{
    struct in_flight w = u->q[u->qhead];
    struct st_err e;

    u->qhead = (u->qhead + 1) % WRITE_BEHIND;
    u->qlen--;
    pthread_mutex_unlock(&u->mu);
    ssize_t n = u->v.ops->aio_wait(w.aio);
    pthread_mutex_lock(&u->mu);
    if (n != (ssize_t)w.len) {
        be_fail(&e, n < 0 ? (int)n : -EIO, "write");
        fail_write(u, &e);
    }
    give_back(u, w.buf);
}

static void *writer(void *arg)
{
    struct core_upload *u = arg;
    struct st_err e;

    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (!u->write_todo && !u->qlen && !u->quit)
            pthread_cond_wait(&u->cv, &u->mu);
        if (u->write_todo && (!u->qlen || u->qlen < u->depth)) {
            int rehash = u->rehash;
            char *buf = u->io_buf;
            size_t len = u->io_len;
            uint64_t off = u->io_off;
            pthread_mutex_unlock(&u->mu);
            int rc = rehash ? rehash_prefix(u, &e) : write_block(u, buf, len, off, &e);
            pthread_mutex_lock(&u->mu);
            if (rc < 0)
                fail_write(u, &e);
            u->rehash = 0;
            u->write_todo = 0;
            if (rc <= 0)
                give_back(u, buf);
            else
                part_done(u);
        } else if (u->qlen) {
            reap(u); /* the oldest first: a new write waits for room, or nothing is to do */
        } else {
            break; /* quit, and nothing is in flight */
        }
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

static void *hasher(void *arg)
{
    struct core_upload *u = arg;

    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (!u->hash_todo && !u->quit)
            pthread_cond_wait(&u->cv, &u->mu);
        if (!u->hash_todo)
            break;
        pthread_mutex_unlock(&u->mu); /* io_buf is read-only while hash_todo */
        gnutls_hash(u->hash, u->io_buf, u->io_len);
        pthread_mutex_lock(&u->mu);
        u->hash_todo = 0;
        part_done(u);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* Hand the fill buffer to the writer and the hasher, and fill a free one. Caller holds
 * mu and has seen can_hand_over. */
static void hand_over(struct core_upload *u)
{
    u->io_buf = u->fill_buf;
    u->fill_buf = u->spare[--u->nspare];
    u->io_len = u->fill;
    u->io_off = u->fill_off;
    u->fill_off += u->fill;
    u->fill = 0;
    u->write_todo = u->hash_todo = 1;
    pthread_cond_broadcast(&u->cv);
}

/* Write out what is buffered, wait for every write in flight and stop the writer; 0 or
 * -1 with u->err. */
static int drain(struct core_upload *u)
{
    if (!u->thread_started)
        return u->failed ? -1 : 0;
    pthread_mutex_lock(&u->mu);
    while (u->write_todo || u->hash_todo)
        pthread_cond_wait(&u->cv, &u->mu);
    if (u->fill && !u->failed) {
        while (!can_hand_over(u))
            pthread_cond_wait(&u->cv, &u->mu);
        hand_over(u);
        while (u->write_todo || u->hash_todo)
            pthread_cond_wait(&u->cv, &u->mu);
    }
    u->quit = 1;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    if (u->hasher_started)
        pthread_join(u->hasher, NULL);
    u->thread_started = u->hasher_started = 0;
    return u->failed ? -1 : 0;
}

/* ---- life of an upload ---- */

/* Stop the writer and give back the file, the volume and the claim. Idempotent. */
static void let_go(struct core_upload *u)
{
    if (u->thread_started)
        drain(u);
    if (u->f)
        u->v.ops->close_file(u->f);
    u->f = NULL;
    core_volume_release(&u->v);
    if (u->key[0])
        core_unclaim(u->st, u->key);
    u->key[0] = '\0';
}

/* Failed for good: nothing of this image was committed, so nothing of it stays — at
 * once, before the client hears about it. Idempotent. */
static void throw_away(struct core_upload *u)
{
    if (u->thrown)
        return;
    if (u->thread_started)
        drain(u);
    /* A volume that stopped answering cannot remove either, and each try would wait out
     * its timeouts before the client hears anything: the staging object is left to the
     * volume's recovery once it answers again (or to the expiry of staged uploads). */
    if (u->v.be && !(u->failed && u->err.code == ST_UNAVAILABLE))
        u->v.ops->discard(u->v.be, u->staging);
    core_image_discard(u->st, u->img.uuid);
    core_bump(u->st);
    u->thrown = 1;
    let_go(u);
}

static void release(struct core_upload *u)
{
    let_go(u);
    if (u->hash)
        gnutls_hash_deinit(u->hash, NULL);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cv);
    for (size_t i = 0; i < u->nbufs; i++)
        free(u->bufs[i]);
    free(u);
}

static void destroy(struct core_upload *u)
{
    throw_away(u);
    release(u);
}

/* The image this request writes: an existing one (by uuid or name) or a new row (then
 * *created is set). A new row is made only once its volume is borrowed into v: borrowing
 * waits for the volume's first recovery, which must not find a row nothing was staged for
 * yet. */
static int find_or_create(struct stowage *st, const struct core_upload_req *rq, struct db_image *im,
                          int *created, struct core_vol_ref *v, struct st_err *e)
{
    char vol[DB_ID];
    struct st_err nf;

    const char *owner = rq->who ? rq->who->owner : "";
    if (rq->uuid) {
        if (core_image_row(st, rq->uuid, im, &nf) == 0 && strcmp(im->status, "deleted") != 0)
            goto found;
        if (nf.code != ST_NOT_FOUND && nf.code != ST_OK) {
            *e = nf;
            return -1;
        }
        if (!rq->name)
            return st_fail(e, ST_NOT_FOUND, "image '%s' not found (give ?name= to create it)",
                           rq->uuid);
    } else if (core_image_by_name(st, rq->name, im, &nf) == 0) {
        goto found;
    } else if (nf.code != ST_NOT_FOUND) {
        *e = nf;
        return -1;
    }
    if (!core_valid_id(rq->name))
        return st_fail_field(e, ST_INVALID, "name",
                             "image names match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$");
    if (rq->volume_id)
        snprintf(vol, sizeof vol, "%s", rq->volume_id);
    else if (core_default_volume(st, NULL, vol, sizeof vol, e))
        return -1;
    if (core_volume_acquire(st, vol, v, e))
        return -1;
    if (core_image_reserve(st, rq->name, rq->uuid, vol, owner, im, e))
        return -1;
    *created = 1;
    return 0;
found:
    if (strcmp(im->status, "active") == 0)
        return st_fail(e, ST_CONFLICT, "image '%s' already has its data; delete it to replace it",
                       im->name);
    if (strcmp(im->status, "saving") != 0)
        return st_fail(e, ST_CONFLICT, "image '%s' is %s", im->name, im->status);
    if (rq->volume_id && strcmp(rq->volume_id, im->volume_id) != 0)
        return st_fail_field(e, ST_CONFLICT, "volume",
                             "image '%s' is being uploaded to volume '%s'", im->name,
                             im->volume_id);
    return 0;
}

/* Sizes, range and free space, decided before a byte is written. */
static int check_request(struct core_upload *u, const struct core_upload_req *rq, struct st_err *e)
{
    const struct st_config *cfg = &u->st->cfg;
    struct be_space sp;
    int rc;

    if (rq->finish_only) {
        if (rq->length != 0 && rq->length != UINT64_MAX)
            return st_fail_field(e, ST_INVALID, "Content-Range",
                                 "Content-Range 'bytes */TOTAL' finishes an upload: send no body");
        if (u->staged > rq->range_total)
            return st_fail_field(
                e, ST_INVALID, "Content-Range", "%llu bytes are staged, more than the total %llu",
                (unsigned long long)u->staged, (unsigned long long)rq->range_total);
        if (u->staged < rq->range_total) {
            if (rq->resume_offset)
                *rq->resume_offset = u->staged;
            return st_fail_field(e, ST_RANGE, "Content-Range", "upload resumes at byte %llu",
                                 (unsigned long long)u->staged);
        }
        u->end = u->total = u->staged;
    } else if (rq->has_range) {
        if (rq->range_end < rq->range_start ||
            (rq->range_total != UINT64_MAX && rq->range_end >= rq->range_total))
            return st_fail_field(e, ST_INVALID, "Content-Range", "Content-Range is inconsistent");
        if (rq->length != UINT64_MAX && rq->length != rq->range_end - rq->range_start + 1)
            return st_fail_field(e, ST_INVALID, "Content-Range",
                                 "Content-Range and Content-Length disagree");
        if (rq->range_start != u->staged) {
            if (rq->resume_offset)
                *rq->resume_offset = u->staged;
            return st_fail_field(e, ST_RANGE, "Content-Range", "upload resumes at byte %llu",
                                 (unsigned long long)u->staged);
        }
        u->end = rq->range_end + 1;
        u->total = rq->range_total;
    } else {
        u->end = rq->length;
        u->total = rq->length;
    }
    uint64_t biggest = u->total != UINT64_MAX ? u->total : u->end;
    if (biggest != UINT64_MAX && biggest > cfg->max_image_size)
        return st_fail_field(e, ST_TOO_LARGE, "Content-Length",
                             "image of %llu bytes is over the limit of %llu",
                             (unsigned long long)biggest, (unsigned long long)cfg->max_image_size);
    if (biggest != UINT64_MAX && (rc = u->v.ops->statvfs(u->v.be, &sp, e)) == 0 &&
        sp.free_bytes < biggest - u->staged)
        return st_fail(e, ST_NO_SPACE, "volume '%s' has %llu bytes free, the image needs %llu",
                       u->img.volume_id, (unsigned long long)sp.free_bytes,
                       (unsigned long long)(biggest - u->staged));
    return 0;
}

/* Why an existing staging file is not the one this upload created, or NULL. */
static const char *not_ours(const struct stat *sb, uint64_t ino, char *buf, size_t len)
{
    if (!S_ISREG(sb->st_mode))
        return "not a regular file";
    if (sb->st_nlink != 1) {
        snprintf(buf, len, "it has %llu links", (unsigned long long)sb->st_nlink);
        return buf;
    }
    if (sb->st_uid != geteuid()) {
        snprintf(buf, len, "owned by uid %u", (unsigned)sb->st_uid);
        return buf;
    }
    if (!ino || (uint64_t)sb->st_ino != ino)
        return "another file";
    return NULL;
}

/* Resume: the staging file this upload created and nothing else. */
static int reopen_staging(struct core_upload *u, struct st_err *e)
{
    struct stat sb;
    char buf[64];
    const char *why;
    int rc;

    if ((rc = u->v.ops->fstat(u->f, &sb)) < 0)
        return be_fail(e, rc, "stat staging file");
    if ((why = not_ours(&sb, u->ino, buf, sizeof buf)))
        return st_fail_field(e, ST_CONFLICT, "Content-Range",
                             "the staging file of image '%s' is not the one this upload created "
                             "(%s); send the whole image again without Content-Range",
                             u->img.name, why);
    u->staged = (uint64_t)sb.st_size;
    return 0;
}

/* A staging file of the upload's own (any file of that name is replaced, never opened),
 * its inode recorded before a byte is written. */
static int create_staging(struct core_upload *u, struct st_err *e)
{
    struct stat sb;
    int rc;

    if (u->f) {
        u->v.ops->close_file(u->f);
        u->f = NULL;
    }
    if (core_open_staging(&u->v, u->staging, &u->f, e))
        return -1;
    if ((rc = u->v.ops->fstat(u->f, &sb)) < 0)
        return be_fail(e, rc, "stat staging file");
    u->ino = (uint64_t)sb.st_ino;
    u->staged = 0;
    struct db_conn *c = db_acquire(u->st->db);
    rc = db_image_set_upload(c, u->img.uuid, u->ino, UINT64_MAX, e);
    db_release(u->st->db, c);
    u->declared_total = UINT64_MAX;
    return rc;
}

static int open_staging(struct core_upload *u, int restart, struct st_err *e)
{
    struct db_conn *c = db_acquire(u->st->db);
    int rc = db_image_get_upload(c, u->img.uuid, &u->ino, &u->declared_total, e);
    db_release(u->st->db, c);
    if (rc)
        return -1;
    if (restart)
        return create_staging(u, e);
    rc = u->v.ops->open_file(u->v.be, u->staging, O_RDWR, 0600, &u->f);
    if (rc == -ENOENT)
        return create_staging(u, e);
    if (rc < 0)
        return be_fail(e, rc, "open staging file");
    return reopen_staging(u, e);
}

/* Remember the whole length once a request says it (HEAD tells it to a resuming client). */
static int record_total(struct core_upload *u, struct st_err *e)
{
    if (u->total == UINT64_MAX || u->total == u->declared_total)
        return 0;
    struct db_conn *c = db_acquire(u->st->db);
    int rc = db_image_set_upload(c, u->img.uuid, u->ino, u->total, e);
    db_release(u->st->db, c);
    u->declared_total = u->total;
    return rc;
}

/* The fill buffer and the free ones: two, or room for WRITE_BEHIND writes in flight. */
static int alloc_buffers(struct core_upload *u)
{
    u->depth = u->v.ops->aio_start && u->v.ops->aio_wait ? WRITE_BEHIND : 0;
    size_t n = u->depth ? UPLOAD_BUFS : 2;
    for (; u->nbufs < n; u->nbufs++)
        if (!(u->bufs[u->nbufs] = malloc(UPLOAD_BUF)))
            return -1;
    u->fill_buf = u->bufs[0];
    for (size_t i = 1; i < n; i++)
        u->spare[u->nspare++] = u->bufs[i];
    return 0;
}

int core_upload_begin(struct stowage *st, const struct core_upload_req *rq,
                      struct core_upload **out, struct st_err *e)
{
    struct core_upload *u = calloc(1, sizeof *u);
    int created = 0;

    if (!u)
        return st_fail(e, ST_INTERNAL, "out of memory");
    u->st = st;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    if (rq->declared_format && fmt_from_name(rq->declared_format) == FMT_INVALID) {
        st_fail_field(e, ST_INVALID, "format", "unknown image format '%.32s'", rq->declared_format);
        goto fail;
    }
    snprintf(u->declared, sizeof u->declared, "%s", rq->declared_format ? rq->declared_format : "");
    if (rq->sha256_hex)
        snprintf(u->expect, sizeof u->expect, "%s", rq->sha256_hex);
    if (find_or_create(st, rq, &u->img, &created, &u->v, e))
        goto fail;
    u->has_range = rq->has_range;
    snprintf(u->key, sizeof u->key, "image:%s", u->img.uuid);
    if (core_claim(st, u->key, "an upload of this image", e)) {
        u->key[0] = '\0';
        goto fail;
    }
    core_staging_path(u->img.uuid, UPLOAD_SUFFIX, u->staging, sizeof u->staging);
    if ((!u->v.be && core_volume_acquire(st, u->img.volume_id, &u->v, e)) ||
        open_staging(u, !rq->has_range, e) || check_request(u, rq, e) || record_total(u, e))
        goto fail;
    if (alloc_buffers(u) || gnutls_hash_init(&u->hash, GNUTLS_DIG_SHA256) < 0) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto fail;
    }
    u->next = u->fill_off = u->staged;
    if ((u->rehash = u->write_todo = u->staged > 0))
        u->io_buf = u->spare[--u->nspare]; /* the writer reads the staged bytes back in it */
    if (pthread_create(&u->thread, NULL, writer, u)) {
        st_fail(e, ST_INTERNAL, "cannot start the upload writer");
        goto fail;
    }
    u->thread_started = 1;
    if (pthread_create(&u->hasher, NULL, hasher, u)) {
        st_fail(e, ST_INTERNAL, "cannot start the upload hasher");
        goto fail;
    }
    u->hasher_started = 1;
    *out = u;
    return 0;
fail:
    if (created)
        destroy(u); /* a row made by this request goes with it */
    else
        release(u);
    return -1;
}

void core_upload_set_waiter(struct core_upload *u, void (*sleep)(void *ud), void (*wake)(void *ud),
                            void *ud)
{
    u->sleep = sleep;
    u->wake = wake;
    u->wake_ud = ud;
}

/* A full fill buffer goes on if the writer and the hasher are free: 1 handed over, 0 busy.
 * Caller holds mu. */
static int pass_full_buffer(struct core_upload *u)
{
    if (!can_hand_over(u))
        return 0;
    hand_over(u);
    return 1;
}

ssize_t core_upload_write(struct core_upload *u, const void *buf, size_t len, struct st_err *e)
{
    size_t took = 0;

    pthread_mutex_lock(&u->mu);
    if (u->failed || (u->end != UINT64_MAX && u->next + len > u->end)) {
        if (!u->failed)
            st_fail_field(&u->err, ST_INVALID, "Content-Length",
                          "more bytes than the request declared");
        u->failed = 1;
        *e = u->err;
        pthread_mutex_unlock(&u->mu);
        throw_away(u); /* the rest of the body is only drained: nothing more to keep */
        return -1;
    }
    while (took < len) {
        if (u->fill == UPLOAD_BUF && !pass_full_buffer(u)) {
            /* MHD offers the rest again once the writer wakes us. */
            u->sleeping = 1;
            u->sleep(u->wake_ud);
            break;
        }
        size_t n = len - took;
        if (n > UPLOAD_BUF - u->fill)
            n = UPLOAD_BUF - u->fill;
        memcpy(u->fill_buf + u->fill, (const char *)buf + took, n);
        u->fill += n;
        took += n;
    }
    u->next += took;
    if (u->fill == UPLOAD_BUF)
        pass_full_buffer(u); /* keep the writer busy */
    pthread_mutex_unlock(&u->mu);
    return (ssize_t)took;
}

static void digest_hex(gnutls_hash_hd_t h, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char d[32];
    gnutls_hash_output(h, d);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[64] = '\0';
}

int core_upload_finish(struct core_upload *u, struct core_image *out, uint64_t *staged,
                       struct st_err *e)
{
    struct fmt_info info;
    char got[65];

    if (drain(u)) {
        *e = u->err;
        goto refuse;
    }
    if (u->end != UINT64_MAX && u->next != u->end) {
        st_fail_field(e, ST_INVALID, "Content-Length", "the body ended after %llu of %llu bytes",
                      (unsigned long long)(u->next - u->staged),
                      (unsigned long long)(u->end - u->staged));
        goto refuse;
    }
    if (staged)
        *staged = u->next;
    if (u->has_range && (u->total == UINT64_MAX || u->next < u->total)) {
        struct st_err ignore;
        struct db_conn *c = db_acquire(u->st->db);
        db_image_touch(c, u->img.uuid, &ignore);
        db_release(u->st->db, c);
        release(u);
        return 1; /* a part; the rest comes with more Content-Range requests */
    }
    digest_hex(u->hash, got);
    if (u->expect[0] && strcasecmp(u->expect, got) != 0) {
        st_fail_field(e, ST_INVALID, "X-Checksum-Sha256",
                      "checksum mismatch: expected sha256 %s, got %s", u->expect, got);
        goto refuse;
    }
    if (core_inspect(&u->v, u->f, u->declared, u->st->cfg.max_image_size, 0, &info, e))
        goto refuse;
    if (!fmt_accepted(&info)) {
        core_refusal(&info, e);
        goto refuse;
    }
    snprintf(u->img.format, sizeof u->img.format, "%s", fmt_name(info.format));
    u->img.virtual_size = info.virtual_size; /* raw: the file size; a qcow2 may say 0 */
    u->img.actual_size = info.actual_size;
    snprintf(u->img.sha256, sizeof u->img.sha256, "%s", got);
    if (core_image_commit(u->st, &u->v, u->f, u->staging, &u->img, e))
        goto refuse;
    core_image_from_row(&u->img, out);
    release(u);
    return 0;
refuse:
    destroy(u);
    return -1;
}

void core_upload_abort(struct core_upload *u)
{
    /* Keep what arrived: the buffered bytes go to the file so a resume starts after them. */
    if (!u->thrown && drain(u) == 0) {
        struct st_err ignore;
        struct db_conn *c = db_acquire(u->st->db);
        db_image_touch(c, u->img.uuid, &ignore);
        db_release(u->st->db, c);
        release(u);
        return;
    }
    destroy(u);
}

int core_upload_staged(struct stowage *st, const struct core_image *im, uint64_t *staged,
                       uint64_t *total, struct st_err *e)
{
    struct core_vol_ref v;
    struct stat sb;
    char path[96], buf[64];
    uint64_t ino = 0;

    *staged = 0;
    *total = UINT64_MAX;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_get_upload(c, im->uuid, &ino, total, e);
    db_release(st->db, c);
    if (rc || core_volume_acquire(st, im->volume_id, &v, e))
        return -1;
    core_staging_path(im->uuid, UPLOAD_SUFFIX, path, sizeof path);
    rc = v.ops->stat(v.be, path, &sb);
    core_volume_release(&v);
    if (rc == 0 && !not_ours(&sb, ino, buf, sizeof buf))
        *staged = (uint64_t)sb.st_size; /* a file that is not the upload's own holds nothing */
    return 0;
}
