/* server.c — libmicrohttpd setup and the life of one request.
 *
 * MHD runs its own thread pool (poll: see http_start). For each request the access handler is
 * called once with the headers (we route, check limits and credentials
 * there), then once per body chunk, then once at the end (JSON routes are
 * parsed and dispatched there). The completion callback logs, counts and
 * frees. */
#include "http_internal.h"
#include "stowage/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TRIM_AFTER (16u << 20) /* bytes a request moves before malloc_trim (on_completed) */

uint64_t http_mono_us(void)
{
    return st_mono_ns() / 1000u;
}

/* ---- accessors ---- */

struct stowage *http_st(struct http_req *r)
{
    return r->srv->st;
}
struct http_server *http_server_of(struct http_req *r)
{
    return r->srv;
}
const char *http_method(struct http_req *r)
{
    return r->method;
}
const char *http_path(struct http_req *r)
{
    return r->url;
}
const struct st_principal *http_principal(struct http_req *r)
{
    return &r->who;
}
const char *http_request_id(struct http_req *r)
{
    return r->rid;
}
json_t *http_json(struct http_req *r)
{
    return r->json;
}
int64_t http_content_length(struct http_req *r)
{
    return r->content_length;
}
void *http_ctx(struct http_req *r)
{
    return r->ctx;
}
const struct http_dialect *http_dialect_of(struct http_req *r)
{
    return r->dialect;
}
int http_replied(struct http_req *r)
{
    return r->replied;
}

const char *http_capture(struct http_req *r, int i)
{
    return i >= 0 && i < r->n_captures ? r->captures[i] : NULL;
}

const char *http_query(struct http_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_cookie(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

struct query_walk {
    void (*fn)(void *, const char *, const char *);
    void *ud;
};

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    struct query_walk *w = cls;
    (void)kind;
    w->fn(w->ud, k, v ? v : "");
    return MHD_YES;
}

void http_query_each(struct http_req *r, void (*fn)(void *ud, const char *k, const char *v),
                     void *ud)
{
    struct query_walk w = {fn, ud};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, each_arg, &w);
}

void http_suspend(struct http_req *r)
{
    r->window_paused = 1;
    MHD_suspend_connection(r->conn);
}
void http_resume(struct http_req *r)
{
    MHD_resume_connection(r->conn);
}

void http_defer(struct http_req *r)
{
    r->parked = 1;
    MHD_suspend_connection(r->conn);
}

void http_continue(struct http_req *r, http_handler_fn fn)
{
    r->then = fn;
    MHD_resume_connection(r->conn);
}

const void *http_client_id(struct http_req *r)
{
    return r->conn;
}

void http_client_addr(struct http_req *r, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!ci || !ci->client_addr)
        return;
    if (ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, out,
                  (socklen_t)len);
    else if (ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, out,
                  (socklen_t)len);
}

void http_set_ctx(struct http_req *r, void *ctx, const struct http_stream_ops *ops)
{
    r->ctx = ctx;
    r->sops = ops;
}

/* ---- header checks ---- */

struct header_scan {
    size_t bytes;
    int n_content_length;
    int n_transfer_encoding;
    int bad_te;
    const char *client_rid;
    /* the raw header block MHD parsed in place (see header_problem) */
    const char *block;
    size_t block_len;
    const char *bad_name; /* a header name that is not an RFC 9110 token */
    const char *folded;   /* a header continued on the next line (obs-fold) */
    const char *nul;      /* a header or query value with a NUL in it */
    int nul_in_query;
};

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *k, size_t klen,
                                   const char *v, size_t vlen)
{
    struct header_scan *h = cls;
    (void)kind;
    h->bytes += klen + vlen + 4;
    for (size_t i = 0; i < klen && !h->bad_name; i++)
        if (!is_tchar((unsigned char)k[i]))
            h->bad_name = k;
    if (klen == 0 && !h->bad_name)
        h->bad_name = k;
    /* MHD 0.9.75 accepts obs-fold: it appends the continuation to the header's name and
     * moves the name out of the read buffer the request was parsed in. A name outside
     * that block is how a fold shows. */
    if (h->block && (k < h->block || k >= h->block + h->block_len) && !h->folded)
        h->folded = k;
    if ((v && strlen(v) != vlen) && !h->nul)
        h->nul = k;
    if (strcasecmp(k, "Content-Length") == 0)
        h->n_content_length++;
    else if (strcasecmp(k, "Transfer-Encoding") == 0) {
        h->n_transfer_encoding++;
        if (!v || strcasecmp(v, "chunked") != 0)
            h->bad_te = 1;
    } else if (strcasecmp(k, "X-Request-Id") == 0)
        h->client_rid = v;
    return MHD_YES;
}

