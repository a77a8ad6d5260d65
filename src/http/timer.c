/* timer.c — replies that wait without a thread: a body callback pauses its connection
 * for a while (http_reader_sleep) and one thread per server resumes it when the time
 * is up. Danube Cloud's ES-STREAM keep-alives are the user: a connection waits for its
 * task for up to an hour, and an HTTP thread held for that long would be one less for
 * everybody else.
 *
 * A sleeper is in the list exactly while its connection is suspended, so the thread
 * never resumes a connection that is not: the request cannot end while suspended. At
 * stop every sleeper is woken and further sleeps are refused, because MHD must not stop
 * with suspended connections. */
#include "http_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct sleeper {
    struct http_req *r;
    uint64_t wake_us;
    struct sleeper *next;
};

struct http_timers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started;
    int stop;
    struct sleeper *head; /* sorted by wake_us */
};

static void *timer_thread(void *arg)
{
    struct http_timers *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        uint64_t now = http_mono_us();
        while (t->head && t->head->wake_us <= now) {
            struct sleeper *s = t->head;
            t->head = s->next;
            MHD_resume_connection(s->r->conn);
            free(s);
        }
        if (!t->head) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        /* The condition variable runs on CLOCK_MONOTONIC, like http_mono_us. */
        uint64_t at = t->head->wake_us;
        struct timespec ts = {(time_t)(at / 1000000u), (long)(at % 1000000u) * 1000L};
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    }
    while (t->head) {
        struct sleeper *s = t->head;
        t->head = s->next;
        MHD_resume_connection(s->r->conn);
        free(s);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int http_timers_start(struct http_server *s)
{
    pthread_condattr_t ca;
    struct http_timers *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->timers = t;
    if (pthread_create(&t->thread, NULL, timer_thread, t) != 0)
        return -1;
    t->started = 1;
    return 0;
}

void http_timers_wake_all(struct http_server *s)
{
    struct http_timers *t = s->timers;
    if (!t || !t->started)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    t->started = 0;
}

void http_timers_free(struct http_server *s)
{
    struct http_timers *t = s->timers;
    if (!t)
        return;
    http_timers_wake_all(s);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
    s->timers = NULL;
}

int http_reader_sleep(struct http_req *r, unsigned ms)
{
    struct http_timers *t = r->srv->timers;
    struct sleeper *s = malloc(sizeof *s);
    if (!s)
        return -1;
    s->r = r;
    s->wake_us = http_mono_us() + (uint64_t)ms * 1000u;
    pthread_mutex_lock(&t->mu);
    if (t->stop || !t->started) {
        pthread_mutex_unlock(&t->mu);
        free(s);
        return -1;
    }
    /* Suspended before the thread can see it, so its resume always follows. */
    MHD_suspend_connection(r->conn);
    struct sleeper **p = &t->head;
    while (*p && (*p)->wake_us <= s->wake_us)
        p = &(*p)->next;
    s->next = *p;
    *p = s;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return 0;
}
