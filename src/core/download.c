/* download.c — reading an image out: a kernel fd for sendfile where the backend has
 * one, otherwise reads through the backend that skip holes without reading them.
 *
 * Read-ahead blocks are 4 MiB, and a client that stops reading would hold its block
 * for as long as it stays connected: so a block is held only until it is consumed,
 * and all blocks together stay under cfg.readahead_memory. A download that finds the
 * budget spent reads straight into the caller's (MHD's) buffer. */
#include "core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_AHEAD (4u << 20)

struct core_download {
    struct stowage *st;
    struct core_vol_ref v;
    struct be_file *f;
    uint64_t size;
    /* Backends without a kernel fd are read in big blocks: one network round trip
     * per 4 MiB instead of one per MHD callback. */
    char *ra;
    uint64_t ra_off;
    size_t ra_len;
    /* The map from the last lookup: [origin, data) is a hole, [data, hole) data. */
    uint64_t origin, data, hole;
    int mapped;
    int kfd; /* the backend's kernel fd (not ours to close), or -1 */
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

ssize_t core_download_read(struct core_download *d, uint64_t off, void *buf, size_t len)
{
    if (off >= d->size)
        return 0;
    if (len > d->size - off)
        len = (size_t)(d->size - off);
    if (!d->mapped || off < d->origin || off >= d->hole)
        map(d, off);
    if (off < d->data) {
        /* In a hole: zeros, up to the next data. */
        size_t n = d->data - off < len ? (size_t)(d->data - off) : len;
        memset(buf, 0, n);
        return (ssize_t)n;
    }
    size_t n = d->hole - off < len ? (size_t)(d->hole - off) : len;
    if (!d->ra || off < d->ra_off || off >= d->ra_off + d->ra_len) {
        if (!d->ra && !(d->ra = ra_take(d->st)))
            return d->v.ops->pread(d->f, buf, n, off);
        uint64_t want = d->hole - off < READ_AHEAD ? d->hole - off : READ_AHEAD;
        ssize_t got = d->v.ops->pread(d->f, d->ra, (size_t)want, off);
        if (got <= 0)
            return got;
        /* The disk reads the next block while this one goes to the client. */
        if (d->kfd >= 0 && off + (uint64_t)got < d->hole)
            posix_fadvise(d->kfd, (off_t)(off + (uint64_t)got), READ_AHEAD, POSIX_FADV_WILLNEED);
        d->ra_off = off;
        d->ra_len = (size_t)got;
    }
    size_t avail = (size_t)(d->ra_off + d->ra_len - off);
    if (n > avail)
        n = avail;
    memcpy(buf, d->ra + (off - d->ra_off), n);
    if (off + n == d->ra_off + d->ra_len) {
        ra_give(d->st, d->ra); /* consumed: a reader that stalls now holds nothing */
        d->ra = NULL;
    }
    return (ssize_t)n;
}

void core_download_close(struct core_download *d)
{
    if (!d)
        return;
    if (d->f)
        d->v.ops->close_file(d->f);
    core_volume_release(&d->v);
    ra_give(d->st, d->ra);
    free(d);
}
