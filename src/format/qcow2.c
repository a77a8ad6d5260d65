/* qcow2.c — qcow2 (v2, v3) validation, following docs/interop/qcow2.txt and
 * the checks qemu's qcow2_do_open makes.
 *
 * What makes a qcow2 dangerous is what it points at outside itself: a backing
 * file, an external data file, an encryption key it needs. Those are refused.
 * What makes it merely broken is a header or table that lies past the end of
 * the file or overflows; those are refused too, because qemu would read
 * zeros or fail later, in a guest, instead of now. Only the header cluster's
 * first bytes, the header extensions, the active L1 table and the refcount
 * table entries that describe the file are read. */
#include <errno.h>
#include <inttypes.h>

#include "fmt_int.h"

#define HDR_V2_LEN 72
#define HDR_V3_LEN 104

#define INCOMPAT_KNOWN 0x1fu
#define AUTOCLEAR_BITMAPS (1u << 0)
#define AUTOCLEAR_DATA_FILE_RAW (1u << 1)
#define MAX_BACKING_FORMAT_LEN 16 /* qemu: sizeof(bs->backing_format) */

#define EXT_END 0x00000000u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_FEATURE_TABLE 0x6803f857u
#define EXT_CRYPTO_HEADER 0x0537be77u
#define EXT_BITMAPS 0x23852875u
#define EXT_DATA_FILE 0x44415441u

/* qemu's own limits (QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE, ...): an image
 * past them cannot be opened anyway, and they bound what we read. */
#define MAX_L1_BYTES (UINT64_C(32) << 20)
#define MAX_REFTABLE_BYTES (UINT64_C(8) << 20)
#define MAX_SNAPSHOTS 65536u
#define SNAPSHOT_HEADER_SIZE 40u
#define MAX_BITMAPS 65535u
#define MAX_BITMAP_DIR_BYTES (UINT64_C(64) << 20)

/* L1/refcount-table entry: bits 9..55 are the offset, 0..8 and 56..62 reserved. */
#define L1_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define L1_RESERVED_MASK UINT64_C(0x7f000000000001ff)
#define RT_RESERVED_MASK UINT64_C(0x00000000000001ff)

#define TABLE_CHUNK 4096 /* tables are checked in chunks: no allocation */

void fmt_qcow2_parse_header(const uint8_t *b, struct qcow2_hdr *h)
{
    memset(h, 0, sizeof(*h));
    h->version = get_be32(b + 4);
    h->backing_file_offset = get_be64(b + 8);
    h->backing_file_size = get_be32(b + 16);
    h->cluster_bits = get_be32(b + 20);
    h->size = get_be64(b + 24);
    h->crypt_method = get_be32(b + 32);
    h->l1_size = get_be32(b + 36);
    h->l1_table_offset = get_be64(b + 40);
    h->refcount_table_offset = get_be64(b + 48);
    h->refcount_table_clusters = get_be32(b + 56);
    h->nb_snapshots = get_be32(b + 60);
    h->snapshots_offset = get_be64(b + 64);
    if (h->version >= 3) {
        h->incompatible = get_be64(b + 72);
        h->autoclear = get_be64(b + 88);
        h->refcount_order = get_be32(b + 96);
        h->header_length = get_be32(b + 100);
        h->compression_type = h->header_length > HDR_V3_LEN ? b[104] : 0;
    } else {
        h->refcount_order = 4;
        h->header_length = HDR_V2_LEN;
    }
}

/* A table (count entries of esize bytes at off) must be cluster-aligned, must
 * not overlap the header cluster and must lie inside the file. */
static const char *table_problem(const struct fmt_reader *r, const struct qcow2_hdr *h,
                                 uint64_t off, uint64_t count, uint64_t esize)
{
    if (off & (h->cluster_size - 1))
        return "is not cluster-aligned";
    if (count == 0)
        return NULL;
    if (off < h->cluster_size)
        return "overlaps the header cluster";
    if (!rd_inside(r, off, count * esize)) /* count * esize is capped by the callers */
        return "lies outside the file";
    return NULL;
}

