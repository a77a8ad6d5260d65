/* core.c — bringing the catalogue up and down, and the small shared helpers. */
#include "core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct stowage *core_new(void)
{
    struct stowage *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    pthread_mutex_init(&st->claims_mu, NULL);
    pthread_mutex_init(&st->auth_mu, NULL);
    pthread_mutex_init(&st->finish_mu, NULL);
    pthread_cond_init(&st->finish_cv, NULL);
    pthread_cond_init(&st->finish_work_cv, NULL);
    st_group_init(&st->publishes, core_publish_batch, core_publish_rows, st, PUBLISH_WINDOW_NS);
    if (core_scans_new(st) || core_imagestores_new(st)) {
        core_scans_free(st);
        pthread_mutex_destroy(&st->claims_mu);
        pthread_mutex_destroy(&st->auth_mu);
        pthread_mutex_destroy(&st->finish_mu);
        pthread_cond_destroy(&st->finish_cv);
        pthread_cond_destroy(&st->finish_work_cv);
        st_group_destroy(&st->publishes);
        free(st);
        return NULL;
    }
    st_group_serve(&st->publishes, PUBLISH_SERVERS);
    return st;
}

void core_free(struct stowage *st)
{
    if (!st)
        return;
    if (st->started)
        core_stop(st);
    if (st->db)
        db_close(st->db);
    core_imagestores_free(st); /* sized by the config */
    cfg_free(&st->cfg);
    pthread_mutex_destroy(&st->claims_mu);
    pthread_mutex_destroy(&st->auth_mu);
    pthread_mutex_destroy(&st->finish_mu);
    pthread_cond_destroy(&st->finish_cv);
    pthread_cond_destroy(&st->finish_work_cv);
    st_group_stop(&st->publishes);
    st_group_destroy(&st->publishes);
    core_scans_free(st);
    free(st);
}

struct st_config *core_config(struct stowage *st)
{
    return &st->cfg;
}

const char *core_hostname(const struct stowage *st)
{
    return st->hostname;
}

uint64_t core_generation(struct stowage *st)
{
    return atomic_load(&st->generation);
}

void core_bump(struct stowage *st)
{
    atomic_fetch_add(&st->generation, 1);
}

int core_txn_end(struct stowage *st, struct db_conn *c, int rc, struct st_err *e)
{
    if (rc == 0)
        rc = db_commit(c, e); /* which rolls back when it fails */
    else
        db_rollback(c);
    db_release(st->db, c);
    return rc;
}

int64_t core_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int core_valid_id(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    for (const char *p = s; *p; p++, n++) {
        int alnum =
            (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (!alnum && (n == 0 || (*p != '.' && *p != '_' && *p != '-')))
            return 0;
    }
    return n >= 1 && n <= 64;
}

/* The state dir must exist (we create it) and be writable by us: prove it with a file. */
static int prepare_state_dir(const char *dir, struct st_err *e)
{
    char probe[4200];
    struct stat sb;

    if (mkdir(dir, 0700) && errno != EEXIST)
        return st_fail_errno(e, errno, "cannot create state dir %s", dir);
    if (stat(dir, &sb) || !S_ISDIR(sb.st_mode))
        return st_fail(e, ST_INVALID, "state dir %s is not a directory", dir);
    snprintf(probe, sizeof probe, "%s/.write-test.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return st_fail_errno(e, errno, "state dir %s is not writable", dir);
    close(fd);
    unlink(probe);
    return 0;
}

struct core_claim {
    struct core_claim *next;
    char key[96];
    int shared;
};

static int claim(struct stowage *st, const char *key, int shared, const char *what,
                 struct st_err *e)
{
    struct core_claim *c;
    pthread_mutex_lock(&st->claims_mu);
    for (c = st->claims; c; c = c->next) {
        if (strcmp(c->key, key) == 0 && !(shared && c->shared)) {
            pthread_mutex_unlock(&st->claims_mu);
            return st_fail(e, ST_CONFLICT, "%s is busy with another operation", what);
        }
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        pthread_mutex_unlock(&st->claims_mu);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    snprintf(c->key, sizeof c->key, "%s", key);
    c->shared = shared;
    c->next = st->claims;
    st->claims = c;
    pthread_mutex_unlock(&st->claims_mu);
    return 0;
}

int core_claim(struct stowage *st, const char *key, const char *what, struct st_err *e)
{
    return claim(st, key, 0, what, e);
}

int core_claim_shared(struct stowage *st, const char *key, const char *what, struct st_err *e)
{
    return claim(st, key, 1, what, e);
}

/* A key is held either once exclusively or by shared holders only: any entry will do. */
void core_unclaim(struct stowage *st, const char *key)
{
    pthread_mutex_lock(&st->claims_mu);
    for (struct core_claim **p = &st->claims; *p; p = &(*p)->next) {
        if (strcmp((*p)->key, key) == 0) {
            struct core_claim *c = *p;
            *p = c->next;
            free(c);
            break;
        }
    }
    pthread_mutex_unlock(&st->claims_mu);
}

int core_open(struct stowage *st, struct st_err *e)
{
    char path[4200];

    if (gethostname(st->hostname, sizeof st->hostname - 1))
        snprintf(st->hostname, sizeof st->hostname, "localhost");
    if (prepare_state_dir(st->cfg.state_dir, e))
        return -1;
    snprintf(path, sizeof path, "%s/stowage.db", st->cfg.state_dir);
    unsigned threads = st->cfg.threads ? st->cfg.threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    return db_open(&st->db, path, threads + st->cfg.workers + 4, e);
}

int core_start(struct stowage *st, struct st_err *e)
{
    if (core_open(st, e))
        return -1;
    if (core_auth_bootstrap(st, e) || core_storage_apply_config(st, e) ||
        core_volumes_start(st, e) || core_bs_places_start(st, e) || core_tasks_start(st, e) ||
        core_logins_start(st, e)) {
        core_stop(st);
        return -1;
    }
    st->started = 1;
    return 0;
}

void core_stop(struct stowage *st)
{
    st->started = 0;
    atomic_store(&st->stopping, 1);
    core_logins_free(st);
    core_tasks_stop(st);
    core_bs_places_stop(st);
    core_volumes_stop(st);
    db_close(st->db);
    st->db = NULL;
}

/* A cheap query proves the catalogue answers; not-found is still an answer. */
int core_health_catalogue(struct stowage *st, struct st_err *e)
{
    struct db_storage s;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_storage_get(c, "", &s, e);
    db_release(st->db, c);
    return rc == 0 || e->code == ST_NOT_FOUND ? 0 : -1;
}

void core_commit_stats(struct stowage *st, struct core_commit_stats *out)
{
    unsigned long long b, m;
    db_group_counts(st->db, &out->commits, &out->members);
    st_group_counts(&st->publishes, &b, &m);
    out->publishes = b;
    out->published = m;
}
