/* unmanaged.c — objects on a volume that the catalogue does not hold, and moving them in
 * (image.adopt) and out again (image.unmanage) without copying a byte.
 *
 * Where they are: an operator puts files in the root of a volume. images/, clones/ and
 * .staging/ are stowage's own (a file in images/ without a row is a crash's leftover that
 * recovery removes), and dot-entries and lost+found are never images. Adopting is a
 * rename from the root into images/<uuid>.<fmt> (the backend's publish: it never
 * replaces, then makes the name durable); releasing renames it back under the name it
 * had, which the row keeps (its origin).
 *
 * What makes an object unsafe: not a regular file, a symlink, a hard link (another name
 * could still write to it), refused by the format inspector (headers only), or open for
 * writing by some process. The last one only the backend can answer; where it cannot
 * (Gluster: any client anywhere may hold the file), the object is reported as not safe
 * with that reason, but adopting it is not refused: every check that can be made is.
 *
 * A scan is cached per volume: an object whose inode, size and times are unchanged keeps
 * its inspector verdict, so a second listing costs a directory read and the writer check.
 * Where the backend can watch the root (watch_arm/watch_poll) and its watch saw nothing
 * since the last full scan, not even an open, the files are as that scan found them,
 * their writers too, and the listing costs one poll; the volume's catalogue rows are read
 * again only when the catalogue's generation moved. */
#include "core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The inspector's verdict on one object and the identity it was given for. */
struct verdict {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    struct core_unmanaged u; /* without the writer check */
};

struct scan_cache {
    char volume_id[DB_ID];
    struct verdict *v; /* sorted by name */
    size_t n;
    unsigned char *writers;         /* v[i] was open for writing at the last scan */
    struct core_unmanaged *managed; /* the volume's images, listed as already managed */
    size_t n_managed;
    uint64_t gen;                  /* what a listing of it shows: changes with anything in it */
    uint64_t rows_gen;             /* the catalogue's generation when managed was read */
    struct be_watch *watch;        /* the backend's watch of the root, NULL when none */
    const struct backend_ops *ops; /* whose watch it is */
    int fresh;                     /* the watch has watched since a complete full scan */
    int watch_failed;              /* arming failed (said once, until it works again) */
    struct scan_cache *next;
};

struct core_scans {
    pthread_mutex_t mu;
    uint64_t tick; /* every scan_cache gen is a fresh tick: a max over volumes is unique */
    struct scan_cache *vols;
};

int core_scans_new(struct stowage *st)
{
    if (!(st->scans = calloc(1, sizeof *st->scans)))
        return -1;
    pthread_mutex_init(&st->scans->mu, NULL);
    return 0;
}

void core_scans_free(struct stowage *st)
{
    if (!st->scans)
        return;
    for (struct scan_cache *c = st->scans->vols, *next; c; c = next) {
        next = c->next;
        if (c->watch)
            c->ops->watch_close(c->watch);
        free(c->v);
        free(c->writers);
        free(c->managed);
        free(c);
    }
    pthread_mutex_destroy(&st->scans->mu);
    free(st->scans);
    st->scans = NULL;
}

static int is_namespace(const char *name)
{
    return name[0] == '.' || strcmp(name, "images") == 0 || strcmp(name, "clones") == 0 ||
           strcmp(name, "lost+found") == 0;
}

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m)                 ? "a directory"
           : S_ISFIFO(m)              ? "a FIFO"
           : S_ISSOCK(m)              ? "a socket"
           : S_ISCHR(m) || S_ISBLK(m) ? "a device node"
                                      : "not a plain file";
}