static int check_features(const struct qcow2_hdr *h, struct fmt_probe *p)
{
    if (h->incompatible & ~(uint64_t)INCOMPAT_KNOWN)
        return probe_refuse(p, FMT_R_QCOW2_INCOMPAT, "unknown incompatible feature bits 0x%" PRIx64,
                            h->incompatible & ~(uint64_t)INCOMPAT_KNOWN);
    if (h->incompatible & QCOW2_INCOMPAT_DATA_FILE)
        return probe_refuse(
            p, FMT_R_QCOW2_DATA_FILE,
            "external data file (incompatible bit 0x4): its data lives in another file");
    if ((h->autoclear & AUTOCLEAR_DATA_FILE_RAW) && !(h->incompatible & QCOW2_INCOMPAT_DATA_FILE))
        return probe_refuse(p, FMT_R_QCOW2_HEADER, "raw data file bit without a data file");
    if (h->incompatible & QCOW2_INCOMPAT_CORRUPT)
        return probe_refuse(p, FMT_R_QCOW2_CORRUPT,
                            "the image is marked corrupt (incompatible bit 0x2)");
    if (h->incompatible & QCOW2_INCOMPAT_DIRTY)
        p->flags |= FMT_F_DIRTY;
    if (h->incompatible & QCOW2_INCOMPAT_EXTL2) {
        /* 32 subclusters must each be at least a 512-byte sector (qemu). */
        if (h->cluster_bits < 14)
            return probe_refuse(p, FMT_R_QCOW2_CLUSTER_BITS,
                                "extended L2 entries need cluster_bits >= 14, found %" PRIu32,
                                h->cluster_bits);
        p->flags |= FMT_F_EXTENDED_L2;
    }
    if (h->compression_type > 1)
        return probe_refuse(p, FMT_R_QCOW2_COMPRESSION, "unknown compression type %u",
                            h->compression_type);
    if ((h->compression_type != 0) != !!(h->incompatible & QCOW2_INCOMPAT_COMPRESSION))
        return probe_refuse(p, FMT_R_QCOW2_COMPRESSION,
                            "compression type %u disagrees with incompatible bit 0x8",
                            h->compression_type);
    if (h->compression_type == 1)
        p->flags |= FMT_F_ZSTD;
    if (h->crypt_method != 0)
        return probe_refuse(p, FMT_R_QCOW2_ENCRYPTED, "encrypted (crypt_method %" PRIu32 ")",
                            h->crypt_method);
    if (h->refcount_order > 6)
        return probe_refuse(p, FMT_R_QCOW2_HEADER, "refcount_order %" PRIu32 " is over 6",
                            h->refcount_order);
    return 0;
}

/* Only files the daemon wrote itself may have one (opts.allow_backing_file). */
static int check_backing(struct fmt_reader *r, const struct fmt_opts *o, const struct qcow2_hdr *h,
                         struct fmt_probe *p)
{
    if (h->backing_file_offset == 0 && h->backing_file_size == 0)
        return 0;
    if (!o->allow_backing_file)
        return probe_refuse(p, FMT_R_QCOW2_BACKING,
                            "backing file reference (offset %" PRIu64 ", %" PRIu32 " bytes)",
                            h->backing_file_offset, h->backing_file_size);
    if (h->backing_file_offset < h->header_length || h->backing_file_offset >= h->cluster_size ||
        h->backing_file_size == 0 || h->backing_file_size > FMT_OVERLAY_MAX_BACKING_PATH ||
        h->backing_file_size > h->cluster_size - h->backing_file_offset)
        return probe_refuse(p, FMT_R_QCOW2_BACKING, "backing file name is out of bounds");
    int ret = rd_read(r, h->backing_file_offset, p->backing_file, h->backing_file_size);
    if (ret < 0)
        return ret;
    if (ret == RD_OUTSIDE)
        return probe_refuse(p, FMT_R_QCOW2_BACKING, "backing file name lies outside the file");
    p->backing_file[h->backing_file_size] = '\0';
    p->flags |= FMT_F_BACKING;
    return 0;
}

