/* volume.c — live state of every volume: one prober thread per volume, one for disks.
 *
 * GET requests never probe: they read the last result under a mutex. Each volume
 * has its own thread so that one hung mount or unreachable Gluster server cannot
 * delay the others. A volume's backend session (for Gluster: the one long-lived
 * glfs_t) is opened by its prober and kept until shutdown. */
#include "core_internal.h"
#include "stowage/backend.h"
#include "stowage/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

struct vol {
    struct stowage *st;
    struct db_volume row;
    json_t *params; /* the row's backend parameters, parsed once */
    struct be_env env;
    const struct backend_ops *ops;
    struct be_volume *be;
    pthread_t thread;
    pthread_mutex_t mu;     /* guards state, row's disk ids, be, refs, recovered */
    pthread_cond_t cv;      /* wakes the prober */
    pthread_cond_t refs_cv; /* signalled when refs drops to 0 */
    int stop;
    int refs;      /* data operations borrowing be (core_volume_acquire) */
    int recovered; /* restart recovery ran on this volume since the daemon started */
    int again;     /* found broken since: recovery runs again once nothing borrows be */
    int64_t janitor_at_ms;
    struct core_vol_state state;
};

struct core_volumes {
    pthread_mutex_t mu; /* guards arr/n and the disk list */
    pthread_cond_t cv;
    struct vol **arr;
    size_t n, cap;
    struct probe_disk *disks;
    size_t n_disks;
    pthread_t disk_thread;
    int disk_thread_started;
    int stop;
};

