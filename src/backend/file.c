/* file.c — the write protocol and clones for backends whose volumes hold files.
 *
 * POSIX and gfapi volumes are directories: a staging object is a file in .staging/,
 * publishing is a rename that never replaces followed by an fsync of the target's
 * directory, and a clone is a qcow2 overlay whose backing file is the image (or, where
 * the filesystem shares blocks, a reflink of a raw image). Each file backend fills its
 * vtable's protocol entries with these, bound to its own file operations; an object
 * store (RBD) fills the same entries natively. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stowage/format.h"

int be_pwrite_all(const struct backend_ops *ops, struct be_file *f, const void *buf, size_t len,
                  uint64_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = ops->pwrite(f, p, len, off);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static size_t page_len(size_t len, size_t off)
{
    return len - off < 4096 ? len - off : 4096;
}

static int page_is_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Write the pages of buf that are not all zero at off; a zero page is skipped, except
 * the last one when keep_last (so that a fresh file reaches its size). */
static int pwrite_nonzero(const struct backend_ops *ops, struct be_file *f, const void *buf,
                          size_t len, uint64_t base, int keep_last)
{
    const unsigned char *p = buf;
    size_t last = keep_last && len ? (len - 1) / 4096 * 4096 : SIZE_MAX;
    for (size_t off = 0; off < len;) {
        size_t end = off;
        while (end < len && (end == last || !page_is_zero(p + end, page_len(len, end))))
            end += page_len(len, end);
        int rc = end > off ? be_pwrite_all(ops, f, p + off, end - off, base + off) : 0;
        if (rc < 0)
            return rc;
        off = end < len ? end + page_len(len, end) : end; /* the zero page stays a hole */
    }
    return 0;
}

int be_pwrite_sparse(const struct backend_ops *ops, struct be_file *f, const void *buf, size_t len)
{
    return pwrite_nonzero(ops, f, buf, len, 0, 1);
}

int be_pwrite_data(const struct backend_ops *ops, struct be_file *f, const void *buf, size_t len,
                   uint64_t off)
{
    return pwrite_nonzero(ops, f, buf, len, off, 0);
}

/* A staging file by this name is a leftover of a crashed try: it goes, but only when
 * it is there (on Gluster each call is a round trip to every brick). */
int be_file_stage(const struct backend_ops *ops, struct be_volume *v, const char *staged,
                  struct be_file **out)
{
    int rc = ops->open_file(v, staged, O_RDWR | O_CREAT | O_EXCL, 0600, out);
    if (rc == -EEXIST && ops->unlink(v, staged) == 0)
        rc = ops->open_file(v, staged, O_RDWR | O_CREAT | O_EXCL, 0600, out);
    return rc;
}

/* The directory part of a relative path ("images" of "images/x.raw"; "" for none). */
static void dir_of(const char *rel, char *out, size_t len)
{
    const char *slash = strrchr(rel, '/');
    size_t n = slash ? (size_t)(slash - rel) : 0;
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), rel);
}

int be_file_publish(const struct backend_ops *ops, struct be_volume *v, const char *staged,
                    const char *final, int *moved)
{
    char dir[256];
    *moved = 0;
    int rc = ops->rename(v, staged, final);
    if (rc < 0)
        return rc;
    *moved = 1;
    dir_of(final, dir, sizeof dir);
    return ops->fsync_dir(v, dir);
}

void be_file_publish_many(const struct backend_ops *ops, struct be_volume *v,
                          struct be_publish *items, size_t n,
                          void (*sync)(struct be_volume *v, struct be_publish *items, size_t n))
{
    char dir[256], last[256] = "";
    int last_rc = 0, synced = 0;

    sync(v, items, n);
    for (size_t i = 0; i < n; i++) {
        items[i].moved = 0;
        if (items[i].flushed &&
            (items[i].rc = ops->rename(v, items[i].staged, items[i].final)) == 0)
            items[i].moved = 1;
    }
    /* one fsync of a directory covers every rename into it that came before */
    for (size_t i = 0; i < n; i++) {
        if (!items[i].moved)
            continue;
        dir_of(items[i].final, dir, sizeof dir);
        if (!synced || strcmp(dir, last) != 0) {
            last_rc = ops->fsync_dir(v, dir);
            snprintf(last, sizeof last, "%s", dir);
            synced = 1;
        }
        items[i].rc = last_rc;
    }
}

int be_file_remove(const struct backend_ops *ops, struct be_volume *v, const char *final)
{
    char dir[256];
    int rc = ops->unlink(v, final);
    if (rc < 0)
        return rc;
    dir_of(final, dir, sizeof dir);
    return ops->fsync_dir(v, dir);
}

/* The layout every file volume has; creating it is idempotent. */
int be_file_init(const struct backend_ops *ops, struct be_volume *v)
{
    int rc = ops->mkdir(v, "images", 0755);
    if (rc == 0)
        rc = ops->mkdir(v, "clones", 0755);
    if (rc == 0)
        rc = ops->mkdir(v, ".staging", 0700);
    return rc;
}

static int write_overlay(const struct backend_ops *ops, struct be_file *f,
                         const struct be_clone_req *rq, struct st_err *e)
{
    char backing[160];
    void *buf = NULL;
    size_t len = 0;
    uint64_t vsize = (rq->virtual_size + 511) & ~(uint64_t)511;
    const char *base = strrchr(rq->base, '/');

    /* Relative to the clone's directory, so the volume can be mounted anywhere. */
    snprintf(backing, sizeof backing, "../images/%s", base ? base + 1 : rq->base);
    int rc = fmt_qcow2_overlay_build(backing, rq->base_format, vsize, &buf, &len);
    if (rc < 0)
        return st_fail(e, ST_INTERNAL, "cannot build the overlay of %s: %s", rq->base,
                       strerror(-rc));
    rc = be_pwrite_sparse(ops, f, buf, len);
    free(buf);
    return rc < 0 ? be_fail(e, rc, "write the overlay") : 0;
}

static int write_reflink(const struct backend_ops *ops, struct be_volume *v, struct be_file *f,
                         const struct be_clone_req *rq, struct st_err *e)
{
    struct be_file *src = NULL;
    int rc = ops->open_file(v, rq->base, O_RDONLY, 0, &src);
    if (rc < 0)
        return be_fail(e, rc, "open image");
    rc = ops->reflink(src, f);
    ops->close_file(src);
    return rc < 0 ? be_fail(e, rc, "reflink") : 0;
}

int be_file_clone(const struct backend_ops *ops, struct be_volume *v, struct be_clone_req *rq,
                  struct be_file **out, struct st_err *e)
{
    int share = rq->share_blocks && ops->reflink && strcmp(rq->base_format, "raw") == 0;
    int rc = be_file_stage(ops, v, rq->staged, out);
    if (rc < 0)
        return be_fail(e, rc, "create staging file");
    snprintf(rq->format, sizeof rq->format, "%s", share ? "raw" : "qcow2");
    rc = share ? write_reflink(ops, v, *out, rq, e) : write_overlay(ops, *out, rq, e);
    if (rc) {
        ops->close_file(*out);
        *out = NULL;
        ops->unlink(v, rq->staged);
    }
    return rc;
}
