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

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "stowage/err.h"

struct be_volume; /* an opened volume: a root directory fd, or one long-lived glfs_t */
struct be_file;   /* an open file on a volume */
struct be_aio;    /* one asynchronous read or write in flight (aio_start) */
struct be_watch;  /* what a backend keeps to tell whether a directory has changed */

/* What a watch saw (watch_poll). */
enum { BE_SEEN_CHANGE = 1, BE_SEEN_OPEN = 2 };

/* What the daemon tells every backend (not per volume). */
struct be_env {
    const char *state_dir; /* logs, and the volumes stowage formats */
    const char *gluster_cli;
    unsigned gluster_timeout_ms;
};

/* What opens a volume: its id, its backend's own parameters (a JSON object that the
 * backend's prepare() accepted), the daemon's environment. */
struct be_params {
    const char *volume_id;
    const json_t *params;
    const struct be_env *env;
};

/* What a look at a volume from outside its session finds (check). */
struct be_check {
    char status[16]; /* "ok", "degraded" or "broken" */
    char msg[256];
    dev_t devno;     /* the block device carrying the volume, 0 if none */
    json_t *details; /* what views show of this kind (owned by the caller) */
};

/* How two volumes' places relate (same_place). */
enum be_place { BE_PLACE_APART = 0, BE_PLACE_SAME, BE_PLACE_INSIDE, BE_PLACE_CONTAINS };

/* A copy-on-write child of an image on the same volume (clone). */
struct be_clone_req {
    const char *base;        /* the image: "images/<uuid>.<fmt>" */
    const char *base_format; /* "raw", "qcow2" */
    uint64_t virtual_size;
    const char *staged; /* where the child is made: a new staging name */
    int share_blocks;   /* a raw base may become a raw child sharing its blocks (reflink) */
    char format[16];    /* out: the child's format */
};

struct be_space {
    uint64_t total_bytes;
    uint64_t free_bytes; /* available to an unprivileged writer (f_bavail) */
    int readonly;
};

typedef int (*be_list_fn)(void *ud, const char *name, const struct stat *st);

/* One of the staged objects that publish_many publishes at once: in f, staged, final;
 * out how it went — rc 0 or -errno, flushed (its bytes are durable), moved (renamed to
 * final; with rc < 0 its name may not be durable). */
struct be_publish {
    struct be_file *f;
    const char *staged;
    const char *final;
    int rc;
    int flushed;
    int moved;
};

struct backend_ops {
    /* A volume's parameters as the config or a task gives them: checked, and normalized in
     * place (a relative path made absolute). ST_INVALID naming the field. */
    int (*parse)(json_t *params, struct st_err *e);
    /* Before a new volume is recorded: what only the place itself can tell (is the
     * directory a mount point that must stay one?) is added to params. formatted: the
     * volume is a filesystem stowage made. */
    int (*prepare)(json_t *params, int formatted, const struct be_env *env, struct st_err *e);
    /* How the places of two volumes of this backend relate: one directory (or Gluster
     * path) is never two volumes, nor one inside another. -1 with e when a place cannot
     * be looked at. */
    int (*same_place)(const json_t *a, const json_t *b, enum be_place *out, struct st_err *e);
    /* What to call a volume's place in a message ("/srv/a", "gluster volume gv on h"). */
    void (*describe_place)(const json_t *params, char *out, size_t len);
    /* Is the open session the place that was registered? What identifies the place is
     * recorded in params when it was not yet (*changed set). 0 yes; -1 with why (restart
     * recovery then removes nothing there). */
    int (*own_place)(struct be_volume *v, const char *name, json_t *params, int *changed, char *why,
                     size_t len);
    /* The place a URL names, as this kind's parameters (a backup storage's url): 1 and
     * *params set when the URL is this kind's form ("/dir", "gluster://server/volume/dir"),
     * 0 when it is not, -1 with e when it is but malformed. NULL: no URL form. */
    int (*from_url)(const char *url, json_t **params, struct st_err *e);
    /* Look at the volume from outside its session (mounted? started? bricks up?). */
    void (*check)(const struct be_params *p, struct be_check *out);
    /* An unhealthy session is kept (it reconnects by itself: never pay glfs_fini for it)
     * instead of being closed and opened again. */
    int keep_session;

