/* test_db_group.c — the group commit (db_group) over the real default driver on a real
 * database file: concurrent members share one COMMIT, a failing member is undone alone,
 * nothing of a batch is visible to another connection before its COMMIT, and a failed
 * COMMIT fails every member of its batch. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/db/db_internal.h"

#define MEMBERS 8

struct fx {
    char dir[256];
    char path[300];
    struct db *db;  /* the writers' */
    struct db *obs; /* another process's view: its own connections */
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    struct st_err e = {0};
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "%s/stowage-test-dbg-XXXXXX", tmp);
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/stowage.db", fx->dir);
    *state = fx;
    if (db_open(&fx->db, fx->path, 2, &e) || db_open(&fx->obs, fx->path, 1, &e)) {
        fprintf(stderr, "db_open: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    static const char *const tails[] = {"", "-wal", "-shm"};
    char p[320];

    db_close(fx->obs);
    db_close(fx->db);
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        snprintf(p, sizeof p, "%s%s", fx->path, tails[i]);
        unlink(p);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Committed image storages as another connection sees them. */
static size_t committed(struct fx *fx)
{
    struct db_storage *s = NULL;
    size_t n = 0;
    struct st_err e = {0};
    struct db_conn *c = db_acquire(fx->obs);
    assert_int_equal(db_storage_list(c, &s, &n, &e), 0);
    db_release(fx->obs, c);
    free(s);
    return n;
}

static int has_storage(struct fx *fx, const char *id)
{
    struct db_storage s;
    struct st_err e = {0};
    struct db_conn *c = db_acquire(fx->obs);
    int rc = db_storage_get(c, id, &s, &e);
    db_release(fx->obs, c);
    return rc == 0;
}

struct member {
    struct fx *fx;
    int i;
    char id[16];
    int fail;            /* the fn refuses after its insert */
    size_t seen_before;  /* committed rows another connection saw while fn ran */
    atomic_int *started; /* members about to queue */
    int rc;
    struct st_err err;
};

/* Insert one storage; member 0 holds its batch open until the others have queued. */
static int insert_one(struct db_conn *c, void *ud, struct st_err *e)
{
    struct member *m = ud;
    struct db_storage s = {.created_at = 1000};
    snprintf(s.id, sizeof s.id, "%s", m->id);
    snprintf(s.name, sizeof s.name, "Storage %s", m->id);
    if (db_storage_insert(c, &s, e))
        return -1;
    if (m->i == 0) {
        while (atomic_load(m->started) < MEMBERS - 1)
            usleep(1000);
        usleep(50000); /* they are in db_group by now */
    }
    m->seen_before = committed(m->fx);
    if (m->fail)
        return st_fail(e, ST_CONFLICT, "member %d refuses", m->i);
    return 0;
}

static void *member_main(void *arg)
{
    struct member *m = arg;
    if (m->i > 0)
        atomic_fetch_add(m->started, 1);
    m->rc = db_group(m->fx->db, insert_one, m, &m->err);
    return NULL;
}

/* MEMBERS writers: member 0 leads a batch of its own and keeps it open; the others queue
 * meanwhile and go in the next one. */
static void run_members(struct fx *fx, struct member *ms, int fail_i)
{
    pthread_t t[MEMBERS];
    atomic_int started = 0;
    for (int i = 0; i < MEMBERS; i++) {
        ms[i] = (struct member){.fx = fx, .i = i, .fail = i == fail_i, .started = &started};
        snprintf(ms[i].id, sizeof ms[i].id, "s%d", i);
    }
    assert_int_equal(pthread_create(&t[0], NULL, member_main, &ms[0]), 0);
    usleep(20000); /* member 0 leads */
    for (int i = 1; i < MEMBERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, member_main, &ms[i]), 0);
    for (int i = 0; i < MEMBERS; i++)
        pthread_join(t[i], NULL);
}

static void test_db_group_concurrent_members_share_one_commit(void **state)
{
    struct fx *fx = *state;
    struct member ms[MEMBERS];
    uint64_t commits, members;

    run_members(fx, ms, -1);
    for (int i = 0; i < MEMBERS; i++) {
        assert_int_equal(ms[i].rc, 0);
        assert_true(has_storage(fx, ms[i].id));
    }
    db_group_counts(fx->db, &commits, &members);
    assert_int_equal(members, MEMBERS);
    assert_int_equal(commits, 2); /* member 0's, then the seven that queued behind it */
    assert_int_equal(committed(fx), MEMBERS);
}

static void test_db_group_nothing_is_visible_before_the_commit(void **state)
{
    struct fx *fx = *state;
    struct member ms[MEMBERS];

    run_members(fx, ms, -1);
    assert_int_equal(ms[0].seen_before, 0);
    /* the second batch's members inserted one after another, but another connection saw
     * only member 0's committed row until their shared COMMIT */
    for (int i = 1; i < MEMBERS; i++)
        assert_int_equal(ms[i].seen_before, 1);
    assert_int_equal(committed(fx), MEMBERS);
}

static void test_db_group_a_failing_member_is_undone_alone(void **state)
{
    struct fx *fx = *state;
    struct member ms[MEMBERS];
    uint64_t commits, members;

    run_members(fx, ms, 3);
    assert_int_equal(ms[3].rc, -1);
    assert_int_equal(ms[3].err.code, ST_CONFLICT);
    assert_string_equal(ms[3].err.msg, "member 3 refuses");
    assert_false(has_storage(fx, "s3"));
    for (int i = 0; i < MEMBERS; i++) {
        if (i == 3)
            continue;
        assert_int_equal(ms[i].rc, 0);
        assert_true(has_storage(fx, ms[i].id));
    }
    assert_int_equal(committed(fx), MEMBERS - 1);
    db_group_counts(fx->db, &commits, &members);
    assert_int_equal(commits, 2);
}

/* A host of a storage that does not exist, its foreign key checked only at COMMIT. */
static int orphan_host(struct db_conn *c, void *ud, struct st_err *e)
{
    (void)ud;
    if (c->drv->exec_script(c->h, "PRAGMA defer_foreign_keys = ON"))
        return db_fail(c, e, "defer");
    return db_host_add(c, "nowhere", "h1", e);
}

struct pair {
    struct fx *fx;
    int rc[2];
    struct st_err err[2];
};

static int insert_good(struct db_conn *c, void *ud, struct st_err *e)
{
    struct db_storage s = {.created_at = 1000};
    (void)ud;
    snprintf(s.id, sizeof s.id, "good");
    snprintf(s.name, sizeof s.name, "Good");
    return db_storage_insert(c, &s, e);
}

static void *orphan_main(void *arg)
{
    struct pair *p = arg;
    p->rc[1] = db_group(p->fx->db, orphan_host, NULL, &p->err[1]);
    return NULL;
}

/* A member that runs in the same batch as the orphan: queued behind a leader that holds
 * its batch, both go in the next one. */
static int hold(struct db_conn *c, void *ud, struct st_err *e)
{
    (void)c;
    (void)e;
    usleep(*(unsigned *)ud);
    return 0;
}

static void *holder_main(void *arg)
{
    struct fx *fx = arg;
    unsigned us = 100000;
    struct st_err e;
    db_group(fx->db, hold, &us, &e);
    return NULL;
}

static void *good_main(void *arg)
{
    struct pair *p = arg;
    p->rc[0] = db_group(p->fx->db, insert_good, NULL, &p->err[0]);
    return NULL;
}

static void test_db_group_a_failed_commit_fails_every_member(void **state)
{
    struct fx *fx = *state;
    struct pair p = {.fx = fx};
    pthread_t holder, good, orphan;
    uint64_t commits, members;

    assert_int_equal(pthread_create(&holder, NULL, holder_main, fx), 0);
    usleep(20000);
    assert_int_equal(pthread_create(&good, NULL, good_main, &p), 0);
    assert_int_equal(pthread_create(&orphan, NULL, orphan_main, &p), 0);
    pthread_join(holder, NULL);
    pthread_join(good, NULL);
    pthread_join(orphan, NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(p.rc[i], -1);
        assert_int_equal(p.err[i].code, ST_IN_USE);
        assert_non_null(strstr(p.err[i].msg, "commit"));
    }
    assert_false(has_storage(fx, "good"));
    assert_int_equal(committed(fx), 0);
    db_group_counts(fx->db, &commits, &members);
    assert_int_equal(commits, 1); /* the holder's; the failed batch committed nothing */

    /* the queue goes on after a failed batch */
    struct member m = {.fx = fx, .i = 1};
    snprintf(m.id, sizeof m.id, "after");
    assert_int_equal(db_group(fx->db, insert_one, &m, &m.err), 0);
    assert_true(has_storage(fx, "after"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_db_group_concurrent_members_share_one_commit),
        T(test_db_group_nothing_is_visible_before_the_commit),
        T(test_db_group_a_failing_member_is_undone_alone),
        T(test_db_group_a_failed_commit_fails_every_member),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
