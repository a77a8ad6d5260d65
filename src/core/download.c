/* download.c — reading an image out: a kernel fd for sendfile where the backend has
 * one, otherwise reads through the backend that skip holes without reading them.
 *
 * Read-ahead blocks are 4 MiB, and a client that stops reading would hold its blocks
 * for as long as it stays connected: so a block is held only until it is consumed,
 * and all blocks together stay under cfg.readahead_memory. A download that finds the
 * budget spent reads straight into the caller's (MHD's) buffer, or, when its blocks are
 * lent rather than copied (core_download_peek), into a 64 KiB one of its own, the size
 * of that buffer: a stalled download then holds no more than it did. Holes are never
 * read: they come from a static block of zeros. On a backend with AIO
 * (each read a network round trip) up to RA_DEPTH blocks of the data extent being sent
 * are read ahead at once, so the cluster reads on while the client drains; elsewhere
 * one block at a time. */
#include "core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_AHEAD (4u << 20)
#define RA_DEPTH 8         /* blocks one download reads ahead at most (backends with AIO) */
#define BOUNCE (64u << 10) /* what a lent download reads into when the budget is spent */

/* The bytes of every hole: never written, so its pages stay the kernel's zero page. */
static char zeros[1u << 20];

/* A read-ahead block: [off, off+len) of the image, being read while aio is set. */
struct ra_block {
    char *buf;
    uint64_t off;
    size_t len;
    struct be_aio *aio;
    int ready; /* its bytes are in buf (len may have been cut by a short read) */
};

struct core_download {
    struct stowage *st;
    struct core_vol_ref v;
    struct be_file *f;
    uint64_t size;
    /* Backends without a kernel fd are read in big blocks: one network round trip
     * per 4 MiB instead of one per MHD callback. ring[head] is the block being sent,
     * the n - 1 after it are read ahead; next is where the block after them starts. */
    struct ra_block ring[RA_DEPTH];
    unsigned head, n, depth;
    uint64_t next;
    /* The map from the last lookup: [origin, data) is a hole, [data, hole) data. */
    uint64_t origin, data, hole;
    int mapped;
    int kfd;      /* the backend's kernel fd (not ours to close), or -1 */
    char *bounce; /* BOUNCE bytes for core_download_peek without a block, or NULL */
};

/* A read-ahead block if the budget allows one, else NULL. */
static char *ra_take(struct stowage *st)
{
    uint64_t was = atomic_fetch_add(&st->readahead_bytes, READ_AHEAD);
    char *p = was + READ_AHEAD <= st->cfg.readahead_memory ? malloc(READ_AHEAD) : NULL;
    if (!p)
        atomic_fetch_sub(&st->readahead_bytes, READ_AHEAD);
    return p;
}

static void ra_give(struct stowage *st, char *p)
{
    if (!p)
        return;
    free(p);
    atomic_fetch_sub(&st->readahead_bytes, READ_AHEAD);
}

uint64_t core_readahead_bytes(struct stowage *st)
{
    return atomic_load(&st->readahead_bytes);
}

int core_download_open(struct stowage *st, const char *name, const char *uuid,
                       struct core_download **out, struct core_image *view, struct st_err *e)
{
    char path[128];
    struct db_image row, *img = &row;
    int rc = uuid ? core_image_row(st, uuid, img, e) : core_image_by_name(st, name, img, e);
    if (rc)
        return -1;
    core_image_from_row(img, view); /* a caller may still ask about an image with no data */
    if (strcmp(img->status, "deleted") == 0)
        return st_fail(e, ST_NOT_FOUND, "image '%s' not found", uuid ? uuid : name);
    if (strcmp(img->status, "active") != 0)
        return st_fail(e, ST_CONFLICT, "image '%s' has no data yet (%s)", img->name, img->status);
    struct core_download *d = calloc(1, sizeof *d);
    if (!d)
        return st_fail(e, ST_INTERNAL, "out of memory");
    d->st = st;
    if (core_volume_acquire(st, img->volume_id, &d->v, e))
        goto fail;
    core_image_path(img, path, sizeof path);
    if ((rc = d->v.ops->open_file(d->v.be, path, O_RDONLY, 0, &d->f)) < 0) {
        be_fail(e, rc, "open image");
        goto fail;
    }
    if (core_file_size(&d->v, d->f, &d->size, e))
        goto fail;
    /* No POSIX_FADV_SEQUENTIAL: it doubles the file's read-ahead window, and on an XFS
     * loop volume a cold read then went slower, not faster (bench/REPORT.md). The
     * kernel's own window is what nginx gets. */
    d->kfd = d->v.ops->kernel_fd ? d->v.ops->kernel_fd(d->f) : -1;
    d->depth = d->v.ops->aio_start ? RA_DEPTH : 1;
    *out = d;
    return 0;
fail:
    core_download_close(d);
    return -1;
}

