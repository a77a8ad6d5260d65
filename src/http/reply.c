/* reply.c — every response leaves through here: JSON, bytes, streams, errors. */
#include "http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static const unsigned status_of[ST_CODE_COUNT] = {
    [ST_OK] = 200,           [ST_INVALID] = 400,          [ST_UNAUTHORIZED] = 401,
    [ST_FORBIDDEN] = 403,    [ST_NOT_FOUND] = 404,        [ST_METHOD] = 405,
    [ST_EXISTS] = 409,       [ST_CONFLICT] = 409,         [ST_IN_USE] = 409,
    [ST_PRECONDITION] = 412, [ST_TOO_LARGE] = 413,        [ST_UNSUPPORTED_MEDIA] = 415,
    [ST_RANGE] = 416,        [ST_HEADER_TOO_LARGE] = 431, [ST_UNAVAILABLE] = 503,
    [ST_NO_SPACE] = 507,     [ST_INTERNAL] = 500,         [ST_TIMEOUT] = 408,
    [ST_TOO_MANY] = 429,
};

unsigned http_status_of(enum st_code code)
{
    return (unsigned)code < ST_CODE_COUNT ? status_of[code] : 500;
}

void http_add_header(struct http_req *r, const char *name, const char *value)
{
    struct hdr *h = realloc(r->hdrs, (r->n_hdrs + 1) * sizeof *h);
    if (!h)
        return;
    r->hdrs = h;
    h[r->n_hdrs].name = strdup(name);
    h[r->n_hdrs].value = strdup(value);
    if (!h[r->n_hdrs].name || !h[r->n_hdrs].value) {
        free(h[r->n_hdrs].name);
        free(h[r->n_hdrs].value);
        return;
    }
    r->n_hdrs++;
}

void http_queue(struct http_req *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp) {
        fprintf(stderr, "stowaged: cannot build a response (out of memory)\n");
        return;
    }
    if (r->replied) {
        fprintf(stderr, "stowaged: second reply to %s %s dropped\n", r->method, r->url);
        MHD_destroy_response(resp);
        return;
    }
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    for (size_t i = 0; i < r->n_hdrs; i++)
        MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
    r->replied = 1;
    r->status = status;
    if (MHD_queue_response(r->conn, status, resp) != MHD_YES)
        fprintf(stderr, "stowaged: MHD refused the reply to %s %s\n", r->method, r->url);
    MHD_destroy_response(resp);
}

void http_reply_bytes(struct http_req *r, unsigned status, const char *content_type,
                      const void *buf, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)buf, MHD_RESPMEM_MUST_COPY);
    if (resp && content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    r->bytes_out = len;
    http_queue(r, status, resp);
}

void http_reply_json(struct http_req *r, unsigned status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        http_reply_bytes(r, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    else
        MHD_add_response_header(resp, "Content-Type", "application/json");
    r->bytes_out = len;
    http_queue(r, status, resp);
}

void http_reply_shared(struct http_req *r, unsigned status, const char *content_type,
                       const void *buf, size_t len, void (*unref)(void *), void *cls)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)buf, unref, cls);
    if (!resp) {
        unref(cls);
    } else if (content_type) {
        MHD_add_response_header(resp, "Content-Type", content_type);
    }
    r->bytes_out = len;
    http_queue(r, status, resp);
}

struct reader {
    struct http_req *r;
    http_reader_fn fn;
    void *cls;
    void (*free_cls)(void *);
    uint64_t *bytes_out;
};

static ssize_t read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct reader *rd = cls;
    ssize_t n = rd->fn(rd->cls, pos, buf, max);
    if (n > 0)
        *rd->bytes_out += (uint64_t)n;
    return n;
}

static void free_reader(void *cls)
{
    struct reader *rd = cls;
    if (rd->free_cls)
        rd->free_cls(rd->cls);
    free(rd);
}