static int check_bitmaps_ext(struct fmt_reader *r, const struct qcow2_hdr *h, uint64_t off,
                             uint32_t len, struct fmt_probe *p)
{
    uint8_t b[24];

    /* Without the autoclear bit a program that did not know bitmaps wrote the
     * image: qemu ignores the stale extension, and so do we. */
    if (!(h->autoclear & AUTOCLEAR_BITMAPS))
        return 0;
    if (len != sizeof(b))
        return probe_refuse(p, FMT_R_QCOW2_EXTENSION, "bitmaps extension is %" PRIu32 " bytes",
                            len);
    int ret = rd_read(r, off, b, sizeof(b));
    if (ret < 0)
        return ret;
    if (ret == RD_OUTSIDE)
        return probe_refuse(p, FMT_R_QCOW2_EXTENSION, "bitmaps extension lies outside the file");
    uint32_t nb = get_be32(b);
    uint64_t dir_size = get_be64(b + 8), dir_off = get_be64(b + 16);
    if (nb == 0 || nb > MAX_BITMAPS || get_be32(b + 4) != 0 || dir_size > MAX_BITMAP_DIR_BYTES ||
        (dir_off & (h->cluster_size - 1)) || dir_off < h->cluster_size ||
        !rd_inside(r, dir_off, dir_size))
        return probe_refuse(p, FMT_R_QCOW2_EXTENSION, "bitmap directory is out of bounds");
    p->flags |= FMT_F_BITMAPS;
    return 0;
}

/* Header extensions fill [header_length, end of the header cluster or the
 * backing file name). Each advances by at least 8 bytes: the loop is bounded
 * by the 2 MiB maximum cluster, and past the head cache the headers are read
 * through a 512-byte window, not one pread each. Past the end of a short
 * file the bytes read as zeros, an end marker, as they do for qemu. */
struct ext_window {
    uint64_t off;
    size_t len;
    uint8_t b[512];
};

static int ext_header(struct fmt_reader *r, struct ext_window *w, uint64_t off, uint8_t *e)
{
    if (!rd_inside(r, off, 8))
        return RD_OUTSIDE;
    if (off + 8 <= r->head_len)
        return rd_read(r, off, e, 8);
    if (off < w->off || off + 8 > w->off + w->len) {
        size_t len = rd_inside(r, off, sizeof(w->b)) ? sizeof(w->b) : (size_t)(r->size - off);
        int ret = rd_read(r, off, w->b, len);
        if (ret != 0)
            return ret;
        w->off = off;
        w->len = len;
    }
    memcpy(e, w->b + (off - w->off), 8);
    return 0;
}

static int check_extensions(struct fmt_reader *r, const struct fmt_opts *o,
                            const struct qcow2_hdr *h, struct fmt_probe *p)
{
    uint64_t end = h->backing_file_offset ? h->backing_file_offset : h->cluster_size;
    uint64_t off = h->header_length;
    struct ext_window w = {0, 0, {0}};
    uint8_t e[8];

    while (off < end) {
        int ret = ext_header(r, &w, off, e);
        if (ret < 0)
            return ret;
        if (ret == RD_OUTSIDE)
            return 0;
        uint32_t type = get_be32(e), len = get_be32(e + 4);
        off += sizeof(e);
        if (off > end || len > end - off)
            return probe_refuse(p, FMT_R_QCOW2_EXTENSION,
                                "header extension 0x%08" PRIx32 " runs past the header cluster",
                                type);
        switch (type) {
        case EXT_END:
            return 0;
        case EXT_DATA_FILE:
            return probe_refuse(p, FMT_R_QCOW2_DATA_FILE, "external data file name extension");
        case EXT_CRYPTO_HEADER:
            return probe_refuse(p, FMT_R_QCOW2_ENCRYPTED, "encryption header extension");
        case EXT_BITMAPS:
            ret = check_bitmaps_ext(r, h, off, len, p);
            if (ret < 0 || p->reason != FMT_R_OK)
                return ret;
            break;
        case EXT_BACKING_FORMAT:
            if (len >= MAX_BACKING_FORMAT_LEN)
                return probe_refuse(p, FMT_R_QCOW2_EXTENSION,
                                    "backing format name is %" PRIu32 " bytes", len);
            if (o->allow_backing_file) {
                ret = rd_read(r, off, p->backing_format, len);
                if (ret < 0)
                    return ret;
                p->backing_format[ret == 0 ? len : 0] = '\0';
            }
            break;
        default: /* the feature name table and unknown extensions carry no risk */
            break;
        }
        off += ((uint64_t)len + 7) & ~UINT64_C(7);
    }
    return 0;
}