/* %00 in a query key or value would silently cut it short for every C string user. */
static enum MHD_Result scan_arg(void *cls, enum MHD_ValueKind kind, const char *k, size_t klen,
                                const char *v, size_t vlen)
{
    struct header_scan *h = cls;
    (void)kind;
    if ((strlen(k) != klen || (v && strlen(v) != vlen)) && !h->nul) {
        h->nul = k;
        h->nul_in_query = 1;
    }
    return MHD_YES;
}

/* A client's request id is echoed only when it is short and printable. */
static int rid_ok(const char *s)
{
    size_t n = 0;
    for (; s && *s; s++, n++)
        if (*s <= ' ' || *s > '~' || *s == '"' || *s == '\\')
            return 0;
    return s && n > 0 && n < 64;
}

static void fail_early(struct http_req *r, enum st_code code, const char *field, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static void fail_early(struct http_req *r, enum st_code code, const char *field, const char *fmt,
                       ...)
{
    struct st_err e;
    va_list ap;
    va_start(ap, fmt);
    e.code = code;
    snprintf(e.field, sizeof e.field, "%s", field);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    st_utf8_clean(e.msg); /* "no route for GET /%ff" must not turn a 404 into a 500 */
    http_reply_error(r, &e);
}

static const char *bearer(const char *auth)
{
    static const char *const schemes[] = {"Bearer ", "Token ", "OAuth "};
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++) {
        size_t l = strlen(schemes[i]);
        if (strncasecmp(auth, schemes[i], l) == 0) {
            auth += l;
            while (*auth == ' ')
                auth++;
            return auth;
        }
    }
    return NULL;
}

/* Find credentials in any of the places the dialects' clients put them. */
static const char *find_token(struct http_req *r)
{
    const char *v;
    if ((v = http_header(r, "Authorization")) && (v = bearer(v)))
        return v;
    if ((v = http_header(r, "X-Auth-Token")))
        return v;
    if ((v = http_header(r, "ES-API-KEY")))
        return v;
    return http_cookie(r, "session");
}

static int authorize(struct http_req *r)
{
    struct st_err e;
    if (r->route->role == ROLE_NONE)
        return 0;
    const char *tok = find_token(r);
    if (!tok || !*tok) {
        st_fail_field(&e, ST_UNAUTHORIZED, "Authorization", "missing credentials");
        http_reply_error(r, &e);
        return -1;
    }
    if (core_authenticate(r->srv->st, tok, &r->who, &e)) {
        http_reply_error(r, &e);
        return -1;
    }
    if (r->who.role < r->route->role) {
        st_fail(&e, ST_FORBIDDEN, "role %s may not %s %s (needs %s)", core_role_name(r->who.role),
                r->method, r->url, core_role_name(r->route->role));
        http_reply_error(r, &e);
        return -1;
    }
    return 0;
}

static int is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    if (!ct || strncasecmp(ct, want, sizeof want - 1) != 0)
        return 0;
    ct += sizeof want - 1;
    return *ct == '\0' || *ct == ';' || *ct == ' ';
}