/* What adopting the object would meet, except its writers. */
static void judge(struct stowage *st, const struct core_vol_ref *v, const char *name,
                  const struct stat *sb, struct core_unmanaged *u)
{
    struct be_file *f;
    struct fmt_info info;
    struct st_err e;

    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    if (S_ISLNK(sb->st_mode)) {
        snprintf(u->reason, sizeof u->reason, "is a symbolic link");
        return;
    }
    if (!S_ISREG(sb->st_mode)) {
        snprintf(u->reason, sizeof u->reason, "is %s, not a regular file", kind_of(sb->st_mode));
        return;
    }
    u->virtual_size = (uint64_t)sb->st_size;
    u->actual_size = (uint64_t)sb->st_blocks * 512;
    if (sb->st_nlink > 1) {
        snprintf(u->reason, sizeof u->reason, "is a hard link (%llu names)",
                 (unsigned long long)sb->st_nlink);
        return;
    }
    int rc = v->ops->open_file(v->be, name, O_RDONLY, 0, &f);
    if (rc < 0) {
        snprintf(u->reason, sizeof u->reason, "cannot be opened: %s", strerror(-rc));
        return;
    }
    rc = core_inspect(v, f, NULL, st->cfg.max_image_size, 0, &info, &e);
    v->ops->close_file(f);
    if (rc) {
        snprintf(u->reason, sizeof u->reason, "cannot be inspected: %s", e.msg);
        return;
    }
    snprintf(u->format, sizeof u->format, "%s", fmt_name(info.format));
    if (info.virtual_size)
        u->virtual_size = info.virtual_size;
    if (!fmt_accepted(&info)) {
        snprintf(u->reason, sizeof u->reason, "is refused by the format inspector: %s: %s",
                 fmt_reason_str(info.reason), info.detail);
        return;
    }
    u->safe = 1;
}

/* What the writer check says of a judged regular file: u->writers_unknown when the
 * backend cannot tell, else writing. */
static void mark_writers(struct core_unmanaged *u, int writing)
{
    if (u->writers_unknown) {
        if (u->safe)
            snprintf(u->reason, sizeof u->reason,
                     "whether it is open for writing cannot be known on this volume "
                     "(any of its clients may hold it)");
        u->safe = 0;
    } else if (writing) {
        snprintf(u->reason, sizeof u->reason, "is open for writing");
        u->safe = 0;
    }
}

/* The writer check of one regular file (its stat in sb). */
static int check_writers(const struct core_vol_ref *v, struct core_unmanaged *u,
                         const struct stat *sb, struct st_err *e)
{
    unsigned char w = 0;
    int rc = v->ops->open_for_writing(v->be, sb, 1, &w);
    if (rc < 0 && rc != -EOPNOTSUPP)
        return be_fail(e, rc, "look for writers");
    u->writers_unknown = rc == -EOPNOTSUPP;
    mark_writers(u, w);
    return 0;
}

/* The root's entries as the backend lists them (names beside their stats). */
struct listing {
    char (*names)[256];
    struct stat *sbs;
    size_t n, cap;
};

static int collect(void *ud, const char *name, const struct stat *sb)
{
    struct listing *l = ud;
    if (is_namespace(name) || strlen(name) >= 256)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        char(*names)[256] = realloc(l->names, cap * sizeof *names);
        if (names)
            l->names = names;
        struct stat *sbs = realloc(l->sbs, cap * sizeof *sbs);
        if (sbs)
            l->sbs = sbs;
        if (!names || !sbs)
            return -ENOMEM;
        l->cap = cap;
    }
    snprintf(l->names[l->n], 256, "%s", name);
    l->sbs[l->n++] = *sb;
    return 0;
}

static int same_identity(const struct verdict *c, const struct stat *sb)
{
    return c->dev == sb->st_dev && c->ino == sb->st_ino && c->size == sb->st_size &&
           c->mtime.tv_sec == sb->st_mtim.tv_sec && c->mtime.tv_nsec == sb->st_mtim.tv_nsec &&
           c->ctime.tv_sec == sb->st_ctim.tv_sec && c->ctime.tv_nsec == sb->st_ctim.tv_nsec &&
           S_ISREG(sb->st_mode);
}

static struct scan_cache *cache_of(struct stowage *st, const char *volume_id)
{
    for (struct scan_cache *c = st->scans->vols; c; c = c->next)
        if (strcmp(c->volume_id, volume_id) == 0)
            return c;
    struct scan_cache *c = calloc(1, sizeof *c);
    if (c) {
        snprintf(c->volume_id, sizeof c->volume_id, "%s", volume_id);
        c->next = st->scans->vols;
        st->scans->vols = c;
    }
    return c;
}

/* The objects to judge afresh, shared by the threads that judge them: a cold scan waits
 * on the device for each file's headers, so several reads in flight make it faster even
 * on one core. */
