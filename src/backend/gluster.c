/* gluster.c — the backend for a GlusterFS volume, through libgfapi.
 *
 * One glfs_t per volume, opened once and kept: glfs_init costs ~25 ms but glfs_fini
 * ~10 s, so sessions are never per request (and close is for shutdown). glfs_t is
 * thread-safe, and so is the root handle we keep (gfapi refreshes it under its lock).
 * Opens of the same server and volume (a catalogue volume and a backup storage in a
 * directory of it) share one pooled glfs_t, counted, and finished with its last close.
 *
 * Paths are walked one component at a time with the handle API (glfs_h_lookupat with
 * follow = 0), which is gfapi's openat(O_NOFOLLOW): a symlink anywhere on the path is
 * refused with ELOOP instead of followed, and nothing is resolved by string outside
 * the configured root. Gluster has no RENAME_NOREPLACE; regular files are renamed by
 * link + unlink (link refuses an existing target atomically), directories by a lookup
 * then rename, with the race that implies (documented in docs/gluster.md).
 *
 * No reflink and no kernel fd. pread/pwrite return what gfapi returned. */
#include "file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <glusterfs/api/glfs-handles.h>
#include <glusterfs/api/glfs.h>

#define GLUSTERD_PORT 24007
#define GFAPI_LOG_WARNING 5 /* brick disconnects are logged at this level */

/* The directories a commit fsyncs (images, clones, .staging) stay open: an opendir is a
 * round trip to every brick, paid once per session instead of once per commit. */
#define GL_DIR_FDS 4

/* A pooled session: one per server and volume while anything has it open. */
struct gl_session {
    char server[256], volume[256];
    glfs_t *fs;
    int refs;
    struct gl_session *next;
};

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gl_session *pool;

struct gl_volume {
    glfs_t *fs;
    struct gl_session *session; /* fs's pooled session, or NULL: fs is this volume's own */
    struct glfs_object *root;
    char label[384]; /* "server:volume/root" for messages */
    pthread_mutex_t dir_mu;
    struct {
        char rel[32];
        glfs_fd_t *fd; /* closed with the session only: a caller may be using it */
    } dirs[GL_DIR_FDS];
};

struct gl_file {
    glfs_fd_t *fd;
};

static struct gl_volume *GV(struct be_volume *v)
{
    return (struct gl_volume *)(void *)v;
}

static struct gl_file *GF(struct be_file *f)
{
    return (struct gl_file *)(void *)f;
}

/* errno as a negative value, never 0 (gfapi occasionally fails without setting it). */
static int neg_errno(void)
{
    return errno ? -errno : -EIO;
}

/* ---- handles ---- */

static void put_obj(struct gl_volume *gv, struct glfs_object *o)
{
    if (o && o != gv->root)
        glfs_h_close(o);
}

static int type_err(const struct stat *st)
{
    return S_ISLNK(st->st_mode) ? -ELOOP : -ENOTDIR;
}

/* Walk rel's directories from the root without following symlinks; returns the
 * parent handle (put_obj it) and rel's last component. */
static int walk_parent(struct gl_volume *gv, const char *rel, struct glfs_object **parent,
                       const char **base)
{
    struct glfs_object *cur = gv->root, *next;
    char comp[NAME_MAX + 1];
    const char *p = rel, *slash;
    struct stat st;
    int rc;

    if (!be_path_ok(rel))
        return -EINVAL;
    while ((slash = strchr(p, '/'))) {
        memcpy(comp, p, (size_t)(slash - p));
        comp[slash - p] = '\0';
        errno = 0;
        next = glfs_h_lookupat(gv->fs, cur, comp, &st, 0);
        rc = next ? 0 : neg_errno();
        put_obj(gv, cur);
        if (rc < 0)
            return rc;
        if (!S_ISDIR(st.st_mode)) {
            glfs_h_close(next);
            return type_err(&st);
        }
        cur = next;
        p = slash + 1;
    }
    *parent = cur;
    *base = p;
    return 0;
}

/* The handle of name in parent itself (not what a symlink points to). */
static struct glfs_object *lookup(struct gl_volume *gv, struct glfs_object *parent,
                                  const char *name, struct stat *st, int *rc)
{
    struct glfs_object *o;

    errno = 0;
    o = glfs_h_lookupat(gv->fs, parent, name, st, 0);
    *rc = o ? 0 : neg_errno();
    return o;
}

