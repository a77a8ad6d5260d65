/* unpack.c — decompressing an image while it streams in: gzip (zlib), bzip2 (libbz2),
 * xz (liblzma), or nothing. IMGAPI servers ship files compressed; the catalogue keeps
 * them as the guest reads them. Concatenated streams (pigz, pbzip2, pixz) are one file.
 * Output goes out in OUT_BUF pieces; nothing is held beyond one input and one output
 * buffer. */
#include "core_internal.h"

#include <bzlib.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define OUT_BUF (1u << 20)

enum kind { K_NONE, K_GZIP, K_BZIP2, K_XZ };

struct core_unpack {
    enum kind kind;
    core_unpack_out_fn out;
    void *ud;
    unsigned char *buf;
    int ended; /* the last stream ended (more input starts another) */
    z_stream z;
    bz_stream bz;
    lzma_stream xz;
};

int core_unpack_new(const char *compression, core_unpack_out_fn out, void *ud,
                    struct core_unpack **up, struct st_err *e)
{
    struct core_unpack *u = calloc(1, sizeof *u);
    const char *c = compression ? compression : "";
    int rc = 0;

    if (!u)
        return st_fail(e, ST_INTERNAL, "out of memory");
    u->out = out;
    u->ud = ud;
    if (!*c || strcmp(c, "none") == 0) {
        u->kind = K_NONE;
    } else if (strcmp(c, "gzip") == 0) {
        u->kind = K_GZIP;
        rc = inflateInit2(&u->z, 15 + 32) == Z_OK ? 0 : -1;
    } else if (strcmp(c, "bzip2") == 0) {
        u->kind = K_BZIP2;
        rc = BZ2_bzDecompressInit(&u->bz, 0, 0) == BZ_OK ? 0 : -1;
    } else if (strcmp(c, "xz") == 0) {
        lzma_stream init = LZMA_STREAM_INIT;
        u->kind = K_XZ;
        u->xz = init;
        rc = lzma_stream_decoder(&u->xz, UINT64_MAX, LZMA_CONCATENATED) == LZMA_OK ? 0 : -1;
    } else {
        free(u);
        return st_fail_field(e, ST_INVALID, "compression", "compression '%.32s' is not supported",
                             c);
    }
    if (rc || (u->kind != K_NONE && !(u->buf = malloc(OUT_BUF)))) {
        u->kind = rc ? K_NONE : u->kind;
        core_unpack_free(u);
        return st_fail(e, ST_INTERNAL, "cannot start the %s decoder", c);
    }
    *up = u;
    return 0;
}

static int corrupt(struct st_err *e, const char *what)
{
    return st_fail_field(e, ST_INVALID, "file", "the file is not valid %s data", what);
}

static int gzip_feed(struct core_unpack *u, const void *buf, size_t len, struct st_err *e)
{
    u->z.next_in = (unsigned char *)(uintptr_t)buf;
    u->z.avail_in = (uInt)len;
    while (u->z.avail_in > 0) {
        if (u->ended) {
            if (inflateReset(&u->z) != Z_OK)
                return corrupt(e, "gzip");
            u->ended = 0;
        }
        u->z.next_out = u->buf;
        u->z.avail_out = OUT_BUF;
        int rc = inflate(&u->z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
            return corrupt(e, "gzip");
        size_t n = OUT_BUF - u->z.avail_out;
        if (n && u->out(u->ud, u->buf, n, e))
            return -1;
        if (rc == Z_STREAM_END)
            u->ended = 1;
        else if (rc == Z_BUF_ERROR && n == 0)
            break;
    }
    return 0;
}

static int bzip2_feed(struct core_unpack *u, const void *buf, size_t len, struct st_err *e)
{
    u->bz.next_in = (char *)(uintptr_t)buf;
    u->bz.avail_in = (unsigned)len;
    while (u->bz.avail_in > 0) {
        if (u->ended) {
            char *rest = u->bz.next_in;
            unsigned left = u->bz.avail_in;
            BZ2_bzDecompressEnd(&u->bz);
            memset(&u->bz, 0, sizeof u->bz);
            if (BZ2_bzDecompressInit(&u->bz, 0, 0) != BZ_OK)
                return corrupt(e, "bzip2");
            u->bz.next_in = rest;
            u->bz.avail_in = left;
            u->ended = 0;
        }
        u->bz.next_out = (char *)u->buf;
        u->bz.avail_out = OUT_BUF;
        int rc = BZ2_bzDecompress(&u->bz);
        if (rc != BZ_OK && rc != BZ_STREAM_END)
            return corrupt(e, "bzip2");
        size_t n = OUT_BUF - u->bz.avail_out;
        if (n && u->out(u->ud, u->buf, n, e))
            return -1;
        if (rc == BZ_STREAM_END)
            u->ended = 1;
    }
    return 0;
}

static int xz_run(struct core_unpack *u, lzma_action action, struct st_err *e)
{
    for (;;) {
        u->xz.next_out = u->buf;
        u->xz.avail_out = OUT_BUF;
        lzma_ret rc = lzma_code(&u->xz, action);
        if (rc != LZMA_OK && rc != LZMA_STREAM_END && rc != LZMA_BUF_ERROR)
            return corrupt(e, "xz");
        size_t n = OUT_BUF - u->xz.avail_out;
        if (n && u->out(u->ud, u->buf, n, e))
            return -1;
        if (rc == LZMA_STREAM_END) {
            u->ended = 1;
            return 0;
        }
        if (action == LZMA_RUN && u->xz.avail_in == 0 && u->xz.avail_out > 0)
            return 0;
        if (action == LZMA_FINISH && n == 0)
            return corrupt(e, "xz"); /* truncated */
    }
}

int core_unpack_feed(struct core_unpack *u, const void *buf, size_t len, struct st_err *e)
{
    switch (u->kind) {
    case K_NONE:
        return len ? u->out(u->ud, buf, len, e) : 0;
    case K_GZIP:
        return gzip_feed(u, buf, len, e);
    case K_BZIP2:
        return bzip2_feed(u, buf, len, e);
    case K_XZ:
        u->xz.next_in = buf;
        u->xz.avail_in = len;
        return xz_run(u, LZMA_RUN, e);
    }
    return 0;
}

int core_unpack_end(struct core_unpack *u, struct st_err *e)
{
    static const char *const names[] = {"", "gzip", "bzip2", "xz"};
    if (u->kind == K_XZ && !u->ended) {
        u->xz.next_in = NULL;
        u->xz.avail_in = 0;
        if (xz_run(u, LZMA_FINISH, e))
            return -1;
    }
    if (u->kind != K_NONE && !u->ended)
        return st_fail_field(e, ST_INVALID, "file", "the %s data ends before its stream does",
                             names[u->kind]);
    return 0;
}

void core_unpack_free(struct core_unpack *u)
{
    if (!u)
        return;
    if (u->kind == K_GZIP)
        inflateEnd(&u->z);
    else if (u->kind == K_BZIP2)
        BZ2_bzDecompressEnd(&u->bz);
    else if (u->kind == K_XZ)
        lzma_end(&u->xz);
    free(u->buf);
    free(u);
}
