/* upload.c — streaming an image in: staging, checksum, inspection, commit, resume.
 *
 * The HTTP thread only copies each chunk into a fill buffer, one of a ring of a few. A
 * full buffer goes on to two threads of the upload: the writer writes the ring's buffers
 * to the staging file in turn (a slow backend, a Gluster write over the network, never
 * blocks the event loop) and the hasher hashes them in turn, each at its own pace, so
 * receiving, hashing and writing run in a pipeline and an upload goes at the slowest of
 * the three (SHA-256 or the disk), not at their sum on the HTTP thread; with more than two
 * buffers a stage that falls behind for a moment (a descheduled thread, a slow write)
 * does not stop the other two at once. On a page-cache backend a third thread, started
 * once 64 MiB are written, fsyncs behind the writer every 64 MiB, so the disk writes while
 * the bytes come in instead of during the final fsync. On a backend with AIO (RBD) the
 * writer starts each buffer's write and goes on to the next one (writer_aio), so the
 * writes of all the ring's buffers but the one being filled are in flight at once. When
 * the buffer to fill next is still the writer's or the hasher's, the feeder is put to
 * sleep (MHD suspend) and woken once both are done with it. Nothing is held in memory
 * beyond the ring, whatever the image size. The hash sees the bytes in file order: the
 * hasher takes the buffers in the order they were filled, and a resume's staged prefix is
 * read back and hashed by it before the first new buffer. A small whole body (SMALL_MAX,
 * no Content-Range) has none of this: it is kept in one buffer of its size and written and
 * hashed by the finish, into the same staging file, before the same inspection and commit.
 *
 * The staging file is .staging/<uuid>.upload. A client that goes away leaves
 * it (and the 'saving' row) for a resume with Content-Range; a refusal, a
 * wrong checksum or a write error removes both. The file is the upload's own:
 * created with O_EXCL (a name planted there is replaced, never opened), its inode
 * recorded in the row, and a resume accepts only that inode with one link — a hard
 * link planted in .staging can never make an upload write outside it. An empty PUT
 * with "Content-Range: bytes * /TOTAL" commits bytes that are all staged already.
 *
 * A new image whose whole body (WHOLE_MAX at most) comes in one request without
 * Content-Range has no row while it is written: nothing is recorded until its bytes are
 * durable, and the commit inserts its row active (core_image_commit_new) — one catalogue
 * change per create, its COMMIT shared with the concurrent ones. Such an upload cannot be
 * resumed: one cut short leaves nothing. The finish (fsyncs, commit) may run on a finisher
 * thread (core_upload_finish_async) so that it holds no HTTP thread. */
#include "core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The ring's buffers' size. Into a page cache, 1 MiB: the bytes stay in the CPU's cache from
 * the HTTP thread's copy to the hash and the write (with 4 MiB they fall out of it, and
 * the three passes over them cost more CPU). Around it (a file that takes O_DIRECT
 * writes, where the write makes no copy of its own), what the backend says suits it
 * (write_size: 4 MiB, several device requests at once). Elsewhere (a network backend),
 * 4 MiB: the backend splits a big write into pieces that travel at once. */
#define UPLOAD_BUF (4u << 20)
#define UPLOAD_BUF_CACHED (1u << 20)
/* A backend with AIO (RBD: each write an OSD round trip), 4 MiB: one RBD object per
 * buffer, each written by an AIO of its own that stays in flight while the next ones
 * start (writer_aio). Before, two 16 MiB buffers, each written as four objects and
 * waited for at once: the OSD sat idle while a buffer's last object came back. */
#define UPLOAD_BUF_AIO (4u << 20)
/* A page-cache backend's written bytes are made durable behind the writer, a step at a
 * time, so the final fsync finds little left to do (see flusher()). */