/* Handle of a whole relative path ("" = the root), which must be a directory. */
static int get_dir(struct gl_volume *gv, const char *rel, struct glfs_object **out)
{
    struct glfs_object *parent, *o;
    const char *base;
    struct stat st;
    int rc;

    if (!rel || !*rel) {
        *out = gv->root;
        return 0;
    }
    if ((rc = walk_parent(gv, rel, &parent, &base)) < 0)
        return rc;
    o = lookup(gv, parent, base, &st, &rc);
    put_obj(gv, parent);
    if (o && !S_ISDIR(st.st_mode)) {
        glfs_h_close(o);
        return type_err(&st);
    }
    *out = o;
    return rc;
}

/* ---- volume ---- */

static void gl_close(struct be_volume *v)
{
    if (!v)
        return;
    for (int i = 0; i < GL_DIR_FDS; i++)
        if (GV(v)->dirs[i].fd)
            glfs_closedir(GV(v)->dirs[i].fd);
    pthread_mutex_destroy(&GV(v)->dir_mu);
    if (GV(v)->root)
        glfs_h_close(GV(v)->root);
    struct gl_session *s = GV(v)->session;
    glfs_t *fs = GV(v)->fs;
    if (s) {
        pthread_mutex_lock(&pool_mu);
        if (--s->refs > 0) {
            fs = NULL;
        } else {
            struct gl_session **at = &pool;
            while (*at != s)
                at = &(*at)->next;
            *at = s->next;
            free(s);
        }
        pthread_mutex_unlock(&pool_mu);
    }
    if (fs)
        glfs_fini(fs); /* ~10 s: it waits for the client's event threads */
    free(GV(v));
}

/* A pooled session of server and volume, counted (0), or none yet (-1). */
static int pool_take(struct gl_volume *gv, const char *server, const char *volume)
{
    pthread_mutex_lock(&pool_mu);
    struct gl_session *s = pool;
    while (s && (strcmp(s->server, server) || strcmp(s->volume, volume)))
        s = s->next;
    if (s) {
        s->refs++;
        gv->fs = s->fs;
        gv->session = s;
    }
    pthread_mutex_unlock(&pool_mu);
    return s ? 0 : -1;
}

/* Pool the volume's new session (unpooled when there is no memory for it). */
static void pool_put(struct gl_volume *gv, const char *server, const char *volume)
{
    struct gl_session *s = calloc(1, sizeof *s);
    if (!s)
        return;
    snprintf(s->server, sizeof s->server, "%s", server);
    snprintf(s->volume, sizeof s->volume, "%s", volume);
    s->fs = gv->fs;
    s->refs = 1;
    pthread_mutex_lock(&pool_mu);
    s->next = pool;
    pool = s;
    pthread_mutex_unlock(&pool_mu);
    gv->session = s;
}

static int connect_volume(struct gl_volume *gv, const char *server, const char *volume,
                          const char *log, struct st_err *e)
{
    int rc;

    errno = 0;
    if (!(gv->fs = glfs_new(volume)) ||
        glfs_set_volfile_server(gv->fs, "tcp", server, GLUSTERD_PORT) != 0 ||
        glfs_set_logging(gv->fs, log, GFAPI_LOG_WARNING) != 0) {
        rc = neg_errno();
        be_fail(e, rc, gv->label);
        return rc;
    }
    /* glfs_init returns 1, not -1, for some failures: anything non-zero failed. */
    errno = 0;
    if (glfs_init(gv->fs) != 0) {
        rc = neg_errno();
        st_fail(e, rc == -ENOENT ? ST_NOT_FOUND : ST_UNAVAILABLE,
                "%s: cannot connect to the gluster volume: %s", gv->label, strerror(-rc));
        return rc;
    }
    return 0;
}

static const char *param(const struct be_params *p, const char *key)
{
    const char *s = json_string_value(json_object_get(p->params, key));
    return s && *s ? s : NULL;
}