void http_reply_reader(struct http_req *r, unsigned status, const char *content_type, uint64_t size,
                       http_reader_fn fn, void *cls, void (*free_cls)(void *))
{
    struct reader *rd = malloc(sizeof *rd);
    if (!rd) {
        if (free_cls)
            free_cls(cls);
        http_queue(r, status, NULL);
        return;
    }
    *rd = (struct reader){r, fn, cls, free_cls, &r->bytes_out};
    struct MHD_Response *resp = MHD_create_response_from_callback(
        size == UINT64_MAX ? MHD_SIZE_UNKNOWN : size, 64 * 1024, read_cb, rd, free_reader);
    if (!resp) {
        free_reader(rd);
        http_queue(r, status, NULL);
        return;
    }
    if (content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    http_queue(r, status, resp);
}

/* The copy path of a lent reply: its bytes into MHD's buffer. */
static ssize_t lent_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_lent *l = cls;
    const void *p;
    ssize_t n = l->ops->peek(l->cls, pos, max, &p);
    if (n <= 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    memcpy(buf, p, (size_t)n);
    l->ops->advance(l->cls, pos, (size_t)n);
    *l->bytes_out += (uint64_t)n;
    return n;
}

static void lent_free(void *cls)
{
    struct http_lent *l = cls;
    if (l->ops->free_cls)
        l->ops->free_cls(l->cls);
    free(l);
}

void http_reply_lent(struct http_req *r, unsigned status, const char *content_type, uint64_t size,
                     const struct http_lender *ops, void *cls)
{
    struct MHD_Response *resp = NULL;
    struct http_lent *l = malloc(sizeof *l);
    if (!l) {
        if (ops->free_cls)
            ops->free_cls(cls);
        http_queue(r, status, NULL);
        return;
    }
    *l = (struct http_lent){ops, cls, size, &r->bytes_out};
    int fd = core_config(r->srv->st)->tls_cert || r->replied ? -1 : eventfd(0, EFD_CLOEXEC);
    if (fd >= 0 && http_sendfile_lend(fd, l) == 0) {
        /* From here MHD owns fd (it closes it with the response) and the request owns l
         * (on_completed frees it once the fd is forgotten). */
        resp = MHD_create_response_from_fd_at_offset64(size, fd, 0);
        if (!resp) {
            http_sendfile_forget(fd);
            close(fd);
        } else {
            r->sendfile_fd = fd;
            r->lent = l;
        }
    } else if (fd >= 0) {
        close(fd);
    }
    if (!resp) {
        resp = MHD_create_response_from_callback(size, 64 * 1024, lent_read, l, lent_free);
        if (!resp)
            lent_free(l);
    }
    if (resp && content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    http_queue(r, status, resp);
}

void http_reply_lent_done(struct http_req *r)
{
    if (!r->lent)
        return;
    lent_free(r->lent);
    r->lent = NULL;
}

void http_reply_fd(struct http_req *r, unsigned status, const char *content_type, int fd,
                   uint64_t off, uint64_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, off);
    if (!resp) {
        close(fd);
    } else {
        if (content_type)
            MHD_add_response_header(resp, "Content-Type", content_type);
        if (!r->replied) { /* else http_queue drops it, and closes fd */
            http_sendfile_register(fd, off, len);
            r->sendfile_fd = fd;
        }
    }
    r->bytes_out = len;
    http_queue(r, status, resp);
}

/* The dialect's envelope for e as text (malloc'd), its status and content type. */
static char *error_text(const struct http_dialect *d, const struct st_err *e, unsigned *status,
                        const char **ctype)
{
    *status = http_status_of(e->code);
    json_t *j = d && d->error_body
                    ? d->error_body(e, status)
                    : json_pack("{s:s, s:s}", "error", st_code_name(e->code), "message", e->msg);
    char *text = NULL;
    *ctype = "application/json";
    if (json_is_string(j)) {
        *ctype = "text/plain; charset=utf-8";
        text = strdup(json_string_value(j));
    } else if (j) {
        text = json_dumps(j, JSON_COMPACT);
    }
    json_decref(j);
    return text;
}

void http_reply_error(struct http_req *r, const struct st_err *e)
{
    unsigned status;
    const char *ctype;
    char *text = error_text(r->dialect, e, &status, &ctype);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        http_reply_bytes(r, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    else
        MHD_add_response_header(resp, "Content-Type", ctype);
    r->bytes_out = len;
    http_queue(r, status, resp);
}

int http_send_raw_error(int fd, const struct http_dialect *d, const char *rid,
                        const struct st_err *e)
{
    unsigned status;
    const char *ctype;
    char head[512];
    char *text = error_text(d, e, &status, &ctype);
    if (!text)
        return -1;
    size_t len = strlen(text);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s%s%s\r\n",
                     status, status == 408 ? "Request Timeout" : "Error", ctype, len,
                     rid ? "X-Request-Id: " : "", rid ? rid : "", rid ? "\r\n" : "");
    struct iovec iov[2] = {{head, (size_t)n}, {text, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    free(text);
    return w == (ssize_t)((size_t)n + len) ? 0 : -1;
}

/* ---- JSON input helpers ---- */

int http_json_string(json_t *obj, const char *key, int required, size_t max_len, const char **out,
                     struct st_err *e)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return st_fail_field(e, ST_INVALID, key, "'%s' is required", key);
        return 0;
    }
    if (!json_is_string(v))
        return st_fail_field(e, ST_INVALID, key, "'%s' must be a string", key);
    if (json_string_length(v) > max_len)
        return st_fail_field(e, ST_INVALID, key, "'%s' is longer than %zu", key, max_len);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return st_fail_field(e, ST_INVALID, key, "'%s' contains a NUL byte", key);
    *out = json_string_value(v);
    return 0;
}

int http_json_int(json_t *obj, const char *key, int required, int64_t min, int64_t max,
                  int64_t *out, struct st_err *e)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    int64_t n;
    if (!v || json_is_null(v)) {
        if (required)
            return st_fail_field(e, ST_INVALID, key, "'%s' is required", key);
        return 1; /* absent: *out untouched */
    }
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {
        /* flexVDI sends numbers as strings ("repeat":"0"); accept only plain digits. */
        const char *s = json_string_value(v);
        char *end = NULL;
        if (!*s || json_string_length(v) > 20)
            return st_fail_field(e, ST_INVALID, key, "'%s' must be an integer", key);
        errno = 0;
        n = strtoll(s, &end, 10);
        if (*end || errno)
            return st_fail_field(e, ST_INVALID, key, "'%s' must be an integer", key);
    } else {
        return st_fail_field(e, ST_INVALID, key, "'%s' must be an integer", key);
    }
    if (n < min || n > max)
        return st_fail_field(e, ST_INVALID, key, "'%s' must be between %lld and %lld", key,
                             (long long)min, (long long)max);
    *out = n;
    return 0;
}
