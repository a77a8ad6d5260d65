/* rbd.c — the backend for a Ceph RBD pool, through librados and librbd.
 *
 * One rados_t and one pool ioctx per volume, connected once and kept (librados finds
 * the mons again by itself after an outage); every mon and OSD call has a timeout of
 * RB_TIMEOUT_S, so a dead cluster fails calls with ETIMEDOUT instead of hanging threads.
 *
 * An image is an RBD image. The pool has no directories: a namespace is a name prefix,
 * "images/<uuid>.raw" is the RBD image "images.<uuid>.raw", ".staging/x" is "staging.x",
 * and list(v, "images") lists the images with that prefix, so restart recovery works
 * unchanged. The write protocol is native: stage = rbd_create, flush = rbd_flush,
 * publish = rbd_rename (the pool's directory object changes in one committed OSD op:
 * durable when it returns, so fsync_dir has nothing to do), discard and remove =
 * rbd_remove, clone = a protected snapshot of the base and rbd_clone3 (O(1)).
 *
 * An RBD image has a fixed size, a file grows as it is written. A staging image is
 * grown ahead of the writes in steps, and the bytes really written (the file's size)
 * are kept in the image's metadata (END_KEY, brought up to date every END_EVERY bytes and
 * at close) while the two differ: a crash at any point leaves a size that counts only
 * written bytes, so a resumed upload never skips any. Large reads and writes go as
 * one AIO each (reads in pieces); a transfer keeps several blocks in flight through
 * aio_start/aio_wait, where a write's bytes count in the size once it is waited for.
 * flush cuts the image to that size and drops the key.
 *
 * An open image of a client that was killed keeps its watch on the image until the
 * OSDs time it out (osd_client_watch_timeout, 30 s by default); until then rbd_remove
 * refuses (EBUSY). Removal waits up to RB_BUSY_WAIT_MS for that. Images are opened
 * lazily and closed before a rename or a removal, so our own handles never are in the
 * way, and a clone is never opened at all on its way into clones/.
 *
 * No reflink, no copy_range, no kernel fd: core copies through pread/pwrite.
 *
 * This file and rbd_place.c are the module stowage-rbd.so, the only object linked with
 * librados and librbd; the registry dlopens it on the first RBD volume (a daemon without
 * one never maps the Ceph libraries, 16 MiB of RSS), and it calls the daemon's own
 * helpers (be_fail, st_fail, ...), which stowaged exports. */
#include "rbd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rbd/librbd.h>

#define END_KEY "stowage.end"
#define BASE_SNAP "stowage-base" /* the snapshot of a base image its clones hang from */
#define GROW_STEP (256ull << 20)
#define GROW_MAX (16ull << 30)
#define IO_MAX (64u << 20)
#define END_EVERY (64ull << 20) /* END_KEY is brought up to date every so many bytes */
#define RB_BUSY_WAIT_MS 12000

struct rb_file;

struct rb_volume {
    rados_t cluster;
    rados_ioctx_t io;
    char label[300];       /* "ceph pool p" for messages */
    pthread_mutex_t mu;    /* guards files */
    struct rb_file *files; /* every open file: a rename or removal closes their images */
};

struct rb_file {
    struct rb_volume *rv;
    struct rb_file *next;
    pthread_rwlock_t lk; /* I/O holds it shared; opening or closing the image, exclusive */
    rbd_image_t img;     /* NULL until needed, and again after a rename closed it */
    char name[160];      /* the RBD image's name; "" once the image was removed */
    int rdonly;
    pthread_mutex_t szmu; /* guards what follows */
    pthread_cond_t idle;  /* signalled when inflight drops to 0 */
    unsigned inflight;    /* AIO or an END_KEY save under way: the image stays open */
    int write_failed;     /* an AIO write failed: later ones no longer move end */
    int saving;           /* an END_KEY save of save_end runs on a thread (save_behind) */
    int save_err;         /* ... and failed: the next write or the flush says so */
    int sized;            /* end and rbd_size are known */
    int grown;            /* rbd_size may exceed end: END_KEY holds end */
    uint64_t end;         /* the file's size: the bytes written */
    uint64_t end_saved;   /* what END_KEY says (at most end) */
    uint64_t save_end;    /* what the save under way writes there */
    uint64_t rbd_size;
};

static struct rb_volume *RV(struct be_volume *v)
{
    return (struct rb_volume *)(void *)v;
}

static struct rb_file *RF(struct be_file *f)
{
    return (struct rb_file *)(void *)f;
}

/* ---- names ---- */

static const struct {
    const char *ns, *prefix;
} spaces[] = {
    {"images", "images."},
    {"clones", "clones."},
    {".staging", "staging."},
};
#define N_SPACES (sizeof spaces / sizeof *spaces)

static const char *prefix_of(const char *ns)
{
    for (size_t i = 0; ns && i < N_SPACES; i++)
        if (strcmp(ns, spaces[i].ns) == 0)
            return spaces[i].prefix;
    return NULL;
}

/* A name in the pool's root that no namespace claims: an image stowage did not make (the
 * objects a manageable-volume scan lists and an adoption renames). */
static int is_root_name(const char *name)
{
    if (!*name || name[0] == '.' || strchr(name, '@'))
        return 0;
    for (size_t i = 0; i < N_SPACES; i++)
        if (strncmp(name, spaces[i].prefix, strlen(spaces[i].prefix)) == 0)
            return 0;
    return 1;
}

/* "images/x.raw" → "images.x.raw", a root name ("legacy-disk") as it is; -EINVAL for a path
 * outside the namespaces and the root. */