static int gl_open(const struct be_params *p, struct be_volume **out, struct st_err *e)
{
    const char *root = param(p, "path") ? param(p, "path") : "/";
    const char *server = param(p, "server"), *volume = param(p, "volume");
    char log[PATH_MAX] = "/dev/null";
    struct gl_volume *gv;
    struct stat st;
    int rc;

    if (!server || !volume)
        return st_fail_field(e, ST_INVALID, "volume",
                             "a gluster volume needs a server and a volume name"),
               -EINVAL;
    if (p->env && p->env->state_dir && p->volume_id)
        snprintf(log, sizeof log, "%s/gluster-%s.log", p->env->state_dir, p->volume_id);
    if (root[0] != '/' || strlen(root) >= PATH_MAX)
        return st_fail_field(e, ST_INVALID, "root", "root must be absolute in the volume"), -EINVAL;
    if (!(gv = calloc(1, sizeof *gv)))
        return st_fail(e, ST_INTERNAL, "out of memory"), -ENOMEM;
    pthread_mutex_init(&gv->dir_mu, NULL);
    snprintf(gv->label, sizeof gv->label, "%s:%s%s", server, volume, strcmp(root, "/") ? root : "");
    /* Two first opens at once may both connect: each is then pooled, neither is wrong. */
    if (pool_take(gv, server, volume) != 0) {
        if ((rc = connect_volume(gv, server, volume, log, e)) < 0)
            goto fail;
        pool_put(gv, server, volume);
    }
    errno = 0;
    if (!(gv->root = glfs_h_lookupat(gv->fs, NULL, root, &st, 0))) {
        rc = neg_errno();
        be_fail(e, rc, gv->label);
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = -ENOTDIR;
        be_fail(e, rc, gv->label);
        goto fail;
    }
    *out = (struct be_volume *)(void *)gv;
    return 0;
fail:
    /* Slow (see gl_close), but a failed session still owns threads and ~14 MiB. */
    gl_close((struct be_volume *)(void *)gv);
    return rc;
}

static int gl_statvfs(struct be_volume *v, struct be_space *out, struct st_err *e)
{
    struct statvfs sv;
    int rc;

    errno = 0;
    if (glfs_h_statfs(GV(v)->fs, GV(v)->root, &sv) != 0) {
        rc = neg_errno();
        be_fail(e, rc, GV(v)->label);
        return rc;
    }
    out->total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    out->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    out->readonly = (sv.f_flag & ST_RDONLY) != 0;
    return 0;
}

/* The layout every write goes through is real directories, never symlinks. */
static int check_layout(struct gl_volume *gv, struct st_err *e)
{
    static const char *const layout[] = {"images", "clones", ".staging"};
    struct glfs_object *o;
    struct stat st;
    int rc;

    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++) {
        if (!(o = lookup(gv, gv->root, layout[i], &st, &rc)))
            return st_fail_errno(e, -rc, "%s: %s", gv->label, layout[i]), rc;
        glfs_h_close(o);
        if (S_ISLNK(st.st_mode))
            return st_fail(e, ST_UNAVAILABLE, "%s: %s is a symbolic link, not a directory",
                           gv->label, layout[i]),
                   -ELOOP;
        if (!S_ISDIR(st.st_mode))
            return st_fail(e, ST_UNAVAILABLE, "%s: %s is not a directory", gv->label, layout[i]),
                   -ENOTDIR;
    }
    return 0;
}

/* Reachable: the root answers a stat and a statfs, and its layout is intact. Brick
 * liveness (degraded, not broken) comes from probe_gluster, which asks glusterd. */
static int gl_health(struct be_volume *v, struct st_err *e)
{
    struct be_space sp = {0};
    struct stat st;
    int rc;

    errno = 0;
    if (glfs_h_stat(GV(v)->fs, GV(v)->root, &st) != 0) {
        rc = neg_errno();
        be_fail(e, rc, GV(v)->label);
        return rc;
    }
    if ((rc = gl_statvfs(v, &sp, e)) < 0)
        return rc;
    if (sp.readonly)
        return st_fail(e, ST_UNAVAILABLE, "%s: volume is read-only", GV(v)->label), -EROFS;
    return check_layout(GV(v), e);
}

/* ---- files ---- */

