/* http_internal.h — the request and server structs shared by src/http/. */
#ifndef STOWAGE_HTTP_INTERNAL_H
#define STOWAGE_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdatomic.h>

#include "stowage/http.h"

struct hdr {
    char *name;
    char *value;
};

#define HTTP_STATUS_SLOTS 24
#define HTTP_LATENCY_BUCKETS 14

struct route_metrics {
    atomic_uint_fast64_t by_status[HTTP_STATUS_SLOTS];
    atomic_uint_fast64_t latency[HTTP_LATENCY_BUCKETS + 1]; /* last: +Inf */
    atomic_uint_fast64_t latency_sum_us;
};

struct http_cache;
struct http_timers;

struct http_server {
    struct MHD_Daemon *mhd;
    struct http_cache *cache;
    struct stowage *st;
    struct http_router *rt;
    struct route_metrics *metrics; /* one per route, plus one for unmatched paths */
    size_t n_metrics;
    atomic_uint_fast64_t next_id;
    char id_prefix[12];
    char *tls_cert;
    char *tls_key;
    int listen_fd;
    struct http_guard *guard;
    struct http_timers *timers; /* sleeping reply bodies (timer.c) */
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* owned by MHD for the request's life */
    const char *url;
    int route_idx;
    const struct http_route *route;
    const struct http_dialect *dialect;
    char pathbuf[2048];
    const char *captures[HTTP_MAX_CAPTURES];
    int n_captures;
    struct st_principal who;
    char rid[72];
    int64_t content_length;
    int has_body;
    /* JSON routes */
    char *body;
    size_t body_len, body_cap;
    json_t *json;
    /* stream routes */
    void *ctx;
    const struct http_stream_ops *sops;
    int ended;
    /* an error found while the body was arriving, answered when it is over */
    int deferred;
    struct st_err deferred_err;
    /* a handler that answers later (http_defer): what runs once it may */
    int parked;
    http_handler_fn then;
    /* body rate (limits.min_body_rate): bytes in the current window and its start */
    uint64_t window_t0_us, window_bytes;
    int window_paused; /* we suspended the body in this window: the client is not to blame */
    /* reply */
    struct hdr *hdrs;
    size_t n_hdrs;
    unsigned status;
    uint64_t bytes_out;
    int sendfile_fd;        /* a file reply's fd (sendfile.c), or -1 */
    struct http_lent *lent; /* a lent reply's source (sendfile.c), or NULL */
    int replied;
    uint64_t t0_us;
};

uint64_t http_mono_us(void);
void http_metrics_record(struct http_server *s, int route_idx, unsigned status, uint64_t us);
int http_metrics_init(struct http_server *s);
void http_metrics_free(struct http_server *s);
int http_cache_init(struct http_server *s);
void http_cache_free(struct http_server *s);
/* Write e in dialect d's envelope straight to a plain-TCP socket, Connection: close, for
 * the moments MHD cannot answer (headers not complete, body still arriving). */
int http_send_raw_error(int fd, const struct http_dialect *d, const char *rid,
                        const struct st_err *e);

/* ---- the connection guard (guard.c): slow clients and a full connection table ---- */
struct http_guard;
int http_guard_start(struct http_server *s);
void http_guard_stop(struct http_server *s);
/* MHD_OPTION_NOTIFY_CONNECTION */
void http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);
/* A request's headers are complete / its reply is done: the connection waits again. */
void http_guard_request_started(struct http_server *s, struct MHD_Connection *c);
void http_guard_request_done(struct http_server *s, struct MHD_Connection *c);

/* ---- sleeping reply bodies (timer.c) ---- */
int http_timers_start(struct http_server *s);
/* Resume every sleeper and refuse new sleeps (before MHD stops). */
void http_timers_wake_all(struct http_server *s);
void http_timers_free(struct http_server *s);

/* ---- file replies in big sendfile steps (sendfile.c) ---- */
/* fd is a file reply's for the range [off, off+len) until it is forgotten (when the
 * request ends, before libmicrohttpd closes fd). */
void http_sendfile_register(int fd, uint64_t off, uint64_t len);
void http_sendfile_forget(int fd);
/* A lent reply (http_reply_lent): libmicrohttpd is given a response "from" the
 * placeholder fd, whose sendfile steps send() the lender's bytes instead. */
struct http_lent {
    const struct http_lender *ops;
    void *cls;
    uint64_t size;
    uint64_t *bytes_out;
};
int http_sendfile_lend(int fd, struct http_lent *l); /* -1: fd too big to register */

/* A lent reply's source is done with (after http_sendfile_forget): free it. */
void http_reply_lent_done(struct http_req *r);

/* Queue resp with the common headers; records the status. Consumes resp. */
void http_queue(struct http_req *r, unsigned status, struct MHD_Response *resp);

#endif
