/* group.c — batching by a leader (group.h). */
#include "stowage/group.h"

#include <errno.h>
#include <time.h>

void st_group_init(struct st_group *g, st_group_fn run, st_group_fn after, void *ctx,
                   long window_ns)
{
    *g = (struct st_group){.run = run, .after = after, .ctx = ctx, .window_ns = window_ns};
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->done_cv, NULL);
    pthread_cond_init(&g->queued_cv, NULL);
    pthread_cond_init(&g->serve_cv, NULL);
    g->queue_end = &g->queue;
}

void st_group_destroy(struct st_group *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->done_cv);
    pthread_cond_destroy(&g->queued_cv);
    pthread_cond_destroy(&g->serve_cv);
}

/* What of the last batch is still to come back, counted over the queue's members from
 * *from on (appended since the last count): each of its clients not seen yet (back[i]),
 * and its other members beyond the queued members that are none of its clients. */
struct awaited {
    unsigned char back[ST_GROUP_CLIENTS];
    size_t clients, others;
};

/* Where client is among the last batch's clients: nlast_clients when it is not (or NULL). */
static size_t last_index(const struct st_group *g, const void *client)
{
    size_t i = 0;
    while (client && i < g->nlast_clients && client != g->last_clients[i])
        i++;
    return client ? i : g->nlast_clients;
}

static void count_back(const struct st_group *g, struct st_group_member *const *from,
                       struct awaited *w)
{
    for (const struct st_group_member *p = *from; p; p = p->next) {
        size_t i = last_index(g, p->client);
        if (i < g->nlast_clients && !w->back[i]) {
            w->back[i] = 1;
            w->clients--;
        } else if (w->others) {
            w->others--;
        }
    }
}

/* The leader waits a little for the last batch's members: a client answered comes back
 * with its next request a few hundred microseconds later, and a batch that went without
 * it would leave it to a batch of its own (4 clients would settle into two batches of 2,
 * each paying every flush). Caller holds mu. */
static void wait_for_last(struct st_group *g)
{
    struct awaited w = {.clients = g->nlast_clients, .others = g->last_others};
    struct st_group_member **from = &g->queue;
    struct timespec until;

    if (g->window_ns <= 0)
        return;
    count_back(g, from, &w);
    from = g->queue_end;
    if (!w.clients && !w.others)
        return;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += g->window_ns;
    while (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while ((w.clients || w.others) &&
           pthread_cond_timedwait(&g->queued_cv, &g->mu, &until) != ETIMEDOUT) {
        count_back(g, from, &w);
        from = g->queue_end;
    }
}

/* The batch's clients (each once) and its other members, for the next leader. */
static void remember(struct st_group *g, const struct st_group_member *batch)
{
    g->nlast_clients = g->last_others = 0;
    for (const struct st_group_member *p = batch; p; p = p->next) {
        size_t i = last_index(g, p->client);
        if (p->client && i == g->nlast_clients && i < ST_GROUP_CLIENTS)
            g->last_clients[g->nlast_clients++] = p->client;
        else
            g->last_others++;
    }
}

/* Lead one batch through both steps; caller holds mu, and holds it again on return. */
static void lead(struct st_group *g)
{
    g->leading = 1;
    wait_for_last(g);
    struct st_group_member *batch = g->queue;
    size_t n = g->queued;
    for (struct st_group_member *p = batch; p; p = p->next)
        p->taken = 1;
    g->queue = NULL;
    g->queue_end = &g->queue;
    remember(g, batch);
    g->queued = 0;
    g->batches++;
    g->members += n;
    pthread_mutex_unlock(&g->mu);
    g->run(g->ctx, batch, n);
    if (g->after) {
        pthread_mutex_lock(&g->mu);
        g->leading = 0; /* the next batch may go while this one takes its second step */
        pthread_cond_broadcast(&g->done_cv);
        pthread_cond_signal(&g->serve_cv);
        pthread_mutex_unlock(&g->mu);
        g->after(g->ctx, batch, n);
    }
    /* submitted members are told by their callback, without the lock, before the waiting
     * ones are woken: none of them has a thread waiting */
    size_t told = 0;
    for (struct st_group_member *p = batch, *next, *prev = NULL; p; p = next) {
        next = p->next;
        if (!p->finished) {
            prev = p;
            continue;
        }
        if (prev) /* out of the list: it is the callback's */
            prev->next = next;
        else
            batch = next;
        p->finished(p);
        told++;
    }
    pthread_mutex_lock(&g->mu);
    for (struct st_group_member *p = batch, *next; p; p = next) {
        next = p->next; /* p is its waiter's again once done is seen */
        p->done = 1;
    }
    g->submitted -= told;
    if (!g->after)
        g->leading = 0;
    if (g->quit)
        pthread_cond_broadcast(&g->serve_cv);
    else if (!g->after)
        pthread_cond_signal(&g->serve_cv);
    pthread_cond_broadcast(&g->done_cv);
}

void st_group_join_all(struct st_group *g, struct st_group_member *ms, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < n; i++) {
        ms[i].rc = ms[i].taken = ms[i].done = 0;
        ms[i].next = NULL;
        ms[i].finished = NULL;
        *g->queue_end = &ms[i];
        g->queue_end = &ms[i].next;
    }
    g->queued += n;
    pthread_cond_signal(&g->queued_cv);
    /* queued together, they are taken together: ms[0] speaks for all */
    while (!ms[n - 1].done) {
        if (g->leading || ms[0].taken)
            pthread_cond_wait(&g->done_cv, &g->mu);
        else
            lead(g);
    }
    pthread_mutex_unlock(&g->mu);
}