static void set_status(struct core_vol_state *s, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_status(struct core_vol_state *s, const char *status, const char *fmt, ...)
{
    va_list ap;
    snprintf(s->status, sizeof s->status, "%s", status);
    va_start(ap, fmt);
    vsnprintf(s->status_msg, sizeof s->status_msg, fmt, ap);
    va_end(ap);
}

/* Kernel name of a block device number ("loop3"), from /sys/dev/block/M:m. */
static void dev_name_of(dev_t dev, char *out, size_t len)
{
    char link[64], target[512];
    out[0] = '\0';
    if (!dev)
        return;
    snprintf(link, sizeof link, "/sys/dev/block/%u:%u", major(dev), minor(dev));
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
        return;
    target[n] = '\0';
    const char *base = strrchr(target, '/');
    snprintf(out, len, "%s", base ? base + 1 : target);
}

/* Close the backend once no data operation borrows it. */
static void close_backend(struct vol *v)
{
    pthread_mutex_lock(&v->mu);
    while (v->refs > 0)
        pthread_cond_wait(&v->refs_cv, &v->mu);
    struct be_volume *be = v->be;
    v->be = NULL;
    pthread_mutex_unlock(&v->mu);
    if (be)
        v->ops->close(be);
}

/* Open the backend when needed; a posix root that stopped being healthy is reopened,
 * because an unmount + mount leaves the old root fd on the detached filesystem. */
static int ensure_backend(struct vol *v, struct st_err *e)
{
    const struct be_params p = {v->row.id, v->params, &v->env};

    if (v->be && v->ops->health(v->be, e) == 0)
        return 0;
    if (v->be && v->ops->keep_session)
        return -1; /* such a session reconnects by itself (never pay glfs_fini here) */
    close_backend(v);
    struct be_volume *be = NULL;
    if (v->ops->open(&p, &be, e))
        return -1;
    /* Whatever init cannot put right (a symlink in place of images/), health says. */
    v->ops->init(be);
    pthread_mutex_lock(&v->mu);
    v->be = be;
    pthread_mutex_unlock(&v->mu);
    /* What mkdir could not put right (a symlink in place of images/) leaves it broken. */
    return v->ops->health(be, e) == 0 ? 0 : -1;
}

/* Abandoned uploads are looked for every minute, or more often when they expire sooner. */
static int64_t sweep_interval_ms(struct stowage *st)
{
    int64_t half = (int64_t)st->cfg.staging_expiry_s * 500;
    return half < 1000 ? 1000 : half > 60000 ? 60000 : half;
}

/* Before the first data operation on a volume, undo what a crash left there; then,
 * now and then, expire abandoned resumable uploads. */
static void recover_and_sweep(struct vol *v)
{
    struct st_err e;
    int64_t now = core_now_ms();
    pthread_mutex_lock(&v->mu);
    if (v->again && v->refs == 0) { /* acquirers are refused until it ran */
        v->again = 0;
        v->recovered = 0;
    }
    pthread_mutex_unlock(&v->mu);
    if (!v->recovered) {
        if (core_recover_volume(v->st, v->row.id, v->ops, v->be, &e)) {
            fprintf(stderr, "stowaged: volume %s: recovery: %s\n", v->row.id, e.msg);
            return;
        }
        pthread_mutex_lock(&v->mu);
        v->recovered = 1;
        pthread_cond_broadcast(&v->refs_cv); /* wakes acquirers waiting for the first probe */
        pthread_mutex_unlock(&v->mu);
        v->janitor_at_ms = now;
    } else if (now - v->janitor_at_ms >= sweep_interval_ms(v->st)) {
        v->janitor_at_ms = now;
        if (core_expire_uploads(v->st, v->row.id, v->ops, v->be, &e))
            fprintf(stderr, "stowaged: volume %s: expiring uploads: %s\n", v->row.id, e.msg);
    }
}

static void fill_space(struct vol *v, struct core_vol_state *s)
{
    struct be_space sp;
    struct st_err e;
    if (ensure_backend(v, &e)) {
        set_status(s, "broken", "%s", e.msg);
        return;
    }
    recover_and_sweep(v);
    if (v->ops->statvfs(v->be, &sp, &e)) {
        set_status(s, "broken", "%s", e.msg);
        return;
    }
    s->total_kb = sp.total_bytes / 1024;
    s->free_kb = sp.free_bytes / 1024;
    if (sp.readonly)
        set_status(s, "broken", "volume is read-only");
}

static int state_differs(const struct core_vol_state *a, const struct core_vol_state *b)
{
    return strcmp(a->status, b->status) || strcmp(a->status_msg, b->status_msg) ||
           a->total_kb != b->total_kb || a->free_kb != b->free_kb || a->devno != b->devno ||
           !json_equal(a->details, b->details);
}

/* The backend looks at the volume from outside (mounted? bricks up?), then, unless that
 * found it broken, the session is opened (and recovery run) and asked for its space. */
static void probe_state(struct vol *v, struct core_vol_state *s)
{
    const struct be_params p = {v->row.id, v->params, &v->env};
    struct be_check chk = {0};

    v->ops->check(&p, &chk);
    set_status(s, chk.status[0] ? chk.status : "broken", "%s", chk.msg);
    s->details = chk.details;
    s->devno = chk.devno;
    dev_name_of(chk.devno, s->dev_name, sizeof s->dev_name);
    if (strcmp(s->status, "broken") != 0)
        fill_space(v, s);
}

static void probe_once(struct vol *v)
{
    struct core_vol_state *s = calloc(1, sizeof *s);
    if (!s)
        return;
    uint64_t t0 = st_mono_ns();
    probe_state(v, s);
    s->probe_us = (st_mono_ns() - t0) / 1000u;
    s->probed_at_ms = core_now_ms();

    pthread_mutex_lock(&v->mu);
    pthread_cond_broadcast(&v->refs_cv); /* a request may wait for the first result */
    int changed = state_differs(&v->state, s);
    int status_changed =
        strcmp(v->state.status, s->status) || strcmp(v->state.status_msg, s->status_msg);
    json_decref(v->state.details);
    v->state = *s;
    /* What failed while the volume was broken (an XFS shut down, every brick gone) could
     * not remove its staging file: once it is back, recovery does. */
    if (strcmp(s->status, "broken") == 0)
        v->again = 1;
    pthread_mutex_unlock(&v->mu);

    if (status_changed) {
        struct st_err e;
        struct db_conn *c = db_acquire(v->st->db);
        if (db_volume_set_status(c, v->row.id, s->status, s->status_msg, &e))
            fprintf(stderr, "stowaged: volume %s: %s\n", v->row.id, e.msg);
        db_release(v->st->db, c);
        fprintf(stderr, "stowaged: volume %s is %s%s%s\n", v->row.id, s->status,
                s->status_msg[0] ? ": " : "", s->status_msg);
    }
    if (changed)
        core_bump(v->st);
    free(s);
}

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

static void *vol_thread(void *arg)
{
    struct vol *v = arg;
    for (;;) {
        probe_once(v);
        pthread_mutex_lock(&v->mu);
        if (!v->stop)
            timed_wait(&v->cv, &v->mu, v->st->cfg.probe_ttl_ms);
        int stop = v->stop;
        pthread_mutex_unlock(&v->mu);
        if (stop)
            return NULL;
    }
}

/* Which volume each disk carries: the disk (or the md/dm device holding it) is the
 * block device of a volume's mount. Caller holds vols->mu. */
static void disk_volume(struct core_volumes *vs, const struct probe_disk *d, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < vs->n; i++) {
        struct vol *v = vs->arr[i];
        pthread_mutex_lock(&v->mu);
        int match = v->state.dev_name[0] && (strcmp(v->state.dev_name, d->name) == 0 ||
                                             strcmp(v->state.dev_name, d->holder) == 0);
        if (match)
            snprintf(out, len, "%s", v->row.id);
        pthread_mutex_unlock(&v->mu);
        if (match)
            return;
    }
}

