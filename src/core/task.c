/* task.c — the task queue: rows first, a pool of workers, progress, cancel, restart.
 *
 * A task is inserted as a row before anyone is told its id, so a crash can lose no
 * task a client knows about. With a worker idle the row is inserted running and
 * handed to it; otherwise it is queued, and workers claim the oldest queued row (one
 * UPDATE that only a queued row matches, so two workers never take the same one).
 * The worker runs the type's body and records the result. Progress lives in memory
 * while a task runs — readers see it at once — and a ticker copies it to the row
 * once a second, so the catalogue is never more than a second behind and a busy copy
 * costs one write per second, not one per chunk. A start finds the rows of the last
 * process: queued ones are run; running ones were cut off — unless their effect had
 * committed just before (for most types the row is a separate write; guest_clone
 * commits both at once), which each type can tell: those turn success, the others
 * error "interrupted by restart". */
#include "task_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#define TASK_KEEP_S (7 * 24 * 3600) /* completed tasks are forgotten after a week */
#define PRUNE_EVERY_S 3600
#define ORPHAN_WAIT_S 120 /* how long a left-over task waits for its volume's recovery */

struct run {
    struct run *next;
    struct db_task row;
    char *params_json;
    atomic_int cancel;
    atomic_int progress;
    int written;    /* the progress last copied to the row (ticker only) */
    int handed;     /* inserted running for an idle worker, which has not taken it yet */
    int64_t run_us; /* how long the body ran */
};

/* A row the last process left running, until we know how it ended. */
struct orphan {
    struct orphan *next;
    struct db_task row;
    char *params_json;
    time_t found_at;
};

struct progress_note {
    char id[37];
    int progress;
};

struct core_tasks {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* workers: a task was queued, or stop */
    pthread_cond_t tick_cv; /* ticker: stop */
    pthread_t *workers;
    unsigned n_workers; /* started */
    pthread_t ticker;
    int ticker_started;
    uint64_t seq;       /* bumped by every submit: a worker that saw no row waits for a change */
    unsigned idle;      /* workers waiting for work */
    unsigned n_handoff; /* runs handed to idle workers and not taken yet */
    int stop;
    struct run *running;
    struct orphan *orphans;      /* start and ticker only: no lock */
    struct progress_note *notes; /* ticker scratch, one per worker */
};

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

/* A row as the job record every dialect maps onto. A success row that carries a message
 * was written by an older build, which worded successes in flexVDI's terms. */
static void to_view(const struct db_task *t, struct core_job *v)
{
    int ok = strcmp(t->result, "success") == 0;

    memset(v, 0, sizeof *v);
    CORE_COPY_TEXT(v, t, id);
    snprintf(v->op, sizeof v->op, "%s", t->type);
    CORE_COPY_TEXT(v, t, state);
    CORE_COPY_TEXT(v, t, result);
    v->progress = t->progress;
    snprintf(ok ? v->legacy_msg : v->error, sizeof v->error, "%s", t->result_msg);
    v->outcome = ok ? json_loads(t->result_json, 0, NULL) : NULL;
    CORE_COPY_TEXT(v, t, owner);
    v->created_at = t->created_at;
    v->started_at = t->started_at;
    v->finished_at = t->finished_at;
}

static struct run *find_locked(struct core_tasks *ts, const char *id)
{
    for (struct run *r = ts->running; r; r = r->next)
        if (strcmp(r->row.id, id) == 0)
            return r;
    return NULL;
}

/* A running task's row may be up to a second behind: show the live progress. */
static void overlay(struct stowage *st, struct core_job *v, size_t n)
{
    struct core_tasks *ts = st->tasks;
    if (!ts)
        return;
    pthread_mutex_lock(&ts->mu);
    for (size_t i = 0; i < n; i++) {
        struct run *r = strcmp(v[i].state, "running") == 0 ? find_locked(ts, v[i].id) : NULL;
        if (r)
            v[i].progress = atomic_load(&r->progress);
    }
    pthread_mutex_unlock(&ts->mu);
}