#define JUDGES 8
#define JUDGE_ALONE 32 /* fewer files than this: no threads */

struct judging {
    struct stowage *st;
    const struct core_vol_ref *v;
    struct verdict *fresh;
    const struct listing *l;
    const size_t *todo;
    size_t n;
    atomic_size_t next;
};

static void *judge_some(void *ud)
{
    struct judging *j = ud;
    for (size_t k; (k = atomic_fetch_add(&j->next, 1)) < j->n;) {
        size_t i = j->todo[k];
        judge(j->st, j->v, j->l->names[i], &j->l->sbs[i], &j->fresh[i].u);
    }
    return NULL;
}

static void judge_all(struct judging *j)
{
    pthread_t t[JUDGES];
    size_t started = 0;
    if (j->n >= JUDGE_ALONE)
        while (started < JUDGES && pthread_create(&t[started], NULL, judge_some, j) == 0)
            started++;
    judge_some(j); /* this thread takes part (and does it all when no thread started) */
    for (size_t i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}

/* The volume's images, listed as already managed. */
static int read_managed(struct stowage *st, const char *volume_id, struct core_unmanaged **out,
                        size_t *n, struct st_err *e)
{
    struct db_image *rows = NULL;
    size_t nr = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_list_volume(c, volume_id, &rows, &nr, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    struct core_unmanaged *us = calloc(nr ? nr : 1, sizeof *us);
    if (!us) {
        free(rows);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < nr; i++) {
        struct core_unmanaged *u = &us[i];
        core_image_path(&rows[i], u->name, sizeof u->name);
        snprintf(u->managed_uuid, sizeof u->managed_uuid, "%s", rows[i].uuid);
        snprintf(u->format, sizeof u->format, "%s", rows[i].format);
        u->virtual_size = rows[i].virtual_size;
        u->actual_size = rows[i].actual_size;
        snprintf(u->reason, sizeof u->reason, "already managed");
    }
    free(rows);
    *out = us;
    *n = nr;
    return 0;
}

static int by_listed_name(const void *a, const void *b, void *ud)
{
    const char(*names)[256] = ud;
    return strcmp(names[*(const size_t *)a], names[*(const size_t *)b]);
}

/* The listing sorted by name (names and stats permuted together). */
static int sort_listing(struct listing *l)
{
    size_t *idx = malloc((l->n ? l->n : 1) * sizeof *idx);
    char(*names)[256] = malloc((l->n ? l->n : 1) * sizeof *names);
    struct stat *sbs = malloc((l->n ? l->n : 1) * sizeof *sbs);
    if (!idx || !names || !sbs) {
        free(idx);
        free(names);
        free(sbs);
        return -1;
    }
    for (size_t i = 0; i < l->n; i++)
        idx[i] = i;
    qsort_r(idx, l->n, sizeof *idx, by_listed_name, l->names);
    for (size_t i = 0; i < l->n; i++) {
        memcpy(names[i], l->names[idx[i]], sizeof names[i]);
        sbs[i] = l->sbs[idx[i]];
    }
    free(idx);
    free(l->names);
    free(l->sbs);
    l->names = names;
    l->sbs = sbs;
    l->cap = l->n;
    return 0;
}

static void drop_watch(struct scan_cache *c)
{
    if (c->watch)
        c->ops->watch_close(c->watch);
    c->watch = NULL;
    c->fresh = 0;
}

/* Watch the root from now on, as it is now (the scan that follows looks at it all). A
 * backend that cannot watch, or a watch that fails (inotify's limits, no descriptor
 * left), leaves c without one: every listing then scans. */
static void arm_watch(const struct core_vol_ref *v, struct scan_cache *c)
{
    if (c->watch && c->ops != v->ops)
        drop_watch(c);
    if (!v->ops->watch_arm)
        return;
    c->ops = v->ops;
    int rc = v->ops->watch_arm(v->be, "", &c->watch);
    if (rc < 0 && !c->watch_failed)
        fprintf(stderr,
                "stowaged: volume %s: cannot watch its root (%s): every manageable list scans "
                "it until a watch can be made\n",
                c->volume_id, strerror(-rc));
    c->watch_failed = rc < 0;
}

/* 1 when the files are as the last full scan found them: c's watch has seen nothing
 * since, neither a change nor an open (which could be a new writer). */
static int files_unchanged(const struct core_vol_ref *v, struct scan_cache *c)
{
    if (!c->fresh || !c->watch || c->ops != v->ops)
        return 0;
    int seen = v->ops->watch_poll(v->be, c->watch);
    if (seen < 0)
        drop_watch(c);
    return seen == 0;
}

/* The full scan: bring c's files up to date with the root's listing, the verdicts of
 * unchanged files kept, the others judged, the writers looked for. *changed is set when
 * anything listed differs. Caller holds the scans lock.
 *
 * The order is arm, inspect, poll, then the writer check, so that c is fresh only when
 * the watch proves that no later look could differ:
 * - A change to an entry (made, removed, renamed, written, truncated, chmod, touched, a
 *   link added) after the arm leaves BE_SEEN_CHANGE: if it came during the scan, the
 *   poll after the inspection sees it and c stays stale (the next list scans again);
 *   after the poll, it waits in the watch's queue for the next list.
 * - Opens cannot be told apart: our own inspection opens every changed file. The poll
 *   drops the opens it finds, and the writer check runs after it: a writer that opened
 *   before the poll and still holds the file is in /proc; one that opened before the poll
 *   and closed since left IN_CLOSE_WRITE (a change) after its open; one that opens after
 *   the poll leaves BE_SEEN_OPEN for the next list, even when the /proc pass (which is
 *   not atomic) missed it.
 * - A writer that held the file before the arm and still holds it is in /proc; its
 *   last close is a change whenever it comes. */
static int scan_files(struct stowage *st, const struct core_vol_ref *v, struct scan_cache *c,
                      int *changed, struct st_err *e)
{
    struct listing l = {0};
    struct verdict *fresh = NULL;
    size_t *todo = NULL, *reg_of = NULL, n_todo = 0, n_reg = 0, old = 0;
    unsigned char *w = NULL;
    struct stat *regs = NULL;
    int rc = -1, quiet;

    c->fresh = 0;
    arm_watch(v, c);
    int lrc = v->ops->list(v->be, "", collect, &l);
    if (lrc < 0) {
        be_fail(e, lrc, "list the volume root");
        goto out;
    }
    size_t n1 = l.n ? l.n : 1;
    if (sort_listing(&l) || !(fresh = calloc(n1, sizeof *fresh)) ||
        !(todo = malloc(n1 * sizeof *todo)) || !(w = calloc(n1, 1)) ||
        !(regs = malloc(n1 * sizeof *regs)) || !(reg_of = malloc(n1 * sizeof *reg_of))) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    if (l.n != c->n)
        *changed = 1;
    for (size_t i = 0; i < l.n; i++) { /* both sorted by name: one merge */
        const struct stat *sb = &l.sbs[i];
        while (old < c->n && strcmp(c->v[old].u.name, l.names[i]) < 0)
            old++;
        struct verdict *f = &fresh[i];
        if (old < c->n && strcmp(c->v[old].u.name, l.names[i]) == 0 &&
            same_identity(&c->v[old], sb)) {
            f->u = c->v[old].u;
        } else {
            todo[n_todo++] = i;
            *changed = 1;
        }
        f->dev = sb->st_dev;
        f->ino = sb->st_ino;
        f->size = sb->st_size;
        f->mtime = sb->st_mtim;
        f->ctime = sb->st_ctim;
    }
    struct judging j = {st, v, fresh, &l, todo, n_todo, 0};
    judge_all(&j);
    int seen = c->watch ? v->ops->watch_poll(v->be, c->watch) : -1; /* its opens: ours */
    if (seen < 0)
        drop_watch(c);
    quiet = seen >= 0 && !(seen & BE_SEEN_CHANGE);
    /* The writer check over the regular files (the others have no format). */
    for (size_t i = 0; i < l.n; i++)
        if (fresh[i].u.format[0]) {
            regs[n_reg] = l.sbs[i];
            reg_of[n_reg++] = i;
        }
    int wrc = v->ops->open_for_writing(v->be, regs, n_reg, w);
    if (wrc < 0 && wrc != -EOPNOTSUPP) {
        be_fail(e, wrc, "look for writers");
        goto out;
    }
    for (size_t k = n_reg; k-- > 0;) { /* spread to the listing's order, in place */
        unsigned char hit = wrc == 0 && w[k];
        w[k] = 0;
        w[reg_of[k]] = hit;
    }
    for (size_t i = 0; i < l.n; i++)
        fresh[i].u.writers_unknown = wrc == -EOPNOTSUPP && fresh[i].u.format[0];
    if (l.n == c->n && c->writers && memcmp(c->writers, w, l.n) != 0)
        *changed = 1;
    free(c->v);
    free(c->writers);
    c->v = fresh;
    c->n = l.n;
    c->writers = w;
    fresh = NULL;
    w = NULL;
    c->fresh = quiet;
    rc = 0;
out:
    free(l.names);
    free(l.sbs);
    free(fresh);
    free(todo);
    free(w);
    free(regs);
    free(reg_of);
    return rc;
}

/* The managed rows, read again when the catalogue's generation moved (read before the
 * rows: a change meanwhile moves it again). Comparing them keeps a change elsewhere in
 * the catalogue from renewing the gen. */
static int update_rows(struct stowage *st, struct scan_cache *c, int *changed, struct st_err *e)
{
    struct core_unmanaged *m = NULL;
    size_t nm = 0;
    uint64_t g = core_generation(st);
    if (c->managed && g == c->rows_gen)
        return 0;
    if (read_managed(st, c->volume_id, &m, &nm, e))
        return -1;
    if (!c->managed || nm != c->n_managed || memcmp(m, c->managed, nm * sizeof *m) != 0)
        *changed = 1;
    free(c->managed);
    c->managed = m;
    c->n_managed = nm;
    c->rows_gen = g;
    return 0;
}

/* c brought up to date: the files scanned unless the watch proves them unchanged, the
 * rows read unless the catalogue is. Caller holds the scans lock. */
static int refresh(struct stowage *st, const struct core_vol_ref *v, struct scan_cache *c,
                   struct st_err *e)
{
    int changed = 0;
    if (!files_unchanged(v, c) && scan_files(st, v, c, &changed, e))
        return -1;
    if (update_rows(st, c, &changed, e))
        return -1;
    if (changed || !c->gen)
        c->gen = ++st->scans->tick;
    return 0;
}

/* The root's files merged with the managed rows, both in name order, the writers of the
 * files marked (*out malloc'd). */
static int merged(const struct scan_cache *c, struct core_unmanaged **out, size_t *n,
                  struct st_err *e)
{
    struct core_unmanaged *us = malloc((c->n + c->n_managed + 1) * sizeof *us);
    if (!us)
        return st_fail(e, ST_INTERNAL, "out of memory");
    size_t i = 0, m = 0, k = 0;
    while (i < c->n || m < c->n_managed) {
        if (m == c->n_managed || (i < c->n && strcmp(c->v[i].u.name, c->managed[m].name) < 0)) {
            us[k] = c->v[i].u;
            mark_writers(&us[k++], c->writers[i]);
            i++;
        } else {
            us[k++] = c->managed[m++];
        }
    }
    *out = us;
    *n = k;
    return 0;
}

/* The volume's objects (out NULL: only its gen). */
static int look(struct stowage *st, const char *volume_id, struct core_unmanaged **out, size_t *n,
                uint64_t *gen, struct st_err *e)
{
    struct core_vol_ref v;
    int rc = -1;

    if (out) {
        *out = NULL;
        *n = 0;
    }
    if (core_volume_acquire(st, volume_id, &v, e))
        return -1;
    pthread_mutex_lock(&st->scans->mu);
    struct scan_cache *c = cache_of(st, volume_id);
    if (!c)
        st_fail(e, ST_INTERNAL, "out of memory");
    else if (refresh(st, &v, c, e) == 0 && (!out || merged(c, out, n, e) == 0)) {
        *gen = c->gen;
        rc = 0;
    }
    pthread_mutex_unlock(&st->scans->mu);
    core_volume_release(&v);
    return rc;
}

int core_unmanaged_list(struct stowage *st, const char *volume_id, struct core_unmanaged **out,
                        size_t *n, uint64_t *gen, struct st_err *e)
{
    return look(st, volume_id, out, n, gen, e);
}

int core_unmanaged_gen(struct stowage *st, const char *volume_id, uint64_t *gen, struct st_err *e)
{
    return look(st, volume_id, NULL, NULL, gen, e);
}

int core_volume_ids(struct stowage *st, const char *storage_id, char (**out)[CORE_ID], size_t *n,
                    struct st_err *e)
{
    struct db_storage s;
    struct db_volume *rows = NULL;
    size_t cnt = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_storage_get(c, storage_id, &s, e);
    if (rc == 0)
        rc = db_volume_list(c, storage_id, &rows, &cnt, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    if (!(*out = calloc(cnt ? cnt : 1, sizeof **out))) {
        free(rows);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < cnt; i++)
        snprintf((*out)[i], CORE_ID, "%s", rows[i].id);
    *n = cnt;
    free(rows);
    return 0;
}

int core_image_clone_count(struct stowage *st, const char *uuid, int64_t *n, struct st_err *e)
{
    char names[8];
    struct db_conn *c = db_acquire(st->db);
    int rc = db_clone_count_image(c, uuid, n, names, sizeof names, e);
    db_release(st->db, c);
    return rc;
}

/* ---- adopt and release ---- */

/* The object called name on v, judged afresh (no cache), its writers not looked for. */
static int judge_object(struct stowage *st, const struct core_vol_ref *v, const char *volume_id,
                        const char *name, struct stat *sb, struct core_unmanaged *u,
                        struct st_err *e)
{
    int rc;
    if (!be_path_ok(name) || strchr(name, '/') || is_namespace(name) ||
        (rc = v->ops->stat(v->be, name, sb)) == -ENOENT)
        return st_fail_field(e, ST_NOT_FOUND, "object",
                             "no object '%.200s' outside the catalogue on volume '%s'", name,
                             volume_id);
    if (rc < 0)
        return be_fail(e, rc, "stat the object");
    judge(st, v, name, sb, u);
    return 0;
}

int core_unmanaged_check(struct stowage *st, const struct core_vol_ref *v, const char *volume_id,
                         const char *name, struct core_unmanaged *u, struct st_err *e)
{
    struct stat sb;
    if (judge_object(st, v, volume_id, name, &sb, u, e))
        return -1;
    return u->format[0] ? check_writers(v, u, &sb, e) : 0;
}

/* The writers are left to image.adopt's own checks (its precheck and its run): a
 * client's lookup costs no pass over every process. */
int core_unmanaged_get(struct stowage *st, const char *volume_id, const char *name,
                       struct core_unmanaged *out, struct st_err *e)
{
    struct core_vol_ref v;
    struct stat sb;
    if (core_volume_acquire(st, volume_id, &v, e))
        return -1;
    int rc = judge_object(st, &v, volume_id, name, &sb, out, e);
    core_volume_release(&v);
    return rc;
}

/* Refuse what adopting must not take: every definite reason (a writer nobody can see is
 * reported by the scan but does not block). */
static int refuse_unsafe(const struct core_unmanaged *u, struct st_err *e)
{
    if (u->safe || (u->writers_unknown && strncmp(u->reason, "whether", 7) == 0))
        return 0;
    return st_fail_field(e, ST_INVALID, "object", "'%s' is not safe to manage: it %s", u->name,
                         u->reason);
}

int core_adopt_check(struct stowage *st, const char *volume_id, const char *object,
                     const char *name, struct st_err *e)
{
    struct core_vol_ref v;
    struct core_unmanaged u;
    struct db_image im;
    struct st_err ignore;

    if (name && core_image_by_name(st, name, &im, &ignore) == 0)
        return st_fail_field(e, ST_EXISTS, "name", "an image named '%s' already exists", name);
    if (core_volume_acquire(st, volume_id, &v, e))
        return -1;
    int rc = core_unmanaged_check(st, &v, volume_id, object, &u, e);
    if (rc == 0)
        rc = refuse_unsafe(&u, e);
    core_volume_release(&v);
    return rc;
}

/* The adopted row in 'saving', with what the adoption records: one transaction. */
static int reserve_adopted(struct stowage *st, const struct core_adoption *a,
                           const struct core_unmanaged *u, struct db_image *out, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = core_image_reserve_in(c, a->name, a->uuid, a->volume_id, a->owner, out, e);
    if (rc == 0) {
        snprintf(out->format, sizeof out->format, "%s", u->format);
        out->virtual_size = u->virtual_size;
        out->actual_size = u->actual_size;
        rc = db_image_set_data(c, out->uuid, out->format, out->virtual_size, out->actual_size, "",
                               e);
    }
    if (rc == 0)
        rc = db_image_set_adopted(c, out->uuid, a->object, a->description ? a->description : "",
                                  a->properties ? a->properties : "{}", e);
    return core_txn_end(st, c, rc, e);
}

/* One transaction: the row's new status, and also's write. */
static int settle(struct stowage *st, const char *uuid, const char *status,
                  const struct core_also *also, const struct db_image *row, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = status ? db_image_set_status(c, uuid, status, e) : db_image_delete_row(c, uuid, e);
    if (rc == 0 && also)
        rc = also->fn(c, row, also->ud, e);
    return core_txn_end(st, c, rc, e);
}

int core_image_adopt(struct stowage *st, const struct core_adoption *a, struct db_image *out,
                     struct st_err *e)
{
    struct core_vol_ref v;
    struct core_unmanaged u;
    char key[DB_ID + 300], final[128];
    int moved = 0, rc = -1;

    if (core_volume_acquire(st, a->volume_id, &v, e))
        return -1;
    snprintf(key, sizeof key, "object:%s/%s", a->volume_id, a->object);
    if (core_claim(st, key, a->object, e)) {
        core_volume_release(&v);
        return -1;
    }
    if (core_unmanaged_check(st, &v, a->volume_id, a->object, &u, e) || refuse_unsafe(&u, e))
        goto out;
    if (reserve_adopted(st, a, &u, out, e))
        goto out;
    /* From here a crash leaves a 'saving' row that recovery settles: rolled forward when
     * the file is in images/, dropped (the file still where it was) when it is not. */
    core_image_path(out, final, sizeof final);
    if ((rc = v.ops->publish(v.be, a->object, final, &moved)) < 0) {
        if (!moved) {
            be_fail(e, rc, "rename into images/");
            goto discard;
        }
        be_fail(e, rc, "fsync images/"); /* renamed: recovery rolls the row forward */
        goto out;
    }
    if ((rc = v.ops->fsync_dir(v.be, "")) < 0)
        fprintf(stderr, "stowaged: adopt %s: fsync of the volume root: %s\n", a->object,
                strerror(-rc));
    snprintf(out->status, sizeof out->status, "active");
    if ((rc = settle(st, out->uuid, "active", a->also, out, e)) == 0)
        core_bump(st);
    goto out;
discard:
    rc = -1;
    core_image_discard(st, out->uuid);
out:
    core_unclaim(st, key);
    core_volume_release(&v);
    return rc ? -1 : 0;
}

/* Where an image's file goes when it leaves: the name it came with, else its name and
 * format ("win7.qcow2"). */
static void release_name(struct stowage *st, const struct db_image *im, char *out, size_t len)
{
    struct st_err ignore;
    struct db_conn *c = db_acquire(st->db);
    if (db_image_get_origin(c, im->uuid, out, len, &ignore) || !out[0])
        snprintf(out, len, "%s.%s", im->name, im->format);
    db_release(st->db, c);
}

int core_unmanage_check(struct stowage *st, const char *name, struct st_err *e)
{
    struct db_image im;
    int64_t n = 0;
    if (core_image_by_name(st, name, &im, e) || core_image_clone_count(st, im.uuid, &n, e))
        return -1;
    if (n > 0)
        return st_fail(e, ST_IN_USE, "image '%s' is used by %lld clone%s; delete them first", name,
                       (long long)n, n == 1 ? "" : "s");
    if (strcmp(im.status, "active") != 0)
        return st_fail(e, ST_CONFLICT, "image '%s' is %s, not active", name, im.status);
    return 0;
}

static void end_release(struct stowage *st, const char *uuid)
{
    struct st_err e;
    struct db_conn *c = db_acquire(st->db);
    if (db_image_set_releasing(c, uuid, NULL, &e))
        fprintf(stderr, "stowaged: unmanage %s: %s\n", uuid, e.msg);
    db_release(st->db, c);
}

int core_image_unmanage(struct stowage *st, const char *name, const struct core_also *also,
                        char *released, size_t len, struct st_err *e)
{
    struct db_image im;
    struct core_vol_ref v;
    char key[64], path[128];
    int moved = 0, rc;

    if (core_image_by_name(st, name, &im, e))
        return -1;
    snprintf(key, sizeof key, "image:%s", im.uuid);
    if (core_claim(st, key, name, e))
        return -1;
    if ((rc = core_unmanage_check(st, name, e)) ||
        (rc = core_volume_acquire(st, im.volume_id, &v, e)))
        goto out;
    release_name(st, &im, released, len);
    core_image_path(&im, path, sizeof path);
    /* Marked first: a crash after the move leaves a releasing row whose file is back
     * under its origin, which recovery drops; before it, the file is still in images/ and
     * recovery clears the mark. Never an active row without its file. */
    struct db_conn *c = db_acquire(st->db);
    rc = db_image_set_releasing(c, im.uuid, released, e);
    db_release(st->db, c);
    if (rc) {
        core_volume_release(&v);
        goto out;
    }
    if ((rc = v.ops->publish(v.be, path, released, &moved)) < 0 && !moved) {
        if (rc == -EEXIST)
            st_fail(e, ST_EXISTS, "an object named '%s' is already on volume '%s'", released,
                    im.volume_id);
        else
            be_fail(e, rc, "rename out of images/");
        end_release(st, im.uuid);
        core_volume_release(&v);
        rc = -1;
        goto out;
    }
    if ((rc = v.ops->fsync_dir(v.be, "images")) < 0)
        fprintf(stderr, "stowaged: unmanage %s: fsync of images/: %s\n", name, strerror(-rc));
    core_volume_release(&v);
    if ((rc = settle(st, im.uuid, NULL, also, &im, e)) == 0)
        core_bump(st);
out:
    core_unclaim(st, key);
    return rc ? -1 : 0;
}

int core_image_releasing(struct stowage *st, const struct db_image *im)
{
    struct db_release *rel = NULL;
    size_t nr = 0;
    struct st_err e;
    int found = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_list_releasing(c, im->volume_id, &rel, &nr, &e);
    db_release(st->db, c);
    for (size_t k = 0; rc == 0 && k < nr; k++)
        found |= strcmp(rel[k].uuid, im->uuid) == 0;
    free(rel);
    return found;
}

/* After a restart: a release a crash cut short is finished when the file is back under
 * its origin in the root, and undone when it is still in images/ (present[i] says so for
 * rows[i]); a release whose file is in neither place is left to the caller's check. */
int core_recover_releases(struct stowage *st, const char *volume_id, const struct backend_ops *ops,
                          struct be_volume *be, const struct db_image *rows, size_t n,
                          char *present, struct st_err *e)
{
    struct db_release *rel = NULL;
    size_t nr = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_list_releasing(c, volume_id, &rel, &nr, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    for (size_t k = 0; k < nr; k++) {
        size_t i = 0;
        struct stat sb;
        while (i < n && strcmp(rows[i].uuid, rel[k].uuid) != 0)
            i++;
        if (i < n && present[i]) {
            end_release(st, rel[k].uuid);
            fprintf(stderr,
                    "stowaged: recovery: image %s (%s) stays: its release was cut short "
                    "before the file moved\n",
                    rows[i].name, rel[k].uuid);
        } else if (rel[k].origin[0] && ops->stat(be, rel[k].origin, &sb) == 0) {
            core_image_discard(st, rel[k].uuid);
            if (i < n)
                present[i] = 1; /* gone as asked: not an image without its file */
            fprintf(stderr, "stowaged: recovery: image %s released: its file is back as '%s'\n",
                    rel[k].uuid, rel[k].origin);
        }
    }
    free(rel);
    return 0;
}
