/* qcow2_map.c — where a qcow2 image's guest bytes are: in the file, zeros, or in
 * its backing file (docs/interop/qcow2.txt, "Cluster mapping").
 *
 * Flattening a chain (a clone's snapshot over its image) asks, for each guest
 * range, which layer holds it; this file answers for one qcow2 layer by walking
 * its L1 and L2 tables. It reads through the same callback as the inspector and
 * keeps the L1 table and one L2 table in memory. Only what stowage itself writes
 * or accepts is mapped: no encryption, no external data file, no subclusters;
 * a compressed cluster is reported with its place so the caller can inflate it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "fmt_int.h"

#define L2_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define L2_COMPRESSED (UINT64_C(1) << 62)
#define L2_ZERO UINT64_C(1)
#define MAX_L1_ENTRIES (UINT64_C(32) << 20) / 8 /* qemu's QCOW_MAX_L1_SIZE */

struct fmt_qcow2_map {
    struct fmt_reader rd;
    struct fmt_source src;
    struct qcow2_hdr h;
    unsigned l2_bits;
    uint64_t *l1;   /* host order */
    uint64_t *l2;   /* the cached L2 table (host order) */
    uint64_t l2_at; /* its offset in the file, 0 none */
    int has_backing;
};

static int refuse(char *why, size_t len, const char *msg)
{
    snprintf(why, len, "%s", msg);
    return -EINVAL;
}

int fmt_qcow2_map_open(const struct fmt_source *src, struct fmt_qcow2_map **out, char *why,
                       size_t why_len)
{
    uint8_t b[QCOW2_HDR_READ] = {0};
    struct fmt_qcow2_map *m = calloc(1, sizeof *m);
    int rc;

    *out = NULL;
    if (!m)
        return -ENOMEM;
    m->src = *src;
    m->rd.src = &m->src;
    m->rd.size = src->size;
    rc = rd_read(&m->rd, 0, b, src->size < sizeof b ? (size_t)src->size : sizeof b);
    if (rc)
        goto fail;
    fmt_qcow2_parse_header(b, &m->h);
    struct qcow2_hdr *h = &m->h;
    if (get_be32(b) != QCOW2_MAGIC || h->version < 2 || h->version > 3 || h->cluster_bits < 9 ||
        h->cluster_bits > 21) {
        rc = refuse(why, why_len, "not a qcow2 image this reader knows");
        goto fail;
    }
    if (h->crypt_method || h->compression_type ||
        (h->incompatible & (QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_EXTL2))) {
        rc = refuse(why, why_len,
                    "encrypted, external-data, zstd and subcluster qcow2 images "
                    "cannot be read");
        goto fail;
    }
    h->cluster_size = UINT64_C(1) << h->cluster_bits;
    m->l2_bits = h->cluster_bits - 3;
    m->has_backing = h->backing_file_offset != 0;
    uint64_t span = UINT64_C(1) << (h->cluster_bits + m->l2_bits);
    uint64_t needed = (h->size + span - 1) / span;
    if (h->l1_size < needed || h->l1_size > MAX_L1_ENTRIES) {
        rc = refuse(why, why_len, "the L1 table does not cover the virtual size");
        goto fail;
    }
    m->l1 = malloc((size_t)needed * 8 + 8);
    m->l2 = malloc((size_t)h->cluster_size);
    if (!m->l1 || !m->l2) {
        rc = -ENOMEM;
        goto fail;
    }
    if (needed && (rc = rd_read(&m->rd, h->l1_table_offset, m->l1, (size_t)needed * 8)))
        goto fail;
    for (uint64_t i = 0; i < needed; i++)
        m->l1[i] = get_be64((const uint8_t *)&m->l1[i]);
    m->h.l1_size = (uint32_t)needed;
    *out = m;
    return 0;
fail:
    if (rc == RD_OUTSIDE)
        rc = refuse(why, why_len, "a table lies past the end of the file");
    fmt_qcow2_map_close(m);
    return rc;
}

