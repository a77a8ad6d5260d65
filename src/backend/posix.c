/* posix.c — the backend for a directory on a local filesystem ("local", "external").
 *
 * Every path is resolved below the volume root with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), so neither "..", an absolute symlink
 * nor a /proc magic link planted inside the volume can lead a request outside it.
 *
 * The root itself is reopened (O_PATH) for each operation and must still be the
 * directory we found at open (same st_dev and st_ino). Holding it open for the
 * volume's lifetime would pin the mount — an operator's umount would fail with
 * "target is busy" — and a root path that now leads elsewhere (unmounted, replaced)
 * must fail with ESTALE instead of writing into the directory underneath. Open files
 * keep their own fds. Nothing in a volume changes after open, so any number of
 * threads may use one volume at once; a watch of one of its directories
 * (posix_watch.c) is its caller's object, and does not pin the mount either.
 *
 * pread/pwrite/copy_range return what the one syscall returned, short counts
 * included (EINTR is retried): the caller's copy loop owns the looping. */
#include "file.h"
#include "stowage/clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Concurrent fsyncs of one directory share one: a caller asks after its change (a rename,
 * an unlink) is done, and any fsync of that directory begun after the ask covers it. The
 * first asker with no fsync under way leads; the ones that ask meanwhile are covered by
 * the next. A failed fsync covers nobody: each asker then tries again, and the one that
 * leads hears the error itself. */
struct dir_sync {
    int used;
    char rel[32];
    uint64_t asked, covered; /* tickets handed out; every ticket up to covered is durable */
    int syncing;
};

#define DIR_SYNCS 4 /* the layout's directories: "", images, clones, .staging */

struct posix_volume {
    dev_t dev; /* identity of the root directory found at open */
    ino_t ino;
    char root[PATH_MAX];
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    struct dir_sync syncs[DIR_SYNCS];
    int syncfs_flushes;                /* a filesystem whose syncfs makes every file durable */
    atomic_uint_fast64_t opens;        /* files opened so far: each one's number */
    atomic_uint_fast64_t dirty_looked; /* when the system's dirty bytes were looked at */
    atomic_int few_dirty;              /* and were few enough for a syncfs */
    /* while the system holds much dirty data (posix_syncs_together): */
    atomic_uint_fast64_t clean_syncfs_ns; /* a syncfs's time while it held little, averaged */
    atomic_uint_fast64_t probe_at;        /* the last syncfs was slow: none before then */
    atomic_uint_fast64_t probe_wait_ns;   /* and how long that was after it */
};

struct posix_file {
    int fd;
    atomic_int direct_fd;      /* the same file opened O_DIRECT: -1 not yet tried, -2 none */
    atomic_int direct_refused; /* the filesystem said EINVAL to an aligned direct write */
    uint64_t opened;           /* its number among the volume's opens */
};

static struct posix_volume *PV(struct be_volume *v)
{
    return (struct posix_volume *)(void *)v;
}

static struct posix_file *PF(struct be_file *f)
{
    return (struct posix_file *)(void *)f;
}

/* ---- resolution ---- */

