/* backup_place.c — the places of backup storages as the backend registry opens them,
 * and the prober that keeps their status and capacities fresh.
 *
 * A kind whose sessions are kept (keep_session: Gluster, where glfs_fini takes ~10 s and
 * a session ~14 MiB) is opened once per backup storage and kept until it is deleted or
 * the daemon stops; the backend shares one session per server and volume with the
 * catalogue's volumes. Other kinds (a directory) are opened for each look and closed
 * after, so that a directory removed and made again is seen afresh.
 *
 * The prober looks at every backup storage each backup_probe_interval_s and records
 * what changed (status, its reason, capacities), as ZStack's ping tracker does. */
#include "stowage/backend.h"
#include "task_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bs_place {
    char uuid[DB_ID];
    const struct backend_ops *ops;
    struct be_volume *be;
    int refs;
    struct bs_place *next;
};

struct core_bs_places {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct bs_place *kept;    /* open sessions by backup storage */
    struct bs_place *closing; /* forgotten ones, closed by the prober once unused */
    pthread_t thread;
    int started, stop;
};

static struct bs_place **find(struct bs_place **list, const char *uuid)
{
    for (; *list; list = &(*list)->next)
        if (strcmp((*list)->uuid, uuid) == 0)
            return list;
    return list;
}

int core_bs_place_acquire(struct stowage *st, const struct db_backup_storage *b,
                          struct core_bs_ref *out, struct st_err *e)
{
    const struct backend_ops *ops = be_kind_ops(b->kind, e); /* loads a module kind */
    const struct be_env env = {st->cfg.state_dir, st->cfg.gluster_cli, st->cfg.gluster_timeout_ms};
    struct core_bs_places *ps = st->bs_places;
    struct bs_place *p = NULL;
    json_error_t je;
    json_t *params;
    int rc;