/* Every used entry of a table must point at a whole cluster inside the file
 * (an L2 table or a refcount block) with its reserved bits clear. */
static int check_entries(struct fmt_reader *r, const struct qcow2_hdr *h, uint64_t off,
                         uint64_t count, uint64_t reserved, const char *what, enum fmt_reason why,
                         struct fmt_probe *p)
{
    uint8_t buf[TABLE_CHUNK];

    for (uint64_t i = 0; i < count;) {
        uint64_t n = count - i < TABLE_CHUNK / 8 ? count - i : TABLE_CHUNK / 8;
        int ret = rd_read(r, off + i * 8, buf, (size_t)(n * 8));
        if (ret < 0)
            return ret;
        if (ret == RD_OUTSIDE)
            return probe_refuse(p, why, "%s lies outside the file", what);
        for (uint64_t j = 0; j < n; j++, i++) {
            uint64_t e = get_be64(buf + j * 8);
            uint64_t target = e & L1_OFFSET_MASK;
            if (e & reserved)
                return probe_refuse(p, why, "%s entry %" PRIu64 " has reserved bits set", what, i);
            if (target == 0)
                continue;
            if ((target & (h->cluster_size - 1)) || !rd_inside(r, target, h->cluster_size))
                return probe_refuse(p, why, "%s entry %" PRIu64 " points outside the file", what,
                                    i);
        }
    }
    return 0;
}

static int check_l1(struct fmt_reader *r, const struct qcow2_hdr *h, struct fmt_probe *p)
{
    /* Each L2 table is one cluster of 8-byte entries (16 with subclusters). */
    unsigned l2_bits = h->cluster_bits - 3 - ((h->incompatible & QCOW2_INCOMPAT_EXTL2) ? 1 : 0);
    unsigned shift = h->cluster_bits + l2_bits; /* bytes covered by one L1 entry: at most 2^39 */
    uint64_t needed = (h->size >> shift) + ((h->size & ((UINT64_C(1) << shift) - 1)) != 0);
    const char *why;

    if (needed > INT32_MAX)
        return probe_refuse(p, FMT_R_QCOW2_HEADER, "virtual size %" PRIu64 " is too big for qcow2",
                            h->size);
    if (h->l1_size < needed)
        return probe_refuse(p, FMT_R_QCOW2_L1,
                            "L1 table has %" PRIu32 " entries, %" PRIu64
                            " needed for the virtual size",
                            h->l1_size, needed);
    if ((uint64_t)h->l1_size * 8 > MAX_L1_BYTES)
        return probe_refuse(p, FMT_R_QCOW2_L1, "L1 table of %" PRIu32 " entries is too large",
                            h->l1_size);
    why = table_problem(r, h, h->l1_table_offset, h->l1_size, 8);
    if (why)
        return probe_refuse(p, FMT_R_QCOW2_L1, "L1 table at %" PRIu64 " %s", h->l1_table_offset,
                            why);
    return check_entries(r, h, h->l1_table_offset, h->l1_size, L1_RESERVED_MASK, "L1 table",
                         FMT_R_QCOW2_L1, p);
}

static int check_refcount_table(struct fmt_reader *r, const struct qcow2_hdr *h,
                                struct fmt_probe *p)
{
    uint64_t bytes = (uint64_t)h->refcount_table_clusters << h->cluster_bits;
    const char *why;

