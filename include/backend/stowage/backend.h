/* backend.h — the storage backend vtable.
 *
 * Modelled on libvirt's storage driver table: every kind of volume (a local
 * directory, a GlusterFS volume through libgfapi, later Ceph) fills the same
 * struct and callers never test the kind. Backends know nothing of SQLite or
 * HTTP. All paths are relative to the volume root, are validated by the
 * backend (no leading '/', no "..", no symlink is ever followed), and
 * functions return 0 / a byte count on success and -errno on failure. */
#ifndef STOWAGE_BACKEND_H
#define STOWAGE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "stowage/err.h"

struct be_volume; /* an opened volume: a root directory fd, or one long-lived glfs_t */
struct be_file;   /* an open file on a volume */

struct be_params {
    const char *kind; /* "local", "external", "gluster" */
    const char
        *root; /* local/external: absolute directory; gluster: path inside the volume ("/") */
    const char *gluster_server; /* gluster: volfile server host */
    const char *gluster_volume; /* gluster: volume name */
    const char *log_path;       /* gluster: gfapi log file (NULL: none) */
};

struct be_space {
    uint64_t total_bytes;
    uint64_t free_bytes; /* available to an unprivileged writer (f_bavail) */
    int readonly;
};

typedef int (*be_list_fn)(void *ud, const char *name, const struct stat *st);

struct backend_ops {
    const char *kind;
    int (*open)(const struct be_params *p, struct be_volume **out, struct st_err *e);
    void (*close)(struct be_volume *v);
    int (*statvfs)(struct be_volume *v, struct be_space *out, struct st_err *e);
    /* Cheap liveness check of the volume itself (root reachable, writable). */
    int (*health)(struct be_volume *v, struct st_err *e);

    /* flags as open(2): O_RDONLY / O_RDWR|O_CREAT|O_EXCL ...; O_NOFOLLOW is always implied. */
    int (*open_file)(struct be_volume *v, const char *rel, int flags, mode_t mode,
                     struct be_file **out);
    int (*close_file)(struct be_file *f);
    ssize_t (*pread)(struct be_file *f, void *buf, size_t len, uint64_t off);
    ssize_t (*pwrite)(struct be_file *f, const void *buf, size_t len, uint64_t off);
    int (*fsync)(struct be_file *f);
    int (*fstat)(struct be_file *f, struct stat *st);
    int (*ftruncate)(struct be_file *f, uint64_t len);
    /* Next data extent at or after off: *data = its start, *hole = its end.
     * Returns -ENXIO when there is no data after off. */
    int (*next_data)(struct be_file *f, uint64_t off, uint64_t *data, uint64_t *hole);
    int (*punch_hole)(struct be_file *f, uint64_t off, uint64_t len);
    /* Start writing [off, off+len) to stable storage now, without waiting, so a long
     * sequential write does not leave all its flushing to the final fsync. May be NULL. */
    int (*start_writeback)(struct be_file *f, uint64_t off, uint64_t len);
    /* Clone all of src into the empty dst sharing blocks; NULL or -EOPNOTSUPP when impossible. */
    int (*reflink)(struct be_file *src, struct be_file *dst);
    /* In-kernel/in-server copy; NULL or -EOPNOTSUPP/-EXDEV when impossible. */
    ssize_t (*copy_range)(struct be_file *src, uint64_t soff, struct be_file *dst, uint64_t doff,
                          size_t len);
    /* A kernel fd usable with sendfile/splice, or -1 (gluster). Owned by f. */
    int (*kernel_fd)(struct be_file *f);

    int (*stat)(struct be_volume *v, const char *rel, struct stat *st); /* lstat semantics */
    int (*mkdir)(struct be_volume *v, const char *rel, mode_t mode);    /* EEXIST is success */
    /* rename within the volume; never replaces an existing target (RENAME_NOREPLACE). */
    int (*rename)(struct be_volume *v, const char *from, const char *to);
    int (*unlink)(struct be_volume *v, const char *rel);
    int (*fsync_dir)(struct be_volume *v, const char *rel);
    /* Calls fn for each entry of a directory (not "." and ".."), with lstat data. */
    int (*list)(struct be_volume *v, const char *reldir, be_list_fn fn, void *ud);
};

/* The ops table for a kind, or NULL. "external" and "local" share the POSIX backend. */
const struct backend_ops *be_ops_for(const char *kind);

/* A relative path is acceptable when it is non-empty, not absolute, has no "." or ".."
 * component, no empty component and no NUL; shared by every backend. */
int be_path_ok(const char *rel);

/* Translate a backend errno into an st_err naming the volume (ENOSPC → ST_NO_SPACE,
 * ENOTCONN/EIO/EROFS → ST_UNAVAILABLE, ENOENT → ST_NOT_FOUND, ...). Returns -1. */
int be_fail(struct st_err *e, int neg_errno, const char *what);

extern const struct backend_ops be_posix_ops;
extern const struct backend_ops be_gluster_ops;

#endif