uint64_t core_download_size(struct core_download *d)
{
    return d->size;
}

/* Find the data extent at or after off; a hole up to the end maps to [size, size). */
static int map(struct core_download *d, uint64_t off)
{
    uint64_t data, hole;
    int rc = d->v.ops->next_data(d->f, off, &data, &hole);
    if (rc == -ENXIO) {
        data = hole = d->size;
    } else if (rc < 0) {
        /* No extent map: treat it all as data. */
        data = 0;
        hole = d->size;
    }
    d->origin = off;
    d->data = data < off ? off : data;
    d->hole = hole > d->size ? d->size : hole;
    d->mapped = 1;
    return 0;
}

/* sendfile would read a hole's zeros into the page cache, a GiB of them for a GiB of
 * hole: a range with a hole in it is read here instead, which skips the hole. */
int core_download_kernel_fd(struct core_download *d, uint64_t off, uint64_t len)
{
    if (d->kfd < 0)
        return -1;
    if (off < d->size) {
        map(d, off);
        if (d->data != off || d->hole - off < len)
            return -1;
    }
    return fcntl(d->kfd, F_DUPFD_CLOEXEC, 0);
}

/* The head block is done with: its buffer, for the caller to reuse or give back. */
static char *ra_pop(struct core_download *d)
{
    struct ra_block *b = &d->ring[d->head];
    char *buf = b->buf;
    if (b->aio)
        d->v.ops->aio_wait(b->aio); /* its buffer is the backend's until then */
    *b = (struct ra_block){0};
    d->head = (d->head + 1) % RA_DEPTH;
    d->n--;
    return buf;
}

static void ra_drop_all(struct core_download *d)
{
    while (d->n)
        ra_give(d->st, ra_pop(d));
}

/* Blocks read ahead from next up to the end of the data extent, as far as the depth and
 * the budget allow; blocks end at READ_AHEAD boundaries (RBD objects). reuse, a buffer
 * just consumed, is the first one (its pages are mapped already: a fresh 4 MiB buffer
 * is a fresh mmap, faulted in page by page), or given back. A block whose read cannot
 * start is not kept: the head's read will say why. */
static void ra_fill(struct core_download *d, char *reuse)
{
    while (d->n < d->depth && d->next < d->hole) {
        struct ra_block *b = &d->ring[(d->head + d->n) % RA_DEPTH];
        uint64_t want = READ_AHEAD - d->next % READ_AHEAD;
        if (want > d->hole - d->next)
            want = d->hole - d->next;
        b->buf = reuse ? reuse : ra_take(d->st);
        reuse = NULL;
        if (!b->buf)
            return;
        b->off = d->next;
        b->len = (size_t)want;
        if (d->v.ops->aio_start &&
            d->v.ops->aio_start(d->f, 0, b->buf, b->len, b->off, &b->aio) < 0) {
            ra_give(d->st, b->buf);
            *b = (struct ra_block){0};
            return;
        }
        d->next += want;
        d->n++;
    }
    ra_give(d->st, reuse);
}