    if (h->refcount_table_clusters == 0)
        return probe_refuse(p, FMT_R_QCOW2_REFCOUNT, "no refcount table");
    if (bytes > MAX_REFTABLE_BYTES)
        return probe_refuse(p, FMT_R_QCOW2_REFCOUNT,
                            "refcount table of %" PRIu32 " clusters is too large",
                            h->refcount_table_clusters);
    why = table_problem(r, h, h->refcount_table_offset, bytes / 8, 8);
    if (why)
        return probe_refuse(p, FMT_R_QCOW2_REFCOUNT, "refcount table at %" PRIu64 " %s",
                            h->refcount_table_offset, why);
    /* Only the entries whose blocks describe clusters of this file matter;
     * the rest must be unused and are not worth reading. */
    unsigned block_bits = h->cluster_bits + 3 - h->refcount_order; /* log2 clusters per block */
    unsigned span_bits = h->cluster_bits + block_bits;             /* at most 2^45 bytes */
    uint64_t used = (r->size >> span_bits) + ((r->size & ((UINT64_C(1) << span_bits) - 1)) != 0);
    if (used > bytes / 8)
        used = bytes / 8;
    return check_entries(r, h, h->refcount_table_offset, used, RT_RESERVED_MASK, "refcount table",
                         FMT_R_QCOW2_REFCOUNT, p);
}

static int check_snapshots(struct fmt_reader *r, const struct qcow2_hdr *h, struct fmt_probe *p)
{
    const char *why;

    /* Each entry is at least its 40-byte header; their variable parts are not
     * read: internal snapshots point nowhere outside the file. */
    if (h->nb_snapshots > MAX_SNAPSHOTS)
        return probe_refuse(p, FMT_R_QCOW2_SNAPSHOTS, "%" PRIu32 " snapshots is over qemu's limit",
                            h->nb_snapshots);
    why = table_problem(r, h, h->snapshots_offset, h->nb_snapshots, SNAPSHOT_HEADER_SIZE);
    if (why)
        return probe_refuse(p, FMT_R_QCOW2_SNAPSHOTS, "snapshot table at %" PRIu64 " %s",
                            h->snapshots_offset, why);
    if (h->nb_snapshots)
        p->flags |= FMT_F_SNAPSHOTS;
    return 0;
}

int fmt_detect_qcow2(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p)
{
    uint8_t b[QCOW2_HDR_READ] = {0};
    struct qcow2_hdr h;
    int ret;

    if (r->head_len < 4 || get_be32(r->head) != QCOW2_MAGIC)
        return 0;
    p->matched = 1;
    p->format = FMT_QCOW2;
    if (r->size < HDR_V2_LEN)
        return probe_refuse(p, FMT_R_QCOW2_HEADER, "the file ends inside the header");
    memcpy(b, r->head, r->head_len < sizeof(b) ? r->head_len : sizeof(b));
    fmt_qcow2_parse_header(b, &h);
    p->virtual_size = h.size;
    if (h.version < 2 || h.version > 3)
        return probe_refuse(p, FMT_R_QCOW2_VERSION,
                            "qcow version %" PRIu32 " (only 2 and 3 are accepted)", h.version);
    if (h.version == 3 && r->size < HDR_V3_LEN)
        return probe_refuse(p, FMT_R_QCOW2_HEADER, "the file ends inside the v3 header");
    if (h.cluster_bits < 9 || h.cluster_bits > 21)
        return probe_refuse(p, FMT_R_QCOW2_CLUSTER_BITS,
                            "cluster_bits %" PRIu32 " is outside 9..21", h.cluster_bits);
    h.cluster_size = UINT64_C(1) << h.cluster_bits;
    if (h.version == 3 &&
        (h.header_length < HDR_V3_LEN || h.header_length % 8 || h.header_length > h.cluster_size))
        return probe_refuse(p, FMT_R_QCOW2_HEADER, "header_length %" PRIu32 " is invalid",
                            h.header_length);
    if (h.header_length > HDR_V3_LEN && r->size < QCOW2_HDR_READ)
        return probe_refuse(p, FMT_R_QCOW2_HEADER, "the file ends inside the header");

    ret = check_features(&h, p);
    if (ret < 0 || p->reason != FMT_R_OK)
        return ret;
    ret = check_backing(r, o, &h, p);
    if (ret < 0 || p->reason != FMT_R_OK)
        return ret;
    ret = check_extensions(r, o, &h, p);
    if (ret < 0 || p->reason != FMT_R_OK)
        return ret;
    ret = check_refcount_table(r, &h, p);
    if (ret < 0 || p->reason != FMT_R_OK)
        return ret;
    ret = check_snapshots(r, &h, p);
    if (ret < 0 || p->reason != FMT_R_OK)
        return ret;
    return check_l1(r, &h, p);
}