static int rbd_name(const char *rel, char *out, size_t len)
{
    char ns[16];
    if (rel && be_path_ok(rel) && !strchr(rel, '/')) {
        if (!is_root_name(rel))
            return -EINVAL;
        int n = snprintf(out, len, "%s", rel);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
    }
    const char *slash = rel && be_path_ok(rel) ? strchr(rel, '/') : NULL;
    if (!slash || strchr(slash + 1, '/') || (size_t)(slash - rel) >= sizeof ns)
        return -EINVAL;
    snprintf(ns, sizeof ns, "%.*s", (int)(slash - rel), rel);
    const char *prefix = prefix_of(ns);
    if (!prefix || strchr(slash + 1, '@'))
        return -EINVAL;
    int n = snprintf(out, len, "%s%s", prefix, slash + 1);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- images ---- */

static int create_image(struct rb_volume *rv, const char *name)
{
    rbd_image_options_t opts;
    rbd_image_options_create(&opts); /* the cluster's default features: layering, fast-diff */
    int rc = rbd_create4(rv->io, name, 0, opts);
    rbd_image_options_destroy(opts);
    return rc;
}

/* No AIO of f in flight any more (the image may be closed). */
static void wait_idle(struct rb_file *f)
{
    pthread_mutex_lock(&f->szmu);
    while (f->inflight)
        pthread_cond_wait(&f->idle, &f->szmu);
    pthread_mutex_unlock(&f->szmu);
}

/* Close the images of our open files called name (before it is renamed or removed);
 * to is their new name, or NULL when the image goes. */
static void detach_name(struct rb_volume *rv, const char *name, const char *to)
{
    pthread_mutex_lock(&rv->mu);
    for (struct rb_file *f = rv->files; f; f = f->next) {
        if (strcmp(f->name, name) != 0)
            continue;
        pthread_rwlock_wrlock(&f->lk);
        wait_idle(f);
        if (f->img)
            rbd_close(f->img);
        f->img = NULL;
        snprintf(f->name, sizeof f->name, "%s", to ? to : "");
        pthread_rwlock_unlock(&f->lk);
    }
    pthread_mutex_unlock(&rv->mu);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A base's snapshots go first (rbd_remove refuses an image that has some); a snapshot
 * that still has children cannot be unprotected: EBUSY, and the image stays. */
static int drop_snapshots(struct rb_volume *rv, const char *name)
{
    rbd_snap_info_t snaps[8];
    int max = 8, n, rc;
    rbd_image_t img;

    if ((rc = rbd_open_read_only(rv->io, name, &img, NULL)) < 0)
        return rc;
    n = rbd_snap_list(img, snaps, &max);
    if (n > 0)
        rbd_snap_list_end(snaps);
    rbd_close(img);
    if (n <= 0)
        return n == -ERANGE ? -EBUSY : n;
    if ((rc = rbd_open(rv->io, name, &img, NULL)) < 0)
        return rc;
    n = rbd_snap_list(img, snaps, &max);
    for (int i = 0; rc == 0 && i < n; i++) {
        int prot = 0;
        if (rbd_snap_is_protected(img, snaps[i].name, &prot) == 0 && prot)
            rc = rbd_snap_unprotect(img, snaps[i].name);
        if (rc == 0)
            rc = rbd_snap_remove(img, snaps[i].name);
    }
    if (n > 0)
        rbd_snap_list_end(snaps);
    rbd_close(img);
    return rc;
}

static int remove_image(struct rb_volume *rv, const char *name)
{
    int rc, waited = 0;

    detach_name(rv, name, NULL);
    if ((rc = drop_snapshots(rv, name)) < 0 && rc != -ENOENT)
        return rc;
    /* EBUSY: a watcher, i.e. a killed client's handle the OSDs have not timed out yet. */
    while ((rc = rbd_remove(rv->io, name)) == -EBUSY && waited < RB_BUSY_WAIT_MS) {
        sleep_ms(250);
        waited += 250;
    }
    return rc;
}

static int rb_remove(struct be_volume *v, const char *rel)
{
    char name[160];
    int rc = rbd_name(rel, name, sizeof name);
    return rc < 0 ? rc : remove_image(RV(v), name);
}

/* rbd_rename never replaces: cls_rbd's dir_rename_image refuses an existing target
 * inside the one update of the pool's directory object, atomically. The stat before it
 * only makes the common case a plain EEXIST without opening the image: a creator that
 * takes the name between the two is refused by the rename itself. */
static int rename_image(struct rb_volume *rv, const char *from, const char *to)
{
    char id_obj[200];
    uint64_t sz;
    time_t mt;

    snprintf(id_obj, sizeof id_obj, "rbd_id.%s", to);
    int rc = rados_stat(rv->io, id_obj, &sz, &mt);
    if (rc == 0)
        return -EEXIST;
    if (rc != -ENOENT)
        return rc;
    detach_name(rv, from, to);
    if ((rc = rbd_rename(rv->io, from, to)) < 0) {
        detach_name(rv, to, from); /* nothing moved: the files keep their name */
        return rc;
    }
    return 0;
}

static int rb_rename(struct be_volume *v, const char *from, const char *to)
{
    char a[160], b[160];
    int rc = rbd_name(from, a, sizeof a);
    if (rc == 0)
        rc = rbd_name(to, b, sizeof b);
    return rc < 0 ? rc : rename_image(RV(v), a, b);
}

static int rb_publish(struct be_volume *v, const char *staged, const char *final, int *moved)
{
    int rc = rb_rename(v, staged, final);
    *moved = rc == 0;
    return rc;
}

/* ---- files ---- */

static int read_end(rbd_image_t img, uint64_t *end, int *grown)
{
    char val[32];
    size_t len = sizeof val;
    int rc = rbd_metadata_get(img, END_KEY, val, &len);
    *grown = rc == 0;
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    *end = strtoull(val, NULL, 10);
    return 0;
}

static int open_image(struct rb_file *f)
{
    int rc;

    if (!f->name[0])
        return -ENOENT;
    rc = f->rdonly ? rbd_open_read_only(f->rv->io, f->name, &f->img, NULL)
                   : rbd_open(f->rv->io, f->name, &f->img, NULL);
    if (rc < 0) {
        f->img = NULL;
        return rc;
    }
    pthread_mutex_lock(&f->szmu);
    if (!f->sized && (rc = rbd_get_size(f->img, &f->rbd_size)) == 0) {
        f->end = f->rbd_size;
        if ((rc = read_end(f->img, &f->end, &f->grown)) == 0)
            f->sized = 1;
        f->end_saved = f->end;
    }
    pthread_mutex_unlock(&f->szmu);
    if (rc < 0) {
        rbd_close(f->img);
        f->img = NULL;
    }
    return rc;
}

/* The file's image open and held (shared) for one call; release with drop(). */
static int hold(struct rb_file *f)
{
    for (;;) {
        pthread_rwlock_rdlock(&f->lk);
        if (f->img)
            return 0;
        pthread_rwlock_unlock(&f->lk);
        pthread_rwlock_wrlock(&f->lk);
        int rc = f->img ? 0 : open_image(f);
        pthread_rwlock_unlock(&f->lk);
        if (rc < 0)
            return rc;
    }
}

static void drop(struct rb_file *f)
{
    pthread_rwlock_unlock(&f->lk);
}

static struct rb_file *new_file(struct rb_volume *rv, const char *name, int rdonly)
{
    struct rb_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->rv = rv;
    f->rdonly = rdonly;
    snprintf(f->name, sizeof f->name, "%s", name);
    pthread_rwlock_init(&f->lk, NULL);
    pthread_mutex_init(&f->szmu, NULL);
    pthread_cond_init(&f->idle, NULL);
    pthread_mutex_lock(&rv->mu);
    f->next = rv->files;
    rv->files = f;
    pthread_mutex_unlock(&rv->mu);
    return f;
}

static int set_end(struct rb_file *f, uint64_t end);

static int rb_close_file(struct be_file *bf)
{
    struct rb_file *f = RF(bf);
    if (!f)
        return 0;
    pthread_mutex_lock(&f->rv->mu);
    for (struct rb_file **p = &f->rv->files; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    pthread_mutex_unlock(&f->rv->mu);
    wait_idle(f);
    /* Best effort: a lagging END_KEY only costs a resume bytes. After a failed write the
     * end stays where it is (and the cluster is likely gone: the try would time out). */
    if (f->img && f->grown && f->end != f->end_saved && !f->write_failed)
        set_end(f, f->end);
    int rc = f->img ? rbd_close(f->img) : 0;
    pthread_rwlock_destroy(&f->lk);
    pthread_mutex_destroy(&f->szmu);
    pthread_cond_destroy(&f->idle);
    free(f);
    return rc;
}

/* Opened now (an absent image is ENOENT here, not at the first read). */
static int open_named(struct rb_volume *rv, const char *name, int rdonly, struct be_file **out)
{
    struct rb_file *f = new_file(rv, name, rdonly);
    if (!f)
        return -ENOMEM;
    int rc = hold(f);
    if (rc < 0) {
        rb_close_file((struct be_file *)(void *)f);
        return rc;
    }
    drop(f);
    *out = (struct be_file *)(void *)f;
    return 0;
}

static int rb_open_file(struct be_volume *v, const char *rel, int flags, mode_t mode,
                        struct be_file **out)
{
    struct rb_volume *rv = RV(v);
    char name[160];
    int rc = rbd_name(rel, name, sizeof name);

    if (rc < 0)
        return rc;
    if (flags & O_CREAT) {
        rc = create_image(rv, name);
        if (rc < 0 && (rc != -EEXIST || (flags & O_EXCL)))
            return rc;
    }
    return open_named(rv, name, (flags & O_ACCMODE) == O_RDONLY, out);
}

static int grow(struct rb_file *f, uint64_t need);

/* Room for the first writes, made while the cluster has just answered the create: the
 * resize takes the image's exclusive lock, which the first write would take otherwise;
 * when the cluster is gone by then, librbd fails that write with EROFS ("Read-only file
 * system"), where a write under the lock times out like any other call. */
static int make_room(struct rb_file *f)
{
    int rc = hold(f);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&f->szmu);
    rc = grow(f, 1);
    pthread_mutex_unlock(&f->szmu);
    drop(f);
    return rc;
}

/* A crashed try's leftover of that name goes first. */
static int rb_stage(struct be_volume *v, const char *staged, struct be_file **out)
{
    struct rb_volume *rv = RV(v);
    char name[160];
    int rc = rbd_name(staged, name, sizeof name);

    if (rc < 0)
        return rc;
    if ((rc = create_image(rv, name)) == -EEXIST && (rc = remove_image(rv, name)) == 0)
        rc = create_image(rv, name);
    if (rc < 0 || (rc = open_named(rv, name, 0, out)) < 0)
        return rc;
    if ((rc = make_room(RF(*out))) < 0) {
        rb_close_file(*out);
        *out = NULL;
    }
    return rc;
}

/* A transfer's AIO read or write (aio_start/aio_wait), in pieces. */
struct be_aio {
    struct rb_file *f;
    int write;
    size_t len;
    uint64_t off;
    unsigned n; /* completions issued; 0: nothing to do (a read at or past the end) */
    rbd_completion_t c[];
};

/* Reads and writes go one object (4 MiB, the default order) per op: each op costs the
 * OSD and librbd about as much as its bytes do (128 KiB read pieces took twice the OSD's
 * CPU of a download; 1 MiB write pieces 0.85x the upload's MiB/s of whole objects, with
 * four objects in flight). The messenger receives each
 * reply into a buffer of its size, which must come from malloc's arenas, reused, not a
 * fresh mapping faulted in page by page: see keep_object_buffers(). */
#define READ_PIECE (4u << 20)
#define WRITE_PIECE (4u << 20)

static int start_pieces(struct be_aio *a, void *buf)
{
    struct rb_file *f = a->f;
    size_t step = a->write ? WRITE_PIECE : READ_PIECE;
    for (size_t o = 0; o < a->len; o += step) {
        size_t k = a->len - o < step ? a->len - o : step;
        int rc = rbd_aio_create_completion(NULL, NULL, &a->c[a->n]);
        if (rc < 0)
            return rc;
        rc = a->write ? rbd_aio_write2(f->img, a->off + o, k, (char *)buf + o, a->c[a->n], 0)
                      : rbd_aio_read2(f->img, a->off + o, k, (char *)buf + o, a->c[a->n], 0);
        if (rc < 0) {
            rbd_aio_release(a->c[a->n]);
            return rc;
        }
        a->n++;
    }
    return 0;
}

static struct be_aio *new_aio(struct rb_file *f, int write, size_t len, uint64_t off)
{
    size_t step = write ? WRITE_PIECE : READ_PIECE, pieces = (len + step - 1) / step;
    struct be_aio *a = calloc(1, sizeof *a + (pieces ? pieces : 1) * sizeof(rbd_completion_t));
    if (a)
        *a = (struct be_aio){f, write, len, off, 0};
    return a;
}

/* Wait for a's pieces: the bytes done from its start on, as one call would say (a prefix
 * of the pieces), or the first error. */
static ssize_t wait_pieces(struct be_aio *a)
{
    size_t step = a->write ? WRITE_PIECE : READ_PIECE, done = 0;
    ssize_t err = 0;
    int short_piece = 0;
    for (unsigned i = 0; i < a->n; i++) {
        size_t want = a->len - i * step < step ? a->len - i * step : step;
        rbd_aio_wait_for_complete(a->c[i]);
        ssize_t r = rbd_aio_get_return_value(a->c[i]);
        rbd_aio_release(a->c[i]);
        size_t got = a->write && r == 0 ? want : (size_t)r; /* a write answers 0 */
        if (r < 0 && !err)
            err = r;
        else if (r >= 0 && !short_piece) {
            done += got < want ? got : want;
            short_piece = got < want;
        }
    }
    return err && !done ? err : (ssize_t)done;
}

/* One synchronous call is one OSD op at a time, and the cluster sits idle between round
 * trips: a large read or write goes as the pieces of one AIO, waited for at once. */
#define SYNC_MAX (1u << 20)

static ssize_t rb_io(struct rb_file *f, int write, void *buf, size_t len, uint64_t off)
{
    if (len <= SYNC_MAX)
        return write ? rbd_write2(f->img, off, len, buf, 0) : rbd_read2(f->img, off, len, buf, 0);
    struct be_aio *a = new_aio(f, write, len, off);
    if (!a)
        return -ENOMEM;
    int rc = start_pieces(a, buf);
    ssize_t n = a->n ? wait_pieces(a) : 0;
    free(a);
    return rc < 0 && n <= 0 ? rc : n;
}

static ssize_t rb_pread(struct be_file *bf, void *buf, size_t len, uint64_t off)
{
    struct rb_file *f = RF(bf);
    int rc = hold(f);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&f->szmu);
    uint64_t end = f->end;
    pthread_mutex_unlock(&f->szmu);
    ssize_t n = 0;
    if (off < end) {
        if (len > end - off)
            len = (size_t)(end - off);
        n = rb_io(f, 0, buf, len < IO_MAX ? len : IO_MAX, off);
    }
    drop(f);
    return n;
}

static int set_end(struct rb_file *f, uint64_t end)
{
    char val[32];
    snprintf(val, sizeof val, "%" PRIu64, end);
    int rc = rbd_metadata_set(f->img, END_KEY, val);
    if (rc == 0)
        f->end_saved = end;
    return rc;
}

/* Waits for an END_KEY save under way: what changes the key or the image's size after
 * it must not be overtaken by it. Caller holds szmu. */
static void wait_saved(struct rb_file *f)
{
    while (f->saving)
        pthread_cond_wait(&f->idle, &f->szmu);
}

static void *saver(void *arg)
{
    struct rb_file *f = arg;
    char val[32];

    snprintf(val, sizeof val, "%" PRIu64, f->save_end); /* set before, fixed while saving */
    int rc = rbd_metadata_set(f->img, END_KEY, val);    /* open: inflight counts this save */
    pthread_mutex_lock(&f->szmu);
    if (rc == 0 && f->save_end > f->end_saved)
        f->end_saved = f->save_end;
    else if (rc < 0 && !f->save_err)
        f->save_err = rc;
    f->saving = 0;
    f->inflight--;
    pthread_cond_broadcast(&f->idle); /* wait_saved, and wait_idle when inflight is 0 */
    pthread_mutex_unlock(&f->szmu);
    return NULL;
}

/* END_KEY brought up to end behind the writes. A metadata update is an OSD op on the
 * image's header, queued behind the data writes in flight: 20-40 ms each with the
 * writes of an upload's ring in flight, 0.3-0.6 s per GiB while the writer waited for
 * them (bench/REPORT.md, RBD). Every byte below end is acknowledged already, so the key
 * may follow later and still never says more than was written. One save at a time; when
 * one runs, the next write past END_EVERY starts the next. No thread to be had: the
 * save is made here. Caller holds szmu, with the image held open. */
static int save_behind(struct rb_file *f, uint64_t end)
{
    pthread_t t;

    if (f->saving)
        return 0;
    f->saving = 1;
    f->save_end = end;
    f->inflight++;
    if (pthread_create(&t, NULL, saver, f) == 0) {
        pthread_detach(t);
        return 0;
    }
    f->saving = 0;
    f->inflight--;
    return set_end(f, end);
}

/* n bytes written at off by the held f (or the error n): they count in its size.
 * Only bytes the OSDs acknowledged count (they are durable there), and none after a
 * failed AIO write, which may have left a gap below them. END_KEY follows every END_EVERY
 * bytes, not every write (a metadata update is an OSD round trip of its own): after a
 * crash it may say less than was written, never more, so a resumed upload re-sends a
 * little and skips nothing; flush cuts the image to the exact end. */
static ssize_t wrote(struct rb_file *f, uint64_t off, ssize_t n)
{
    int rc;
    pthread_mutex_lock(&f->szmu);
    if (n >= 0 && f->save_err)
        n = f->save_err; /* the key could not follow: nothing more counts */
    if (n < 0)
        f->write_failed = 1;
    else if (!f->write_failed && off + (uint64_t)n > f->end) {
        uint64_t to = off + (uint64_t)n;
        if (f->grown && to - f->end_saved >= END_EVERY && (rc = save_behind(f, to)) < 0)
            n = rc;
        else
            f->end = to;
    }
    pthread_mutex_unlock(&f->szmu);
    return n;
}

/* Make room for [off, off+len): END_KEY first (the written end), then a bigger image.
 * The image at least doubles (up to GROW_MAX at a time): a resize is a header op that
 * waits behind the writes in flight while the writer waits for it, and a 100 GiB upload
 * made 400 of them in steps of GROW_STEP. The room past the end costs nothing (an RBD
 * image is thin) and flush cuts it off. */
static int grow(struct rb_file *f, uint64_t need)
{
    int rc;
    if (!f->grown) {
        if ((rc = set_end(f, f->end)) < 0)
            return rc;
        f->grown = 1;
    }
    uint64_t more = f->rbd_size < GROW_MAX ? f->rbd_size : GROW_MAX;
    if (need < f->rbd_size + more)
        need = f->rbd_size + more;
    uint64_t to = (need + GROW_STEP - 1) / GROW_STEP * GROW_STEP;
    if ((rc = rbd_resize(f->img, to)) < 0)
        return rc;
    f->rbd_size = to;
    return 0;
}

static ssize_t rb_pwrite(struct be_file *bf, const void *buf, size_t len, uint64_t off)
{
    struct rb_file *f = RF(bf);
    int rc = hold(f);
    if (rc < 0)
        return rc;
    if (len > IO_MAX)
        len = IO_MAX;
    if (off > UINT64_MAX - len) {
        drop(f);
        return -EINVAL;
    }
    pthread_mutex_lock(&f->szmu);
    rc = off + len > f->rbd_size ? grow(f, off + len) : 0;
    pthread_mutex_unlock(&f->szmu);
    ssize_t n = rc < 0 ? rc : rb_io(f, 1, (void *)buf, len, off);
    if (n > 0)
        n = wrote(f, off, n);
    drop(f);
    return n;
}

/* The image held, room made for a write (and a read cut at the end), then the AIO:
 * librbd splits it by object, and a transfer keeps several blocks in flight, so the
 * OSDs always have work queued. */
static int rb_aio_start(struct be_file *bf, int write, void *buf, size_t len, uint64_t off,
                        struct be_aio **out)
{
    struct rb_file *f = RF(bf);
    if (len > IO_MAX)
        len = IO_MAX;
    struct be_aio *a = new_aio(f, write, len, off);
    int rc;

    if (!a)
        return -ENOMEM;
    if ((rc = hold(f)) < 0) {
        free(a);
        return rc;
    }
    pthread_mutex_lock(&f->szmu);
    if (!write)
        len = off >= f->end ? 0 : len < f->end - off ? len : (size_t)(f->end - off);
    else if (off > UINT64_MAX - len)
        rc = -EINVAL;
    else if (off + len > f->rbd_size)
        rc = grow(f, off + len);
    pthread_mutex_unlock(&f->szmu);
    a->len = len;
    if (rc == 0)
        rc = start_pieces(a, buf);
    if (a->n) {
        pthread_mutex_lock(&f->szmu);
        f->inflight++;
        pthread_mutex_unlock(&f->szmu);
    }
    drop(f);
    if (rc < 0 && a->n) {
        wait_pieces(a); /* what did start is waited for before its buffer is let go */
        a->n = 0;
        pthread_mutex_lock(&f->szmu);
        if (--f->inflight == 0)
            pthread_cond_broadcast(&f->idle);
        pthread_mutex_unlock(&f->szmu);
    }
    if (rc < 0) {
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

static ssize_t rb_aio_wait(struct be_aio *a)
{
    struct rb_file *f = a->f;
    ssize_t r = 0;

    if (a->n) {
        r = wait_pieces(a);
        pthread_mutex_lock(&f->szmu);
        if (--f->inflight == 0)
            pthread_cond_broadcast(&f->idle);
        pthread_mutex_unlock(&f->szmu);
    }
    if (a->write && a->n) {
        int rc = hold(f);
        r = rc < 0 ? rc : wrote(f, a->off, r);
        if (rc == 0)
            drop(f);
    }
    free(a);
    return r;
}

/* The image cut to the file's size; END_KEY last (a crash between leaves it right). */
static int settle(struct rb_file *f)
{
    int rc = 0;
    pthread_mutex_lock(&f->szmu);
    wait_saved(f);
    if (f->save_err)
        rc = f->save_err;
    else if (f->grown && (rc = rbd_resize(f->img, f->end)) == 0) {
        f->rbd_size = f->end;
        rc = rbd_metadata_remove(f->img, END_KEY);
        if (rc == 0 || rc == -ENOENT) {
            f->grown = 0;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&f->szmu);
    return rc;
}

static int rb_flush(struct be_file *bf)
{
    struct rb_file *f = RF(bf);
    if (!f->img && !f->grown)
        return 0; /* never opened here (a clone): durable since it was made */
    int rc = hold(f);
    if (rc < 0)
        return rc;
    if ((rc = settle(f)) == 0)
        rc = rbd_flush(f->img);
    drop(f);
    return rc;
}

static int rb_ftruncate(struct be_file *bf, uint64_t len)
{
    struct rb_file *f = RF(bf);
    int rc = hold(f);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&f->szmu);
    wait_saved(f);
    if (f->grown)
        rc = set_end(f, len < f->end ? len : f->end);
    if (rc == 0 && (rc = rbd_resize(f->img, len)) == 0) {
        f->rbd_size = f->end = len;
        if (f->grown && (rc = rbd_metadata_remove(f->img, END_KEY)) == -ENOENT)
            rc = 0;
        if (rc == 0)
            f->grown = 0;
    }
    pthread_mutex_unlock(&f->szmu);
    drop(f);
    return rc;
}

struct extent {
    uint64_t from, start, end;
    int found;
};

#define EXTENT_DONE (-ECANCELED)

static int extent_cb(uint64_t off, size_t len, int exists, void *arg)
{
    struct extent *x = arg;
    if (!exists)
        return x->found ? EXTENT_DONE : 0;
    if (x->found && off > x->end)
        return EXTENT_DONE; /* a hole after the extent */
    if (!x->found) {
        x->found = 1;
        x->start = off < x->from ? x->from : off;
        x->end = off + len;
    } else if (off + len > x->end) {
        x->end = off + len;
    }
    return 0;
}

/* The allocated extents come from the object map (fast-diff): whole objects, 4 MiB by
 * default, so a sparse image stays sparse at that granularity. */
static int rb_next_data(struct be_file *bf, uint64_t off, uint64_t *data, uint64_t *hole)
{
    struct rb_file *f = RF(bf);
    struct extent x = {off, 0, 0, 0};
    int rc = hold(f);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&f->szmu);
    uint64_t end = f->end;
    pthread_mutex_unlock(&f->szmu);
    if (off >= end)
        rc = -ENXIO;
    else if ((rc = rbd_diff_iterate2(f->img, NULL, off, end - off, 1, 1, extent_cb, &x)) ==
             EXTENT_DONE)
        rc = 0;
    drop(f);
    if (rc < 0)
        return rc;
    if (!x.found)
        return -ENXIO;
    *data = x.start;
    *hole = x.end < end ? x.end : end;
    return 0;
}

static int used_cb(uint64_t off, size_t len, int exists, void *arg)
{
    if (exists)
        *(uint64_t *)arg += len;
    return 0;
}

static int rb_fstat(struct be_file *bf, struct stat *st)
{
    struct rb_file *f = RF(bf);
    char id[64] = "";
    uint64_t used = 0;
    struct timespec mt = {0, 0};
    int rc = hold(f);
    if (rc < 0)
        return rc;
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&f->szmu);
    st->st_size = (off_t)f->end;
    uint64_t size = f->rbd_size;
    pthread_mutex_unlock(&f->szmu);
    if ((rc = rbd_get_id(f->img, id, sizeof id)) == 0 && size)
        rc = rbd_diff_iterate2(f->img, NULL, 0, size, 0, 1, used_cb, &used);
    if (rc == 0 && rbd_get_modify_timestamp(f->img, &mt) < 0)
        rbd_get_create_timestamp(f->img, &mt);
    drop(f);
    if (rc < 0)
        return rc;
    /* The identity an upload records is the RBD image id (hex), which a rename keeps. */
    st->st_ino = (ino_t)strtoull(id, NULL, 16);
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_uid = geteuid();
    st->st_gid = getegid();
    st->st_blksize = 4 << 20;
    st->st_blocks = (blkcnt_t)(used / 512);
    st->st_mtime = mt.tv_sec;
    return 0;
}

static int rb_punch_hole(struct be_file *bf, uint64_t off, uint64_t len)
{
    struct rb_file *f = RF(bf);
    int rc = hold(f);
    if (rc < 0)
        return rc;
    rc = rbd_discard(f->img, off, len);
    drop(f);
    return rc < 0 ? rc : 0;
}

static int rb_kernel_fd(struct be_file *f)
{
    (void)f;
    return -1;
}

/* ---- clones ---- */

/* The base's snapshot, protected (a clone may hang from it); made once per base. */
static int base_snapshot(struct rb_volume *rv, const char *base)
{
    rbd_image_t img;
    int prot = 0, rc;

    if ((rc = rbd_open_read_only(rv->io, base, &img, NULL)) < 0)
        return rc;
    rc = rbd_snap_is_protected(img, BASE_SNAP, &prot);
    rbd_close(img);
    if (rc == 0 && prot)
        return 0;
    if ((rc = rbd_open(rv->io, base, &img, NULL)) < 0)
        return rc;
    /* Two clones of one base at once: the second finds the snapshot made, or protected. */
    if ((rc = rbd_snap_create(img, BASE_SNAP)) == -EEXIST)
        rc = 0;
    if (rc == 0 && (rc = rbd_snap_protect(img, BASE_SNAP)) == -EBUSY)
        rc = 0;
    rbd_close(img);
    return rc;
}

static int rb_clone(struct be_volume *v, struct be_clone_req *rq, struct be_file **out,
                    struct st_err *e)
{
    struct rb_volume *rv = RV(v);
    char base[160], child[160];
    rbd_image_options_t opts;
    int rc;

    if ((rc = rbd_name(rq->base, base, sizeof base)) < 0 ||
        (rc = rbd_name(rq->staged, child, sizeof child)) < 0)
        return be_fail(e, rc, "clone");
    if ((rc = base_snapshot(rv, base)) < 0)
        return be_fail(e, rc, "snapshot the base image");
    rbd_image_options_create(&opts);
    rc = rbd_clone3(rv->io, base, BASE_SNAP, rv->io, child, opts);
    if (rc == -EEXIST && (rc = remove_image(rv, child)) == 0)
        rc = rbd_clone3(rv->io, base, BASE_SNAP, rv->io, child, opts);
    rbd_image_options_destroy(opts);
    if (rc < 0)
        return be_fail(e, rc, "rbd clone");
    /* The child's bytes are the base's: its format too. Not opened: nothing to write. */
    snprintf(rq->format, sizeof rq->format, "%s", rq->base_format);
    struct rb_file *f = new_file(rv, child, 0);
    if (!f) {
        remove_image(rv, child);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    *out = (struct be_file *)(void *)f;
    return 0;
}

/* ---- names ---- */

static int stat_image(struct rb_volume *rv, const char *name, struct stat *st)
{
    struct be_file *f;
    int rc = open_named(rv, name, 1, &f);
    if (rc < 0)
        return rc;
    rc = rb_fstat(f, st);
    rb_close_file(f);
    return rc;
}

static int rb_stat(struct be_volume *v, const char *rel, struct stat *st)
{
    char name[160];
    if (prefix_of(rel) || !*rel) {
        memset(st, 0, sizeof *st);
        st->st_mode = S_IFDIR | 0700;
        st->st_nlink = 2;
        return 0;
    }
    int rc = rbd_name(rel, name, sizeof name);
    return rc < 0 ? rc : stat_image(RV(v), name, st);
}

static int rb_list(struct be_volume *v, const char *reldir, be_list_fn fn, void *ud)
{
    struct rb_volume *rv = RV(v);
    const char *prefix = prefix_of(reldir);
    rbd_image_spec_t *specs = NULL;
    size_t max = 64;
    int rc;

    int root = reldir && !*reldir;
    if (!prefix && !root)
        return -ENOENT;
    for (;;) {
        free(specs);
        if (!(specs = calloc(max, sizeof *specs)))
            return -ENOMEM;
        if ((rc = rbd_list2(rv->io, specs, &max)) != -ERANGE)
            break;
    }
    if (rc < 0) {
        free(specs);
        return rc == -ENOENT ? 0 : rc; /* a pool nobody made an image in yet */
    }
    size_t n = max, plen = root ? 0 : strlen(prefix);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct stat st;
        if (root ? !is_root_name(specs[i].name)
                 : strncmp(specs[i].name, prefix, plen) != 0 || !specs[i].name[plen])
            continue;
        int src = stat_image(rv, specs[i].name, &st);
        if (src == 0)
            rc = fn(ud, specs[i].name + plen, &st);
        else if (src != -ENOENT)
            rc = src; /* removed meanwhile: not listed; anything else is an error */
    }
    rbd_image_spec_list_cleanup(specs, n);
    free(specs);
    return rc;
}

/* The namespaces exist by themselves (they are prefixes). */
static int rb_mkdir(struct be_volume *v, const char *rel, mode_t mode)
{
    return prefix_of(rel) ? 0 : -EOPNOTSUPP;
}

/* A rename or removal is one committed update of the pool's directory: nothing to sync. */
static int rb_fsync_dir(struct be_volume *v, const char *rel)
{
    return !*rel || prefix_of(rel) ? 0 : -ENOENT;
}

static int rb_init(struct be_volume *v)
{
    return 0;
}

/* Clients on other hosts may have any image open: from here that cannot be known. */
static int rb_open_for_writing(struct be_volume *v, const struct stat *files, size_t n,
                               unsigned char *out)
{
    return -EOPNOTSUPP;
}

/* ---- volume ---- */

static void rb_close(struct be_volume *v)
{
    struct rb_volume *rv = RV(v);
    if (!rv)
        return;
    if (rv->io)
        rados_ioctx_destroy(rv->io);
    if (rv->cluster)
        rados_shutdown(rv->cluster);
    pthread_mutex_destroy(&rv->mu);
    free(rv);
}

/* The messenger receives a read of one object into a buffer of that size (4 MiB), which
 * the daemon's mmap threshold (main.c, 256 KiB) would map afresh for every object: a
 * page fault per 4 KiB, twice the CPU of the download. Once an RBD volume opens, buffers
 * up to an object and its alignment come from malloc's arenas and are reused. Daemons
 * without an RBD volume keep main.c's threshold (bench/REPORT.md: RBD, memory). */
#define RB_ARENA_MAX ((4 << 20) + (64 << 10))

static void raise_mmap_threshold(void)
{
    mallopt(M_MMAP_THRESHOLD, RB_ARENA_MAX);
}

static void keep_object_buffers(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, raise_mmap_threshold);
}

