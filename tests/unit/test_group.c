/* test_group.c — batching by a leader (common/group.c): callers that queue while a batch
 * is worked on go in the next one, whose step runs once for all of them and gives each
 * its own verdict; a leader waits for its last batch's members to come back (its clients by
 * identity, the others by count), up to its window. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "stowage/group.h"

#define MEMBERS 8

struct fx {
    struct st_group g;
    atomic_int batches;
    size_t sizes[64];   /* of each batch, in order */
    atomic_int holding; /* the step holds its batch until cleared */
};

struct caller {
    struct fx *fx;
    int i;
    int rc;
    struct st_err err;
};

/* Fails caller 3; holds a batch while fx->holding. */
static void step(void *ctx, struct st_group_member *batch, size_t n)
{
    struct fx *fx = ctx;
    size_t seen = 0;
    int b = atomic_fetch_add(&fx->batches, 1);
    if (b < 64)
        fx->sizes[b] = n;
    while (atomic_load(&fx->holding))
        usleep(1000);
    for (struct st_group_member *m = batch; m; m = m->next, seen++) {
        const struct caller *c = m->ud;
        if (c->i == 3)
            m->rc = st_fail(&m->err, ST_UNAVAILABLE, "caller 3's step failed");
    }
    assert_int_equal(seen, n);
}

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    c->rc = st_group_join(&c->fx->g, c, &c->err);
    return NULL;
}

static void start(struct fx *fx, struct caller *cs, pthread_t *t, int from, int to)
{
    for (int i = from; i < to; i++) {
        cs[i] = (struct caller){.fx = fx, .i = i};
        assert_int_equal(pthread_create(&t[i], NULL, caller_main, &cs[i]), 0);
    }
}

static void join(pthread_t *t, int from, int to)
{
    for (int i = from; i < to; i++)
        pthread_join(t[i], NULL);
}

static void test_group_callers_queued_meanwhile_share_one_step_each_with_its_verdict(void **state)
{
    struct fx fx = {0};
    struct caller cs[MEMBERS + 1];
    pthread_t t[MEMBERS + 1];

    (void)state;
    st_group_init(&fx.g, step, NULL, &fx, 0);
    atomic_store(&fx.holding, 1);
    start(&fx, cs, t, MEMBERS, MEMBERS + 1); /* leads, and holds its batch */
    while (atomic_load(&fx.batches) == 0)
        usleep(1000);
    start(&fx, cs, t, 0, MEMBERS);
    usleep(50000); /* they are queued by now */
    atomic_store(&fx.holding, 0);
    join(t, 0, MEMBERS + 1);

    assert_int_equal(atomic_load(&fx.batches), 2);
    assert_int_equal(fx.sizes[0], 1);
    assert_int_equal(fx.sizes[1], MEMBERS);
    for (int i = 0; i <= MEMBERS; i++) {
        assert_int_equal(cs[i].rc, i == 3 ? -1 : 0);
        if (i == 3) {
            assert_int_equal(cs[i].err.code, ST_UNAVAILABLE);
            assert_string_equal(cs[i].err.msg, "caller 3's step failed");
        }
    }
    st_group_destroy(&fx.g);
}

static void test_group_a_leader_waits_for_as_many_as_its_last_batch_had(void **state)
{
    struct fx fx = {0};
    struct caller cs[MEMBERS + 1];
    pthread_t t[MEMBERS + 1];

    (void)state;
    st_group_init(&fx.g, step, NULL, &fx, 10L * 1000000000L); /* never reached below */
    atomic_store(&fx.holding, 1);
    start(&fx, cs, t, MEMBERS, MEMBERS + 1);
    while (atomic_load(&fx.batches) == 0)
        usleep(1000);
    start(&fx, cs, t, 0, 4); /* a batch of 4 behind the holder */
    usleep(50000);
    atomic_store(&fx.holding, 0);
    join(t, 0, 4);
    join(t, MEMBERS, MEMBERS + 1);
    /* 4 callers one after another: the first leads and waits until all 4 are queued */
    for (int i = 4; i < 8; i++) {
        start(&fx, cs, t, i, i + 1);
        usleep(20000);
    }
    join(t, 4, 8);
    assert_int_equal(atomic_load(&fx.batches), 3);
    assert_int_equal(fx.sizes[1], 4);
    assert_int_equal(fx.sizes[2], 4);
    st_group_destroy(&fx.g);
}

static void test_group_a_leader_waits_no_longer_than_its_window(void **state)
{
    struct fx fx = {0};
    struct caller cs[MEMBERS];
    pthread_t t[MEMBERS];

    (void)state;
    st_group_init(&fx.g, step, NULL, &fx, 20L * 1000000L);
    fx.g.last_others = 4; /* as if the last batch had had 4 members of no known client */
    start(&fx, cs, t, 0, 1);
    join(t, 0, 1);
    assert_int_equal(cs[0].rc, 0);
    assert_int_equal(atomic_load(&fx.batches), 1);
    assert_int_equal(fx.sizes[0], 1);
    assert_int_equal(fx.g.last_others, 1); /* and the next leader waits for 1 only */
    st_group_destroy(&fx.g);
}

/* A caller with a client identity (the member's client is the address of clients[i]). */
static char clients[MEMBERS];

struct client_caller {
    struct fx *fx;
    struct caller c;
    struct st_group_member m;
    atomic_int joined;
};

static void *client_main(void *arg)
{
    struct client_caller *cc = arg;
    st_group_join_all(&cc->fx->g, &cc->m, 1);
    atomic_store(&cc->joined, 1);
    return NULL;
}

