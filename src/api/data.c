/* data.c — the image data path over HTTP, shared by every dialect that moves bytes
 * (native /v1/images/{uuid}/file and esdc's /image/{name}/file/).
 *
 * PUT streams the body into core's upload (MHD is suspended while the upload's
 * writer is busy), honouring Content-Range for resumes and X-Checksum-Sha256 /
 * Digest for verification. GET answers Range, If-None-Match and ETag, and sends a
 * range without holes on a local volume by sendfile; anything else (holes, Gluster,
 * RBD, or the sendfile option off) as blocks read ahead, which skip holes. */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

json_t *api_image_json(const struct core_image *im)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s}", "uuid", im->uuid, "name",
                     im->name, "format", im->format, "virtual_size", (json_int_t)im->virtual_size,
                     "actual_size", (json_int_t)im->actual_size, "sha256", im->sha256, "status",
                     im->status, "volume_id", im->volume_id, "owner", im->owner);
}

/* ---- header parsing ---- */

static int parse_u64(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    *end = p;
    return 0;
}

/* "bytes A-B/TOTAL", or a star for an unknown TOTAL */
int api_parse_content_range(const char *h, uint64_t *a, uint64_t *b, uint64_t *total)
{
    const char *p;
    if (strncasecmp(h, "bytes ", 6) != 0)
        return -1;
    if (parse_u64(h + 6, &p, a) || *p++ != '-' || parse_u64(p, &p, b) || *p++ != '/')
        return -1;
    if (p[0] == '*' && p[1] == '\0') {
        *total = UINT64_MAX;
        return *b >= *a ? 0 : -1;
    }
    if (parse_u64(p, &p, total) || *p)
        return -1;
    return *b >= *a && *b < *total ? 0 : -1;
}

/* "bytes * /TOTAL" (RFC 9110 § 14.4, the complete length alone) */
int api_parse_complete_length(const char *h, uint64_t *total)
{
    const char *p;
    if (strncasecmp(h, "bytes */", 8) != 0 || parse_u64(h + 8, &p, total) || *p)
        return -1;
    return 0;
}

static int unbase64(const char *in, unsigned char *out, size_t outlen)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '=' && *in != ',' && *in != ' '; in++) {
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *pos = strchr(alpha, *in);
        if (!pos)
            return -1;
        acc = (acc << 6) | (unsigned)(pos - alpha);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == outlen)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (int)n;
}

/* The expected SHA-256 as 64 lower-case hex digits, from X-Checksum-Sha256 or
 * "Digest: sha-256=<base64>"; 0 when absent, -1 when malformed. */
int api_expected_sha256(struct http_req *r, char out[65])
{
    const char *x = http_header(r, "X-Checksum-Sha256"), *d = http_header(r, "Digest");
    static const char digits[] = "0123456789abcdef";
    if (x) {
        if (strlen(x) != 64)
            return -1;
        for (int i = 0; i < 64; i++) {
            char c = x[i] >= 'A' && x[i] <= 'F' ? (char)(x[i] - 'A' + 'a') : x[i];
            if (!strchr(digits, c) || !c)
                return -1;
            out[i] = c;
        }
        out[64] = '\0';
        return 1;
    }
    for (const char *p = d; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (strncasecmp(p, "sha-256=", 8) == 0) {
            unsigned char sum[33];
            if (unbase64(p + 8, sum, sizeof sum) != 32)
                return -1;
            for (int i = 0; i < 32; i++) {
                out[2 * i] = digits[sum[i] >> 4];
                out[2 * i + 1] = digits[sum[i] & 15];
            }
            out[64] = '\0';
            return 1;
        }
        p = strchr(p, ',');
    }
    return 0;
}

static void fail(struct http_req *r, enum st_code code, const char *field, const char *msg)
{
    struct st_err e;
    st_fail_field(&e, code, field, "%s", msg);
    http_reply_error(r, &e);
}

/* ---- PUT ---- */

static void wake_sleep(void *ud)
{
    http_suspend(ud);
}
static void wake_up(void *ud)
{
    http_resume(ud);
}

static const struct http_stream_ops put_ops;

static ssize_t put_data(struct http_req *r, const char *buf, size_t len, struct st_err *e)
{
    return core_upload_write(http_ctx(r), buf, len, e);
}

/* What the finish of an upload came to, kept for the reply. */
struct put_result {
    int rc;
    struct core_image im;
    uint64_t staged;
    struct st_err e;
};

static void put_reply(struct http_req *r)
{
    struct put_result *res = http_ctx(r);

    if (res->rc < 0) {
        http_reply_error(r, &res->e);
    } else if (res->rc == 1) {
        char off[32];
        snprintf(off, sizeof off, "%llu", (unsigned long long)res->staged);
        http_add_header(r, "X-Upload-Offset", off);
        http_reply_json(
            r, 202, json_pack("{s:s, s:I}", "status", "saving", "staged", (json_int_t)res->staged));
    } else {
        json_t *j = api_image_json(&res->im);
        json_object_set_new(j, "size", json_integer((json_int_t)res->staged));
        http_reply_json(r, 201, j);
    }
}

