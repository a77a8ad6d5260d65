/* http.h — the HTTP layer: libmicrohttpd setup, the route table, replies.
 *
 * A dialect is a route table plus one function that turns an st_err into its
 * error envelope. The server matches method + path pattern ("{x}" captures a
 * segment), enforces the limits of API.md § Common, authenticates, buffers
 * JSON bodies (or streams others to the route), and calls the handler once.
 * A handler answers with exactly one http_reply_* call. */
#ifndef STOWAGE_HTTP_H
#define STOWAGE_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "stowage/core.h"
#include "stowage/err.h"

struct http_req;
struct http_server;

enum http_body { HTTP_BODY_NONE, HTTP_BODY_JSON, HTTP_BODY_STREAM };

typedef void (*http_handler_fn)(struct http_req *r);

/* For HTTP_BODY_STREAM routes: the handler runs when the headers are in and
 * either replies at once (an error) or installs these with http_set_ctx.
 * data() gets each chunk and returns how many bytes it took; when it takes
 * fewer than offered it must have called http_suspend(r), and someone calls
 * http_resume(r) later: the rest is offered again then. On failure data()
 * fills e and returns -1: the server discards the rest of the body and
 * answers e. end() runs after the last byte and must reply. cleanup() runs
 * exactly once when the request is over; `finished` is 0 when end() never
 * ran (client gone, timeout, data error). */
struct http_stream_ops {
    ssize_t (*data)(struct http_req *r, const char *buf, size_t len, struct st_err *e);
    void (*end)(struct http_req *r);
    void (*cleanup)(struct http_req *r, int finished);
};

struct http_route {
    const char *method;
    const char *pattern;
    enum http_body body;
    enum st_role role; /* ROLE_NONE: no authentication */
    http_handler_fn handler;
};

struct http_dialect {
    const char *name;
    const char *const *prefixes;     /* NULL-terminated: paths this dialect answers errors for */
    const struct http_route *routes; /* terminated by a {NULL} entry */
    /* The dialect's error envelope for e and its HTTP status. A JSON string is sent
     * as text/plain (ZStack answers bad parameters in plain text). */
    json_t *(*error_body)(const struct st_err *e, unsigned *status);
};

#define HTTP_MAX_CAPTURES 6

/* ---- server ---- */
/* Bind the listening socket first, so a taken port fails before anything else starts. */
int http_listen(const struct st_config *cfg, struct st_err *e);
/* Serve on listen_fd (taken over, closed by http_stop). */
int http_start(struct http_server **out, struct stowage *st, int listen_fd,
               const struct http_dialect *const *dialects, struct st_err *e);
void http_stop(struct http_server *s);

/* ---- router (router.c), usable without a server for tests ---- */
struct http_router;
int http_router_new(struct http_router **out, const struct http_dialect *const *dialects);
void http_router_free(struct http_router *rt);
/* Returns the route index (>= 0) and fills captures; -ST_NOT_FOUND / -ST_METHOD otherwise.
 * *dialect is always set: the matched route's, else the one owning the path prefix. */
int http_router_match(const struct http_router *rt, const char *method, const char *path, char *buf,
                      size_t buflen, const char **captures, int *n_captures,
                      const struct http_dialect **dialect, char *allow, size_t allow_len);
const struct http_route *http_router_route(const struct http_router *rt, int idx);
size_t http_router_count(const struct http_router *rt);
/* The dialect that answers for paths no other one owns (native). */
const struct http_dialect *http_router_fallback(const struct http_router *rt);

/* ---- request accessors ---- */
struct stowage *http_st(struct http_req *r);
struct http_server *http_server_of(struct http_req *r);
const char *http_method(struct http_req *r);
const char *http_path(struct http_req *r);
const char *http_capture(struct http_req *r, int i);
const char *http_query(struct http_req *r, const char *key);
/* Calls fn for each query argument in order (repeated keys included). */
void http_query_each(struct http_req *r, void (*fn)(void *ud, const char *k, const char *v),
                     void *ud);
const char *http_header(struct http_req *r, const char *name);
const char *http_cookie(struct http_req *r, const char *name);
json_t *http_json(struct http_req *r); /* parsed body of a JSON route (borrowed) */
const struct st_principal *http_principal(struct http_req *r);
const char *http_request_id(struct http_req *r);
/* Declared body length, or -1 when unknown (chunked). */
int64_t http_content_length(struct http_req *r);
/* Per-request storage for stream routes. */
void http_set_ctx(struct http_req *r, void *ctx, const struct http_stream_ops *ops);
void *http_ctx(struct http_req *r);
/* Stop reading this request's body until http_resume (which may be called from any thread). */
void http_suspend(struct http_req *r);
void http_resume(struct http_req *r);
/* Answer later without holding an HTTP thread: a JSON route's handler calls http_defer
 * and returns without replying; the connection is suspended until someone (any thread)
 * calls http_continue(r, fn) exactly once, and fn(r) then runs on an HTTP thread and
 * replies. The request stays alive while deferred. */
