/* sparse_input.h — how a fuzz input becomes an image for fmt_inspect.
 *
 * Most inputs are the file itself. But the interesting images are big and
 * mostly holes (a VHDX puts its metadata past 2 MiB, a 2 TiB qcow2 is 200
 * KiB), which a byte-mutating fuzzer cannot grow into. So an input that
 * starts with "STWSPRS1" describes a sparse file instead:
 *
 *   "STWSPRS1" | u64 file size | u8 declared format | u8 flags (1: allow backing)
 *   then records: u64 offset | u16 length | length bytes
 *
 * all little-endian; unrecorded bytes read as zeros, a truncated last record
 * keeps what it has. tests/fixtures/make_corpus.py --fuzz-seeds writes seeds
 * in this form. Header-only, shared by fuzz/fuzz_inspect.c and
 * tests/unit/test_fmt_regressions.c. */
#ifndef STOWAGE_FUZZ_SPARSE_INPUT_H
#define STOWAGE_FUZZ_SPARSE_INPUT_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "stowage/format.h"

#define SPARSE_MAGIC "STWSPRS1"
#define SPARSE_HDR 18
#define SPARSE_REC_HDR 10

struct sparse_rec {
    uint64_t off;
    const uint8_t *data;
    size_t len;
};

struct fuzz_image {
    const uint8_t *flat; /* not sparse: the input is the file */
    struct sparse_rec *recs;
    size_t nrecs;
    uint64_t size;
    struct fmt_opts opts;
};

static inline uint64_t sparse_le(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline int sparse_rec_cmp(const void *a, const void *b)
{
    const struct sparse_rec *x = a, *y = b;

    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->data < y->data ? -1 : x->data > y->data; /* input order on ties */
}

/* 0, or -ENOMEM. img->recs must be freed with fuzz_image_free. */
static inline int fuzz_image_init(struct fuzz_image *img, const uint8_t *d, size_t n)
{
    memset(img, 0, sizeof(*img));
    fmt_opts_init(&img->opts);
    if (n < SPARSE_HDR || memcmp(d, SPARSE_MAGIC, 8)) {
        img->flat = d;
        img->size = n;
        return 0;
    }
    img->size = sparse_le(d + 8, 8);
    img->opts.declared = (enum fmt_format)(d[16] % FMT_COUNT);
    img->opts.allow_backing_file = d[17] & 1;
    img->recs = malloc((n / SPARSE_REC_HDR + 1) * sizeof(*img->recs));
    if (!img->recs)
        return -ENOMEM;
    for (size_t p = SPARSE_HDR; n - p > SPARSE_REC_HDR;) {
        struct sparse_rec *r = &img->recs[img->nrecs++];
        r->off = sparse_le(d + p, 8);
        r->len = (size_t)sparse_le(d + p + 8, 2);
        r->data = d + p + SPARSE_REC_HDR;
        p += SPARSE_REC_HDR;
        if (r->len > n - p)
            r->len = n - p;
        p += r->len;
    }
    qsort(img->recs, img->nrecs, sizeof(*img->recs), sparse_rec_cmp);
    return 0;
}

static inline void fuzz_image_free(struct fuzz_image *img)
{
    free(img->recs);
}

static inline ssize_t fuzz_image_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    const struct fuzz_image *img = ctx;

    if (off >= img->size)
        return 0;
    if (len > img->size - off)
        len = (size_t)(img->size - off);
    if (img->flat) {
        memcpy(buf, img->flat + off, len);
        return (ssize_t)len;
    }
    memset(buf, 0, len);
    /* Records are at most 65535 bytes: only those starting after
     * off - 65535 can overlap; find the first by binary search. */
    uint64_t from = off > 65535 ? off - 65535 : 0;
    size_t lo = 0, hi = img->nrecs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (img->recs[mid].off < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < img->nrecs && img->recs[i].off < off + len; i++) {
        const struct sparse_rec *r = &img->recs[i];
        uint64_t s = r->off > off ? r->off : off;
        uint64_t e = r->off + r->len < off + len ? r->off + r->len : off + len;
        if (r->off + r->len < r->off) /* wraps past 2^64: clip */
            e = off + len;
        if (s < e)
            memcpy((uint8_t *)buf + (s - off), r->data + (s - r->off), (size_t)(e - s));
    }
    return (ssize_t)len;
}

static inline struct fmt_source fuzz_image_source(struct fuzz_image *img)
{
    struct fmt_source src = {.ctx = img, .pread = fuzz_image_pread, .size = img->size};
    return src;
}

#endif