static int rb_open(const struct be_params *p, struct be_volume **out, struct st_err *e)
{
    struct rb_volume *rv = calloc(1, sizeof *rv);
    char msg[256];
    int rc;

    if (!rv)
        return st_fail(e, ST_INTERNAL, "out of memory"), -ENOMEM;
    pthread_mutex_init(&rv->mu, NULL);
    snprintf(rv->label, sizeof rv->label, "ceph pool %s", rb_pool(p->params));
    if ((rc = rb_connect(p->params, &rv->cluster, msg, sizeof msg)) < 0) {
        st_fail(e, ST_UNAVAILABLE, "%s", msg);
        goto fail;
    }
    rc = rados_ioctx_create(rv->cluster, rb_pool(p->params), &rv->io);
    if (rc == -ENOENT && json_is_true(json_object_get(p->params, "create_pool"))) {
        if ((rc = rados_pool_create(rv->cluster, rb_pool(p->params))) == 0 || rc == -EEXIST)
            rc = rados_ioctx_create(rv->cluster, rb_pool(p->params), &rv->io);
    }
    if (rc < 0) {
        rv->io = NULL;
        if (rc == -ENOENT)
            st_fail(e, ST_NOT_FOUND, "%s does not exist", rv->label);
        else
            be_fail(e, rc, rv->label);
        goto fail;
    }
    /* A pool made for us may not be tagged yet; Ceph warns about untagged pools. */
    rados_application_enable(rv->io, "rbd", 0);
    keep_object_buffers();
    *out = (struct be_volume *)(void *)rv;
    return 0;
fail:
    rb_close((struct be_volume *)(void *)rv);
    return rc;
}