/* On the upload's finishing thread: the request is suspended until it is continued. */
static void put_finished(void *ud, int rc, const struct core_image *im, uint64_t staged,
                         const struct st_err *e)
{
    struct http_req *r = ud;
    struct put_result *res = http_ctx(r);
    res->rc = rc;
    res->im = *im;
    res->staged = staged;
    res->e = *e;
    http_continue(r, put_reply);
}

static void put_result_free(struct http_req *r, int finished)
{
    (void)finished;
    free(http_ctx(r));
}

static const struct http_stream_ops put_done_ops = {NULL, NULL, put_result_free};

/* The body is in: the finish (fsyncs, the commit) runs off the HTTP thread, which goes on
 * serving other connections meanwhile. */
static void put_end(struct http_req *r)
{
    struct core_upload *u = http_ctx(r);
    struct put_result *res = calloc(1, sizeof *res);

    if (!res) {
        core_upload_abort(u);
        http_set_ctx(r, NULL, &put_ops);
        struct st_err e;
        st_fail(&e, ST_INTERNAL, "out of memory");
        http_reply_error(r, &e);
        return;
    }
    http_set_ctx(r, res, &put_done_ops); /* the finish frees u, whatever happens */
    /* Suspended first: the answer may come back before the submission returns. */
    http_defer(r);
    if (core_upload_finish_async(u, put_finished, r)) {
        res->rc = core_upload_finish(u, &res->im, &res->staged, &res->e);
        http_continue(r, put_reply);
    }
}

static void put_cleanup(struct http_req *r, int finished)
{
    struct core_upload *u = http_ctx(r);
    (void)finished;
    if (u)
        core_upload_abort(u); /* the client went away: keep the bytes for a resume */
}

static const struct http_stream_ops put_ops = {put_data, put_end, put_cleanup};

void api_data_put(struct http_req *r, const char *name, const char *uuid)
{
    struct core_upload_req rq = {0};
    struct core_upload *u;
    struct st_err e;
    char sha[65];
    uint64_t resume = 0;
    const char *cr = http_header(r, "Content-Range");
    int64_t cl = http_content_length(r);

    rq.name = name;
    rq.uuid = uuid;
    rq.volume_id = http_query(r, "volume_id");
    rq.declared_format = http_query(r, "format");
    rq.length = cl >= 0 ? (uint64_t)cl : UINT64_MAX;
    rq.who = http_principal(r);
    rq.client = http_client_id(r);
    rq.resume_offset = &resume;
    if (cr && api_parse_complete_length(cr, &rq.range_total) == 0) {
        rq.has_range = rq.finish_only = 1; /* every byte is staged: commit them */
    } else if (cr) {
        if (api_parse_content_range(cr, &rq.range_start, &rq.range_end, &rq.range_total)) {
            fail(r, ST_INVALID, "Content-Range",
                 "Content-Range must be 'bytes FIRST-LAST/TOTAL', 'bytes FIRST-LAST/*' or "
                 "'bytes */TOTAL'");
            return;
        }
        rq.has_range = 1;
    }
    switch (api_expected_sha256(r, sha)) {
    case -1:
        fail(r, ST_INVALID, "X-Checksum-Sha256",
             "X-Checksum-Sha256 must be 64 hex digits, Digest 'sha-256=<base64 of 32 bytes>'");
        return;
    case 1:
        rq.sha256_hex = sha;
        break;
    }
    if (core_upload_begin(http_st(r), &rq, &u, &e)) {
        if (e.code == ST_RANGE) {
            char off[32];
            snprintf(off, sizeof off, "%llu", (unsigned long long)resume);
            http_add_header(r, "X-Upload-Offset", off);
        }
        http_reply_error(r, &e);
        return;
    }
    core_upload_set_waiter(u, wake_sleep, wake_up, r);
    http_set_ctx(r, u, &put_ops);
}

/* ---- GET ---- */

struct reader {
    struct core_download *d;
    uint64_t base;
};

static ssize_t read_range(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct reader *rd = cls;
    ssize_t n = core_download_read(rd->d, rd->base + pos, buf, max);
    return n > 0 ? n : -2; /* MHD_CONTENT_READER_END_WITH_ERROR: short or failed read */
}

static void free_reader(void *cls)
{
    struct reader *rd = cls;
    core_download_close(rd->d);
    free(rd);
}

static ssize_t peek_range(void *cls, uint64_t pos, size_t max, const void **p)
{
    struct reader *rd = cls;
    return core_download_peek(rd->d, rd->base + pos, max, p);
}