int st_group_submit(struct st_group *g, struct st_group_member *m)
{
    pthread_mutex_lock(&g->mu);
    if (!g->servers || g->quit) {
        pthread_mutex_unlock(&g->mu);
        return -1;
    }
    m->rc = m->taken = m->done = 0;
    m->next = NULL;
    *g->queue_end = m;
    g->queue_end = &m->next;
    g->queued++;
    g->submitted++;
    pthread_cond_signal(&g->queued_cv);
    if (!g->leading)
        pthread_cond_signal(&g->serve_cv);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

/* A server: leads a batch whenever members are queued and no batch is led. A member that
 * a joiner queued may be led by either. */
static void *serve(void *arg)
{
    struct st_group *g = arg;

    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->quit && (!g->queue || g->leading))
            pthread_cond_wait(&g->serve_cv, &g->mu);
        if (g->quit && !g->submitted)
            break;
        if (g->queue && !g->leading)
            lead(g);
        else
            pthread_cond_wait(&g->serve_cv, &g->mu); /* quitting: the last batches are led */
    }
    g->servers--;
    pthread_cond_broadcast(&g->done_cv);
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int st_group_serve(struct st_group *g, int n)
{
    pthread_attr_t attr;
    pthread_t t;
    int started = 0;

    if (pthread_attr_init(&attr))
        return 0;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < n; i++)
        if (pthread_create(&t, &attr, serve, g) == 0) {
            g->servers++;
            started++;
        }
    pthread_mutex_unlock(&g->mu);
    pthread_attr_destroy(&attr);
    return started;
}

void st_group_stop(struct st_group *g)
{
    pthread_mutex_lock(&g->mu);
    g->quit = 1;
    pthread_cond_broadcast(&g->serve_cv);
    while (g->servers)
        pthread_cond_wait(&g->done_cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void st_group_counts(struct st_group *g, unsigned long long *batches, unsigned long long *members)
{
    pthread_mutex_lock(&g->mu);
    *batches = g->batches;
    *members = g->members;
    pthread_mutex_unlock(&g->mu);
}

int st_group_join(struct st_group *g, void *ud, struct st_err *e)
{
    struct st_group_member m = {.ud = ud};

    st_group_join_all(g, &m, 1);
    if (m.rc && e)
        *e = m.err;
    return m.rc;
}