static void start_client(struct fx *fx, struct client_caller *cc, pthread_t *t, int client)
{
    memset(cc, 0, sizeof *cc);
    cc->fx = fx;
    cc->c = (struct caller){.fx = fx, .i = client};
    cc->m.ud = &cc->c;
    cc->m.client = &clients[client];
    assert_int_equal(pthread_create(t, NULL, client_main, cc), 0);
}

static void
test_group_a_leader_waits_for_each_client_of_its_last_batch_not_for_a_count(void **state)
{
    struct fx fx = {0};
    struct client_caller cc[MEMBERS];
    pthread_t t[MEMBERS];

    (void)state;
    st_group_init(&fx.g, step, NULL, &fx, 10L * 1000000000L); /* never reached below */
    atomic_store(&fx.holding, 1);
    start_client(&fx, &cc[7], &t[7], 7); /* leads, and holds its batch */
    while (atomic_load(&fx.batches) == 0)
        usleep(1000);
    for (int i = 0; i < 4; i++) /* clients 0..3 queue behind it: one batch */
        start_client(&fx, &cc[i], &t[i], i);
    usleep(50000);
    atomic_store(&fx.holding, 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    pthread_join(t[7], NULL);
    assert_int_equal(fx.sizes[1], 4);
    /* a new client first, then the 4 come back one by one: once 4 are queued the count
     * of the last batch is reached, but client 3 is not back yet — the leader waits for
     * it, so all 5 go in one batch */
    start_client(&fx, &cc[4], &t[4], 4);
    for (int i = 0; i < 4; i++) {
        usleep(20000);
        start_client(&fx, &cc[i], &t[i], i);
    }
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&fx.batches), 3);
    assert_int_equal(fx.sizes[2], 5);
    st_group_destroy(&fx.g);
}

static void test_group_a_lone_client_that_comes_back_is_not_waited_for(void **state)
{
    struct fx fx = {0};
    struct client_caller cc;
    pthread_t t;

    (void)state;
    st_group_init(&fx.g, step, NULL, &fx, 10L * 1000000000L);
    for (int round = 0; round < 3; round++) { /* one client, one create after another */
        start_client(&fx, &cc, &t, 0);
        for (int ms = 0; ms < 2000 && !atomic_load(&cc.joined); ms++)
            usleep(1000);
        /* its last batch was itself alone: nothing to wait for, far within the window */
        assert_int_equal(atomic_load(&cc.joined), 1);
        pthread_join(t, NULL);
        assert_int_equal(cc.m.rc, 0);
    }
    assert_int_equal(atomic_load(&fx.batches), 3);
    assert_int_equal(fx.g.nlast_clients, 1);
    assert_int_equal(fx.g.last_others, 0);
    st_group_destroy(&fx.g);
}

/* A submitted member: told by its callback, on a server's thread. */
struct sub {
    struct st_group_member m;
    struct caller c;
    atomic_int told;
    int rc;
    struct st_err err;
};

static void told(struct st_group_member *m)
{
    struct sub *s = (struct sub *)(void *)m;
    s->rc = m->rc;
    s->err = m->err;
    atomic_store(&s->told, 1);
}

static void test_group_submitted_members_are_led_by_a_server_and_told_their_verdict(void **state)
{
    struct fx fx = {0};
    struct sub subs[MEMBERS];
    struct st_group_member lone = {0};

    (void)state;
    st_group_init(&fx.g, step, NULL, &fx, 0);
    assert_int_equal(st_group_submit(&fx.g, &lone), -1); /* no server yet */
    assert_int_equal(st_group_serve(&fx.g, 2), 2);
    atomic_store(&fx.holding, 1);
    for (int i = 0; i < MEMBERS; i++) {
        memset(&subs[i], 0, sizeof subs[i]);
        subs[i].c = (struct caller){.fx = &fx, .i = i};
        subs[i].m.ud = &subs[i].c;
        subs[i].m.finished = told;
        assert_int_equal(st_group_submit(&fx.g, &subs[i].m), 0); /* returns at once */
    }
    while (atomic_load(&fx.batches) == 0)
        usleep(1000);
    for (int i = 0; i < MEMBERS; i++)
        assert_int_equal(atomic_load(&subs[i].told), 0); /* held: nobody told yet */
    atomic_store(&fx.holding, 0);
    st_group_stop(&fx.g); /* waits for every submitted member */
    int sum = 0;
    for (int b = 0; b < atomic_load(&fx.batches); b++)
        sum += (int)fx.sizes[b];
    assert_int_equal(sum, MEMBERS);
    for (int i = 0; i < MEMBERS; i++) {
        assert_int_equal(atomic_load(&subs[i].told), 1);
        assert_int_equal(subs[i].rc, i == 3 ? -1 : 0);
    }
    assert_string_equal(subs[3].err.msg, "caller 3's step failed");
    assert_int_equal(st_group_submit(&fx.g, &lone), -1); /* stopped */
    st_group_destroy(&fx.g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_callers_queued_meanwhile_share_one_step_each_with_its_verdict),
        cmocka_unit_test(test_group_a_leader_waits_for_as_many_as_its_last_batch_had),
        cmocka_unit_test(test_group_a_leader_waits_no_longer_than_its_window),
        cmocka_unit_test(
            test_group_a_leader_waits_for_each_client_of_its_last_batch_not_for_a_count),
        cmocka_unit_test(test_group_a_lone_client_that_comes_back_is_not_waited_for),
        cmocka_unit_test(test_group_submitted_members_are_led_by_a_server_and_told_their_verdict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
