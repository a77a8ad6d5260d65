/* qcow2_overlay.c — build a qcow2 v3 copy-on-write child of a base image.
 *
 * Clones are overlays: a header naming the base (by a path the daemon chose,
 * with its format given explicitly so qemu never probes the base) and empty
 * tables, so every read falls through to the base until the guest writes.
 * The layout is qemu-img's own — header, refcount table, one refcount block,
 * L1 table, one 64 KiB cluster each — and does not grow with the base: a
 * 100 GiB clone costs the same 256 KiB as a 1 GiB one. Without a base the
 * same layout is a new, empty standalone image. The bytes are built in
 * memory so the caller can write them through any storage backend. */
#include <errno.h>
#include <stdlib.h>

#include "fmt_int.h"

#define CLUSTER_BITS 16
#define CLUSTER ((size_t)1 << CLUSTER_BITS)
#define L2_COVERAGE (UINT64_C(1) << (CLUSTER_BITS + CLUSTER_BITS - 3)) /* 512 MiB per L1 entry */
#define MAX_VIRTUAL_SIZE (UINT64_C(1) << 48) /* 256 TiB: a 4 MiB L1 table */
#define HEADER_LENGTH 112
#define EXT_BACKING_FORMAT 0xe2792acau

enum { C_HEADER, C_REFTABLE, C_REFBLOCK, C_L1 };

/* qemu reads "proto:rest" as a protocol (json:, nbd:, ...) when the colon
 * comes before any slash; a base is always a plain file. */
static int backing_path_ok(const char *path)
{
    size_t len = strlen(path);
    const char *colon = strchr(path, ':'), *slash = strchr(path, '/');

    if (len == 0 || len > FMT_OVERLAY_MAX_BACKING_PATH)
        return 0;
    if (colon && (!slash || colon < slash))
        return 0;
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return 0;
    return 1;
}

static const char *backing_driver(const char *name)
{
    switch (fmt_from_name(name)) {
    case FMT_RAW:
    case FMT_QCOW2:
    case FMT_VMDK:
    case FMT_VHD:
    case FMT_VHDX:
    case FMT_ISO:
        return fmt_qemu_driver(fmt_from_name(name));
    default:
        return NULL;
    }
}

static void put_header(uint8_t *h, uint64_t virtual_size, uint32_t l1_size, uint64_t backing_off,
                       uint32_t backing_len)
{
    put_be32(h + 0, 0x514649fbu);
    put_be32(h + 4, 3);
    put_be64(h + 8, backing_off);
    put_be32(h + 16, backing_len);
    put_be32(h + 20, CLUSTER_BITS);
    put_be64(h + 24, virtual_size);
    put_be32(h + 36, l1_size);
    put_be64(h + 40, (uint64_t)C_L1 * CLUSTER);
    put_be64(h + 48, (uint64_t)C_REFTABLE * CLUSTER);
    put_be32(h + 56, 1);
    put_be32(h + 96, 4); /* 16-bit refcounts, qemu's default */
    put_be32(h + 100, HEADER_LENGTH);
}

int fmt_qcow2_overlay_build(const char *backing_path, const char *backing_fmt,
                            uint64_t virtual_size, void **buf, size_t *len)
{
    const char *driver = backing_fmt ? backing_driver(backing_fmt) : NULL;
    uint8_t *b, *ext;

    *buf = NULL;
    *len = 0;
    /* No backing path: a standalone empty image (image_create). */
    if ((backing_path && (!backing_path_ok(backing_path) || !driver)) || virtual_size == 0 ||
        virtual_size % 512 || virtual_size > MAX_VIRTUAL_SIZE)
        return -EINVAL;
    uint64_t l1_size = (virtual_size + L2_COVERAGE - 1) / L2_COVERAGE;
    size_t l1_clusters = (size_t)((l1_size * 8 + CLUSTER - 1) / CLUSTER);
    size_t clusters = C_L1 + l1_clusters; /* at most 67: one refcount block holds 32768 */
    size_t total = clusters * CLUSTER;
    size_t driver_len = driver ? strlen(driver) : 0,
           path_len = backing_path ? strlen(backing_path) : 0;

    b = calloc(1, total);
    if (!b)
        return -ENOMEM;
    if (backing_path) {
        /* Extensions: the backing format, then the end marker; the backing file
         * name follows them, inside the header cluster. */
        ext = b + HEADER_LENGTH;
        put_be32(ext, EXT_BACKING_FORMAT);
        put_be32(ext + 4, (uint32_t)driver_len);
        memcpy(ext + 8, driver, driver_len);
        ext += 8 + ((driver_len + 7) & ~(size_t)7);
        ext += 8; /* end of extensions: eight zero bytes */
        memcpy(ext, backing_path, path_len);
        put_header(b, virtual_size, (uint32_t)l1_size, (uint64_t)(ext - b), (uint32_t)path_len);
    } else {
        put_header(b, virtual_size, (uint32_t)l1_size, 0, 0); /* extensions end: zeros */
    }

    put_be64(b + C_REFTABLE * CLUSTER, (uint64_t)C_REFBLOCK * CLUSTER);
    for (size_t i = 0; i < clusters; i++)
        put_be16(b + C_REFBLOCK * CLUSTER + 2 * i, 1);
    /* The L1 clusters stay zero: nothing is allocated, every read goes to the
     * base (or reads zeros without one). */
    *buf = b;
    *len = total;
    return 0;
}