    int (*open)(const struct be_params *p, struct be_volume **out, struct st_err *e);
    void (*close)(struct be_volume *v);
    int (*statvfs)(struct be_volume *v, struct be_space *out, struct st_err *e);
    /* Cheap liveness check of the volume itself (root reachable, writable, its layout). */
    int (*health)(struct be_volume *v, struct st_err *e);

    /* ---- the crash-safe write protocol: stage → pwrite → flush → publish, or discard ----
     * Names are "<namespace>/<name>": ".staging/<id>.<suffix>", "images/<uuid>.<fmt>",
     * "clones/<id>.<fmt>".
     * stage makes a new staging object that nobody else has (a leftover of a crashed
     * try by that name is removed first); flush makes its bytes durable; publish moves
     * it to its final name, never replacing one, and makes the name durable (*moved says
     * whether the move happened when it fails after); discard removes a staging object. */
    int (*stage)(struct be_volume *v, const char *staged, struct be_file **out);
    int (*flush)(struct be_file *f);
    int (*publish)(struct be_volume *v, const char *staged, const char *final, int *moved);
    int (*discard)(struct be_volume *v, const char *staged);
    /* flush and publish of n staged objects at once, each exactly as those two would do
     * it alone, sharing what one call can do for all: every object's bytes made durable
     * (one sync of the filesystem where that is equivalent), then every rename, then one
     * fsync of each directory renamed into. An item already flushed (flushed set by the
     * caller) is only renamed; an object whose flush fails is not renamed. NULL: callers
     * flush and publish each. */
    void (*publish_many)(struct be_volume *v, struct be_publish *items, size_t n);
    /* Whether publish_many would now make several objects' bytes durable for less than a
     * flush of each (one sync for all): 0 when callers had better flush and publish their
     * objects themselves, concurrently (the filesystem holds much unrelated dirty data).
     * NULL: always 1. */
    int (*syncs_together)(struct be_volume *v);
    /* Remove a published object (an image's or a clone's bytes) and make that durable. */
    int (*remove)(struct be_volume *v, const char *final);
    /* Make the volume ready for the protocol (its namespaces: images, clones, staging);
     * idempotent, run each time a session opens. */
    int (*init)(struct be_volume *v);
    /* Make a copy-on-write child of an image as a staging object (then flush, publish). */
    int (*clone)(struct be_volume *v, struct be_clone_req *rq, struct be_file **out,
                 struct st_err *e);

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
    /* Asynchronous pread/pwrite, so that a transfer keeps several blocks in flight on a
     * backend where each one is a network round trip: aio_start begins reading or writing
     * [off, off+len) of buf (the caller's, untouched by it until aio_wait), aio_wait waits
     * for it, frees it and returns what pread or pwrite would have. Every started I/O is
     * waited for, in the order started, before the file is flushed, truncated or closed;
     * after a write failed, later writes of the file no longer count in its size. NULL:
     * the backend has only the synchronous calls (transfers go a block at a time). */
    int (*aio_start)(struct be_file *f, int write, void *buf, size_t len, uint64_t off,
                     struct be_aio **out);
    ssize_t (*aio_wait)(struct be_aio *a);
    /* Start writing [off, off+len) to stable storage now, without waiting, so a long
     * sequential write does not leave all its flushing to the final fsync. May be NULL. */
    int (*start_writeback)(struct be_file *f, uint64_t off, uint64_t len);
    /* The size of the sequential writes from off on that f takes best, for a caller that
     * may choose (an upload's buffers); 0 when the caller's own choice is as good. May be
     * NULL. */
    size_t (*write_size)(struct be_file *f, uint64_t off);
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
    /* Which of n files, named by the device and inode of their stat, some process holds
     * open for writing: out[i] 1 or 0. -EOPNOTSUPP when this backend cannot know (other
     * hosts may write to the volume): out is then left alone. */
    int (*open_for_writing)(struct be_volume *v, const struct stat *files, size_t n,
                            unsigned char *out);
    /* Change tracking, for a cache of a directory's scan. NULL when this kind cannot tell
     * (other hosts may change or open what is on the volume): callers scan every time.
     * watch_arm watches reldir and its entries as they are now (entries made, removed,
     * renamed; their contents, attributes, link counts, opens, last closes after writing)
     * and forgets what it saw so far; *w is made by the first call. -errno (inotify's
     * limits, no descriptor left, the directory gone) with *w closed and NULL.
     * watch_poll says what happened since the last arm or poll: 0 nothing, else
     * BE_SEEN_CHANGE (what a scan finds may differ, or the watch lost track) and/or
     * BE_SEEN_OPEN (an entry was opened, perhaps for writing; a scan's own reads are
     * opens too); -errno when the watch is broken (close it, arm a new one). */
    int (*watch_arm)(struct be_volume *v, const char *reldir, struct be_watch **w);
    int (*watch_poll)(struct be_volume *v, struct be_watch *w);
    void (*watch_close)(struct be_watch *w);
    /* What an open session's place says of itself beyond statvfs, for views that show
     * it (an RBD pool: {"fsid", "pool", "used", "avail", "replicas", "utilization" (the
     * share of raw space that is data, 0..1), "policy" "Copy"|"ErasureCode"}); keys are
     * the kind's own. NULL: nothing to tell. */
    int (*place_stats)(struct be_volume *v, json_t **out, struct st_err *e);
};