/* Record each volume's member disks (first two: primary, secondary) when they change. */
static void update_volume_disks(struct stowage *st)
{
    struct core_volumes *vs = st->vols;
    pthread_mutex_lock(&vs->mu);
    for (size_t i = 0; i < vs->n; i++) {
        struct vol *v = vs->arr[i];
        char ids[2][96] = {"", ""};
        int k = 0;
        for (size_t d = 0; d < vs->n_disks && k < 2; d++) {
            char vid[DB_ID];
            disk_volume(vs, &vs->disks[d], vid, sizeof vid);
            if (strcmp(vid, v->row.id) == 0)
                snprintf(ids[k++], sizeof ids[0], "%s", vs->disks[d].id);
        }
        if (k == 0)
            continue; /* keep what the catalogue says while the disk is away */
        pthread_mutex_lock(&v->mu);
        int same = strcmp(v->row.primary_disk_id, ids[0]) == 0 &&
                   strcmp(v->row.secondary_disk_id, ids[1]) == 0;
        if (!same) {
            snprintf(v->row.primary_disk_id, sizeof v->row.primary_disk_id, "%s", ids[0]);
            snprintf(v->row.secondary_disk_id, sizeof v->row.secondary_disk_id, "%s", ids[1]);
        }
        pthread_mutex_unlock(&v->mu);
        if (same)
            continue;
        struct st_err e;
        struct db_conn *c = db_acquire(st->db);
        if (db_volume_set_disks(c, v->row.id, ids[0], ids[1], &e))
            fprintf(stderr, "stowaged: volume %s: %s\n", v->row.id, e.msg);
        db_release(st->db, c);
        core_bump(st);
    }
    pthread_mutex_unlock(&vs->mu);
}

static int disks_differ(const struct probe_disk *a, size_t na, const struct probe_disk *b,
                        size_t nb)
{
    if (na != nb)
        return 1;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].id, b[i].id) || strcmp(a[i].host_device, b[i].host_device) ||
            a[i].has_signature != b[i].has_signature || a[i].mounted != b[i].mounted ||
            strcmp(a[i].holder, b[i].holder))
            return 1;
    return 0;
}