void fmt_qcow2_map_close(struct fmt_qcow2_map *m)
{
    if (!m)
        return;
    free(m->l1);
    free(m->l2);
    free(m);
}

uint64_t fmt_qcow2_map_size(const struct fmt_qcow2_map *m)
{
    return m->h.size;
}

uint64_t fmt_qcow2_map_cluster_size(const struct fmt_qcow2_map *m)
{
    return m->h.cluster_size;
}

int fmt_qcow2_map_has_backing(const struct fmt_qcow2_map *m)
{
    return m->has_backing;
}

/* The L2 entry of the cluster holding guest offset off (0: unallocated). */
static int l2_entry(struct fmt_qcow2_map *m, uint64_t off, uint64_t *entry)
{
    uint64_t l1i = off >> (m->h.cluster_bits + m->l2_bits);
    uint64_t l2i = (off >> m->h.cluster_bits) & ((UINT64_C(1) << m->l2_bits) - 1);
    uint64_t at = m->l1[l1i] & L2_OFFSET_MASK;
    *entry = 0;
    if (!at)
        return 0;
    if (at != m->l2_at) {
        int rc = rd_read(&m->rd, at, m->l2, (size_t)m->h.cluster_size);
        if (rc)
            return rc == RD_OUTSIDE ? -EIO : rc;
        m->l2_at = at;
    }
    *entry = get_be64((const uint8_t *)&m->l2[l2i]);
    return 0;
}

/* One cluster's part of [off, off+max): its kind and, for data, where it is. */
static int one(struct fmt_qcow2_map *m, uint64_t off, uint64_t max, struct fmt_extent *x)
{
    uint64_t entry, in = off & (m->h.cluster_size - 1);
    int rc = l2_entry(m, off, &entry);
    if (rc)
        return rc;
    x->len = m->h.cluster_size - in < max ? m->h.cluster_size - in : max;
    x->host = 0;
    if (entry & L2_COMPRESSED) {
        /* x = 62 - (cluster_bits - 8): the offset below it, the 512-byte sectors above */
        unsigned xb = 62 - (m->h.cluster_bits - 8);
        uint64_t coff = entry & ((UINT64_C(1) << xb) - 1);
        uint64_t sectors = ((entry >> xb) & ((UINT64_C(1) << (m->h.cluster_bits - 8)) - 1)) + 1;
        x->kind = FMT_EXT_COMPRESSED;
        x->host = coff;
        x->clen = sectors * 512 - (coff & 511);
        x->cluster = off - in;
        if (!rd_inside(&m->rd, coff, 1))
            return -EIO;
        if (coff + x->clen > m->rd.size)
            x->clen = m->rd.size - coff;
        return 0;
    }
    if (entry & L2_ZERO) {
        x->kind = FMT_EXT_ZERO;
    } else if (entry & L2_OFFSET_MASK) {
        x->kind = FMT_EXT_DATA;
        x->host = (entry & L2_OFFSET_MASK) + in; /* past the end reads as zeros, as in qemu */
    } else {
        x->kind = m->has_backing ? FMT_EXT_BACKING : FMT_EXT_ZERO;
    }
    return 0;
}

int fmt_qcow2_map_get(struct fmt_qcow2_map *m, uint64_t off, uint64_t max, struct fmt_extent *x)
{
    if (off >= m->h.size)
        return -EINVAL;
    if (max > m->h.size - off)
        max = m->h.size - off;
    int rc = one(m, off, max, x);
    if (rc || x->kind == FMT_EXT_COMPRESSED)
        return rc;
    /* Join the clusters that follow while they continue this extent. */
    while (x->len < max) {
        struct fmt_extent y;
        if ((rc = one(m, off + x->len, max - x->len, &y)))
            return rc;
        if (y.kind != x->kind || (x->kind == FMT_EXT_DATA && y.host != x->host + x->len))
            break;
        x->len += y.len;
    }
    return 0;
}
