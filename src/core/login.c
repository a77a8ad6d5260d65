/* login.c — password logins off the HTTP threads, throttled per user and per address.
 *
 * A password check costs a 100,000-iteration PBKDF2 (tens of milliseconds of CPU).
 * Run on the HTTP threads, a handful of guessing clients starve every other request;
 * so checks run on a few threads of their own behind a bounded queue, and a full
 * queue is refused at once (ST_UNAVAILABLE with a retry time). Failures are counted
 * per user name and per client address: after login_free_failures each further one
 * makes the key wait 1, 2, 4 … seconds before its next attempt, and
 * login_lockout_failures lock it out for login_lockout_s. Attempts inside a wait are
 * refused (ST_TOO_MANY) without running the KDF. Any dialect's login calls this. */
#include "core_internal.h"
#include "stowage/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THROTTLE_SLOTS 4096 /* remembered keys; the oldest make room when full */
#define THROTTLE_PROBE 16
#define KEY_MAX 80

struct fail_rec {
    char key[KEY_MAX]; /* "u:<name>" or "a:<address>", "" when free */
    unsigned fails;
    int64_t wait_until_ms; /* no attempt before this */
    int64_t forget_ms;     /* the record lapses after this */
};

struct login_job {
    char name[DB_ID];
    char addr[64];
    char *password;
    int sha512_hex; /* password is the hex SHA-512 of the password */
    core_login_done_fn done;
    void *ud;
};

struct core_logins {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct login_job *queue; /* ring of cfg.login_queue jobs */
    size_t head, len, cap;
    int stopping;
    pthread_t *threads;
    unsigned n_threads;
    struct fail_rec *recs;
};

static int64_t mono_ms(void)
{
    return (int64_t)(st_mono_ns() / 1000000u);
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The record of key, or (create) a free, lapsed or the soonest-lapsing slot near it. */
static struct fail_rec *rec_find(struct core_logins *l, const char *key, int64_t now, int create)
{
    uint32_t h = fnv1a(key);
    struct fail_rec *spare = NULL;
    for (unsigned i = 0; i < THROTTLE_PROBE; i++) {
        struct fail_rec *r = &l->recs[(h + i) % THROTTLE_SLOTS];
        if (r->key[0] && strcmp(r->key, key) == 0) {
            if (r->forget_ms > now)
                return r;
            r->key[0] = '\0';
        }
        if (!r->key[0] || r->forget_ms <= now) {
            if (!spare || spare->key[0])
                spare = r;
        } else if (!spare || (spare->key[0] && r->forget_ms < spare->forget_ms)) {
            spare = r;
        }
    }
    if (!create)
        return NULL;
    memset(spare, 0, sizeof *spare);
    snprintf(spare->key, sizeof spare->key, "%s", key);
    return spare;
}

static void keys_of(const char *name, const char *addr, char u[KEY_MAX], char a[KEY_MAX])
{
    snprintf(u, KEY_MAX, "u:%s", name);
    snprintf(a, KEY_MAX, "a:%s", addr);
}

/* ST_TOO_MANY with the seconds to wait when key is inside a wait or a lock-out. */
static int check_key(struct core_logins *l, const char *key, const char *what, int64_t now,
                     unsigned *retry_after, struct st_err *e)
{
    struct fail_rec *r = rec_find(l, key, now, 0);
    if (!r || r->wait_until_ms <= now)
        return 0;
    unsigned s = (unsigned)((r->wait_until_ms - now + 999) / 1000);
    *retry_after = s ? s : 1;
    return st_fail(e, ST_TOO_MANY, "too many failed logins %s; try again in %u s", what,
                   *retry_after);
}

static void record_failure(struct stowage *st, const char *key, int64_t now)
{
    const struct st_config *c = &st->cfg;
    struct fail_rec *r = rec_find(st->logins, key, now, 1);
    int64_t wait_ms = 0;
    r->fails++;
    if (r->fails >= c->login_lockout_failures) {
        wait_ms = (int64_t)c->login_lockout_s * 1000;
    } else if (r->fails > c->login_free_failures) {
        unsigned step = r->fails - c->login_free_failures - 1;
        wait_ms = step < 20 ? (int64_t)1000 << step : INT64_MAX / 4;
        if (wait_ms > (int64_t)c->login_lockout_s * 1000)
            wait_ms = (int64_t)c->login_lockout_s * 1000;
    }
    r->wait_until_ms = now + wait_ms;
    /* The count lapses once the key stays quiet for a lock-out's length after its wait. */
    r->forget_ms = r->wait_until_ms + (int64_t)c->login_lockout_s * 1000;
}

static void run_job(struct stowage *st, struct login_job *j)
{
    struct core_login_result res;
    char ku[KEY_MAX], ka[KEY_MAX];

    memset(&res, 0, sizeof res);
    res.ok = core_login_as(st, j->name, j->password, j->sha512_hex, res.session, sizeof res.session,
                           &res.who, &res.err) == 0;
    explicit_bzero(j->password, strlen(j->password));
    free(j->password);
    keys_of(j->name, j->addr, ku, ka);
    int64_t now = mono_ms();
    pthread_mutex_lock(&st->logins->mu);
    if (res.ok) {
        struct fail_rec *r = rec_find(st->logins, ku, now, 0);
        if (r)
            r->key[0] = '\0';
    } else if (res.err.code == ST_UNAUTHORIZED) {
        record_failure(st, ku, now);
        record_failure(st, ka, now);
    }
    pthread_mutex_unlock(&st->logins->mu);
    j->done(j->ud, &res);
}

static void *worker(void *arg)
{
    struct stowage *st = arg;
    struct core_logins *l = st->logins;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->len && !l->stopping)
            pthread_cond_wait(&l->cv, &l->mu);
        if (!l->len)
            break;
        struct login_job j = l->queue[l->head];
        l->head = (l->head + 1) % l->cap;
        l->len--;
        pthread_mutex_unlock(&l->mu);
        run_job(st, &j);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static int submit(struct stowage *st, const char *name, const char *password, int sha512_hex,
                  const char *addr, core_login_done_fn done, void *ud, unsigned *retry_after,
                  struct st_err *e)
{
    struct core_logins *l = st->logins;
    char ku[KEY_MAX], ka[KEY_MAX];
    struct login_job j = {.done = done, .ud = ud, .sha512_hex = sha512_hex};

    *retry_after = 0;
    if (!l)
        return st_fail(e, ST_UNAVAILABLE, "logins are not being served");
    if (!name || !password || strlen(password) > 1024 || strlen(name) >= sizeof j.name)
        return st_fail(e, ST_UNAUTHORIZED, "unknown user or wrong password");
    snprintf(j.name, sizeof j.name, "%s", name);
    snprintf(j.addr, sizeof j.addr, "%s", addr ? addr : "");
    keys_of(j.name, j.addr, ku, ka);
    int64_t now = mono_ms();
    pthread_mutex_lock(&l->mu);
    if (check_key(l, ku, "for this user", now, retry_after, e) ||
        check_key(l, ka, "from this address", now, retry_after, e))
        goto refuse;
    if (l->stopping || l->len == l->cap) {
        *retry_after = 1;
        st_fail(e, ST_UNAVAILABLE, "%s", l->stopping ? "shutting down" : "too many logins waiting");
        goto refuse;
    }
    if (!(j.password = strdup(password))) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto refuse;
    }
    l->queue[(l->head + l->len) % l->cap] = j;
    l->len++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
refuse:
    pthread_mutex_unlock(&l->mu);
    return -1;
}