static void probe_disks_once(struct stowage *st)
{
    struct core_volumes *vs = st->vols;
    struct probe_disk *d = NULL;
    size_t n = 0;
    struct st_err e;

    if (probe_disks(&d, &n, &e)) {
        fprintf(stderr, "stowaged: disk probe: %s\n", e.msg);
        return;
    }
    pthread_mutex_lock(&vs->mu);
    int changed = disks_differ(vs->disks, vs->n_disks, d, n);
    free(vs->disks);
    vs->disks = d;
    vs->n_disks = n;
    pthread_mutex_unlock(&vs->mu);
    update_volume_disks(st);
    if (changed)
        core_bump(st);
}

static void *disk_thread(void *arg)
{
    struct stowage *st = arg;
    struct core_volumes *vs = st->vols;
    for (;;) {
        probe_disks_once(st);
        pthread_mutex_lock(&vs->mu);
        if (!vs->stop)
            timed_wait(&vs->cv, &vs->mu, st->cfg.probe_ttl_ms);
        int stop = vs->stop;
        pthread_mutex_unlock(&vs->mu);
        if (stop)
            return NULL;
    }
}

static struct vol *find_locked(struct core_volumes *vs, const char *id, size_t *idx)
{
    for (size_t i = 0; i < vs->n; i++) {
        if (strcmp(vs->arr[i]->row.id, id) == 0) {
            if (idx)
                *idx = i;
            return vs->arr[i];
        }
    }
    return NULL;
}

static void vol_free(struct vol *v)
{
    pthread_mutex_destroy(&v->mu);
    pthread_cond_destroy(&v->cv);
    pthread_cond_destroy(&v->refs_cv);
    json_decref(v->params);
    free(v);
}

/* Room for one more volume in vs->arr. Caller holds vs->mu. */
static int grow_locked(struct core_volumes *vs)
{
    if (vs->n < vs->cap)
        return 0;
    size_t cap = vs->cap ? vs->cap * 2 : 8;
    struct vol **arr = realloc(vs->arr, cap * sizeof *arr);
    if (!arr)
        return -1;
    vs->arr = arr;
    vs->cap = cap;
    return 0;
}

int core_volumes_add(struct stowage *st, const struct db_volume *row, struct st_err *e)
{
    struct core_volumes *vs = st->vols;
    struct vol *v = calloc(1, sizeof *v);

    if (!v)
        return st_fail(e, ST_INTERNAL, "out of memory");
    v->st = st;
    v->row = *row;
    v->ops = be_kind_ops(row->kind, e);
    if (!v->ops) {
        free(v);
        return -1;
    }
    v->params = core_volume_params(row);
    v->env = (struct be_env){st->cfg.state_dir, st->cfg.gluster_cli, st->cfg.gluster_timeout_ms};
    snprintf(v->state.status, sizeof v->state.status, "unknown");
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    pthread_cond_init(&v->refs_cv, NULL);

    pthread_mutex_lock(&vs->mu);
    int rc = 0;
    if (find_locked(vs, row->id, NULL))
        rc = st_fail(e, ST_EXISTS, "volume '%s' is already tracked", row->id);
    else if (grow_locked(vs))
        rc = st_fail(e, ST_INTERNAL, "out of memory");
    else if (pthread_create(&v->thread, NULL, vol_thread, v))
        rc = st_fail(e, ST_INTERNAL, "cannot start prober for '%s'", row->id);
    else
        vs->arr[vs->n++] = v;
    pthread_mutex_unlock(&vs->mu);
    if (rc)
        vol_free(v);
    return rc;
}

static void vol_destroy(struct vol *v)
{
    pthread_mutex_lock(&v->mu);
    v->stop = 1;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->mu);
    pthread_join(v->thread, NULL);
    close_backend(v);
    json_decref(v->state.details);
    vol_free(v);
}

static void *vol_destroy_thread(void *v)
{
    vol_destroy(v);
    return NULL;
}