#define FLUSH_STEP (64u << 20)
/* A new image whose whole body comes in one request of at most this many bytes gets its
 * row only at the end, active (core_image_commit_new): one catalogue change per create.
 * A bigger one keeps a 'saving' row from the start, so that a client that goes away can
 * resume it. */
#define WHOLE_MAX (4u << 20)
/* A whole body of at most this many bytes (a request without Content-Range that says its
 * length) is small: it goes into one buffer of its own size and is written and hashed by
 * the finish, on its thread — no writer, no hasher, no big buffers. A 1-byte create paid
 * more for starting two threads and mapping two buffers than for all the rest of its
 * bytes' path. */
#define SMALL_MAX (64u << 10)
/* The ring: 4 buffers, so the feeder fills one while three wait for or go through the
 * writer and the hasher (A/B on an XFS loop volume: bench/REPORT.md, upload). An AIO
 * backend's: 8 of 4 MiB, so that seven objects' writes can be in flight (32 MiB per
 * upload, as with the two 16 MiB buffers before; bench/REPORT.md, RBD). */
#define RING 4
#define RING_AIO 8

struct ring_buf {
    char *data;
    size_t len;         /* bytes in it, once handed on */
    uint64_t off;       /* where they go in the file */
    struct be_aio *aio; /* its write in flight (writer_aio), NULL when none started */
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
    int fresh;               /* no row yet: nothing is recorded before the commit */
    int small;               /* the whole body in fill_buf, written by drain (SMALL_MAX) */
    const void *client;      /* who sends it (core_upload_req) */
    int checked;             /* length, checksum and format seen to: only the commit is left */
    char expect[65];
    gnutls_hash_hd_t hash;

    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *fill_buf; /* the buffer being filled: ring[filled % nring] (or the small body's) */
    size_t buf_size;
    size_t fill;
    uint64_t fill_off;
    struct ring_buf ring[RING > RING_AIO ? RING : RING_AIO];
    unsigned nring;
    /* Buffers handed on, written and hashed so far: ring[k % nring] for k in
     * [min(wrote, hashed), filled) is the writer's or the hasher's, never the feeder's. */
    uint64_t filled, wrote, hashed;
    pthread_t hasher;
    int hasher_started;
    pthread_t flush_thread;
    int flusher_started;
    uint64_t written; /* the file's end as the writer left it (for the flusher) */
    uint64_t flushed; /* ... and as the flusher's last fsync found it */
    int rehash;       /* the hasher has the staged prefix to read back and hash first */
    int quit, failed, sleeping;
    int thrown; /* staging file and row removed after a failure */
    struct st_err err;
    void (*sleep)(void *);
    void (*wake)(void *);
    void *wake_ud;
};

/* ---- the writer thread ---- */

/* A resumed upload's checksum covers the bytes staged before: read them back once, into
 * a buffer of its own (the writer writes the new bytes meanwhile, all past the prefix). */
static int rehash_prefix(struct core_upload *u, struct st_err *e)
{
    char *buf = malloc(u->buf_size);
    uint64_t off = 0;
    int rc = 0;

    if (!buf)
        return st_fail(e, ST_INTERNAL, "out of memory");
    while (rc == 0 && off < u->staged) {
        uint64_t left = u->staged - off;
        size_t want = left < u->buf_size ? (size_t)left : u->buf_size;
        ssize_t n = u->v.ops->pread(u->f, buf, want, off);
        if (n <= 0)
            rc = be_fail(e, n < 0 ? (int)n : -EIO, "read back staged bytes");
        else
            gnutls_hash(u->hash, buf, (size_t)n);
        off += n > 0 ? (uint64_t)n : 0;
    }
    free(buf);
    return rc;
}

/* The buffer to fill next is free: neither the writer's nor the hasher's. Caller holds mu. */
static int ring_room(const struct core_upload *u)
{
    uint64_t done = u->wrote < u->hashed ? u->wrote : u->hashed;
    return u->filled - done < u->nring;
}