/* The head block's bytes at hand: its read waited for (or done now, without AIO). */
static ssize_t ra_ready(struct core_download *d)
{
    struct ra_block *b = &d->ring[d->head];
    ssize_t got;
    if (b->aio) {
        got = d->v.ops->aio_wait(b->aio);
        b->aio = NULL;
    } else {
        got = d->v.ops->pread(d->f, b->buf, b->len, b->off);
        /* The disk reads the next block while this one goes to the client. */
        if (got > 0 && d->kfd >= 0 && b->off + (uint64_t)got < d->hole)
            posix_fadvise(d->kfd, (off_t)(b->off + (uint64_t)got), READ_AHEAD, POSIX_FADV_WILLNEED);
    }
    if (got >= 0 && (size_t)got < b->len)
        b->len = (size_t)got; /* short: the blocks after it no longer follow on */
    b->ready = got > 0;
    return got;
}

/* Where the bytes at off come from: n of them (at most len) at *p — a ready read-ahead
 * block's, or zeros for a hole — or *p NULL when no block could be had (the budget is
 * spent): the caller reads them itself. 0 at the end, negative on a failed read. */
static ssize_t locate(struct core_download *d, uint64_t off, size_t len, const char **p)
{
    *p = NULL;
    if (off >= d->size)
        return 0;
    if (len > d->size - off)
        len = (size_t)(d->size - off);
    if (!d->mapped || off < d->origin || off >= d->hole)
        map(d, off);
    if (off < d->data) {
        /* In a hole: zeros, up to the next data, never read. */
        size_t n = d->data - off < len ? (size_t)(d->data - off) : len;
        *p = zeros;
        return (ssize_t)(n < sizeof zeros ? n : sizeof zeros);
    }
    size_t n = d->hole - off < len ? (size_t)(d->hole - off) : len;
    struct ra_block *b = &d->ring[d->head];
    if (d->n && (off < b->off || off >= b->off + b->len || b->off + b->len > d->hole))
        ra_drop_all(d); /* a jump (a Range), or blocks of an old map */
    if (!d->n)
        d->next = off;
    ra_fill(d, NULL);
    if (!d->n)
        return (ssize_t)n; /* budget spent */
    if (!b->ready) {
        ssize_t got = ra_ready(d);
        if (got <= 0 || off >= b->off + b->len) {
            ra_drop_all(d); /* an error, or the image ended before off */
            return got <= 0 ? got : (ssize_t)n;
        }
    }
    size_t avail = (size_t)(b->off + b->len - off);
    *p = b->buf + (off - b->off);
    return (ssize_t)(n < avail ? n : avail);
}

/* [off, off+n) has been consumed: a block used up to its end goes on to read the next
 * one with AIO; without, it is given back at once (a client that stalls now holds
 * nothing). */
static void consumed(struct core_download *d, uint64_t off, size_t n)
{
    struct ra_block *b = &d->ring[d->head];
    if (!d->n || !b->ready || off < b->off || off + n != b->off + b->len)
        return;
    char *done = ra_pop(d);
    if (d->depth > 1)
        ra_fill(d, done);
    else
        ra_give(d->st, done);
}

ssize_t core_download_read(struct core_download *d, uint64_t off, void *buf, size_t len)
{
    const char *p;
    ssize_t n = locate(d, off, len, &p);
    if (n <= 0)
        return n;
    if (!p)
        return d->v.ops->pread(d->f, buf, (size_t)n, off);
    if (p == zeros)
        memset(buf, 0, (size_t)n);
    else
        memcpy(buf, p, (size_t)n);
    consumed(d, off, (size_t)n);
    return (ssize_t)n;
}

ssize_t core_download_peek(struct core_download *d, uint64_t off, size_t max, const void **p)
{
    const char *at;
    ssize_t n = locate(d, off, max, &at);
    if (n > 0 && !at) {
        if (!d->bounce && !(d->bounce = malloc(BOUNCE)))
            return -ENOMEM;
        n = d->v.ops->pread(d->f, d->bounce, (size_t)n < BOUNCE ? (size_t)n : BOUNCE, off);
        at = d->bounce;
    }
    *p = at;
    return n;
}

void core_download_advance(struct core_download *d, uint64_t off, size_t n)
{
    consumed(d, off, n);
}

void core_download_close(struct core_download *d)
{
    if (!d)
        return;
    ra_drop_all(d); /* reads in flight are waited for before the file closes */
    if (d->f)
        d->v.ops->close_file(d->f);
    core_volume_release(&d->v);
    free(d->bounce);
    free(d);
}