/* The cluster's raw space: pools share it (their replication divides it again). */
static int rb_statvfs(struct be_volume *v, struct be_space *out, struct st_err *e)
{
    struct rados_cluster_stat_t cs;
    int rc = rados_cluster_stat(RV(v)->cluster, &cs);
    if (rc < 0)
        return be_fail(e, rc, RV(v)->label);
    out->total_bytes = cs.kb * 1024;
    out->free_bytes = cs.kb_avail * 1024;
    out->readonly = 0;
    return 0;
}

/* The OSD holding the pool's directory answers (ENOENT: no image made yet, still alive). */
static int rb_health(struct be_volume *v, struct st_err *e)
{
    uint64_t sz;
    time_t mt;
    int rc = rados_stat(RV(v)->io, "rbd_directory", &sz, &mt);
    return rc < 0 && rc != -ENOENT ? be_fail(e, rc, RV(v)->label) : 0;
}

static int rb_own_place(struct be_volume *v, const char *name, json_t *params, int *changed,
                        char *why, size_t len)
{
    return be_rbd_own_place(RV(v)->cluster, RV(v)->io, params, changed, why, len);
}

static int rb_place_stats(struct be_volume *v, json_t **out, struct st_err *e)
{
    char pool[256];
    if (rados_ioctx_get_pool_name(RV(v)->io, pool, sizeof pool) < 0)
        return st_fail(e, ST_INTERNAL, "%s: its pool has no name", RV(v)->label);
    return be_rbd_pool_stats(RV(v)->cluster, pool, out, e);
}