static void advance_range(void *cls, uint64_t pos, size_t n)
{
    struct reader *rd = cls;
    core_download_advance(rd->d, rd->base + pos, n);
}

/* A download's bytes sent from its read-ahead blocks as they are (http_reply_lent). */
static const struct http_lender range_lender = {peek_range, advance_range, free_reader};

/* "bytes=A-B", "bytes=A-", "bytes=-N" → [off, off+len). 1 ok, 0 ignore (send all), -1
 * unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
    uint64_t a, b;
    const char *p;
    if (!h || strncasecmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    p = h + 6;
    if (*p == '-') {
        if (parse_u64(p + 1, &p, &b) || *p)
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *len = b < size ? b : size;
        *off = size - *len;
        return 1;
    }
    if (parse_u64(p, &p, &a) || *p++ != '-')
        return 0;
    if (*p == '\0')
        b = UINT64_MAX;
    else if (parse_u64(p, &p, &b) || *p || b < a)
        return 0;
    if (a >= size)
        return -1;
    if (b >= size)
        b = size - 1;
    *off = a;
    *len = b - a + 1;
    return 1;
}

static void etag_of(const struct core_image *im, char *out, size_t len)
{
    if (im->sha256[0])
        snprintf(out, len, "\"%s\"", im->sha256);
    else
        snprintf(out, len, "\"%s-g%lld\"", im->uuid, (long long)im->generation);
}

/* If-None-Match: "*" or a comma list of (possibly weak) tags. */
static int etag_matches(const char *inm, const char *etag)
{
    size_t l = strlen(etag);
    for (const char *p = inm; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t n = strcspn(p, ", ");
        if ((n == 1 && *p == '*') || (n == l && strncmp(p, etag, l) == 0))
            return 1;
        p += n;
    }
    return 0;
}

void api_data_get(struct http_req *r, const char *name, const char *uuid)
{
    struct stowage *st = http_st(r);
    struct core_download *d;
    struct core_image im;
    struct st_err e;
    char etag[128], hdr[96];
    uint64_t off = 0, len;

    if (core_download_open(st, name, uuid, &d, &im, &e)) {
        if (e.code == ST_CONFLICT && strcmp(im.status, "saving") == 0) {
            uint64_t staged = 0, total = UINT64_MAX;
            if (core_upload_staged(st, &im, &staged, &total, &e)) {
                http_reply_error(r, &e); /* 503: an offset the volume could not tell */
                return;
            }
            snprintf(hdr, sizeof hdr, "%llu", (unsigned long long)staged);
            http_add_header(r, "X-Upload-Offset", hdr);
            if (total != UINT64_MAX) { /* the length a client declared earlier */
                snprintf(hdr, sizeof hdr, "%llu", (unsigned long long)total);
                http_add_header(r, "X-Upload-Length", hdr);
                http_add_header(r, "X-Upload-Complete", staged == total ? "true" : "false");
            }
        }
        http_reply_error(r, &e);
        return;
    }
    uint64_t size = core_download_size(d);
    etag_of(&im, etag, sizeof etag);
    http_add_header(r, "ETag", etag);
    http_add_header(r, "Accept-Ranges", "bytes");
    if (etag_matches(http_header(r, "If-None-Match"), etag)) {
        core_download_close(d);
        http_reply_bytes(r, 304, NULL, "", 0);
        return;
    }
    len = size;
    unsigned status = 200;
    switch (parse_range(http_header(r, "Range"), size, &off, &len)) {
    case -1:
        core_download_close(d);
        snprintf(hdr, sizeof hdr, "bytes */%llu", (unsigned long long)size);
        http_add_header(r, "Content-Range", hdr);
        fail(r, ST_RANGE, "Range", "the range is outside the image");
        return;
    case 1:
        status = 206;
        snprintf(hdr, sizeof hdr, "bytes %llu-%llu/%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1), (unsigned long long)size);
        http_add_header(r, "Content-Range", hdr);
        break;
    }
    int sendfile = core_config(st)->sendfile;
    int fd = sendfile ? core_download_kernel_fd(d, off, len) : -1;
    if (fd >= 0) {
        core_download_close(d); /* the fd keeps the bytes readable */
        http_reply_fd(r, status, "application/octet-stream", fd, off, len);
        return;
    }
    struct reader *rd = malloc(sizeof *rd);
    if (!rd) {
        core_download_close(d);
        fail(r, ST_INTERNAL, "", "out of memory");
        return;
    }
    rd->d = d;
    rd->base = off;
    if (sendfile)
        http_reply_lent(r, status, "application/octet-stream", len, &range_lender, rd);
    else
        http_reply_reader(r, status, "application/octet-stream", len, read_range, rd, free_reader);
}