/* ---- the registry (backend.c): the one list of storage kinds ---- */

/* What a kind's volumes are in the catalogue's life: made by formatting a disk, or
 * registered as an existing directory (both may be 0: a kind given by the config only). */
enum be_origin { BE_FROM_CONFIG = 0, BE_FORMATTED, BE_REGISTERED };

struct be_kind {
    const char *name;
    const struct backend_ops *ops; /* NULL until a module kind is loaded: use be_kind_ops */
    enum be_origin origin;
    const char *module; /* the shared object that holds the backend ("stowage-rbd.so"), or NULL */
};

/* What a backend module exports as the symbol "be_module". A module is looked for beside
 * the running binary (/proc/self/exe), then in BE_MODULE_DIR (the install's), and must
 * have been built from the same backend.h. */
#define BE_MODULE_ABI 1u
struct be_module {
    unsigned abi;    /* BE_MODULE_ABI */
    size_t ops_size; /* sizeof(struct backend_ops) */
    const struct backend_ops *ops;
};
#ifndef BE_MODULE_DIR
#define BE_MODULE_DIR ""
#endif

/* The kind called name, or NULL (its ops may not be loaded yet: that takes be_kind_ops). */
const struct be_kind *be_kind(const char *name);
/* The ops table for a kind, its module loaded on first use (thread-safe); NULL with e
 * (ST_INVALID for an unknown kind, ST_UNAVAILABLE naming the module and where it was
 * looked for when it cannot be loaded) when there is none. e may be NULL. */
const struct backend_ops *be_kind_ops(const char *kind, struct st_err *e);
/* be_kind_ops without the error. "external" and "local" share the POSIX backend. */
const struct backend_ops *be_ops_for(const char *kind);
/* The kind whose volumes come from origin (NULL: none). */
const char *be_kind_from(enum be_origin origin);
/* The kind whose URL form url is, among kinds that register places (never a disk
 * stowage formats), with its parameters; NULL with e (ST_INVALID naming "url") when none. */
const char *be_kind_for_url(const char *url, json_t **params, struct st_err *e);
/* "local, external or gluster": for messages. */
void be_kind_names(char *out, size_t len);

/* ---- helpers the file backends share (file.c) ---- */

/* Write all of buf at off (looping over short writes); -errno. */
int be_pwrite_all(const struct backend_ops *ops, struct be_file *f, const void *buf, size_t len,
                  uint64_t off);
/* Fill a fresh file with buf's len bytes, leaving all-zero 4 KiB pages (not the last) holes. */
int be_pwrite_sparse(const struct backend_ops *ops, struct be_file *f, const void *buf, size_t len);
/* Write buf at off into a file already sized past it, leaving its all-zero 4 KiB pages
 * holes (what a copy to a fresh, truncated-to-size file does: zeros need no write). */
int be_pwrite_data(const struct backend_ops *ops, struct be_file *f, const void *buf, size_t len,
                   uint64_t off);

/* A relative path is acceptable when it is non-empty, not absolute, has no "." or ".."
 * component, no empty component and no NUL; shared by every backend. */
int be_path_ok(const char *rel);

/* Translate a backend errno into an st_err naming the volume (ENOSPC → ST_NO_SPACE,
 * ENOTCONN/EIO/EROFS → ST_UNAVAILABLE, ENOENT → ST_NOT_FOUND, ...). Returns -1. */
int be_fail(struct st_err *e, int neg_errno, const char *what);

extern const struct backend_ops be_posix_ops;
extern const struct backend_ops be_gluster_ops;
/* The RBD backend is the module stowage-rbd.so (built with STOWAGE_WITH_CEPH): its
 * be_module points at its ops. */

#endif