static int open_existing(struct gl_volume *gv, struct glfs_object *parent, const char *base,
                         int flags, glfs_fd_t **fd)
{
    struct glfs_object *o;
    struct stat st;
    int rc;

    if (!(o = lookup(gv, parent, base, &st, &rc)))
        return rc;
    if (!S_ISREG(st.st_mode)) {
        rc = S_ISLNK(st.st_mode) ? -ELOOP : S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    } else {
        errno = 0;
        if (!(*fd = glfs_h_open(gv->fs, o, flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW))))
            rc = neg_errno();
    }
    glfs_h_close(o);
    return rc;
}

/* Like open(2) with O_NOFOLLOW: O_CREAT creates the last component, O_EXCL refuses an
 * existing one; without O_EXCL an existing regular file is opened. */
static int open_at(struct gl_volume *gv, struct glfs_object *parent, const char *base, int flags,
                   mode_t mode, glfs_fd_t **fd)
{
    struct glfs_object *o;
    struct stat st;
    int rc, tries;

    if (!(flags & O_CREAT))
        return open_existing(gv, parent, base, flags, fd);
    for (tries = 0; tries < 2; tries++) {
        if (!(flags & O_EXCL) && (rc = open_existing(gv, parent, base, flags, fd)) != -ENOENT)
            return rc;
        errno = 0;
        o = glfs_h_creat_open(gv->fs, parent, base, flags | O_EXCL, mode, &st, fd);
        rc = o ? 0 : neg_errno();
        if (o)
            glfs_h_close(o);
        /* Lost a race with another creator: open what it made (unless O_EXCL). */
        if (rc != -EEXIST || (flags & O_EXCL))
            return rc;
    }
    return rc;
}

static int gl_open_file(struct be_volume *v, const char *rel, int flags, mode_t mode,
                        struct be_file **out)
{
    struct gl_volume *gv = GV(v);
    struct glfs_object *parent;
    struct gl_file *gf;
    const char *base;
    glfs_fd_t *fd = NULL;
    int rc;

    if ((rc = walk_parent(gv, rel, &parent, &base)) < 0)
        return rc;
    rc = open_at(gv, parent, base, flags, mode, &fd);
    put_obj(gv, parent);
    if (rc < 0)
        return rc;
    if (!(gf = malloc(sizeof *gf))) {
        glfs_close(fd);
        return -ENOMEM;
    }
    gf->fd = fd;
    *out = (struct be_file *)(void *)gf;
    return 0;
}

static int gl_close_file(struct be_file *f)
{
    int rc = 0;

    if (!f)
        return 0;
    errno = 0;
    if (glfs_close(GF(f)->fd) != 0)
        rc = neg_errno();
    free(GF(f));
    return rc;
}

static int off_ok(uint64_t off, uint64_t len)
{
    return off <= (uint64_t)INT64_MAX && len <= (uint64_t)INT64_MAX - off;
}

static ssize_t gl_pread(struct be_file *f, void *buf, size_t len, uint64_t off)
{
    ssize_t n;

    if (!off_ok(off, len))
        return -EINVAL;
    errno = 0;
    n = glfs_pread(GF(f)->fd, buf, len, (off_t)off, 0, NULL);
    return n < 0 ? neg_errno() : n;
}

static ssize_t gl_pwrite(struct be_file *f, const void *buf, size_t len, uint64_t off)
{
    ssize_t n;

    if (!off_ok(off, len))
        return -EINVAL;
    errno = 0;
    n = glfs_pwrite(GF(f)->fd, buf, len, (off_t)off, 0, NULL, NULL);
    return n < 0 ? neg_errno() : n;
}

static int gl_fsync(struct be_file *f)
{
    errno = 0;
    return glfs_fsync(GF(f)->fd, NULL, NULL) != 0 ? neg_errno() : 0;
}

static int gl_fstat(struct be_file *f, struct stat *st)
{
    errno = 0;
    return glfs_fstat(GF(f)->fd, st) != 0 ? neg_errno() : 0;
}

static int gl_ftruncate(struct be_file *f, uint64_t len)
{
    if (len > (uint64_t)INT64_MAX)
        return -EINVAL;
    errno = 0;
    return glfs_ftruncate(GF(f)->fd, (off_t)len, NULL, NULL) != 0 ? neg_errno() : 0;
}

