/* fmt_int.h — what the format detectors share, private to src/format/.
 *
 * Every detector reads through one struct fmt_reader: it checks each range
 * against the authoritative file size before touching the source, serves the
 * first and last few KiB from a cache (every detector looks there), and
 * counts what was read. A range that lies outside the file is not an I/O
 * error: it is reported as RD_OUTSIDE so the detector can refuse the image
 * with its own reason. */
#ifndef STOWAGE_FMT_INT_H
#define STOWAGE_FMT_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stowage/format.h"

#define RD_OUTSIDE 1 /* rd_read: the range is not entirely inside the file */

#define RD_HEAD_SIZE 4096 /* magic of every format, MBR, GPT, vmdk text probe */
#define RD_TAIL_SIZE 1536 /* vhd footer, vmdk stream footer + end-of-stream */

struct fmt_reader {
    const struct fmt_source *src;
    uint64_t size;
    uint64_t bytes_read;
    uint8_t head[RD_HEAD_SIZE];
    size_t head_len;
    uint8_t tail[RD_TAIL_SIZE];
    size_t tail_len;
    uint64_t tail_off;
};

/* Read exactly len bytes at off: 0, RD_OUTSIDE, or -errno. */
int rd_read(struct fmt_reader *r, uint64_t off, void *buf, size_t len);
/* Is [off, off+len) inside the file, without overflow? */
int rd_inside(const struct fmt_reader *r, uint64_t off, uint64_t len);

/* What one detector found. A detector that does not recognise its magic
 * leaves matched at 0; one that does fills the rest, refusing by setting
 * reason (and a detail sentence through probe_refuse). */
struct fmt_probe {
    int matched;
    enum fmt_format format;
    uint64_t virtual_size;
    uint32_t flags;
    enum fmt_reason reason;
    char detail[160];
    char backing_file[1024];
    char backing_format[32];
};

/* Set reason and a printf-style detail; returns 0 so detectors can
 * `return probe_refuse(p, ...)` (a refusal is a verdict, not an error). */
int probe_refuse(struct fmt_probe *p, enum fmt_reason why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A detector: cheap magic test on the cached head/tail, then full validation
 * when it matched. Returns 0, or -errno on a read error. */
typedef int (*fmt_detect_fn)(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p);

int fmt_detect_qcow2(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p);
int fmt_detect_qed(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p);
int fmt_detect_vmdk(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p);
int fmt_detect_vhd(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p);
int fmt_detect_vhdx(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p);
int fmt_detect_iso(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p);
int fmt_detect_other(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p);
/* MBR/GPT signatures in the head: FMT_F_MBR | FMT_F_GPT. */
uint32_t fmt_partition_flags(const struct fmt_reader *r);

/* ---- qcow2 (qcow2.c, qcow2_map.c) ---- */
#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_HDR_READ 112 /* v3 fields plus the compression type byte */
#define QCOW2_INCOMPAT_DIRTY (1u << 0)
#define QCOW2_INCOMPAT_CORRUPT (1u << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1u << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1u << 3)
#define QCOW2_INCOMPAT_EXTL2 (1u << 4)

struct qcow2_hdr {
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible;
    uint64_t autoclear;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
    uint64_t cluster_size;
};

/* The header fields of the first QCOW2_HDR_READ bytes (v2 gets v3's defaults). */
void fmt_qcow2_parse_header(const uint8_t *b, struct qcow2_hdr *h);

/* Byte order helpers on untrusted buffers (no alignment assumed). */
static inline uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}
static inline uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[1] << 8 | p[0]);
}
static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static inline uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p + 4) << 32 | get_le32(p);
}
static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

/* Fuzzing builds (fuzz/run.sh) accept any checksum, so that mutations reach
 * the structures a checksum guards; every other build verifies them. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define FMT_VERIFY_CHECKSUMS 0
#else
#define FMT_VERIFY_CHECKSUMS 1
#endif

static inline int is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

#endif