/* Everything decided from the headers alone. Returns 0 to go on reading. */
static int on_headers(struct http_req *r)
{
    struct header_scan h = {0};
    const struct st_config *cfg = core_config(r->srv->st);
    char allow[128];
    const char *match_method = strcmp(r->method, "HEAD") == 0 ? "GET" : r->method;

    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    size_t raw_size = ci ? ci->header_size : 0;
    /* The request line and headers lie in one block from the method on (MHD 0.9.75). */
    if (raw_size) {
        h.block = r->method;
        h.block_len = raw_size;
    }
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, scan_header, &h);
    MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, scan_arg, &h);
    if (rid_ok(h.client_rid))
        snprintf(r->rid, sizeof r->rid, "%s", h.client_rid);
    else
        snprintf(r->rid, sizeof r->rid, "%s-%llu", r->srv->id_prefix,
                 (unsigned long long)atomic_fetch_add(&r->srv->next_id, 1));

    r->route_idx =
        http_router_match(r->srv->rt, match_method, r->url, r->pathbuf, sizeof r->pathbuf,
                          r->captures, &r->n_captures, &r->dialect, allow, sizeof allow);
    /* raw_size is the request line (with the query) and every header as sent. */
    if ((raw_size ? raw_size : h.bytes + strlen(r->url)) > cfg->max_header) {
        fail_early(r, ST_HEADER_TOO_LARGE, "", "request headers exceed %zu bytes", cfg->max_header);
        return -1;
    }
    if (h.bad_name) {
        http_add_header(r, "Connection", "close"); /* the framing cannot be trusted */
        fail_early(r, ST_INVALID, "", "malformed header name '%.64s' (no spaces before the colon)",
                   h.bad_name);
        return -1;
    }
    if (h.folded) {
        http_add_header(r, "Connection", "close");
        fail_early(r, ST_INVALID, "", "header '%.64s' is folded over lines (obs-fold)", h.folded);
        return -1;
    }
    if (h.nul) {
        fail_early(r, ST_INVALID, h.nul_in_query ? h.nul : "", "%s '%.64s' contains a NUL byte",
                   h.nul_in_query ? "query parameter" : "header", h.nul);
        return -1;
    }
    if (h.n_content_length > 1 || (h.n_content_length && h.n_transfer_encoding) ||
        h.n_transfer_encoding > 1 || h.bad_te) {
        fail_early(r, ST_INVALID, "Content-Length", "%s",
                   "duplicate or conflicting Content-Length / Transfer-Encoding");
        return -1;
    }
    const char *cl = http_header(r, "Content-Length");
    r->content_length = cl ? strtoll(cl, NULL, 10) : (h.n_transfer_encoding ? -1 : 0);
    r->has_body = r->content_length != 0;

    if (r->route_idx < 0) {
        if (r->route_idx == -ST_METHOD)
            http_add_header(r, "Allow", allow);
        if (r->route_idx == -ST_METHOD)
            fail_early(r, ST_METHOD, "", "method %s not allowed on %s", r->method, r->url);
        else
            fail_early(r, ST_NOT_FOUND, "", "no route for %s %s", r->method, r->url);
        return -1;
    }
    r->route = http_router_route(r->srv->rt, r->route_idx);
    if (authorize(r))
        return -1;
    if (r->route->body != HTTP_BODY_STREAM) {
        if (r->content_length > 0 && (uint64_t)r->content_length > cfg->max_body) {
            fail_early(r, ST_TOO_LARGE, "body", "request body over %zu bytes", cfg->max_body);
            return -1;
        }
        if (r->route->body == HTTP_BODY_JSON && r->has_body &&
            !is_json_type(http_header(r, "Content-Type"))) {
            fail_early(r, ST_UNSUPPORTED_MEDIA, "Content-Type", "%s",
                       "Content-Type must be application/json");
            return -1;
        }
        return 0;
    }
    /* A stream route decides at once: it replies (an error) or installs its ops. */
    r->route->handler(r);
    if (!r->replied && !r->sops) {
        fail_early(r, ST_INTERNAL, "", "%s", "stream handler neither replied nor accepted");
        return -1;
    }
    return 0;
}