/* Everything handed on is written and hashed, the staged prefix too. Caller holds mu. */
static int ring_idle(const struct core_upload *u)
{
    return !u->rehash && u->wrote == u->filled && u->hashed == u->filled;
}

/* The upload failed with e, unless it had already: the first failure is the one told.
 * Caller holds mu. */
static void fail_once(struct core_upload *u, const struct st_err *e)
{
    if (!u->failed) {
        u->failed = 1;
        u->err = *e;
    }
}

/* The writer or the hasher is done with a buffer. Caller holds mu. */
static void advanced(struct core_upload *u)
{
    if (u->sleeping && ring_room(u)) {
        u->sleeping = 0;
        u->wake(u->wake_ud); /* after the feeder slept, under the same lock: never lost */
    }
    pthread_cond_broadcast(&u->cv);
}

/* Flush-behind. start_writeback only hands the pages to the device below; when that is
 * a loop device or a disk with a write cache, the bytes still wait for the final fsync,
 * which then writes the whole image while the client waits, and the disk sat idle while
 * the bytes came in. An fsync every FLUSH_STEP on a thread of its own (the writer never
 * waits for it) overlaps that with receiving. It adds durability and removes none: the
 * final fsync still comes before the commit. */
static void *flusher(void *arg)
{
    struct core_upload *u = arg;
    struct st_err e;

    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (!u->quit && !u->failed && u->written - u->flushed < FLUSH_STEP)
            pthread_cond_wait(&u->cv, &u->mu);
        if (u->quit || u->failed)
            break;
        uint64_t upto = u->written;
        pthread_mutex_unlock(&u->mu);
        int rc = u->v.ops->fsync(u->f);
        pthread_mutex_lock(&u->mu);
        if (rc < 0) { /* told now: the final fsync might not see it */
            be_fail(&e, rc, "flush written bytes");
            fail_once(u, &e);
        }
        u->flushed = upto;
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* The flusher starts with the first FLUSH_STEP written, on a backend with a page cache
 * (one with start_writeback): a small upload never pays for its thread. Without it (no
 * thread to be had) the final fsync does all the work, as it always may. Caller holds mu;
 * only the writer calls it, so drain() sees flusher_started settled once the writer is
 * joined. */
static void start_flusher(struct core_upload *u)
{
    if (u->flusher_started || !u->v.ops->start_writeback || !u->v.ops->fsync ||
        u->written - u->flushed < FLUSH_STEP)
        return;
    u->flusher_started = pthread_create(&u->flush_thread, NULL, flusher, u) == 0;
}

/* Writes the ring's buffers in the order they were handed on. After a failure it only
 * passes them by, so that the feeder and drain() never wait for it in vain. */
static void *writer(void *arg)
{
    struct core_upload *u = arg;
    struct st_err e;

    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (u->wrote == u->filled && !u->quit)
            pthread_cond_wait(&u->cv, &u->mu);
        if (u->wrote == u->filled)
            break;
        const struct ring_buf *b = &u->ring[u->wrote % u->nring]; /* ours until wrote moves */
        int skip = u->failed;
        pthread_mutex_unlock(&u->mu);
        int rc = skip ? 0 : core_pwrite_all(&u->v, u->f, b->data, b->len, b->off, &e);
        if (rc == 0 && !skip && u->v.ops->start_writeback)
            u->v.ops->start_writeback(u->f, b->off, b->len);
        pthread_mutex_lock(&u->mu);
        if (rc)
            fail_once(u, &e);
        if (rc == 0 && !skip) {
            u->written = b->off + b->len;
            start_flusher(u);
        }
        u->wrote++;
        advanced(u);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* The oldest write in flight is done: b's bytes are on the backend, or the upload failed.
 * Caller holds mu and drops it while it waits. */
static void finish_aio(struct core_upload *u, struct ring_buf *b)
{
    struct st_err e;
    ssize_t n = 0;

    if (b->aio) {
        pthread_mutex_unlock(&u->mu);
        n = u->v.ops->aio_wait(b->aio);
        pthread_mutex_lock(&u->mu);
        b->aio = NULL;
        if (n >= 0 && (size_t)n < b->len)
            n = -EIO; /* a short write leaves a gap: nothing after it may count */
        if (n < 0) {
            be_fail(&e, (int)n, "write");
            fail_once(u, &e);
        }
    }
    u->wrote++;
    advanced(u);
}

/* The writer of a backend with AIO (RBD: each write an OSD round trip). It starts each
 * buffer's write as soon as the buffer is handed on and goes on to the next, waiting for
 * the oldest write only when there is nothing new to start, so that the writes of all
 * the ring's buffers but the one being filled are in flight at once, one object each,
 * and the OSD never sits idle between blocks. A buffer counts as written (and goes back
 * to the feeder) once its write is waited for, in the order they were filled; after a
 * failure no more writes start, and those in flight are waited for before their
 * buffers can be let go. */
static void *writer_aio(void *arg)
{
    struct core_upload *u = arg;
    uint64_t started = u->wrote; /* ring[k % nring] for k in [wrote, started) in flight */
    struct st_err e;

    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (started == u->filled && u->wrote == started && !u->quit)
            pthread_cond_wait(&u->cv, &u->mu);
        if (started < u->filled) {
            struct ring_buf *b = &u->ring[started % u->nring]; /* ours until wrote passes it */
            int skip = u->failed;
            pthread_mutex_unlock(&u->mu);
            int rc = skip ? 0 : u->v.ops->aio_start(u->f, 1, b->data, b->len, b->off, &b->aio);
            pthread_mutex_lock(&u->mu);
            if (rc < 0) {
                b->aio = NULL;
                be_fail(&e, rc, "write");
                fail_once(u, &e);
            }
            started++;
        } else if (u->wrote < started) {
            finish_aio(u, &u->ring[u->wrote % u->nring]);
        } else {
            break; /* quit, with nothing left in flight */
        }
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* Hashes the staged prefix of a resume, then the ring's buffers in the order they were
 * filled: the bytes in file order. */
static void *hasher(void *arg)
{
    struct core_upload *u = arg;
    struct st_err e;

    if (u->rehash) { /* set before this thread started, cleared only here */
        int rc = rehash_prefix(u, &e);
        pthread_mutex_lock(&u->mu);
        if (rc)
            fail_once(u, &e);
        u->rehash = 0;
        advanced(u);
        pthread_mutex_unlock(&u->mu);
    }
    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (u->hashed == u->filled && !u->quit)
            pthread_cond_wait(&u->cv, &u->mu);
        if (u->hashed == u->filled)
            break;
        const struct ring_buf *b =
            &u->ring[u->hashed % u->nring]; /* read-only until hashed moves */
        int skip = u->failed;
        pthread_mutex_unlock(&u->mu);
        if (!skip)
            gnutls_hash(u->hash, b->data, b->len);
        pthread_mutex_lock(&u->mu);
        u->hashed++;
        advanced(u);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* Hand the fill buffer on to the writer and the hasher; the next one in the ring becomes
 * the fill buffer (the feeder waits for ring_room before it puts a byte in it). Caller
 * holds mu. */
static void hand_over(struct core_upload *u)
{
    struct ring_buf *b = &u->ring[u->filled % u->nring];
    b->len = u->fill;
    b->off = u->fill_off;
    u->fill_off += u->fill;
    u->fill = 0;
    u->filled++;
    u->fill_buf = u->ring[u->filled % u->nring].data;
    pthread_cond_broadcast(&u->cv);
}

/* A small body's bytes, all buffered: written and hashed on the caller's thread. */
static int write_small(struct core_upload *u)
{
    struct st_err e;

    if (u->fill && !u->failed) {
        if (core_pwrite_all(&u->v, u->f, u->fill_buf, u->fill, u->fill_off, &e)) {
            u->failed = 1;
            u->err = e;
            return -1;
        }
        gnutls_hash(u->hash, u->fill_buf, u->fill);
        u->fill_off += u->fill;
        u->fill = 0;
    }
    return u->failed ? -1 : 0;
}

/* Write out what is buffered and stop the writer; 0 or -1 with u->err. */
static int drain(struct core_upload *u)
{
    if (u->small)
        return write_small(u);
    if (!u->thread_started)
        return u->failed ? -1 : 0;
    pthread_mutex_lock(&u->mu);
    if (u->fill && !u->failed)
        hand_over(u); /* the feeder filled it, so it had room */
    while (!ring_idle(u))
        pthread_cond_wait(&u->cv, &u->mu);
    u->quit = 1;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    if (u->hasher_started)
        pthread_join(u->hasher, NULL);
    if (u->flusher_started)
        pthread_join(u->flush_thread, NULL);
    u->thread_started = u->hasher_started = u->flusher_started = 0;
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
    if (!u->fresh) {
        core_image_discard(u->st, u->img.uuid);
        core_bump(u->st);
    }
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
    if (u->small)
        free(u->fill_buf);
    for (unsigned i = 0; i < u->nring; i++)
        free(u->ring[i].data);
    free(u);
}

static void destroy(struct core_upload *u)
{
    throw_away(u);
    release(u);
}

/* A new image's whole body in this one request, small enough not to need a resume. */
static int whole(const struct core_upload_req *rq)
{
    return !rq->has_range && rq->length != UINT64_MAX && rq->length <= WHOLE_MAX;
}

/* The image this request writes: an existing one (by uuid or name) or a new one (then
 * *created is set, and *fresh when its row is left to the commit). A new row is made only
 * once its volume is borrowed into v: borrowing waits for the volume's first recovery,
 * which must not find a row nothing was staged for yet. */
static int find_or_create(struct stowage *st, const struct core_upload_req *rq, struct db_image *im,
                          int *created, int *fresh, struct core_vol_ref *v, struct st_err *e)
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
        if (core_image_by_name(st, rq->name, im, &nf) == 0)
            return st_fail_field(e, ST_EXISTS, "name", "an image named '%s' already exists",
                                 rq->name);
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
    *fresh = whole(rq);
    if (*fresh ? core_image_prepare(rq->name, rq->uuid, vol, owner, im, e)
               : core_image_reserve(st, rq->name, rq->uuid, vol, owner, im, e))
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
    u->declared_total = UINT64_MAX;
    if (u->fresh)
        return 0; /* a file without a row is removed by recovery: nothing to record */
    struct db_conn *c = db_acquire(u->st->db);
    rc = db_image_set_upload(c, u->img.uuid, u->ino, UINT64_MAX, e);
    db_release(u->st->db, c);
    return rc;
}

static int open_staging(struct core_upload *u, int restart, struct st_err *e)
{
    if (u->fresh)
        return create_staging(u, e);
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
    if (u->fresh || u->total == UINT64_MAX || u->total == u->declared_total)
        return 0;
    struct db_conn *c = db_acquire(u->st->db);
    int rc = db_image_set_upload(c, u->img.uuid, u->ino, u->total, e);
    db_release(u->st->db, c);
    u->declared_total = u->total;
    return rc;
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
    if (find_or_create(st, rq, &u->img, &created, &u->fresh, &u->v, e))
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
    u->small = !rq->has_range && u->end <= SMALL_MAX && u->staged == 0;
    u->client = rq->client;
    /* asked only for a body that fills buffers: the posix backend opens its O_DIRECT twin
     * to answer, which a 1-byte create has no use for */
    size_t best = !u->small && u->v.ops->write_size ? u->v.ops->write_size(u->f, u->staged) : 0;
    u->buf_size = u->small                    ? (size_t)u->end
                  : best                      ? best
                  : u->v.ops->start_writeback ? UPLOAD_BUF_CACHED
                  : u->v.ops->aio_start       ? UPLOAD_BUF_AIO
                                              : UPLOAD_BUF;
    if (u->small) {
        u->fill_buf = malloc(u->buf_size ? u->buf_size : 1);
    } else {
        unsigned want = u->v.ops->aio_start ? RING_AIO : RING;
        while (u->nring < want && (u->ring[u->nring].data = core_page_alloc(u->buf_size)))
            u->nring++;
        u->fill_buf = u->nring == want ? u->ring[0].data : NULL;
    }
    if (!u->fill_buf || gnutls_hash_init(&u->hash, GNUTLS_DIG_SHA256) < 0) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto fail;
    }
    u->next = u->fill_off = u->written = u->flushed = u->staged;
    if (u->small) {
        *out = u;
        return 0;
    }
    u->rehash = u->staged > 0;
    if (pthread_create(&u->thread, NULL, u->v.ops->aio_start ? writer_aio : writer, u)) {
        st_fail(e, ST_INTERNAL, "cannot start the upload writer");
        goto fail;
    }
    u->thread_started = 1;
    if (pthread_create(&u->hasher, NULL, hasher, u)) {
        u->rehash = 0; /* no hasher to do it: drain() must not wait for it */
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
    if (u->small) { /* room for the whole body: the check above kept it within */
        memcpy(u->fill_buf + u->fill, buf, len);
        u->fill += len;
        u->next += len;
        pthread_mutex_unlock(&u->mu);
        return (ssize_t)len;
    }
    while (took < len) {
        if (u->fill == u->buf_size)
            hand_over(u);
        if (!ring_room(u)) {
            /* MHD offers the rest again once the writer or the hasher wakes us. */
            u->sleeping = 1;
            u->sleep(u->wake_ud);
            break;
        }
        size_t n = len - took;
        if (n > u->buf_size - u->fill)
            n = u->buf_size - u->fill;
        memcpy(u->fill_buf + u->fill, (const char *)buf + took, n);
        u->fill += n;
        took += n;
    }
    u->next += took;
    if (u->fill == u->buf_size)
        hand_over(u); /* keep the writer and the hasher busy */
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

/* What a finish checks before the commit: the length, the checksum, the format (then
 * in u->img). 0, 1 when this was a part of a ranged upload that is not complete yet (u is
 * freed), -1 with e (u is not). */
static int finish_checks(struct core_upload *u, uint64_t *staged, struct st_err *e)
{
    struct fmt_info info;
    char got[65];

    if (drain(u)) {
        *e = u->err;
        return -1;
    }
    if (u->end != UINT64_MAX && u->next != u->end)
        return st_fail_field(
            e, ST_INVALID, "Content-Length", "the body ended after %llu of %llu bytes",
            (unsigned long long)(u->next - u->staged), (unsigned long long)(u->end - u->staged));
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
    if (u->expect[0] && strcasecmp(u->expect, got) != 0)
        return st_fail_field(e, ST_INVALID, "X-Checksum-Sha256",
                             "checksum mismatch: expected sha256 %s, got %s", u->expect, got);
    if (core_inspect(&u->v, u->f, u->declared, u->st->cfg.max_image_size, 0, &info, e))
        return -1;
    if (!fmt_accepted(&info))
        return core_refusal(&info, e);
    snprintf(u->img.format, sizeof u->img.format, "%s", fmt_name(info.format));
    u->img.virtual_size = info.virtual_size; /* raw: the file size; a qcow2 may say 0 */
    u->img.actual_size = info.actual_size;
    snprintf(u->img.sha256, sizeof u->img.sha256, "%s", got);
    u->checked = 1;
    return 0;
}

int core_upload_finish(struct core_upload *u, struct core_image *out, uint64_t *staged,
                       struct st_err *e)
{
    if (u->checked) {
        if (staged)
            *staged = u->next;
    } else {
        int rc = finish_checks(u, staged, e);
        if (rc > 0)
            return rc;
        if (rc < 0)
            goto refuse;
    }
    if (u->fresh ? core_image_commit_new(u->st, &u->v, u->f, u->staging, &u->img, e)
                 : core_image_commit(u->st, &u->v, u->f, u->staging, &u->img, e))
        goto refuse;
    core_image_from_row(&u->img, out);
    release(u);
    return 0;
refuse:
    destroy(u);
    return -1;
}

/* ---- finishers ---- */

/* Finishes run on a few threads kept for them: a finish waits for its batch's fsyncs and
 * COMMIT, and one thread per finish, started and ended for every 1-byte create, cost more
 * CPU than the create's own work (clone, stack, the TLB shootdowns of its unmapping).
 * As many as run at once, so every waiting create can join the same batch; beyond
 * FINISHERS_MAX they queue. One idle for FINISHER_IDLE_S seconds ends, FINISHERS_KEEP
 * stay. */
#define FINISHERS_MAX 256
#define FINISHERS_KEEP 4
#define FINISHER_IDLE_S 10

struct finisher {
    struct core_upload *u;
    core_upload_done_fn done;
    void *ud;
    struct finisher *next;
};

/* A finish counted in st->finishing is over; caller holds finish_mu (finish_left: not). */
static void finish_left_locked(struct stowage *st)
{
    if (--st->finishing == 0)
        pthread_cond_broadcast(&st->finish_cv);
}

static void finish_left(struct stowage *st)
{
    pthread_mutex_lock(&st->finish_mu);
    finish_left_locked(st);
    pthread_mutex_unlock(&st->finish_mu);
}

static void finish_one(struct finisher *fin)
{
    struct core_image im;
    struct st_err e = {0};
    uint64_t staged = 0;

    memset(&im, 0, sizeof im);
    int rc = core_upload_finish(fin->u, &im, &staged, &e);
    fin->done(fin->ud, rc, &im, staged, &e);
    free(fin);
}

/* A finisher thread: takes queued finishes until it has been idle long enough to end (or
 * the finishers are stopped). Caller-free: detached, it tells st when it has ended. */
static void *finisher_main(void *arg)
{
    struct stowage *st = arg;
    struct timespec until;

    pthread_mutex_lock(&st->finish_mu);
    for (;;) {
        int timed_out = 0;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += FINISHER_IDLE_S;
        while (!st->finish_queue && !st->finish_quit && !timed_out) {
            st->finish_idle++;
            timed_out =
                pthread_cond_timedwait(&st->finish_work_cv, &st->finish_mu, &until) == ETIMEDOUT;
            st->finish_idle--;
        }
        struct finisher *fin = st->finish_queue;
        if (!fin) {
            if (st->finish_quit || st->finish_threads > FINISHERS_KEEP)
                break;
            continue;
        }
        if (!(st->finish_queue = fin->next))
            st->finish_tail = &st->finish_queue;
        st->finish_queued--;
        pthread_mutex_unlock(&st->finish_mu);
        finish_one(fin);
        pthread_mutex_lock(&st->finish_mu);
        finish_left_locked(st);
    }
    st->finish_threads--;
    pthread_cond_broadcast(&st->finish_cv);
    pthread_mutex_unlock(&st->finish_mu);
    return NULL;
}

/* One more finisher when the queued finishes outnumber the idle ones. Caller holds
 * finish_mu. */
static void add_finisher(struct stowage *st)
{
    pthread_attr_t attr;
    pthread_t t;

    if (st->finish_queued <= st->finish_idle || st->finish_threads >= FINISHERS_MAX ||
        pthread_attr_init(&attr))
        return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, finisher_main, st) == 0)
        st->finish_threads++;
    pthread_attr_destroy(&attr);
}

/* A small create's commit is over (on a server of st->publishes). */
static void small_committed(void *arg, int rc, const struct st_err *e)
{
    struct finisher *fin = arg;
    struct core_upload *u = fin->u;
    struct stowage *st = u->st;
    struct core_image im;
    uint64_t staged = u->next;

    memset(&im, 0, sizeof im);
    if (rc == 0) {
        core_image_from_row(&u->img, &im);
        release(u);
    } else {
        destroy(u);
    }
    fin->done(fin->ud, rc, &im, staged, e);
    free(fin);
    finish_left(st);
}

/* A new image's small body into a page cache: written, hashed and inspected here at once
 * (a few calls that do not wait for the disk), then its commit joins the next batch with
 * no thread waiting for it — the batch's leader answers it. 0 when it was handed on, -1
 * when a finisher is to finish it (a refusal found here is left in u->err for it). */
static int finish_small(struct core_upload *u, struct finisher *fin)
{
    struct stowage *st = u->st;
    struct st_err e;

    if (!u->small || !u->fresh || !u->v.ops->start_writeback)
        return -1;
    if (finish_checks(u, NULL, &e)) {
        u->failed = 1;
        u->err = e;
        return -1;
    }
    pthread_mutex_lock(&st->finish_mu);
    st->finishing++;
    pthread_mutex_unlock(&st->finish_mu);
    if (core_image_commit_new_async(st, &u->v, u->f, u->staging, &u->img, u->client,
                                    small_committed, fin) == 0)
        return 0;
    finish_left(st);
    return -1;
}

int core_upload_finish_async(struct core_upload *u, core_upload_done_fn done, void *ud)
{
    struct stowage *st = u->st;
    struct finisher *fin = malloc(sizeof *fin);

    if (!fin)
        return -1;
    *fin = (struct finisher){u, done, ud, NULL};
    if (finish_small(u, fin) == 0)
        return 0;
    pthread_mutex_lock(&st->finish_mu);
    if (st->finish_quit) {
        pthread_mutex_unlock(&st->finish_mu);
        free(fin);
        return -1;
    }
    if (!st->finish_tail)
        st->finish_tail = &st->finish_queue;
    *st->finish_tail = fin;
    st->finish_tail = &fin->next;
    st->finish_queued++;
    st->finishing++;
    add_finisher(st);
    if (st->finish_threads == 0) { /* none could be started: the caller finishes it */
        st->finish_queue = NULL;
        st->finish_tail = &st->finish_queue;
        st->finish_queued--;
        st->finishing--;
        pthread_mutex_unlock(&st->finish_mu);
        free(fin);
        return -1;
    }
    pthread_cond_signal(&st->finish_work_cv);
    pthread_mutex_unlock(&st->finish_mu);
    return 0;
}

void core_uploads_drain(struct stowage *st)
{
    pthread_mutex_lock(&st->finish_mu);
    while (st->finishing)
        pthread_cond_wait(&st->finish_cv, &st->finish_mu);
    st_group_stop(&st->publishes); /* from now on a create's commit waits for itself */
    st->finish_quit = 1;           /* a finish asked for from now on runs on its caller's thread */
    pthread_cond_broadcast(&st->finish_work_cv);
    while (st->finish_threads)
        pthread_cond_wait(&st->finish_cv, &st->finish_mu);
    pthread_mutex_unlock(&st->finish_mu);
}

void core_upload_abort(struct core_upload *u)
{
    /* Keep what arrived: the buffered bytes go to the file so a resume starts after them.
     * A create that recorded nothing yet leaves nothing. */
    if (!u->thrown && !u->fresh && drain(u) == 0) {
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
    if (rc < 0 && rc != -ENOENT) /* the volume cannot say: no number it does not know */
        return be_fail(e, rc, "the staged bytes");
    if (rc == 0 && !not_ours(&sb, ino, buf, sizeof buf))
        *staged = (uint64_t)sb.st_size; /* a file that is not the upload's own holds nothing */
    return 0;
}