/* Without seek support in the graph (some translators answer EINVAL/ENOTSUP), the
 * whole file is one data extent: correct, just not sparse-aware. */
static int whole_file(struct be_file *f, uint64_t off, uint64_t *data, uint64_t *hole)
{
    struct stat st;
    int rc;

    if ((rc = gl_fstat(f, &st)) < 0)
        return rc;
    if (off >= (uint64_t)st.st_size)
        return -ENXIO;
    *data = off;
    *hole = (uint64_t)st.st_size;
    return 0;
}

static int gl_next_data(struct be_file *f, uint64_t off, uint64_t *data, uint64_t *hole)
{
    off_t d, h;
    int rc;

    if (off > (uint64_t)INT64_MAX)
        return -ENXIO;
    errno = 0;
    if ((d = glfs_lseek(GF(f)->fd, (off_t)off, SEEK_DATA)) < 0) {
        rc = neg_errno();
        if (rc == -EINVAL || rc == -ENOTSUP || rc == -EOPNOTSUPP || rc == -ENOSYS)
            return whole_file(f, off, data, hole);
        return rc;
    }
    errno = 0;
    if ((h = glfs_lseek(GF(f)->fd, d, SEEK_HOLE)) < 0)
        return neg_errno();
    *data = (uint64_t)d;
    *hole = (uint64_t)h;
    return 0;
}

/* discard is gfapi's fallocate(PUNCH_HOLE | KEEP_SIZE). */
static int gl_punch_hole(struct be_file *f, uint64_t off, uint64_t len)
{
    if (!off_ok(off, len) || len > SIZE_MAX)
        return -EINVAL;
    errno = 0;
    return glfs_discard(GF(f)->fd, (off_t)off, (size_t)len) != 0 ? neg_errno() : 0;
}

static int gl_kernel_fd(struct be_file *f)
{
    (void)f;
    return -1;
}

/* ---- names ---- */

static int gl_stat(struct be_volume *v, const char *rel, struct stat *st)
{
    struct gl_volume *gv = GV(v);
    struct glfs_object *parent, *o;
    const char *base;
    int rc;

    if (!rel || !*rel) {
        errno = 0;
        return glfs_h_stat(gv->fs, gv->root, st) != 0 ? neg_errno() : 0;
    }
    if ((rc = walk_parent(gv, rel, &parent, &base)) < 0)
        return rc;
    if ((o = lookup(gv, parent, base, st, &rc)))
        glfs_h_close(o);
    put_obj(gv, parent);
    return rc;
}

static int gl_mkdir(struct be_volume *v, const char *rel, mode_t mode)
{
    struct gl_volume *gv = GV(v);
    struct glfs_object *parent, *o;
    const char *base;
    struct stat st;
    int rc;

    if ((rc = walk_parent(gv, rel, &parent, &base)) < 0)
        return rc;
    errno = 0;
    o = glfs_h_mkdir(gv->fs, parent, base, mode, &st);
    rc = o ? 0 : neg_errno();
    if (o)
        glfs_h_close(o);
    /* EEXIST is success only for a real directory, not a symlink to one. */
    if (rc == -EEXIST && (o = lookup(gv, parent, base, &st, &rc))) {
        rc = S_ISDIR(st.st_mode) ? 0 : -EEXIST;
        glfs_h_close(o);
    }
    put_obj(gv, parent);
    return rc;
}

/* No RENAME_NOREPLACE in gfapi. A regular file gets a second name with link(), which
 * fails with EEXIST atomically, then loses the old one; a crash in between leaves
 * both names (the staging one is cleaned at start). A directory can only be checked
 * and then renamed: a racing creator of the same target name would be replaced. */
static int rename_noreplace(struct gl_volume *gv, struct glfs_object *fdir, const char *fbase,
                            struct glfs_object *tdir, const char *tbase)
{
    struct glfs_object *src, *dst;
    struct stat st, tst;
    int rc;