/* Returns how many bytes were taken; fewer than len only when the stream suspended us. */
static size_t take_body(struct http_req *r, const char *data, size_t len)
{
    size_t max = core_config(r->srv->st)->max_body;
    if (r->deferred)
        return len; /* draining after an error */
    if (r->route->body == HTTP_BODY_STREAM) {
        ssize_t n = r->sops->data(r, data, len, &r->deferred_err);
        if (n < 0) {
            r->deferred = 1;
            return len;
        }
        return (size_t)n;
    }
    if (r->route->body == HTTP_BODY_NONE)
        return len;
    if (r->body_len + len > max) {
        st_fail_field(&r->deferred_err, ST_TOO_LARGE, "body", "request body over %zu bytes", max);
        r->deferred = 1;
        return len;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *p = realloc(r->body, cap);
        if (!p) {
            st_fail(&r->deferred_err, ST_INTERNAL, "out of memory");
            r->deferred = 1;
            return len;
        }
        r->body = p;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    return len;
}

static void on_complete_body(struct http_req *r)
{
    if (r->deferred) {
        http_reply_error(r, &r->deferred_err);
        return;
    }
    if (r->route->body == HTTP_BODY_STREAM) {
        r->ended = 1;
        r->sops->end(r);
    } else {
        if (r->route->body == HTTP_BODY_JSON && r->body_len) {
            json_error_t je;
            r->json = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
            if (!r->json) {
                struct st_err e;
                st_fail_field(&e, ST_INVALID, "body", "malformed JSON at line %d column %d: %s",
                              je.line, je.column, je.text);
                http_reply_error(r, &e);
                return;
            }
        }
        r->route->handler(r);
    }
    if (!r->replied && !r->parked) {
        struct st_err e;
        st_fail(&e, ST_INTERNAL, "handler for %s %s gave no reply", r->method, r->url);
        http_reply_error(r, &e);
    }
}

/* limits.min_body_rate: a body must average that many bytes a second over each window
 * of limits.body_rate_window seconds. Windows in which we paused the body ourselves
 * (http_suspend: the backend was slow) do not count. MHD 0.9.75 takes no reply while a
 * body arrives, so the 408 goes straight to the socket and the connection is closed. */
static int body_too_slow(struct http_req *r, size_t took)
{
    const struct st_config *cfg = core_config(r->srv->st);
    uint64_t now = http_mono_us(), window_us = (uint64_t)cfg->body_rate_window * 1000000u;
    if (!cfg->min_body_rate)
        return 0;
    if (r->window_paused) {
        r->window_paused = 0;
        r->window_t0_us = now;
        r->window_bytes = 0;
    }
    r->window_bytes += took;
    if (now - r->window_t0_us < window_us)
        return 0;
    if (r->window_bytes >= (uint64_t)cfg->min_body_rate * cfg->body_rate_window) {
        r->window_t0_us = now;
        r->window_bytes = 0;
        return 0;
    }
    struct st_err e;
    st_fail(&e, ST_TIMEOUT, "request body slower than %u bytes/s over %u s", cfg->min_body_rate,
            cfg->body_rate_window);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && !cfg->tls_cert)
        http_send_raw_error(ci->connect_fd, r->dialect, r->rid, &e);
    r->status = 408;
    r->deferred = 1; /* whatever else arrives is not looked at */
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    (void)version;

    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->url = url;
        r->method = method;
        r->route_idx = -1;
        r->sendfile_fd = -1;
        r->t0_us = http_mono_us();
        r->window_t0_us = r->t0_us;
        *con_cls = r;
        http_guard_request_started(s, conn);
        on_headers(r);
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t took = r->replied ? *upload_data_size : take_body(r, upload_data, *upload_data_size);
        *upload_data_size -= took;
        if (!r->replied && body_too_slow(r, took))
            return MHD_NO; /* answered 408 on the socket; MHD closes the connection */
        return MHD_YES;
    }
    if (r->parked) {
        if (!r->then)
            return MHD_YES; /* woken before its answer is ready */
        r->parked = 0;
        r->then(r);
        if (!r->replied) {
            struct st_err e;
            st_fail(&e, ST_INTERNAL, "deferred handler for %s %s gave no reply", r->method, r->url);
            http_reply_error(r, &e);
        }
        return MHD_YES;
    }
    if (!r->replied)
        on_complete_body(r);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    http_guard_request_done(s, conn);
    if (!r)
        return;
    http_sendfile_forget(r->sendfile_fd); /* libmicrohttpd closes it after this */
    http_reply_lent_done(r);
    uint64_t us = http_mono_us() - r->t0_us;
    unsigned status = r->status ? r->status : 499; /* nothing sent: client gone */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->status)
        status = r->status;
    if (r->sops && r->sops->cleanup)
        r->sops->cleanup(r, r->ended && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    http_metrics_record(s, r->route_idx, status, us);
    if (core_config(s->st)->log_requests)
        fprintf(stderr, "%s %s %u %lluB %lluus rid=%s%s\n", r->method, r->url, status,
                (unsigned long long)r->bytes_out, (unsigned long long)us, r->rid,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
    for (size_t i = 0; i < r->n_hdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->hdrs);
    json_decref(r->json);
    free(r->body);
    uint64_t moved = r->bytes_out + (r->content_length > 0 ? (uint64_t)r->content_length : 0);
    free(r);
    *con_cls = NULL;
    /* A big transfer leaves freed pages in the arenas of the threads it used (the
     * writer's, gfapi's): hand them back now, not when the heap top happens to shrink. */
    if (moved >= TRIM_AFTER)
        malloc_trim(0);
}

/* We bind the socket ourselves so "port in use" is a clear message, not a NULL daemon. */
int http_listen(const struct st_config *cfg, struct st_err *e)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
    int one = 1;

    if (inet_pton(AF_INET, cfg->listen_host, &sa.sin_addr) != 1)
        return st_fail_field(e, ST_INVALID, "listen", "listen address '%s' is not an IPv4 address",
                             cfg->listen_host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return st_fail_errno(e, errno, "socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 1024)) {
        int err = errno;
        close(fd);
        if (err == EADDRINUSE)
            return st_fail(e, ST_UNAVAILABLE, "cannot listen on %s:%u: address already in use",
                           cfg->listen_host, cfg->port);
        return st_fail_errno(e, err, "cannot listen on %s:%u", cfg->listen_host, cfg->port);
    }
    return fd;
}

static char *slurp(const char *path, struct st_err *e)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        st_fail_errno(e, errno, "cannot read %s", path);
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) {
        st_fail(e, ST_INTERNAL, "out of memory");
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fputs("stowaged: mhd: ", stderr);
    vfprintf(stderr, fmt, ap);
}