/* An O_PATH fd of the root, or -ESTALE when the path no longer leads to it. */
static int open_root(const struct posix_volume *pv)
{
    struct stat st;
    int fd, rc;

    if ((fd = open(pv->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno == ENOENT || errno == ENOTDIR ? -ESTALE : -errno;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else
        rc = (st.st_dev == pv->dev && st.st_ino == pv->ino) ? fd : -ESTALE;
    if (rc < 0)
        close(fd);
    return rc;
}

/* RESOLVE_NO_SYMLINKS refuses a symlink in every component, the last one included
 * (ELOOP): stronger than O_NOFOLLOW, which would open an O_PATH fd on a final link. */
static int resolve(const struct posix_volume *pv, const char *rel, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)((flags & ~O_NOFOLLOW) | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int root, tries = 0, rc;
    long fd;

    if ((root = open_root(pv)) < 0)
        return root;
    /* EAGAIN: the kernel saw a concurrent rename and could not prove the walk safe. */
    do
        fd = syscall(SYS_openat2, root, rel, &how, sizeof how);
    while (fd < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < 8)));
    rc = fd < 0 ? -errno : (int)fd;
    close(root);
    return rc;
}

/* The directory holding rel (an O_PATH fd to close) and rel's last component. */
static int get_parent(const struct posix_volume *pv, const char *rel, int *dirfd, const char **base)
{
    char dir[PATH_MAX];
    const char *slash;
    int fd;

    if (!be_path_ok(rel))
        return -EINVAL;
    slash = strrchr(rel, '/');
    if (!slash) {
        fd = open_root(pv);
        *base = rel;
    } else {
        memcpy(dir, rel, (size_t)(slash - rel));
        dir[slash - rel] = '\0';
        fd = resolve(pv, dir, O_PATH | O_DIRECTORY, 0);
        *base = slash + 1;
    }
    if (fd < 0)
        return fd;
    *dirfd = fd;
    return 0;
}

/* "" (or NULL) names the root for the directory operations. */
static const char *dir_rel(const char *rel)
{
    return (!rel || !*rel) ? "." : rel;
}

int be_posix_open_dir(struct be_volume *v, const char *rel, int flags)
{
    if (rel && *rel && !be_path_ok(rel))
        return -EINVAL;
    return resolve(PV(v), dir_rel(rel), flags | O_DIRECTORY, 0);
}

/* ---- volume ---- */

/* Filesystems whose syncfs writes back every dirty file of theirs, commits their journal
 * or log and flushes the device cache, and reports a writeback error of any of their
 * files (Linux ≥ 5.8): there one syncfs makes many files as durable as an fsync of each.
 * Others (FUSE without SYNCFS, NFS) may answer syncfs without making anything durable. */
static int syncfs_flushes(const char *root)
{
    struct statfs sf;
    if (statfs(root, &sf) < 0)
        return 0;
    switch ((unsigned long)sf.f_type) {
    case EXT4_SUPER_MAGIC: /* ext2 and ext3 too */
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
        return 1;
    default:
        return 0;
    }
}

static int posix_open(const struct be_params *p, struct be_volume **out, struct st_err *e)
{
    const char *root = json_string_value(json_object_get(p->params, "mount_point"));
    struct posix_volume *pv;
    struct stat st;
    int fd, rc = 0;

    if (!root || root[0] != '/' || strlen(root) >= PATH_MAX)
        return st_fail_field(e, ST_INVALID, "mount_point", "volume root must be an absolute path"),
               -EINVAL;
    if ((fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        return be_fail(e, rc, root), rc;
    if (!(pv = calloc(1, sizeof *pv)))
        return st_fail(e, ST_INTERNAL, "out of memory"), -ENOMEM;
    snprintf(pv->root, sizeof pv->root, "%s", root);
    pv->dev = st.st_dev;
    pv->ino = st.st_ino;
    pv->syncfs_flushes = syncfs_flushes(root);
    pthread_mutex_init(&pv->sync_mu, NULL);
    pthread_cond_init(&pv->sync_cv, NULL);
    *out = (struct be_volume *)(void *)pv;
    return 0;
}

static void posix_close(struct be_volume *v)
{
    pthread_mutex_destroy(&PV(v)->sync_mu);
    pthread_cond_destroy(&PV(v)->sync_cv);
    free(PV(v));
}

static int posix_statvfs(struct be_volume *v, struct be_space *out, struct st_err *e)
{
    struct statvfs sv;
    int fd, rc = 0;

    if ((fd = open_root(PV(v))) < 0)
        return be_fail(e, fd, PV(v)->root), fd;
    if (fstatvfs(fd, &sv) < 0)
        rc = -errno;
    close(fd);
    if (rc < 0)
        return be_fail(e, rc, PV(v)->root), rc;
    out->total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    out->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    out->readonly = (sv.f_flag & ST_RDONLY) != 0;
    return 0;
}

/* The layout every write goes through: real directories, never symlinks (a symlink
 * would fail every data operation with ELOOP while the volume looked healthy). */
static const char *const layout[] = {"images", "clones", ".staging"};

static int check_layout(int rootfd, const struct posix_volume *pv, struct st_err *e)
{
    struct stat st;

    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++) {
        if (fstatat(rootfd, layout[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            int err = errno;
            return st_fail_errno(e, err, "%s: %s", pv->root, layout[i]), -err;
        }
        if (S_ISLNK(st.st_mode))
            return st_fail(e, ST_UNAVAILABLE, "%s: %s is a symbolic link, not a directory",
                           pv->root, layout[i]),
                   -ELOOP;
        if (!S_ISDIR(st.st_mode))
            return st_fail(e, ST_UNAVAILABLE, "%s: %s is not a directory", pv->root, layout[i]),
                   -ENOTDIR;
    }
    return 0;
}

/* The configured path still leads to the directory we opened, on a writable fs, with
 * its layout intact. */
static int posix_health(struct be_volume *v, struct st_err *e)
{
    struct posix_volume *pv = PV(v);
    struct statvfs sv;
    int fd, rc = 0;

    if ((fd = open_root(pv)) == -ESTALE)
        return st_fail(e, ST_UNAVAILABLE, "%s: no longer the volume's directory (unmounted?)",
                       pv->root),
               fd;
    if (fd < 0)
        return be_fail(e, fd, pv->root), fd;
    if (fstatvfs(fd, &sv) < 0 || faccessat(fd, ".", W_OK, AT_EACCESS) < 0)
        rc = -errno;
    else if (sv.f_flag & ST_RDONLY)
        rc = -EROFS;
    if (rc == 0 && (rc = check_layout(fd, pv, e)) < 0) {
        close(fd);
        return rc;
    }
    close(fd);
    if (rc == -EROFS)
        return st_fail(e, ST_UNAVAILABLE, "%s: mounted read-only", pv->root), rc;
    if (rc < 0)
        return be_fail(e, rc, pv->root), rc;
    return 0;
}

/* ---- files ---- */

static int posix_open_file(struct be_volume *v, const char *rel, int flags, mode_t mode,
                           struct be_file **out)
{
    struct posix_file *pf;
    struct stat st;
    int fd, rc;

    if (!be_path_ok(rel))
        return -EINVAL;
    if (!(pf = malloc(sizeof *pf)))
        return -ENOMEM;
    /* O_NONBLOCK so that a FIFO planted in the volume cannot hang the open; only
     * regular files are image data. */
    if ((fd = resolve(PV(v), rel, flags | O_NONBLOCK, mode)) < 0) {
        free(pf);
        return fd;
    }
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else
        rc = S_ISDIR(st.st_mode) ? -EISDIR : !S_ISREG(st.st_mode) ? -EINVAL : 0;
    if (rc == 0 && !(flags & O_NONBLOCK) &&
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        free(pf);
        return rc;
    }
    pf->fd = fd;
    atomic_init(&pf->direct_fd, (flags & O_ACCMODE) == O_RDONLY ? -2 : -1);
    atomic_init(&pf->direct_refused, 0);
    pf->opened = atomic_fetch_add(&PV(v)->opens, 1);
    *out = (struct be_file *)(void *)pf;
    return 0;
}

static int posix_close_file(struct be_file *f)
{
    int rc = 0;

    if (!f)
        return 0;
    /* close() reports deferred write errors on some filesystems (NFS): pass them on. */
    if (close(PF(f)->fd) < 0 && errno != EINTR)
        rc = -errno;
    int dfd = atomic_load(&PF(f)->direct_fd);
    if (dfd >= 0 && close(dfd) < 0 && errno != EINTR && !rc)
        rc = -errno;
    free(PF(f));
    return rc;
}

/* off and off + len must be valid off_t values. */
static int off_ok(uint64_t off, uint64_t len)
{
    return off <= (uint64_t)INT64_MAX && len <= (uint64_t)INT64_MAX - off;
}

static ssize_t posix_pread(struct be_file *f, void *buf, size_t len, uint64_t off)
{
    ssize_t n;

    if (!off_ok(off, len))
        return -EINVAL;
    while ((n = pread(PF(f)->fd, buf, len, (off_t)off)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -errno : n;
}

/* A write of at least DIRECT_MIN bytes, aligned to DIRECT_ALIGN in memory, offset and
 * length, goes around the page cache (O_DIRECT) on a filesystem of a local block device:
 * an upload's or a copy's bytes are then not copied once more into pages that the
 * flusher and the final fsync write out later (on this project's machine that copy cost
 * more CPU than the SHA-256 of the same bytes: bench/REPORT.md, upload). The write is as
 * durable as a buffered one, that is not until the file's fsync, which every caller
 * still makes. Anything else (a short tail, a resume at an odd offset, tmpfs, a network
 * filesystem, where O_DIRECT means a round trip per write) is written through the page
 * cache as before. */
#define DIRECT_MIN (256u << 10)
#define DIRECT_ALIGN 4096u

static int direct_fs(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return 0;
    return sf.f_type == XFS_SUPER_MAGIC || sf.f_type == EXT4_SUPER_MAGIC ||
           sf.f_type == BTRFS_SUPER_MAGIC;
}

/* The O_DIRECT twin of f's fd, opened once through /proc/self/fd: a magic link that leads
 * to this very file, not a path looked up again. -1 when there is none to be had. */
static int direct_fd(struct posix_file *pf)
{
    int fd = atomic_load(&pf->direct_fd);
    if (fd != -1)
        return fd >= 0 ? fd : -1;
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", pf->fd);
    fd = direct_fs(pf->fd) ? open(path, O_WRONLY | O_DIRECT | O_CLOEXEC) : -1;
    struct stat a, b;
    if (fd >= 0 && (fstat(fd, &a) < 0 || fstat(pf->fd, &b) < 0 || a.st_dev != b.st_dev ||
                    a.st_ino != b.st_ino)) {
        close(fd);
        fd = -1;
    }
    int unset = -1;
    if (!atomic_compare_exchange_strong(&pf->direct_fd, &unset, fd >= 0 ? fd : -2)) {
        if (fd >= 0)
            close(fd); /* another thread's twin won */
        fd = unset;
    }
    return fd >= 0 ? fd : -1;
}

static ssize_t write_fd(int fd, const void *buf, size_t len, uint64_t off)
{
    ssize_t n;
    while ((n = pwrite(fd, buf, len, (off_t)off)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -errno : n;
}

static ssize_t posix_pwrite(struct be_file *f, const void *buf, size_t len, uint64_t off)
{
    int dfd = -1;

    if (!off_ok(off, len))
        return -EINVAL;
    if (len >= DIRECT_MIN && ((uintptr_t)buf | off | len) % DIRECT_ALIGN == 0 &&
        !atomic_load(&PF(f)->direct_refused))
        dfd = direct_fd(PF(f));
    if (dfd >= 0) {
        ssize_t n = write_fd(dfd, buf, len, off);
        if (n != -EINVAL)
            return n;
        /* a device whose blocks are larger than DIRECT_ALIGN: through the cache from now on */
        atomic_store(&PF(f)->direct_refused, 1);
    }
    return write_fd(PF(f)->fd, buf, len, off);
}

/* Writes that go around the page cache go best in 4 MiB: the device below (a loop device
 * here, max_sectors_kb 1280) then has several requests of one write in flight at once,
 * where a 1 MiB write is one at a time (dd oflag=direct of 1 GiB to an XFS loop disk:
 * 0.70-0.74 s with 4 MiB and 16 MiB blocks, 1.34-1.81 s with 1 MiB). */
#define DIRECT_BEST (4u << 20)

static size_t posix_write_size(struct be_file *f, uint64_t off)
{
    /* from an offset DIRECT_ALIGN does not divide, no write of them goes around */
    return off % DIRECT_ALIGN == 0 && !atomic_load(&PF(f)->direct_refused) && direct_fd(PF(f)) >= 0
               ? DIRECT_BEST
               : 0;
}

static int posix_fsync(struct be_file *f)
{
    return fsync(PF(f)->fd) < 0 ? -errno : 0;
}

/* Dirty and under-writeback page cache of the whole system, in bytes (UINT64_MAX when
 * it cannot be read): what a syncfs might have to write besides the batch's files. */
static uint64_t dirty_bytes(void)
{
    char buf[4096];
    uint64_t sum = 0;
    int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);

    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return UINT64_MAX;
    buf[n] = '\0';
    static const char *const keys[] = {"\nDirty:", "\nWriteback:"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *at = strstr(buf, keys[i]);
        if (!at)
            return UINT64_MAX;
        sum += strtoull(at + strlen(keys[i]), NULL, 10) * 1024; /* "   123 kB" */
    }
    return sum;
}

/* Up to this much dirty data in the whole system a syncfs has little to write besides the
 * batch's files; beyond it, it may wait for others' bytes here (a big upload written
 * meanwhile): see posix_syncs_together. */
#define SYNCFS_DIRTY_MAX (8u << 20)

/* Few enough dirty bytes for a syncfs now; looked at again every DIRTY_LOOK_NS at most. */
#define DIRTY_LOOK_NS 5000000u

/* How a syncfs made while the system holds much dirty data is judged: quick when it took
 * no more than SYNCFS_QUICK_TIMES a syncfs made while it held little (plus
 * SYNCFS_QUICK_SLACK_NS, a disk's jitter), or SYNCFS_QUICK_NS when none has been timed. */
#define SYNCFS_QUICK_TIMES 4u
#define SYNCFS_QUICK_SLACK_NS 2000000u
#define SYNCFS_QUICK_NS 20000000u
/* After a slow one the batches' files are fsynced one by one for PROBE_FIRST_NS, twice as
 * long after each slow one more, up to PROBE_MAX_NS; then a syncfs is tried again. */
#define PROBE_FIRST_NS 1000000000ull
#define PROBE_MAX_NS (32ull * 1000000000ull)

/* Whether one syncfs for a batch's files is cheaper than an fsync of each. Where the
 * system holds little dirty data it is, whatever the filesystem. /proc/meminfo counts the
 * dirty data of every filesystem together, and what others write elsewhere (a build, a
 * log, another disk's copy) does not slow a syncfs here: so while it holds much, a syncfs
 * is timed (syncfs_took), and used while it stays quick. */
static int posix_syncs_together(struct be_volume *v)
{
    struct posix_volume *pv = PV(v);

    if (!pv->syncfs_flushes)
        return 0;
    uint64_t ns = st_mono_ns();
    if (ns - atomic_load(&pv->dirty_looked) >= DIRTY_LOOK_NS) {
        atomic_store(&pv->few_dirty, dirty_bytes() <= SYNCFS_DIRTY_MAX);
        atomic_store(&pv->dirty_looked, ns);
    }
    return atomic_load(&pv->few_dirty) || ns >= atomic_load(&pv->probe_at);
}

/* A syncfs of this volume took ns: the verdict posix_syncs_together goes by. */
static void syncfs_took(struct posix_volume *pv, uint64_t ns)
{
    uint64_t clean = atomic_load(&pv->clean_syncfs_ns), now = st_mono_ns();

    if (atomic_load(&pv->few_dirty)) {
        atomic_store(&pv->clean_syncfs_ns, clean ? (7 * clean + ns) / 8 : ns);
        return;
    }
    if (ns <= (clean ? SYNCFS_QUICK_TIMES * clean + SYNCFS_QUICK_SLACK_NS : SYNCFS_QUICK_NS)) {
        atomic_store(&pv->probe_wait_ns, 0);
        return;
    }
    uint64_t wait = atomic_load(&pv->probe_wait_ns);
    wait = !wait ? PROBE_FIRST_NS : wait >= PROBE_MAX_NS / 2 ? PROBE_MAX_NS : 2 * wait;
    atomic_store(&pv->probe_wait_ns, wait);
    atomic_store(&pv->probe_at, now + wait);
}

/* Every unflushed item's bytes durable, and its verdict: one syncfs for all of them where
 * that is equivalent to an fsync of each (posix_syncs_together), else an fsync of each in
 * turn. syncfs(fd) reports a writeback error of the filesystem that happened since fd was
 * opened: the fd of the item opened first was opened before any item's bytes were
 * written, so no item's error can be missed. When it reports one, whose it is cannot be
 * told: each item's own fsync then gives its own verdict. */
static void posix_sync_files(struct be_volume *v, struct be_publish *items, size_t n)
{
    size_t first = n, todo = 0;
    int rc = -1;

    for (size_t i = 0; i < n; i++) {
        if (items[i].flushed)
            continue;
        todo++;
        if (first == n || PF(items[i].f)->opened < PF(items[first].f)->opened)
            first = i;
    }
    /* syncfs's last writes (ext4 without a journal writes its metadata blocks after the
     * device flush) are flushed by one fsync more, with nothing left to write */
    if (todo > 1 && posix_syncs_together(v)) {
        uint64_t t0 = st_mono_ns();
        rc = syncfs(PF(items[first].f)->fd) < 0 ? -errno : posix_fsync(items[first].f);
        if (rc == 0)
            syncfs_took(PV(v), st_mono_ns() - t0);
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].flushed)
            continue;
        items[i].rc = rc == 0 ? 0 : posix_fsync(items[i].f);
        items[i].flushed = items[i].rc == 0;
    }
}

static void posix_publish_many(struct be_volume *v, struct be_publish *items, size_t n)
{
    be_file_publish_many(&be_posix_ops, v, items, n, posix_sync_files);
}

static int posix_fstat(struct be_file *f, struct stat *st)
{
    return fstat(PF(f)->fd, st) < 0 ? -errno : 0;
}

static int posix_ftruncate(struct be_file *f, uint64_t len)
{
    if (len > (uint64_t)INT64_MAX)
        return -EINVAL;
    return ftruncate(PF(f)->fd, (off_t)len) < 0 ? -errno : 0;
}

static int posix_next_data(struct be_file *f, uint64_t off, uint64_t *data, uint64_t *hole)
{
    off_t d, h;

    if (off > (uint64_t)INT64_MAX)
        return -ENXIO;
    /* ENXIO: no data at or after off. Filesystems without SEEK_DATA support answer
     * as if the whole file were data (the generic VFS implementation). */
    if ((d = lseek(PF(f)->fd, (off_t)off, SEEK_DATA)) < 0)
        return -errno;
    if ((h = lseek(PF(f)->fd, d, SEEK_HOLE)) < 0)
        return -errno;
    *data = (uint64_t)d;
    *hole = (uint64_t)h;
    return 0;
}

static int posix_punch_hole(struct be_file *f, uint64_t off, uint64_t len)
{
    if (!off_ok(off, len))
        return -EINVAL;
    if (fallocate(PF(f)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) <
        0)
        return -errno;
    return 0;
}

static int posix_start_writeback(struct be_file *f, uint64_t off, uint64_t len)
{
    if (!off_ok(off, len))
        return -EINVAL;
    return sync_file_range(PF(f)->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) < 0 ? -errno
                                                                                         : 0;
}

static int posix_reflink(struct be_file *src, struct be_file *dst)
{
    if (ioctl(PF(dst)->fd, FICLONE, PF(src)->fd) == 0)
        return 0;
    /* ext4/tmpfs say ENOTTY or EINVAL, different filesystems EXDEV: all "cannot". */
    if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP)
        return -EOPNOTSUPP;
    return -errno;
}

static ssize_t posix_copy_range(struct be_file *src, uint64_t soff, struct be_file *dst,
                                uint64_t doff, size_t len)
{
    loff_t in = (loff_t)soff, out = (loff_t)doff;
    ssize_t n;

    if (!off_ok(soff, len) || !off_ok(doff, len))
        return -EINVAL;
    while ((n = copy_file_range(PF(src)->fd, &in, PF(dst)->fd, &out, len, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0 && (errno == ENOSYS || errno == EINVAL))
        return -EOPNOTSUPP;
    return n < 0 ? -errno : n;
}

static int posix_kernel_fd(struct be_file *f)
{
    return PF(f)->fd;
}

/* ---- names ---- */

static int posix_stat(struct be_volume *v, const char *rel, struct stat *st)
{
    const char *base;
    int dirfd, rc;

    if (!rel || !*rel) {
        if ((dirfd = open_root(PV(v))) < 0)
            return dirfd;
        rc = fstat(dirfd, st) < 0 ? -errno : 0;
        close(dirfd);
        return rc;
    }
    if ((rc = get_parent(PV(v), rel, &dirfd, &base)) < 0)
        return rc;
    rc = fstatat(dirfd, base, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
    close(dirfd);
    return rc;
}

static int posix_mkdir(struct be_volume *v, const char *rel, mode_t mode)
{
    const char *base;
    struct stat st;
    int dirfd, rc;

    if ((rc = get_parent(PV(v), rel, &dirfd, &base)) < 0)
        return rc;
    rc = mkdirat(dirfd, base, mode) < 0 ? -errno : 0;
    /* EEXIST is success only for a real directory, not a symlink to one. */
    if (rc == -EEXIST)
        rc = (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) ? 0
                                                                                          : -EEXIST;
    close(dirfd);
    return rc;
}

/* Filesystems without RENAME_NOREPLACE: link() refuses an existing target just as
 * atomically, then the old name goes. Regular files only (no hard links to dirs). */
static int rename_by_link(int fdir, const char *from, int tdir, const char *to)
{
    struct stat st;

    if (fstatat(fdir, from, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EOPNOTSUPP;
    if (linkat(fdir, from, tdir, to, 0) < 0)
        return -errno;
    return unlinkat(fdir, from, 0) < 0 ? -errno : 0;
}

static int posix_rename(struct be_volume *v, const char *from, const char *to)
{
    const char *fbase, *tbase;
    int fdir, tdir, rc;

    if ((rc = get_parent(PV(v), from, &fdir, &fbase)) < 0)
        return rc;
    if ((rc = get_parent(PV(v), to, &tdir, &tbase)) < 0)
        goto out;
    rc = renameat2(fdir, fbase, tdir, tbase, RENAME_NOREPLACE) < 0 ? -errno : 0;
    if (rc == -EINVAL || rc == -ENOSYS)
        rc = rename_by_link(fdir, fbase, tdir, tbase);
    close(tdir);
out:
    close(fdir);
    return rc;
}

static int posix_unlink(struct be_volume *v, const char *rel)
{
    const char *base;
    int dirfd, rc;

    if ((rc = get_parent(PV(v), rel, &dirfd, &base)) < 0)
        return rc;
    rc = unlinkat(dirfd, base, 0) < 0 ? -errno : 0;
    close(dirfd);
    return rc;
}

static int fsync_dir_now(struct posix_volume *pv, const char *rel)
{
    int fd, rc;

    if ((fd = resolve(pv, dir_rel(rel), O_RDONLY | O_DIRECTORY, 0)) < 0)
        return fd;
    rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* The shared fsync of rel's directory, or NULL (more directories than the layout has:
 * that one is fsynced on its own). Caller holds sync_mu. */
static struct dir_sync *dir_sync_of(struct posix_volume *pv, const char *rel)
{
    for (int i = 0; i < DIR_SYNCS; i++) {
        struct dir_sync *ds = &pv->syncs[i];
        if (ds->used && strcmp(ds->rel, rel) == 0)
            return ds;
        if (!ds->used) {
            if (strlen(rel) >= sizeof ds->rel)
                return NULL;
            snprintf(ds->rel, sizeof ds->rel, "%s", rel);
            ds->used = 1;
            return ds;
        }
    }
    return NULL;
}

static int posix_fsync_dir(struct be_volume *v, const char *rel)
{
    struct posix_volume *pv = PV(v);
    int rc = 0;

    if (!rel)
        rel = "";
    if (*rel && !be_path_ok(rel))
        return -EINVAL;
    pthread_mutex_lock(&pv->sync_mu);
    struct dir_sync *ds = dir_sync_of(pv, rel);
    if (!ds) {
        pthread_mutex_unlock(&pv->sync_mu);
        return fsync_dir_now(pv, rel);
    }
    uint64_t ticket = ++ds->asked;
    while (ds->covered < ticket) {
        if (ds->syncing) {
            pthread_cond_wait(&pv->sync_cv, &pv->sync_mu);
            continue;
        }
        uint64_t upto = ds->asked; /* every change asked for so far is done */
        ds->syncing = 1;
        pthread_mutex_unlock(&pv->sync_mu);
        rc = fsync_dir_now(pv, rel);
        pthread_mutex_lock(&pv->sync_mu);
        ds->syncing = 0;
        if (rc == 0 && upto > ds->covered)
            ds->covered = upto;
        pthread_cond_broadcast(&pv->sync_cv);
        if (rc < 0)
            break; /* the leader's error is its own; the others try again */
    }
    pthread_mutex_unlock(&pv->sync_mu);
    return rc;
}

static int posix_list(struct be_volume *v, const char *reldir, be_list_fn fn, void *ud)
{
    struct dirent *de;
    struct stat st;
    DIR *d;
    int fd, rc = 0;

    if (reldir && *reldir && !be_path_ok(reldir))
        return -EINVAL;
    if ((fd = resolve(PV(v), dir_rel(reldir), O_RDONLY | O_DIRECTORY, 0)) < 0)
        return fd;
    if (!(d = fdopendir(fd))) {
        rc = -errno;
        close(fd);
        return rc;
    }
    errno = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed while we listed */
        rc = fn(ud, de->d_name, &st);
        errno = 0;
    }
    if (rc == 0 && errno)
        rc = -errno;
    closedir(d);
    return rc;
}

/* A process's descriptors are the links in /proc/PID/fd; the mode of each link says how
 * it was opened (S_IWUSR: for writing), so only writable descriptors that lead to a path
 * are followed to their inode. Processes we may not look at are skipped: the daemon runs
 * as the volumes' owner (root), which sees every process. */
struct inode_key {
    dev_t dev;
    ino_t ino;
    size_t idx; /* which of the caller's files */
};

static int by_inode(const void *a, const void *b)
{
    const struct inode_key *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* dirfd is an open /proc/PID/fd. The link's own mode says how the descriptor was opened,
 * so only writable ones are followed; a socket or pipe followed is just an inode of
 * another filesystem, which no key has. */
static void writers_of_process(DIR *d, const struct inode_key *keys, size_t n, unsigned char *out)
{
    struct dirent *de;
    struct stat st;

    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !(st.st_mode & S_IWUSR) || fstatat(dirfd(d), de->d_name, &st, 0) < 0)
            continue;
        struct inode_key k = {st.st_dev, st.st_ino, 0};
        const struct inode_key *hit = bsearch(&k, keys, n, sizeof *keys, by_inode);
        if (hit)
            out[hit->idx] = 1;
    }
}

static int posix_open_for_writing(struct be_volume *v, const struct stat *files, size_t n,
                                  unsigned char *out)
{
    struct inode_key *keys;
    struct dirent *de;
    char path[32];
    DIR *proc;

    (void)v;
    if (n == 0)
        return 0;
    if (!(keys = malloc(n * sizeof *keys)))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        keys[i] = (struct inode_key){files[i].st_dev, files[i].st_ino, i};
        out[i] = 0;
    }
    qsort(keys, n, sizeof *keys, by_inode);
    if (!(proc = opendir("/proc"))) {
        int rc = -errno;
        free(keys);
        return rc;
    }
    while ((de = readdir(proc))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9' ||
            snprintf(path, sizeof path, "%s/fd", de->d_name) >= (int)sizeof path)
            continue;
        int fd = openat(dirfd(proc), path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd < 0 ? NULL : fdopendir(fd);
        if (!d) {
            if (fd >= 0)
                close(fd);
            continue; /* exited meanwhile */
        }
        writers_of_process(d, keys, n, out);
        closedir(d);
    }
    closedir(proc);
    free(keys);
    return 0;
}

BE_FILE_PROTOCOL(posix, be_posix_ops)

static int posix_own_place(struct be_volume *v, const char *name, json_t *params, int *changed,
                           char *why, size_t len)
{
    return be_posix_own_place(&be_posix_ops, v, name, params, changed, why, len);
}

/* A directory on this host: its absolute path. */
static int posix_from_url(const char *url, json_t **params, struct st_err *e)
{
    if (url[0] != '/')
        return 0;
    if (strlen(url) >= PATH_MAX || strstr(url, "/../") || strstr(url, "/./"))
        return st_fail_field(e, ST_INVALID, "url", "url must be a plain absolute directory");
    if (!(*params = json_pack("{s:s}", "mount_point", url)))
        return st_fail(e, ST_INTERNAL, "out of memory");
    return 1;
}

const struct backend_ops be_posix_ops = {
    .from_url = posix_from_url,
    .parse = be_posix_parse,
    .prepare = be_posix_prepare,
    .same_place = be_posix_same_place,
    .describe_place = be_posix_describe_place,
    .own_place = posix_own_place,
    .check = be_posix_check,
    .open = posix_open,
    .close = posix_close,
    .statvfs = posix_statvfs,
    .health = posix_health,
    .open_file = posix_open_file,
    .close_file = posix_close_file,
    .pread = posix_pread,
    .pwrite = posix_pwrite,
    .fsync = posix_fsync,
    .fstat = posix_fstat,
    .ftruncate = posix_ftruncate,
    .next_data = posix_next_data,
    .punch_hole = posix_punch_hole,
    .start_writeback = posix_start_writeback,
    .write_size = posix_write_size,
    .reflink = posix_reflink,
    .copy_range = posix_copy_range,
    .kernel_fd = posix_kernel_fd,
    .stat = posix_stat,
    .mkdir = posix_mkdir,
    .rename = posix_rename,
    .unlink = posix_unlink,
    .fsync_dir = posix_fsync_dir,
    .list = posix_list,
    .open_for_writing = posix_open_for_writing,
    .watch_arm = be_posix_watch_arm,
    .watch_poll = be_posix_watch_poll,
    .watch_close = be_posix_watch_close,
    .stage = posix_stage,
    .flush = posix_fsync,
    .publish = posix_publish,
    .publish_many = posix_publish_many,
    .syncs_together = posix_syncs_together,
    .discard = posix_unlink,
    .clone = posix_clone,
    .remove = posix_remove,
    .init = posix_init,
};