    if (!(src = lookup(gv, fdir, fbase, &st, &rc)))
        return rc;
    errno = 0;
    if (S_ISREG(st.st_mode)) {
        rc = glfs_h_link(gv->fs, src, tdir, tbase) != 0 ? neg_errno() : 0;
        errno = 0;
        if (rc == 0 && glfs_h_unlink(gv->fs, fdir, fbase) != 0)
            rc = neg_errno();
    } else if ((dst = lookup(gv, tdir, tbase, &tst, &rc))) {
        glfs_h_close(dst);
        rc = -EEXIST;
    } else if (rc == -ENOENT) {
        errno = 0;
        rc = glfs_h_rename(gv->fs, fdir, fbase, tdir, tbase) != 0 ? neg_errno() : 0;
    }
    glfs_h_close(src);
    return rc;
}

static int gl_rename(struct be_volume *v, const char *from, const char *to)
{
    struct gl_volume *gv = GV(v);
    struct glfs_object *fdir, *tdir;
    const char *fbase, *tbase;
    int rc;

    if (!be_path_ok(to))
        return -EINVAL;
    if ((rc = walk_parent(gv, from, &fdir, &fbase)) < 0)
        return rc;
    if ((rc = walk_parent(gv, to, &tdir, &tbase)) == 0) {
        rc = rename_noreplace(gv, fdir, fbase, tdir, tbase);
        put_obj(gv, tdir);
    }
    put_obj(gv, fdir);
    return rc;
}

static int gl_unlink(struct be_volume *v, const char *rel)
{
    struct gl_volume *gv = GV(v);
    struct glfs_object *parent, *o;
    const char *base;
    struct stat st;
    int rc;

    if ((rc = walk_parent(gv, rel, &parent, &base)) < 0)
        return rc;
    /* glfs_h_unlink would rmdir a directory; unlink(2) does not. */
    if ((o = lookup(gv, parent, base, &st, &rc))) {
        glfs_h_close(o);
        errno = 0;
        rc = S_ISDIR(st.st_mode)                        ? -EISDIR
             : glfs_h_unlink(gv->fs, parent, base) != 0 ? neg_errno()
                                                        : 0;
    }
    put_obj(gv, parent);
    return rc;
}

static glfs_fd_t *open_dir(struct gl_volume *gv, const char *rel, int *rc)
{
    struct glfs_object *dir;
    glfs_fd_t *fd;

    if ((*rc = get_dir(gv, rel, &dir)) < 0)
        return NULL;
    errno = 0;
    if (!(fd = glfs_h_opendir(gv->fs, dir)))
        *rc = neg_errno();
    put_obj(gv, dir);
    return fd;
}

/* The session's open fd of directory rel, opened now if a slot is free; NULL when
 * there is none (the caller opens one of its own). */
static glfs_fd_t *cached_dir(struct gl_volume *gv, const char *rel)
{
    glfs_fd_t *fd = NULL;
    int i, rc;

    if (strlen(rel) >= sizeof gv->dirs[0].rel)
        return NULL;
    pthread_mutex_lock(&gv->dir_mu);
    for (i = 0; i < GL_DIR_FDS && gv->dirs[i].fd; i++)
        if (strcmp(gv->dirs[i].rel, rel) == 0)
            break;
    if (i < GL_DIR_FDS && !gv->dirs[i].fd && (gv->dirs[i].fd = open_dir(gv, rel, &rc)))
        snprintf(gv->dirs[i].rel, sizeof gv->dirs[i].rel, "%s", rel);
    if (i < GL_DIR_FDS)
        fd = gv->dirs[i].fd;
    pthread_mutex_unlock(&gv->dir_mu);
    return fd;
}

static int fsync_dir_fd(glfs_fd_t *fd)
{
    errno = 0;
    int rc = glfs_fsync(fd, NULL, NULL) != 0 ? neg_errno() : 0;
    /* Translators that cannot fsync a directory: the bricks' own filesystems journal
     * the entry operations, which is all a directory fsync adds. */
    return rc == -EINVAL || rc == -EBADF || rc == -EOPNOTSUPP || rc == -ENOSYS ? 0 : rc;
}

static int gl_fsync_dir(struct be_volume *v, const char *rel)
{
    struct gl_volume *gv = GV(v);
    glfs_fd_t *fd = cached_dir(gv, rel);
    int rc;

    /* A cached fd that fails may be of a directory replaced behind our back: a fresh
     * one decides. */
    if (fd && fsync_dir_fd(fd) == 0)
        return 0;
    if (!(fd = open_dir(gv, rel, &rc)))
        return rc;
    rc = fsync_dir_fd(fd);
    glfs_closedir(fd);
    return rc;
}