    memset(out, 0, sizeof *out);
    if (!ops)
        return -1;
    if (ops->keep_session && ps) {
        pthread_mutex_lock(&ps->mu);
        if ((p = *find(&ps->kept, b->uuid)))
            p->refs++;
        pthread_mutex_unlock(&ps->mu);
        if (p) {
            *out = (struct core_bs_ref){ops, p->be, p};
            return 0;
        }
    }
    if (!(params = json_loads(b->params, 0, &je)))
        return st_fail(e, ST_INTERNAL, "backup storage %s: its place cannot be read", b->uuid);
    const struct be_params bp = {b->uuid, params, &env};
    struct be_volume *be = NULL;
    rc = ops->open(&bp, &be, e);
    json_decref(params);
    if (rc)
        return -1;
    if (!ops->keep_session || !ps) {
        *out = (struct core_bs_ref){ops, be, NULL};
        return 0;
    }
    if (!(p = calloc(1, sizeof *p))) {
        ops->close(be);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    snprintf(p->uuid, sizeof p->uuid, "%s", b->uuid);
    p->ops = ops;
    p->be = be;
    p->refs = 1;
    pthread_mutex_lock(&ps->mu);
    struct bs_place *raced = *find(&ps->kept, b->uuid);
    if (raced) { /* opened meanwhile by another look: use that one, ours goes */
        raced->refs++;
        p->refs = 0;
        p->next = ps->closing;
        ps->closing = p;
        p = raced;
    } else {
        p->next = ps->kept;
        ps->kept = p;
    }
    pthread_mutex_unlock(&ps->mu);
    *out = (struct core_bs_ref){ops, p->be, p};
    return 0;
}

void core_bs_place_release(struct stowage *st, struct core_bs_ref *ref)
{
    struct bs_place *p = ref->priv;
    if (!ref->be)
        return;
    if (!p) {
        ref->ops->close(ref->be);
    } else {
        pthread_mutex_lock(&st->bs_places->mu);
        p->refs--;
        pthread_cond_broadcast(&st->bs_places->cv);
        pthread_mutex_unlock(&st->bs_places->mu);
    }
    memset(ref, 0, sizeof *ref);
}

void core_bs_place_forget(struct stowage *st, const char *uuid)
{
    struct core_bs_places *ps = st->bs_places;
    if (!ps)
        return;
    pthread_mutex_lock(&ps->mu);
    struct bs_place **at = find(&ps->kept, uuid), *p = *at;
    if (p) {
        *at = p->next;
        p->next = ps->closing;
        ps->closing = p;
        pthread_cond_broadcast(&ps->cv); /* the prober closes it */
    }
    pthread_mutex_unlock(&ps->mu);
}

/* Close the forgotten places nobody uses; the caller holds mu, which is let go around
 * each close (a Gluster session that is not shared takes seconds). */
static void close_unused(struct core_bs_places *ps)
{
    for (struct bs_place **at = &ps->closing; *at;) {
        struct bs_place *p = *at;
        if (p->refs > 0) {
            at = &p->next;
            continue;
        }
        *at = p->next;
        pthread_mutex_unlock(&ps->mu);
        p->ops->close(p->be);
        free(p);
        pthread_mutex_lock(&ps->mu);
        at = &ps->closing;
    }
}

/* ---- the prober ---- */

static void probe_all(struct stowage *st)
{
    struct db_backup_storage *rows = NULL;
    struct st_query all = {.limit = -1};
    struct st_err e;
    size_t n = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bs_query(c, &all, &rows, &n, NULL, &e);
    db_release(st->db, c);
    if (rc) {
        fprintf(stderr, "stowaged: backup storages: %s\n", e.msg);
        return;
    }
    for (size_t i = 0; i < n && !atomic_load(&st->stopping); i++) {
        struct db_backup_storage *b = &rows[i];
        char status[sizeof b->status], msg[sizeof b->status_msg];
        int64_t total = b->total, available = b->available;
        snprintf(status, sizeof status, "%s", b->status);
        snprintf(msg, sizeof msg, "%s", b->status_msg);
        if (core_backup_look(st, b, &e) == 0)
            core_backup_ceph_refresh(st, b); /* a Ceph pool's room (nothing for others) */
        int same = strcmp(status, b->status) == 0 && strcmp(msg, b->status_msg) == 0 &&
                   total == b->total && available == b->available;
        struct db_backup_storage *now = same ? malloc(sizeof *now) : NULL;
        c = db_acquire(st->db);
        /* Unchanged: only whether it is still there (the look may have kept a session). */
        rc = same ? (now ? db_bs_get(c, b->uuid, now, &e) : 0) : db_bs_set_status(c, b, &e);
        db_release(st->db, c);
        free(now);
        if (rc && e.code == ST_NOT_FOUND) { /* deleted meanwhile: its session goes */
            core_bs_place_forget(st, b->uuid);
            continue;
        }
        if (rc || same)
            continue;
        core_bump(st);
        if (strcmp(status, b->status) != 0)
            fprintf(stderr, "stowaged: backup storage %s is %s%s%s\n", b->uuid, b->status,
                    b->status_msg[0] ? ": " : "", b->status_msg);
    }
    free(rows);
}

static int reached(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* Wakes for each forgotten or released place (to close what is unused), and looks at
 * every backup storage when the interval has passed. */
static void *prober(void *arg)
{
    struct stowage *st = arg;
    struct core_bs_places *ps = st->bs_places;
    struct timespec next;
    clock_gettime(CLOCK_REALTIME, &next);
    for (;;) {
        pthread_mutex_lock(&ps->mu);
        close_unused(ps);
        if (!ps->stop && !reached(&next))
            pthread_cond_timedwait(&ps->cv, &ps->mu, &next);
        int stop = ps->stop;
        pthread_mutex_unlock(&ps->mu);
        if (stop)
            return NULL;
        if (reached(&next)) {
            probe_all(st);
            clock_gettime(CLOCK_REALTIME, &next);
            next.tv_sec += st->cfg.backup_probe_interval_s;
        }
    }
}

int core_bs_places_start(struct stowage *st, struct st_err *e)
{
    struct core_bs_places *ps = calloc(1, sizeof *ps);
    if (!ps)
        return st_fail(e, ST_INTERNAL, "out of memory");
    pthread_mutex_init(&ps->mu, NULL);
    pthread_cond_init(&ps->cv, NULL);
    st->bs_places = ps;
    if (pthread_create(&ps->thread, NULL, prober, st))
        return st_fail(e, ST_INTERNAL, "cannot start the backup storage prober");
    ps->started = 1;
    return 0;
}

void core_bs_places_stop(struct stowage *st)
{
    struct core_bs_places *ps = st->bs_places;
    if (!ps)
        return;
    pthread_mutex_lock(&ps->mu);
    ps->stop = 1;
    pthread_cond_broadcast(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
    if (ps->started)
        pthread_join(ps->thread, NULL);
    /* The jobs have stopped: nothing borrows a place any more. */
    for (struct bs_place *p = ps->kept, *next; p; p = next) {
        next = p->next;
        p->ops->close(p->be);
        free(p);
    }
    for (struct bs_place *p = ps->closing, *next; p; p = next) {
        next = p->next;
        p->ops->close(p->be);
        free(p);
    }
    pthread_mutex_destroy(&ps->mu);
    pthread_cond_destroy(&ps->cv);
    free(ps);
    st->bs_places = NULL;
}