/* ---- running one task ---- */

static void on_progress(void *ud, int percent)
{
    struct run *r = ud;
    atomic_store(&r->progress, percent < 0 ? 0 : percent > 100 ? 100 : percent);
}

static int stopping(struct stowage *st)
{
    pthread_mutex_lock(&st->tasks->mu);
    int stop = st->tasks->stop;
    pthread_mutex_unlock(&st->tasks->mu);
    return stop;
}

/* The row of a finished task, written on c (in the caller's transaction, or its own). */
static int record(struct db_conn *c, const char *id, const char *result, char *msg,
                  const json_t *res, struct st_err *e)
{
    st_utf8_clean(msg); /* every dialect puts it in a JSON string */
    char *rj = res ? json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    int rc = db_task_finish(c, id, result, msg, rj, time(NULL), e);
    free(rj);
    return rc;
}

/* A result to record, as a member of a group commit: concurrent tasks share its COMMIT. */
struct outcome {
    const char *id, *result;
    char *msg;
    const json_t *res;
};

static int record_outcome(struct db_conn *c, void *ud, struct st_err *e)
{
    struct outcome *o = ud;
    return record(c, o->id, o->result, o->msg, o->res, e);
}

int core_task_record_success(struct core_task_ctx *t, struct db_conn *c, struct st_err *e)
{
    char none[1] = "";
    return record(c, t->id, "success", none, t->result, e);
}

static void finish(struct stowage *st, struct run *r, int rc, const struct core_task_ctx *t,
                   const struct st_err *e)
{
    const char *result = rc ? "error" : "success";
    char msg[512];
    struct st_err fe;

    snprintf(msg, sizeof msg, "%s", rc ? e->msg : "");
    /* A body stopped by its cancel flag was asked to stop: by a client, or by shutdown. */
    if (rc && atomic_load(&r->cancel)) {
        if (stopping(st)) {
            snprintf(msg, sizeof msg, "interrupted by shutdown: %s", e->msg);
        } else {
            result = "revoked";
            snprintf(msg, sizeof msg, "cancelled: %s", e->msg);
        }
    }
    st_utf8_clean(msg); /* every dialect puts it in a JSON string */
    if (rc || !t->recorded) {
        struct outcome o = {r->row.id, result, msg, t->result};
        if (db_group(st->db, record_outcome, &o, &fe))
            fprintf(stderr, "stowaged: task %s: cannot record its result: %s\n", r->row.id, fe.msg);
    }
    char *what = rc || !t->result ? NULL : json_dumps(t->result, JSON_COMPACT | JSON_SORT_KEYS);
    fprintf(stderr, "stowaged: task %s (%s): %s in %lldus%s%s\n", r->row.id, r->row.type, result,
            (long long)r->run_us, msg[0] || what ? ": " : "", what ? what : msg);
    free(what);
}