void http_defer(struct http_req *r);
void http_continue(struct http_req *r, http_handler_fn fn);
/* The same for every request of one connection while it is open, and no other's. */
const void *http_client_id(struct http_req *r);
/* The client's IP address as text ("127.0.0.1"); "" when unknown. */
void http_client_addr(struct http_req *r, char *out, size_t len);
/* The dialect of the matched route. */
const struct http_dialect *http_dialect_of(struct http_req *r);

/* ---- replies (reply.c) ---- */
/* Extra header for the coming reply (copied). */
void http_add_header(struct http_req *r, const char *name, const char *value);
/* Steals j. */
void http_reply_json(struct http_req *r, unsigned status, json_t *j);
void http_reply_bytes(struct http_req *r, unsigned status, const char *content_type,
                      const void *buf, size_t len);
/* Shared immutable body: unref(cls) runs when MHD is done with it. */
void http_reply_shared(struct http_req *r, unsigned status, const char *content_type,
                       const void *buf, size_t len, void (*unref)(void *), void *cls);
/* A body produced by a callback (as MHD_ContentReaderCallback); size UINT64_MAX: unknown. */
typedef ssize_t (*http_reader_fn)(void *cls, uint64_t pos, char *buf, size_t max);
void http_reply_reader(struct http_req *r, unsigned status, const char *content_type, uint64_t size,
                       http_reader_fn fn, void *cls, void (*free_cls)(void *));
/* From inside an http_reader_fn: pause this reply for ms milliseconds without holding a
 * thread, then return 0; the reader is called again afterwards. -1 (nothing paused)
 * when the server is stopping: the reader should end its body now. */
int http_reader_sleep(struct http_req *r, unsigned ms);
/* A body sent straight from a kernel fd with sendfile; takes ownership of fd. */
void http_reply_fd(struct http_req *r, unsigned status, const char *content_type, int fd,
                   uint64_t off, uint64_t len);
/* A body whose bytes the caller lends rather than copies: peek points *p at the bytes at
 * pos (1 to max of them; 0 at the end, negative on failure), valid until advance says
 * how many were sent. Without TLS they go from there to the socket with send(), in
 * steps of up to 4 MiB; with TLS (or no fd to spare) they are copied into MHD's buffer.
 * free_cls(cls) runs once nothing will be asked of cls any more. */
struct http_lender {
    ssize_t (*peek)(void *cls, uint64_t pos, size_t max, const void **p);
    void (*advance)(void *cls, uint64_t pos, size_t n);
    void (*free_cls)(void *cls);
};
void http_reply_lent(struct http_req *r, unsigned status, const char *content_type, uint64_t size,
                     const struct http_lender *ops, void *cls);
/* The dialect's envelope for e. */
void http_reply_error(struct http_req *r, const struct st_err *e);
int http_replied(struct http_req *r);

/* Standard status for an st_code (dialects start from this table). */
unsigned http_status_of(enum st_code code);

/* ---- rendered-reply cache (cache.c) ----
 * GET replies that depend only on the catalogue are rendered once per catalogue
 * generation and then served from memory, shared, without a copy. */
/* Reply from the cache if key is stored at generation gen; returns 1 when it replied. */
int http_reply_cached(struct http_req *r, const char *key, uint64_t gen);
/* Reply 200 with j (stolen) as JSON and keep the text for key at generation gen. */
void http_reply_json_cached(struct http_req *r, const char *key, uint64_t gen, json_t *j);
/* The same for a reply that wraps the cached text: 200 head + text + tail (an envelope whose
 * other fields change with every request, e.g. a task id). */
int http_reply_cached_within(struct http_req *r, const char *key, uint64_t gen, const char *head,
                             const char *tail);
void http_reply_json_cached_within(struct http_req *r, const char *key, uint64_t gen, json_t *j,
                                   const char *head, const char *tail);

/* ---- metrics (metrics.c) ---- */
/* printf at the end of a growing buffer (*buf realloc'd, NUL-terminated); 0 or -1. */
int http_buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends Prometheus text for the HTTP layer to *buf (realloc'd). */
int http_metrics_render(struct http_server *s, char **buf, size_t *len, size_t *cap);

/* ---- small JSON helpers shared by the dialects ---- */
/* Typed getters that fail with ST_INVALID naming the field. */
int http_json_string(json_t *obj, const char *key, int required, size_t max_len, const char **out,
                     struct st_err *e);
int http_json_int(json_t *obj, const char *key, int required, int64_t min, int64_t max,
                  int64_t *out, struct st_err *e);

#endif
