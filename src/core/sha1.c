/* sha1.c — an image's SHA-1, the checksum IMGAPI manifests carry: an import records it as
 * the bytes stream in; for an image that came another way it is computed the first time
 * an IMGAPI client asks, by reading the image once, and kept in the catalogue (the bytes
 * of an active image never change). */
#include "core_internal.h"

#include <gnutls/crypto.h>
#include <stdlib.h>
#include <string.h>

#define READ_BUF (4u << 20)

static int compute(struct stowage *st, const char *uuid, char out[41], uint64_t *size,
                   struct st_err *e)
{
    static const char digits[] = "0123456789abcdef";
    struct core_download *d;
    struct core_image img;
    gnutls_hash_hd_t h;
    unsigned char dg[20];
    char *buf = malloc(READ_BUF);
    int rc = -1;

    if (!buf)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (core_download_open(st, NULL, uuid, &d, &img, e)) {
        free(buf);
        return -1;
    }
    *size = core_download_size(d);
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA1) < 0) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    for (uint64_t off = 0; off < *size;) {
        size_t want = *size - off < READ_BUF ? (size_t)(*size - off) : READ_BUF;
        ssize_t n = core_download_read(d, off, buf, want);
        if (n <= 0) {
            gnutls_hash_deinit(h, NULL);
            st_fail(e, ST_UNAVAILABLE, "cannot read image %s to checksum it", uuid);
            goto out;
        }
        gnutls_hash(h, buf, (size_t)n);
        off += (uint64_t)n;
    }
    gnutls_hash_deinit(h, dg);
    for (int i = 0; i < 20; i++) {
        out[2 * i] = digits[dg[i] >> 4];
        out[2 * i + 1] = digits[dg[i] & 15];
    }
    out[40] = '\0';
    rc = 0;
out:
    core_download_close(d);
    free(buf);
    return rc;
}

int core_image_sha1(struct stowage *st, const char *uuid, char out[41], uint64_t *size,
                    struct st_err *e)
{
    struct core_download *d;
    struct core_image img;
    struct st_err ignore;

    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_get_sha1(c, uuid, out, 41, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    if (out[0]) {
        if (core_download_open(st, NULL, uuid, &d, &img, e))
            return -1;
        *size = core_download_size(d);
        core_download_close(d);
        return 0;
    }
    if (compute(st, uuid, out, size, e))
        return -1;
    c = db_acquire(st->db);
    db_image_set_sha1(c, uuid, out, &ignore);
    db_release(st->db, c);
    return 0;
}