static void run_task(struct stowage *st, struct run *r)
{
    const struct core_task_type *tt = core_task_type(r->row.type);
    struct core_progress p = {on_progress, r, &r->cancel};
    struct core_task_ctx t = {st, r->row.id, r->row.owner, NULL, &p, NULL, 0};
    struct st_err e;
    json_error_t je;
    int rc;

    st_clear(&e);
    t.params = json_loads(r->params_json, 0, &je);
    if (!tt)
        rc = st_fail(&e, ST_INTERNAL, "unknown task type '%s'", r->row.type);
    else if (!t.params)
        rc = st_fail(&e, ST_INTERNAL, "the task's params are unreadable: %s", je.text);
    else {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        rc = tt->run(&t, &e);
        clock_gettime(CLOCK_MONOTONIC, &b);
        r->run_us = (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
    }
    finish(st, r, rc, &t, &e);
    json_decref(t.params);
    json_decref(t.result);
}

/* Take the oldest queued row. Caller holds ts->mu, so a cancel never misses a task
 * between its claim and its entry in the running list. */
static struct run *claim_locked(struct stowage *st)
{
    struct core_tasks *ts = st->tasks;
    struct run *r = calloc(1, sizeof *r);
    struct st_err e;

    if (!r)
        return NULL;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_task_claim(c, time(NULL), &r->row, &r->params_json, &e);
    db_release(st->db, c);
    if (rc) {
        if (e.code != ST_NOT_FOUND)
            fprintf(stderr, "stowaged: tasks: %s\n", e.msg);
        free(r);
        return NULL;
    }
    atomic_init(&r->cancel, 0);
    atomic_init(&r->progress, r->row.progress);
    r->written = r->row.progress;
    r->next = ts->running;
    ts->running = r;
    return r;
}

static void forget_locked(struct core_tasks *ts, struct run *r)
{
    for (struct run **p = &ts->running; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    free(r->params_json);
    free(r);
}

static struct run *take_handoff_locked(struct core_tasks *ts)
{
    for (struct run *r = ts->running; r && ts->n_handoff; r = r->next) {
        if (r->handed) {
            r->handed = 0;
            ts->n_handoff--;
            return r;
        }
    }
    return NULL;
}

/* A task handed over at submit is run even when a stop has begun: its row already
 * says running, and the stop waits for it like for any other. */
static void *worker(void *arg)
{
    struct stowage *st = arg;
    struct core_tasks *ts = st->tasks;

    pthread_mutex_lock(&ts->mu);
    for (;;) {
        struct run *r = take_handoff_locked(ts);
        if (!r && ts->stop)
            break;
        uint64_t seen = ts->seq;
        if (!r && !(r = claim_locked(st))) {
            /* The timeout only matters when a claim failed for a database error. */
            if (!ts->stop && ts->seq == seen) {
                ts->idle++;
                timed_wait(&ts->cv, &ts->mu, 10 * 1000);
                ts->idle--;
            }
            continue;
        }
        pthread_mutex_unlock(&ts->mu);
        run_task(st, r);
        pthread_mutex_lock(&ts->mu);
        forget_locked(ts, r);
    }
    pthread_mutex_unlock(&ts->mu);
    return NULL;
}

/* ---- what the last process left running ---- */

/* The running rows of the last process; their staging files are removed by each
 * volume's recovery (recover.c). */
static int load_orphans(struct stowage *st, struct core_tasks *ts, struct st_err *e)
{
    struct db_task *rows = NULL;
    size_t n = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_task_prune(c, (int64_t)time(NULL) - TASK_KEEP_S, e);
    if (rc == 0)
        rc = db_task_list(c, &rows, &n, e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (strcmp(rows[i].state, "running") != 0)
            continue;
        struct orphan *o = calloc(1, sizeof *o);
        if (!o) {
            rc = st_fail(e, ST_INTERNAL, "out of memory");
            break;
        }
        o->row = rows[i];
        o->found_at = time(NULL);
        o->next = ts->orphans;
        ts->orphans = o;
        rc = db_task_params(c, o->row.id, &o->params_json, e);
    }
    db_release(st->db, c);
    free(rows);
    return rc;
}

/* Settle what can be settled: 1 when o's row was completed. */
static int settle_orphan(struct stowage *st, struct orphan *o)
{
    const struct core_task_type *tt = core_task_type(o->row.type);
    struct core_task_ctx t = {st, o->row.id, o->row.owner, NULL, NULL, NULL, 0};
    char msg[64] = "";
    struct st_err e;

    t.params = json_loads(o->params_json ? o->params_json : "{}", 0, NULL);
    int done = tt && tt->recover && t.params ? tt->recover(&t, o->row.started_at) : 0;
    json_decref(t.params);
    if (done < 0 && time(NULL) - o->found_at < ORPHAN_WAIT_S) {
        json_decref(t.result);
        return 0;
    }
    if (done > 0 && !t.result)
        t.result = json_object();
    if (done > 0) /* the outcome says the effect committed before a restart */
        json_object_set_new(t.result, "before_restart", json_true());
    else
        snprintf(msg, sizeof msg, "interrupted by restart");
    char *rj = done > 0 ? json_dumps(t.result, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(t.result);
    struct db_conn *c = db_acquire(st->db);
    int rc = db_task_finish(c, o->row.id, done > 0 ? "success" : "error", msg, rj, time(NULL), &e);
    db_release(st->db, c);
    free(rj);
    if (rc) {
        fprintf(stderr, "stowaged: task %s: %s\n", o->row.id, e.msg);
        return e.code == ST_CONFLICT; /* no longer running: nothing left to settle */
    }
    fprintf(stderr, "stowaged: task %s (%s) left by the last run: %s\n", o->row.id, o->row.type,
            done > 0 ? "done before a restart" : msg);
    return 1;
}

static void settle_orphans(struct stowage *st, struct core_tasks *ts)
{
    for (struct orphan **p = &ts->orphans; *p;) {
        struct orphan *o = *p;
        if (settle_orphan(st, o)) {
            *p = o->next;
            free(o->params_json);
            free(o);
        } else {
            p = &o->next;
        }
    }
}

static void free_orphans(struct core_tasks *ts)
{
    while (ts->orphans) {
        struct orphan *o = ts->orphans;
        ts->orphans = o->next;
        free(o->params_json);
        free(o);
    }
}

/* ---- the ticker: progress to the rows, old rows away ---- */

static void flush_progress(struct stowage *st)
{
    struct core_tasks *ts = st->tasks;
    size_t n = 0;
    struct st_err e;

    for (struct run *r = ts->running; r && n < ts->n_workers; r = r->next) {
        int p = atomic_load(&r->progress);
        if (p == r->written)
            continue;
        r->written = p;
        snprintf(ts->notes[n].id, sizeof ts->notes[n].id, "%s", r->row.id);
        ts->notes[n++].progress = p;
    }
    if (n == 0)
        return;
    pthread_mutex_unlock(&ts->mu); /* no database work under the queue's lock */
    struct db_conn *c = db_acquire(st->db);
    for (size_t i = 0; i < n; i++)
        if (db_task_set_progress(c, ts->notes[i].id, ts->notes[i].progress, &e))
            fprintf(stderr, "stowaged: task %s: %s\n", ts->notes[i].id, e.msg);
    db_release(st->db, c);
    pthread_mutex_lock(&ts->mu);
}

static void prune(struct stowage *st)
{
    struct st_err e;
    struct db_conn *c = db_acquire(st->db);
    if (db_task_prune(c, (int64_t)time(NULL) - TASK_KEEP_S, &e))
        fprintf(stderr, "stowaged: tasks: %s\n", e.msg);
    db_release(st->db, c);
}

static void *ticker(void *arg)
{
    struct stowage *st = arg;
    struct core_tasks *ts = st->tasks;
    time_t pruned_at = time(NULL);

    pthread_mutex_lock(&ts->mu);
    while (!ts->stop) {
        timed_wait(&ts->tick_cv, &ts->mu, 1000);
        if (ts->stop)
            break;
        flush_progress(st);
        if (ts->orphans) {
            pthread_mutex_unlock(&ts->mu);
            settle_orphans(st, ts);
            pthread_mutex_lock(&ts->mu);
        }
        if (time(NULL) - pruned_at >= PRUNE_EVERY_S) {
            pruned_at = time(NULL);
            pthread_mutex_unlock(&ts->mu);
            prune(st);
            pthread_mutex_lock(&ts->mu);
        }
    }
    pthread_mutex_unlock(&ts->mu);
    return NULL;
}

/* ---- start and stop ---- */

int core_tasks_start(struct stowage *st, struct st_err *e)
{
    unsigned want = st->cfg.workers ? st->cfg.workers : 1;
    struct core_tasks *ts;

    if (!(ts = calloc(1, sizeof *ts)))
        return st_fail(e, ST_INTERNAL, "out of memory");
    ts->workers = calloc(want, sizeof *ts->workers);
    ts->notes = calloc(want, sizeof *ts->notes);
    if (!ts->workers || !ts->notes || load_orphans(st, ts, e)) {
        if (!ts->workers || !ts->notes)
            st_fail(e, ST_INTERNAL, "out of memory");
        free_orphans(ts);
        free(ts->workers);
        free(ts->notes);
        free(ts);
        return -1;
    }
    /* Most settle at once; an image whose commit the volume's recovery has still to
     * roll forward or back waits for it (the ticker looks again every second). */
    settle_orphans(st, ts);
    pthread_mutex_init(&ts->mu, NULL);
    pthread_cond_init(&ts->cv, NULL);
    pthread_cond_init(&ts->tick_cv, NULL);
    st->tasks = ts;
    for (; ts->n_workers < want; ts->n_workers++) {
        if (pthread_create(&ts->workers[ts->n_workers], NULL, worker, st)) {
            core_tasks_stop(st);
            return st_fail(e, ST_INTERNAL, "cannot start task workers");
        }
    }
    if (pthread_create(&ts->ticker, NULL, ticker, st)) {
        core_tasks_stop(st);
        return st_fail(e, ST_INTERNAL, "cannot start the task ticker");
    }
    ts->ticker_started = 1;
    return 0;
}

/* Copies stop at their next chunk (their rows say "interrupted by shutdown");
 * shorter bodies finish first. Queued rows stay queued for the next start. */
void core_tasks_stop(struct stowage *st)
{
    struct core_tasks *ts = st->tasks;
    if (!ts)
        return;
    pthread_mutex_lock(&ts->mu);
    ts->stop = 1;
    for (struct run *r = ts->running; r; r = r->next) {
        const struct core_task_type *tt = core_task_type(r->row.type);
        if (tt && tt->cancellable)
            atomic_store(&r->cancel, 1);
    }
    pthread_cond_broadcast(&ts->cv);
    pthread_cond_broadcast(&ts->tick_cv);
    pthread_mutex_unlock(&ts->mu);
    for (unsigned i = 0; i < ts->n_workers; i++)
        pthread_join(ts->workers[i], NULL);
    if (ts->ticker_started)
        pthread_join(ts->ticker, NULL);
    free_orphans(ts);
    pthread_mutex_destroy(&ts->mu);
    pthread_cond_destroy(&ts->cv);
    pthread_cond_destroy(&ts->tick_cv);
    free(ts->workers);
    free(ts->notes);
    free(ts);
    st->tasks = NULL;
}

/* ---- the API ---- */

/* With a worker idle, the row is inserted running and handed to it: the same single
 * write as a queued row, where a claim would have cost the worker a second one. */
int core_job_submit(struct stowage *st, enum core_op op, const struct core_op_params *p,
                    const struct st_principal *who, char id[37], struct st_err *e)
{
    return core_job_submit_as(st, op, p, who, NULL, id, e);
}

static int valid_job_id(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 36)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
            return 0;
    return 1;
}

int core_job_submit_as(struct stowage *st, enum core_op op, const struct core_op_params *p,
                       const struct st_principal *who, const char *want_id, char id[37],
                       struct st_err *e)
{
    struct core_tasks *ts = st->tasks;
    struct db_task t = {0};
    struct run *r = NULL;
    json_t *clean = NULL;
    uuid_t u;

    if (want_id && !valid_job_id(want_id))
        return st_fail_field(e, ST_INVALID, "id", "a job id is 1 to 36 of [0-9a-f-]");
    if (core_task_check(&st->cfg, op, p, who ? who->role : ROLE_NONE, &clean, e))
        return -1;
    const struct core_task_type *tt = core_task_type(core_op_name(op));
    if (tt->precheck && tt->precheck(st, clean, e)) {
        json_decref(clean);
        return -1;
    }
    char *params_json = json_dumps(clean, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(clean);
    if (!params_json)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (want_id) {
        snprintf(t.id, sizeof t.id, "%s", want_id);
    } else {
        uuid_generate_random(u);
        uuid_unparse_lower(u, t.id);
    }
    snprintf(t.type, sizeof t.type, "%s", core_op_name(op));
    snprintf(t.owner, sizeof t.owner, "%s", who ? who->owner : "");
    t.created_at = time(NULL);
    snprintf(t.result, sizeof t.result, "pending");
    /* Without a running queue (a CLI) the row waits for the daemon's next start. */
    if (ts) {
        pthread_mutex_lock(&ts->mu);
        if (!ts->stop && ts->idle > ts->n_handoff && (r = calloc(1, sizeof *r))) {
            snprintf(t.state, sizeof t.state, "running");
            t.started_at = t.created_at;
        }
    }
    struct db_conn *c = db_acquire(st->db);
    int rc = db_task_insert(c, &t, params_json, e);
    db_release(st->db, c);
    if (rc == 0 && r) {
        r->row = t;
        r->params_json = params_json;
        params_json = NULL;
        atomic_init(&r->cancel, 0);
        atomic_init(&r->progress, 0);
        r->handed = 1;
        r->next = ts->running;
        ts->running = r;
        ts->n_handoff++;
    } else {
        free(r);
    }
    free(params_json);
    if (ts) {
        if (rc == 0) {
            ts->seq++;
            pthread_cond_signal(&ts->cv);
        }
        pthread_mutex_unlock(&ts->mu);
    }
    if (rc)
        return -1;
    memcpy(id, t.id, sizeof t.id);
    return 0;
}

int core_job_get(struct stowage *st, const char *id, struct core_job *out, struct st_err *e)
{
    struct db_task t;
    if (!id || strlen(id) > 36)
        return st_fail(e, ST_NOT_FOUND, "task '%.40s' not found", id ? id : "");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_task_get(c, id, &t, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    to_view(&t, out);
    overlay(st, out, 1);
    return 0;
}

int core_job_list(struct stowage *st, struct core_job **out, size_t *n, struct st_err *e)
{
    struct db_task *rows = NULL;
    size_t cnt = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_task_list(c, &rows, &cnt, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    struct core_job *v = calloc(cnt ? cnt : 1, sizeof *v);
    if (!v) {
        free(rows);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < cnt; i++)
        to_view(&rows[i], &v[i]);
    free(rows);
    overlay(st, v, cnt);
    *out = v;
    *n = cnt;
    return 0;
}

/* Queued: revoked at once. Running: the body is asked to stop at its next check (only
 * types that check; the row turns revoked when it has stopped). Completed: ST_CONFLICT. */
static int cancel_running_locked(struct core_tasks *ts, const struct db_task *t, struct st_err *e)
{
    struct run *r = ts ? find_locked(ts, t->id) : NULL;
    if (!r && strcmp(t->state, "running") == 0)
        return st_fail(e, ST_CONFLICT, "task '%s' was cut off by a restart", t->id);
    if (!r)
        return st_fail(e, ST_CONFLICT, "task '%s' has already completed", t->id);
    const struct core_task_type *tt = core_task_type(r->row.type);
    if (!tt || !tt->cancellable)
        return st_fail(e, ST_CONFLICT, "a running %s task cannot be cancelled", r->row.type);
    atomic_store(&r->cancel, 1);
    return 0;
}

void core_job_free(struct core_job *j)
{
    json_decref(j->outcome);
    j->outcome = NULL;
}

void core_jobs_free(struct core_job *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        core_job_free(&v[i]);
    free(v);
}

int core_job_cancel(struct stowage *st, const char *id, struct st_err *e)
{
    struct core_tasks *ts = st->tasks;
    struct db_task t;
    int changed = 0;

    if (!id || strlen(id) > 36)
        return st_fail(e, ST_NOT_FOUND, "task '%.40s' not found", id ? id : "");
    if (ts)
        pthread_mutex_lock(&ts->mu);
    struct db_conn *c = db_acquire(st->db);
    int rc = db_task_get(c, id, &t, e);
    if (rc == 0)
        rc = db_task_revoke_queued(c, id, "cancelled before it started", time(NULL), &changed, e);
    db_release(st->db, c);
    if (rc == 0 && !changed)
        rc = cancel_running_locked(ts, &t, e);
    if (ts)
        pthread_mutex_unlock(&ts->mu);
    return rc;
}