static const struct backend_ops rbd_ops = {
    .parse = be_rbd_parse,
    .prepare = be_rbd_prepare,
    .same_place = be_rbd_same_place,
    .describe_place = be_rbd_describe_place,
    .own_place = rb_own_place,
    .from_url = NULL,
    .check = be_rbd_check,
    .keep_session = 1,
    .open = rb_open,
    .close = rb_close,
    .statvfs = rb_statvfs,
    .health = rb_health,
    .stage = rb_stage,
    .flush = rb_flush,
    .publish = rb_publish,
    .discard = rb_remove,
    .remove = rb_remove,
    .init = rb_init,
    .clone = rb_clone,
    .open_file = rb_open_file,
    .close_file = rb_close_file,
    .pread = rb_pread,
    .pwrite = rb_pwrite,
    .fsync = rb_flush,
    .fstat = rb_fstat,
    .ftruncate = rb_ftruncate,
    .next_data = rb_next_data,
    .punch_hole = rb_punch_hole,
    .aio_start = rb_aio_start,
    .aio_wait = rb_aio_wait,
    .start_writeback = NULL,
    .reflink = NULL,
    .copy_range = NULL,
    .kernel_fd = rb_kernel_fd,
    .stat = rb_stat,
    .mkdir = rb_mkdir,
    .rename = rb_rename,
    .unlink = rb_remove,
    .fsync_dir = rb_fsync_dir,
    .list = rb_list,
    .open_for_writing = rb_open_for_writing,
    .place_stats = rb_place_stats,
};

/* What backend.c's registry dlsyms when the first RBD volume appears. */
__attribute__((visibility("default"))) extern const struct be_module be_module;
const struct be_module be_module = {BE_MODULE_ABI, sizeof(struct backend_ops), &rbd_ops};
