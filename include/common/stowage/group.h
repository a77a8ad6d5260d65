/* group.h — batching by a leader, the way databases do group commit: concurrent callers
 * that each need the same costly step (a durable COMMIT, a sync of a filesystem) queue;
 * the first to find no batch under way leads — it takes every caller queued so far and
 * takes the step once for all of them — and the ones that queue meanwhile form the next
 * batch. Each caller returns only once its batch is done, with its own verdict — or, when
 * it submitted its member instead of joining, returns at once and is told the verdict by
 * a callback from the server thread that led the batch. */
#ifndef STOWAGE_GROUP_H
#define STOWAGE_GROUP_H

#include <pthread.h>
#include <stddef.h>

#include "stowage/err.h"

struct st_group_member {
    void *ud;           /* the caller's */
    const void *client; /* who it is for (a connection: one member at a time), NULL unknown */
    int rc;             /* the batch's verdict on it: 0, or -1 with err */
    struct st_err err;
    int taken; /* in a batch: its caller no longer leads */
    int done;
    struct st_group_member *next;
    /* st_group_submit's: called by the leader once the batch is done (no lock held); the
     * member is the callback's from then on */
    void (*finished)(struct st_group_member *m);
};

/* The step for a batch of n members (a list through next, in queue order): sets each
 * member's rc and err. Runs on the leader's thread, no lock held. */
typedef void (*st_group_fn)(void *ctx, struct st_group_member *batch, size_t n);

/* The clients of a batch that its next leader waits for, at most. */
#define ST_GROUP_CLIENTS 64

struct st_group {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;   /* a batch is done */
    pthread_cond_t queued_cv; /* a member queued */
    struct st_group_member *queue, **queue_end;
    size_t queued; /* members queued now */
    /* the last batch: the clients of its members (each once) and how many more members it
     * had (no client, a client twice, or beyond ST_GROUP_CLIENTS) */
    const void *last_clients[ST_GROUP_CLIENTS];
    size_t nlast_clients, last_others;
    int leading;
    pthread_cond_t serve_cv; /* for servers: a member queued, or a batch no longer led */
    int servers, quit;
    size_t submitted;                    /* members of st_group_submit not finished yet */
    unsigned long long batches, members; /* led so far, and the members they carried */
    long window_ns;
    st_group_fn run, after;
    void *ctx;
};

/* window_ns: how long a leader waits, at most, for the last batch's members to come back
 * before it takes the batch (callers answered together come back together): each of its
 * clients, and as many members without a known client as it had; 0: never.
 * after (may be NULL): a second step for the batch that the leader takes once it no
 * longer leads — the next batch may be led meanwhile (a pipeline: while one batch's
 * rows commit, the next one's files are synced). Members with rc 0 are its business. */
void st_group_init(struct st_group *g, st_group_fn run, st_group_fn after, void *ctx,
                   long window_ns);
void st_group_destroy(struct st_group *g);
/* Queue ud, then lead or wait; returns once ud's batch is done: its rc (its err in e,
 * which may be NULL). */
int st_group_join(struct st_group *g, void *ud, struct st_err *e);
/* n members of one caller (their ud set) queued at once, in one batch; returns once it is
 * done, each member's verdict in its rc and err. */
void st_group_join_all(struct st_group *g, struct st_group_member *ms, size_t n);
/* Queue m (its ud and finished set) and return at once: a server thread leads its batch
 * and calls m->finished when it is done. -1 when the group has no server (m not queued). */
int st_group_submit(struct st_group *g, struct st_group_member *m);
/* Start n server threads, which lead batches of submitted members (two: one batch's
 * second step while the next one's first). Returns how many started. */
int st_group_serve(struct st_group *g, int n);
/* Wait for the submitted members to be done, then stop the servers. */
void st_group_stop(struct st_group *g);
/* Batches led so far, and the members they carried. */
void st_group_counts(struct st_group *g, unsigned long long *batches, unsigned long long *members);

#endif