int core_login_submit(struct stowage *st, const char *name, const char *password, const char *addr,
                      core_login_done_fn done, void *ud, unsigned *retry_after, struct st_err *e)
{
    return submit(st, name, password, 0, addr, done, ud, retry_after, e);
}

int core_login_submit_sha512(struct stowage *st, const char *name, const char *sha512_hex,
                             const char *addr, core_login_done_fn done, void *ud,
                             unsigned *retry_after, struct st_err *e)
{
    return submit(st, name, sha512_hex, 1, addr, done, ud, retry_after, e);
}

int core_logins_start(struct stowage *st, struct st_err *e)
{
    struct core_logins *l = calloc(1, sizeof *l);
    if (!l)
        return st_fail(e, ST_INTERNAL, "out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->cap = st->cfg.login_queue;
    l->queue = calloc(l->cap, sizeof *l->queue);
    l->recs = calloc(THROTTLE_SLOTS, sizeof *l->recs);
    l->threads = calloc(st->cfg.login_workers, sizeof *l->threads);
    st->logins = l;
    if (!l->queue || !l->recs || !l->threads) {
        core_logins_free(st);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (; l->n_threads < st->cfg.login_workers; l->n_threads++) {
        if (pthread_create(&l->threads[l->n_threads], NULL, worker, st)) {
            core_logins_free(st);
            return st_fail(e, ST_INTERNAL, "cannot start the login threads");
        }
    }
    return 0;
}

/* Queued checks still run (each caller waits on its answer); then the threads end and
 * new submissions are refused. Safe to call twice. */
void core_logins_stop(struct stowage *st)
{
    struct core_logins *l = st->logins;
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stopping = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (unsigned i = 0; i < l->n_threads; i++)
        pthread_join(l->threads[i], NULL);
    l->n_threads = 0;
}

void core_logins_free(struct stowage *st)
{
    struct core_logins *l = st->logins;
    if (!l)
        return;
    core_logins_stop(st);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->threads);
    free(l->queue);
    free(l->recs);
    free(l);
    st->logins = NULL;
}