static int gl_list(struct be_volume *v, const char *reldir, be_list_fn fn, void *ud)
{
    struct gl_volume *gv = GV(v);
    struct dirent ent, *res;
    struct glfs_object *dir;
    struct stat st;
    glfs_fd_t *fd;
    int rc;

    if ((rc = get_dir(gv, reldir, &dir)) < 0)
        return rc;
    errno = 0;
    fd = glfs_h_opendir(gv->fs, dir);
    put_obj(gv, dir);
    if (!fd)
        return neg_errno();
    /* readdirplus gives each entry's own attributes (lstat semantics) in one call. */
    while (rc == 0) {
        errno = 0;
        if (glfs_readdirplus_r(fd, &st, &ent, &res) != 0) {
            rc = neg_errno();
            break;
        }
        if (!res)
            break;
        if (strcmp(ent.d_name, ".") != 0 && strcmp(ent.d_name, "..") != 0)
            rc = fn(ud, ent.d_name, &st);
    }
    glfs_closedir(fd);
    return rc;
}

/* Any client of the Gluster volume, on any host, may hold a file open: from here that
 * cannot be known, and a guess would claim a safety nobody checked. */
static int gl_open_for_writing(struct be_volume *v, const struct stat *files, size_t n,
                               unsigned char *out)
{
    (void)v, (void)files, (void)n, (void)out;
    return -EOPNOTSUPP;
}

BE_FILE_PROTOCOL(gl, be_gluster_ops)

/* gluster://server/volume[/dir] */
static int gl_from_url(const char *url, json_t **params, struct st_err *e)
{
    static const char scheme[] = "gluster://";
    char server[256], volume[256];
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return 0;
    const char *s = url + sizeof scheme - 1, *slash = strchr(s, '/');
    const char *vend = slash ? strchr(slash + 1, '/') : NULL;
    size_t sl = slash ? (size_t)(slash - s) : 0;
    size_t vl = slash ? (vend ? (size_t)(vend - slash - 1) : strlen(slash + 1)) : 0;
    if (!sl || sl >= sizeof server || !vl || vl >= sizeof volume)
        return st_fail_field(e, ST_INVALID, "url", "url must be gluster://server/volume[/dir]");
    memcpy(server, s, sl);
    server[sl] = '\0';
    memcpy(volume, slash + 1, vl);
    volume[vl] = '\0';
    *params = json_pack("{s:s, s:s, s:s}", "server", server, "volume", volume, "path",
                        vend && vend[1] ? vend : "/");
    return *params ? 1 : st_fail(e, ST_INTERNAL, "out of memory");
}

const struct backend_ops be_gluster_ops = {
    .from_url = gl_from_url,
    .parse = be_gluster_parse,
    .prepare = be_gluster_prepare,
    .same_place = be_gluster_same_place,
    .describe_place = be_gluster_describe_place,
    .own_place = be_gluster_own_place,
    .check = be_gluster_check,
    .keep_session = 1,
    .open = gl_open,
    .close = gl_close,
    .statvfs = gl_statvfs,
    .health = gl_health,
    .open_file = gl_open_file,
    .close_file = gl_close_file,
    .pread = gl_pread,
    .pwrite = gl_pwrite,
    .fsync = gl_fsync,
    .fstat = gl_fstat,
    .ftruncate = gl_ftruncate,
    .next_data = gl_next_data,
    .punch_hole = gl_punch_hole,
    .reflink = NULL,
    .copy_range = NULL,
    .kernel_fd = gl_kernel_fd,
    .stat = gl_stat,
    .mkdir = gl_mkdir,
    .rename = gl_rename,
    .unlink = gl_unlink,
    .fsync_dir = gl_fsync_dir,
    .list = gl_list,
    .open_for_writing = gl_open_for_writing,
    .stage = gl_stage,
    .flush = gl_fsync,
    .publish = gl_publish,
    .discard = gl_unlink,
    .clone = gl_clone,
    .remove = gl_remove,
    .init = gl_init,
};