int http_start(struct http_server **out, struct stowage *st, int listen_fd,
               const struct http_dialect *const *dialects, struct st_err *e)
{
    const struct st_config *cfg = core_config(st);
    struct http_server *s = calloc(1, sizeof *s);
    unsigned char rnd[4];
    unsigned threads = cfg->threads ? cfg->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);

    if (!s) {
        close(listen_fd);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    s->st = st;
    s->listen_fd = listen_fd;
    gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
    snprintf(s->id_prefix, sizeof s->id_prefix, "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    if (http_router_new(&s->rt, dialects) || http_metrics_init(s) || http_cache_init(s) ||
        http_timers_start(s)) {
        st_fail(e, ST_INTERNAL, "cannot build route table");
        goto fail;
    }

    /* poll(2), not epoll: libmicrohttpd 0.9.75's edge-triggered epoll takes a short read
     * for a drained socket, so a FIN that arrives with the last bytes of an upload is
     * never read and the request lingers until the idle timeout, holding its image.
     * Level-triggered poll reads the FIN at once. Each pool thread polls only its own
     * connections, so the cost at this daemon's connection counts is negligible. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    size_t pool = cfg->max_header * 2 + 256 * 1024;
    if (cfg->tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            st_fail(e, ST_INVALID, "this libmicrohttpd has no TLS support");
            goto fail;
        }
        if (!(s->tls_cert = slurp(cfg->tls_cert, e)) || !(s->tls_key = slurp(cfg->tls_key, e)))
            goto fail;
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL}, /* first: MHD logs from here on */
        {MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL},
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)(threads > 1 ? threads : 0), NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->conn_timeout, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)cfg->per_ip, NULL},
        /* The guard keeps max_connections; MHD accepts more so that nobody waits in
         * the listen backlog while the guard makes room (guard.c). */
        {MHD_OPTION_CONNECTION_LIMIT,
         (intptr_t)(cfg->max_connections + 16 * threads + cfg->max_connections / 2), NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)http_guard_notify, s},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)pool, NULL},
        /* Grow the read buffer in big steps: uploads then arrive in big chunks. */
        {MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (intptr_t)(64 * 1024), NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL},
        {cfg->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, s->tls_cert},
        {cfg->tls_cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, s->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    if (http_guard_start(s)) {
        st_fail(e, ST_INTERNAL, "cannot start the connection guard");
        goto fail;
    }
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, opts,
                              MHD_OPTION_END);
    if (!s->mhd) {
        st_fail(e, ST_INTERNAL, "libmicrohttpd refused to start on %s:%u", cfg->listen_host,
                cfg->port);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    http_stop(s);
    return -1;
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    /* MHD may not stop with suspended connections: the queued logins and the upload
     * finishes answer first. */
    core_logins_stop(s->st);
    core_uploads_drain(s->st);
    http_timers_wake_all(s);
    if (s->mhd) {
        MHD_stop_daemon(s->mhd);
        s->listen_fd = -1; /* MHD closed it */
    }
    http_guard_stop(s);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    http_metrics_free(s);
    http_cache_free(s);
    http_timers_free(s);
    http_router_free(s->rt);
    free(s->tls_cert);
    free(s->tls_key);
    free(s);
}