void core_volumes_remove(struct stowage *st, const char *id)
{
    struct core_volumes *vs = st->vols;
    size_t idx;
    pthread_mutex_lock(&vs->mu);
    struct vol *v = find_locked(vs, id, &idx);
    if (v)
        vs->arr[idx] = vs->arr[--vs->n];
    pthread_mutex_unlock(&vs->mu);
    if (v)
        vol_destroy(v);
    core_bump(st);
}

int core_volumes_start(struct stowage *st, struct st_err *e)
{
    struct db_volume *rows = NULL;
    size_t n = 0;

    st->vols = calloc(1, sizeof *st->vols);
    if (!st->vols)
        return st_fail(e, ST_INTERNAL, "out of memory");
    pthread_mutex_init(&st->vols->mu, NULL);
    pthread_cond_init(&st->vols->cv, NULL);

    struct db_conn *c = db_acquire(st->db);
    int rc = db_volume_list(c, NULL, &rows, &n, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = core_volumes_add(st, &rows[i], e);
    free(rows);
    if (rc)
        return -1;
    if (pthread_create(&st->vols->disk_thread, NULL, disk_thread, st))
        return st_fail(e, ST_INTERNAL, "cannot start disk prober");
    st->vols->disk_thread_started = 1;
    return 0;
}

void core_volumes_stop(struct stowage *st)
{
    struct core_volumes *vs = st->vols;
    if (!vs)
        return;
    pthread_mutex_lock(&vs->mu);
    vs->stop = 1;
    pthread_cond_broadcast(&vs->cv);
    pthread_mutex_unlock(&vs->mu);
    if (vs->disk_thread_started)
        pthread_join(vs->disk_thread, NULL);
    /* glfs_fini takes ~10 s per session: close all volumes at once, not one after another. */
    struct closer {
        pthread_t t;
        int started;
    } *c = calloc(vs->n ? vs->n : 1, sizeof *c);
    for (size_t i = 0; i < vs->n; i++) {
        if (c && pthread_create(&c[i].t, NULL, vol_destroy_thread, vs->arr[i]) == 0)
            c[i].started = 1;
        else
            vol_destroy(vs->arr[i]);
    }
    for (size_t i = 0; c && i < vs->n; i++)
        if (c[i].started)
            pthread_join(c[i].t, NULL);
    free(c);
    free(vs->arr);
    free(vs->disks);
    pthread_mutex_destroy(&vs->mu);
    pthread_cond_destroy(&vs->cv);
    free(vs);
    st->vols = NULL;
}

int core_volume_acquire(struct stowage *st, const char *volume_id, struct core_vol_ref *out,
                        struct st_err *e)
{
    struct core_volumes *vs = st->vols;
    int rc = 0;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&vs->mu);
    struct vol *v = find_locked(vs, volume_id, NULL);
    if (!v) {
        pthread_mutex_unlock(&vs->mu);
        return st_fail(e, ST_NOT_FOUND, "volume '%s' not found", volume_id);
    }
    pthread_mutex_lock(&v->mu);
    v->refs++; /* keeps v alive while we may wait below */
    pthread_mutex_unlock(&vs->mu);
    /* Right after start the first probe (open + recovery) may still be running, and a
     * recovery that failed is tried again by the next probe: a request then waits for it
     * a little rather than failing, unless the probe found the volume broken. */
    if (!v->recovered && strcmp(v->state.status, "broken") != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        while (!v->recovered && !v->stop && strcmp(v->state.status, "broken") != 0)
            if (pthread_cond_timedwait(&v->refs_cv, &v->mu, &ts) == ETIMEDOUT)
                break;
    }
    if (--v->refs == 0)
        pthread_cond_broadcast(&v->refs_cv);
    if (v->stop || !v->be || !v->recovered)
        rc = st_fail(e, ST_UNAVAILABLE, "volume '%s' is not ready%s%s", volume_id,
                     v->state.status_msg[0] ? ": " : "", v->state.status_msg);
    else if (strcmp(v->state.status, "broken") == 0)
        rc =
            st_fail(e, ST_UNAVAILABLE, "volume '%s' is broken: %s", volume_id, v->state.status_msg);
    if (rc == 0) {
        v->refs++;
        out->ops = v->ops;
        out->be = v->be;
        out->priv = v;
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}

void core_volume_release(struct core_vol_ref *ref)
{
    struct vol *v = ref->priv;
    if (!v)
        return;
    pthread_mutex_lock(&v->mu);
    if (--v->refs == 0)
        pthread_cond_broadcast(&v->refs_cv);
    pthread_mutex_unlock(&v->mu);
    memset(ref, 0, sizeof *ref);
}

int core_volume_state(struct stowage *st, const char *id, struct core_vol_state *out)
{
    struct core_volumes *vs = st->vols;
    pthread_mutex_lock(&vs->mu);
    struct vol *v = find_locked(vs, id, NULL);
    if (v) {
        pthread_mutex_lock(&v->mu);
        *out = v->state;
        out->details = NULL; /* owned by the live state; views take theirs by reference */
        pthread_mutex_unlock(&v->mu);
    } else {
        memset(out, 0, sizeof *out);
        snprintf(out->status, sizeof out->status, "unknown");
    }
    pthread_mutex_unlock(&vs->mu);
    return v ? 0 : -1;
}

void core_volume_fill_view(struct stowage *st, struct core_volume_view *out)
{
    struct core_volumes *vs = st->vols;
    pthread_mutex_lock(&vs->mu);
    struct vol *v = find_locked(vs, out->id, NULL);
    if (v) {
        pthread_mutex_lock(&v->mu);
        snprintf(out->status, sizeof out->status, "%s", v->state.status);
        snprintf(out->status_msg, sizeof out->status_msg, "%s", v->state.status_msg);
        out->total_kb = v->state.total_kb;
        out->free_kb = v->state.free_kb;
        out->details = json_incref(v->state.details);
        pthread_mutex_unlock(&v->mu);
    } else {
        snprintf(out->status, sizeof out->status, "unknown");
    }
    pthread_mutex_unlock(&vs->mu);
    if (!out->details)
        out->details = json_object();
}

int core_disks(struct stowage *st, struct core_disk_view **out, size_t *n, struct st_err *e)
{
    struct core_volumes *vs = st->vols;
    pthread_mutex_lock(&vs->mu);
    struct core_disk_view *arr = calloc(vs->n_disks ? vs->n_disks : 1, sizeof *arr);
    if (!arr) {
        pthread_mutex_unlock(&vs->mu);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < vs->n_disks; i++) {
        arr[i].disk = vs->disks[i];
        disk_volume(vs, &vs->disks[i], arr[i].volume_id, sizeof arr[i].volume_id);
    }
    *n = vs->n_disks;
    pthread_mutex_unlock(&vs->mu);
    *out = arr;
    return 0;
}

int core_volume_stats(struct stowage *st, struct core_volume_stat **out, size_t *n)
{
    struct core_volumes *vs = st->vols;
    pthread_mutex_lock(&vs->mu);
    struct core_volume_stat *arr = calloc(vs->n ? vs->n : 1, sizeof *arr);
    if (!arr) {
        pthread_mutex_unlock(&vs->mu);
        return -1;
    }
    for (size_t i = 0; i < vs->n; i++) {
        struct vol *v = vs->arr[i];
        pthread_mutex_lock(&v->mu);
        snprintf(arr[i].id, sizeof arr[i].id, "%s", v->row.id);
        snprintf(arr[i].kind, sizeof arr[i].kind, "%s", v->row.kind);
        snprintf(arr[i].status, sizeof arr[i].status, "%s", v->state.status);
        arr[i].total_bytes = v->state.total_kb * 1024;
        arr[i].free_bytes = v->state.free_kb * 1024;
        arr[i].probe_us = v->state.probe_us;
        pthread_mutex_unlock(&v->mu);
    }
    *n = vs->n;
    pthread_mutex_unlock(&vs->mu);
    *out = arr;
    return 0;
}
