/* guard.c — slow clients may not hold the connection table.
 *
 * MHD's connection_timeout counts idle time only, so a client that sends a header
 * line one byte a second holds its slot for ever, and a thousand of them lock every
 * other client out. MHD never calls us before a request's headers are complete, so
 * the guard watches every connection from outside: MHD tells it of each connection
 * (MHD_OPTION_NOTIFY_CONNECTION), the request handler of each request's start and
 * end, and the kernel how many bytes came in (TCP_INFO). A watchdog thread then
 *  - answers 408 and closes a connection whose request headers are not complete
 *    limits.header_timeout after its first byte (after the accept for a new one);
 *  - when more than limits.max_connections are open, closes the waiting connections
 *    that made the least progress (bytes per second) first, sparing those younger
 *    than 250 ms. MHD's own limit is half as much again, so new connections are
 *    accepted at once instead of queueing behind slow ones in the listen backlog; a
 *    client that sends its request at once is in its request (never evicted) before
 *    its grace is over.
 * Closing is shutdown(2) on the socket: MHD sees the end and cleans up as usual. The
 * socket stays open until MHD's CLOSED notice, which takes our lock: the fd we shut
 * down is always the connection's own. */
#include "http_internal.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define GUARD_TICK_MS 200
#define GUARD_GRACE_US 250000 /* a connection this young is never evicted */
#define UNSCORED 1e6          /* progress assumed until the first sweep measures it */

enum guard_phase { WAITING, IN_REQUEST };

struct guard_conn {
    struct guard_conn *prev, *next;
    struct MHD_Connection *conn;
    int fd;
    enum guard_phase phase;
    uint64_t since_us;    /* the phase began (accept, or the end of the last reply) */
    uint64_t first_rx_us; /* the first byte of the awaited request came (0: not yet) */
    uint64_t rx_base;     /* kernel bytes received when the phase began */
    unsigned served;      /* requests answered on this connection */
    double score;         /* progress at the last sweep: bytes a second, answered requests count */
    int closing;
};

struct http_guard {
    struct http_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct guard_conn *head;
    unsigned count;   /* connections MHD holds */
    unsigned closing; /* of which shut down, waiting for MHD to notice */
    int stop;
    pthread_t thread;
};

static uint64_t rx_bytes(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return 0;
    return ti.tcpi_bytes_received;
}

/* Under g->mu. 408 when a request had begun (plain TCP only), then shut the socket. */
static void expire(struct http_guard *g, struct guard_conn *c, int with_408, const char *why)
{
    if (c->closing)
        return;
    c->closing = 1;
    g->closing++;
    if (with_408 && !core_config(g->srv->st)->tls_cert) {
        struct st_err e;
        st_fail(&e, ST_TIMEOUT, "%s", why);
        /* no request line yet, perhaps: the envelope of paths nobody owns */
        http_send_raw_error(c->fd, http_router_fallback(g->srv->rt), NULL, &e);
    }
    shutdown(c->fd, SHUT_RDWR);
}

/* Under g->mu: the table is over its size; close the waiting connection that made the
 * least progress at the last sweep (the oldest among equals), at once, so the backlog of
 * new connections keeps moving and a client that sends its request at once gets in. */
static int evict_one(struct http_guard *g, uint64_t now)
{
    struct guard_conn *worst = NULL;
    for (struct guard_conn *c = g->head; c; c = c->next) {
        if (c->phase != WAITING || c->closing || now - c->since_us <= GUARD_GRACE_US)
            continue;
        if (!worst || c->score < worst->score ||
            (c->score == worst->score && c->since_us < worst->since_us))
            worst = c;
    }
    if (worst)
        expire(g, worst, 0, NULL);
    return worst != NULL;
}

void http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    struct http_guard *g = s->guard;
    struct guard_conn *c = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(c = calloc(1, sizeof *c)))
            return; /* not guarded, still served */
        c->conn = conn;
        c->fd = ci->connect_fd;
        c->since_us = http_mono_us();
        c->first_rx_us = c->since_us; /* a new connection's clock runs from the accept */
        c->score = UNSCORED;
        pthread_mutex_lock(&g->mu);
        c->next = g->head;
        if (g->head)
            g->head->prev = c;
        g->head = c;
        if (++g->count - g->closing > core_config(s->st)->max_connections)
            evict_one(g, c->since_us);
        pthread_mutex_unlock(&g->mu);
        *socket_context = c;
    } else if (c) {
        pthread_mutex_lock(&g->mu);
        if (c->prev)
            c->prev->next = c->next;
        else
            g->head = c->next;
        if (c->next)
            c->next->prev = c->prev;
        g->count--;
        g->closing -= c->closing;
        pthread_mutex_unlock(&g->mu);
        free(c);
        *socket_context = NULL;
    }
}

static struct guard_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void http_guard_request_started(struct http_server *s, struct MHD_Connection *conn)
{
    struct guard_conn *c = conn_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&s->guard->mu);
    c->phase = IN_REQUEST;
    pthread_mutex_unlock(&s->guard->mu);
}

void http_guard_request_done(struct http_server *s, struct MHD_Connection *conn)
{
    struct guard_conn *c = conn_of(conn);
    if (!c)
        return;
    uint64_t rx = rx_bytes(c->fd);
    pthread_mutex_lock(&s->guard->mu);
    c->phase = WAITING;
    c->since_us = http_mono_us();
    c->first_rx_us = 0; /* an idle keep-alive connection is MHD's idle timeout's business */
    c->rx_base = rx;
    c->served++;
    pthread_mutex_unlock(&s->guard->mu);
}

/* Under g->mu: one pass over every connection. */
static void sweep(struct http_guard *g)
{
    const struct st_config *cfg = core_config(g->srv->st);
    uint64_t now = http_mono_us(), limit_us = (uint64_t)cfg->header_timeout * 1000000u;
    char why[96];

    snprintf(why, sizeof why, "request headers not complete within %u s", cfg->header_timeout);
    for (struct guard_conn *c = g->head; c; c = c->next) {
        if (c->phase != WAITING || c->closing)
            continue;
        uint64_t rx = rx_bytes(c->fd) - c->rx_base;
        if (!c->first_rx_us && rx)
            c->first_rx_us = now;
        if (c->first_rx_us && now - c->first_rx_us > limit_us) {
            expire(g, c, 1, why);
            continue;
        }
        double age = (double)(now - c->since_us + 1) / 1e6;
        c->score = (double)rx / age + 1e9 * c->served;
    }
    /* Connections that came in all at once, before any could be closed. */
    while (g->count - g->closing > cfg->max_connections && evict_one(g, now))
        ;
}

static void *watchdog(void *arg)
{
    struct http_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += GUARD_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!g->stop && pthread_cond_timedwait(&g->cv, &g->mu, &ts) == 0)
            ;
        if (!g->stop)
            sweep(g);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int http_guard_start(struct http_server *s)
{
    struct http_guard *g = calloc(1, sizeof *g);
    pthread_condattr_t ca;
    if (!g)
        return -1;
    g->srv = s;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->guard = g;
    if (pthread_create(&g->thread, NULL, watchdog, g)) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
        s->guard = NULL;
        return -1;
    }
    return 0;
}

/* After MHD_stop_daemon: every connection has been closed and noticed. */
void http_guard_stop(struct http_server *s)
{
    struct http_guard *g = s->guard;
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
    s->guard = NULL;
}
