/* format.h — the image format inspector and the qcow2 overlay writer.
 *
 * Every byte stream that enters stowage as an image is inspected here before
 * the image can turn active (API.md § Image safety). This is a pure library:
 * no HTTP, no SQLite, no daemon state, no external programs. It reads only
 * headers and the few tables it must check, through a read callback, so the
 * daemon can inspect a file on any backend (local fd, GlusterFS gfapi, ...)
 * and the fuzzers can inspect a memory buffer. No function here keeps state
 * between calls; all are safe to call from any thread. */
#ifndef STOWAGE_FORMAT_H
#define STOWAGE_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Formats use qemu's driver names (fmt_name), so a stored format can be
 * handed to qemu/libvirt unchanged — except ISO, which qemu opens as "raw"
 * (fmt_qemu_driver). The unsupported ones are detected only so that a file
 * qemu would open as them is never accepted as raw. */
enum fmt_format {
    FMT_INVALID = -1, /* fmt_from_name: a name we do not know */
    FMT_UNKNOWN = 0,  /* declared "auto": accept whatever safe format is found */
    FMT_RAW,          /* also MBR/GPT disks (flags say which) */
    FMT_QCOW2,        /* v2 and v3 (a version-1 "qcow" is refused as qcow2) */
    FMT_VMDK,         /* monolithicSparse and streamOptimized only */
    FMT_VHD,          /* "vpc": fixed and dynamic */
    FMT_VHDX,
    FMT_ISO,       /* ISO 9660; raw bytes as far as qemu is concerned */
    FMT_QED,       /* always refused */
    FMT_VDI,       /* refused: unsupported */
    FMT_LUKS,      /* refused: unsupported */
    FMT_PARALLELS, /* refused: unsupported */
    FMT_BOCHS,     /* refused: unsupported */
    FMT_CLOOP,     /* refused: unsupported */
    FMT_COUNT
};

/* Why an image is refused. The strings (fmt_reason_str) are stable: the API
 * puts them in task error messages and scripts match on them. */
enum fmt_reason {
    FMT_R_OK = 0,               /* "ok": accepted */
    FMT_R_READ_ERROR,           /* "read_error": the source failed; not a verdict */
    FMT_R_EMPTY,                /* "empty_file" */
    FMT_R_TOO_LARGE,            /* "virtual_size_over_cap": the API answers 413 */
    FMT_R_MISMATCH,             /* "format_mismatch": detected != declared */
    FMT_R_POLYGLOT,             /* "polyglot": two formats match the same bytes */
    FMT_R_UNSUPPORTED,          /* "unsupported_format": vdi, luks, parallels, ... */
    FMT_R_QED,                  /* "qed_refused" */
    FMT_R_QCOW2_VERSION,        /* "qcow2_bad_version" */
    FMT_R_QCOW2_HEADER,         /* "qcow2_bad_header": length, truncation, refcount order */
    FMT_R_QCOW2_CLUSTER_BITS,   /* "qcow2_bad_cluster_bits": outside 9..21 */
    FMT_R_QCOW2_BACKING,        /* "qcow2_backing_file" */
    FMT_R_QCOW2_DATA_FILE,      /* "qcow2_external_data_file" */
    FMT_R_QCOW2_INCOMPAT,       /* "qcow2_unknown_incompatible_feature" */
    FMT_R_QCOW2_CORRUPT,        /* "qcow2_corrupt" */
    FMT_R_QCOW2_ENCRYPTED,      /* "qcow2_encrypted" */
    FMT_R_QCOW2_L1,             /* "qcow2_bad_l1_table" */
    FMT_R_QCOW2_REFCOUNT,       /* "qcow2_bad_refcount_table" */
    FMT_R_QCOW2_SNAPSHOTS,      /* "qcow2_bad_snapshot_table" */
    FMT_R_QCOW2_EXTENSION,      /* "qcow2_bad_header_extension" */
    FMT_R_QCOW2_COMPRESSION,    /* "qcow2_bad_compression_type" */
    FMT_R_VMDK_HEADER,          /* "vmdk_bad_header" */
    FMT_R_VMDK_DESCRIPTOR_FILE, /* "vmdk_descriptor_file": a bare text descriptor */
    FMT_R_VMDK_DESCRIPTOR,      /* "vmdk_bad_descriptor" */
    FMT_R_VMDK_CREATE_TYPE,     /* "vmdk_bad_create_type" */
    FMT_R_VMDK_EXTENT,          /* "vmdk_bad_extent": anything but its own sparse extent */
    FMT_R_VMDK_PARENT,          /* "vmdk_parent_link": a delta disk */
    FMT_R_VHD_FOOTER,           /* "vhd_bad_footer" */
    FMT_R_VHD_DYNAMIC,          /* "vhd_bad_dynamic_header" */
    FMT_R_VHD_DIFFERENCING,     /* "vhd_differencing" */
    FMT_R_VHDX_HEADER,          /* "vhdx_bad_header" */
    FMT_R_VHDX_REGION,          /* "vhdx_bad_region_table" */
    FMT_R_VHDX_METADATA,        /* "vhdx_bad_metadata" */
    FMT_R_VHDX_DIFFERENCING,    /* "vhdx_differencing" */
    FMT_R_VHDX_LOG,             /* "vhdx_log_replay_needed" */
    FMT_R_ISO,                  /* "iso_bad_volume_descriptor" */
    FMT_R_COUNT
};

/* Facts about an image that do not refuse it. */
enum fmt_flag {
    FMT_F_MBR = 1u << 0,         /* 0x55AA boot signature (raw, iso) */
    FMT_F_GPT = 1u << 1,         /* "EFI PART" at LBA 1 (raw, iso) */
    FMT_F_DIRTY = 1u << 2,       /* qcow2 dirty bit / vmdk unclean shutdown */
    FMT_F_SNAPSHOTS = 1u << 3,   /* qcow2 internal snapshots */
    FMT_F_BITMAPS = 1u << 4,     /* qcow2 persistent dirty bitmaps */
    FMT_F_EXTENDED_L2 = 1u << 5, /* qcow2 subclusters */
    FMT_F_ZSTD = 1u << 6,        /* qcow2 zstd compression type */
    FMT_F_COMPRESSED = 1u << 7,  /* vmdk streamOptimized (deflate grains) */
    FMT_F_FIXED = 1u << 8,       /* vhd fixed (footer only) */
    FMT_F_BACKING = 1u << 9,     /* has a backing file (only with allow_backing_file) */
};

#define FMT_DEFAULT_MAX_VIRTUAL_SIZE (UINT64_C(1) << 40) /* 1 TiB */

/* Where the bytes come from. pread returns the number of bytes read (short
 * only at end of file), or -errno. size is the authoritative file length:
 * nothing at or past it is ever read. */
struct fmt_source {
    void *ctx;
    ssize_t (*pread)(void *ctx, void *buf, size_t len, uint64_t off);
    uint64_t size;
};

struct fmt_opts {
    enum fmt_format declared;  /* FMT_UNKNOWN: accept any safe format */
    uint64_t max_virtual_size; /* 0: FMT_DEFAULT_MAX_VIRTUAL_SIZE */
    /* ONLY for files the daemon wrote itself (clone overlays from
     * fmt_qcow2_overlay_build): a qcow2 backing file is then reported in
     * fmt_info.backing_file instead of refused. Never set it for client bytes. */
    int allow_backing_file;
};

struct fmt_info {
    enum fmt_format format;  /* what the bytes are (FMT_RAW when nothing else matched) */
    uint64_t virtual_size;   /* guest-visible bytes, when the header gave one */
    uint64_t actual_size;    /* bytes allocated on storage (fd: st_blocks), else file size */
    uint32_t flags;          /* enum fmt_flag */
    enum fmt_reason reason;  /* FMT_R_OK when accepted */
    char detail[160];        /* one human sentence for logs and task messages */
    uint64_t bytes_read;     /* what the inspection cost, for tests and benchmarks */
    char backing_file[1024]; /* only with allow_backing_file */
    char backing_format[32];
};

/* Inspect the image behind src. Returns 0 when a verdict was reached (accepted
 * iff out->reason == FMT_R_OK), or -errno when the source could not be read
 * (out->reason == FMT_R_READ_ERROR). opts may be NULL for the defaults. */
int fmt_inspect(const struct fmt_source *src, const struct fmt_opts *opts, struct fmt_info *out);
/* The same on a local file descriptor (regular file or block device); fills
 * actual_size from fstat. The fd's offset is not used or moved. */
int fmt_inspect_fd(int fd, const struct fmt_opts *opts, struct fmt_info *out);
void fmt_opts_init(struct fmt_opts *o);
static inline int fmt_accepted(const struct fmt_info *i)
{
    return i->reason == FMT_R_OK;
}

/* "raw", "qcow2", "vmdk", "vpc", "vhdx", "iso", "qed", ...; never NULL. */
const char *fmt_name(enum fmt_format f);
/* Accepts fmt_name's names plus "vhd"; NULL, "" and "auto" give FMT_UNKNOWN;
 * anything else FMT_INVALID. */
enum fmt_format fmt_from_name(const char *name);
/* The qemu/libvirt driver to open an accepted image with ("raw" for iso). */
const char *fmt_qemu_driver(enum fmt_format f);
const char *fmt_reason_str(enum fmt_reason r);
/* The name of one FMT_F_* bit ("mbr", "gpt", "dirty", ...), NULL if unknown. */
const char *fmt_flag_name(uint32_t flag);

/* ---- what the data path needs from raw files ---- */

/* 1 when the file has at least one hole (SEEK_HOLE before EOF), 0 when it is
 * fully allocated (or the filesystem cannot tell), -errno on error. */
int fmt_raw_is_sparse(int fd);
/* Calls fn for each extent of [0, file size) in order: zero != 0 for holes.
 * Stops early and returns fn's value when it is non-zero. Filesystems without
 * SEEK_DATA report one data extent. */
typedef int (*fmt_extent_fn)(void *ud, uint64_t off, uint64_t len, int zero);
int fmt_raw_extents(int fd, fmt_extent_fn fn, void *ud);

/* ---- qcow2 overlays (copy-on-write children) ---- */

#define FMT_OVERLAY_MAX_BACKING_PATH 1023 /* qemu's limit for a backing file name */

/* Build, in memory, a qcow2 v3 image of virtual_size bytes whose backing
 * file is backing_path, opened as backing_fmt ("raw", "qcow2", "vmdk", "vpc",
 * "vhdx", "iso" which is written as "raw"; given explicitly so qemu never
 * probes the base). Only a header and
 * empty tables: four 64 KiB clusters for any size up to 4 TiB, so the cost is
 * O(1) in the base size. *buf is malloc'd (caller frees) and *len bytes long;
 * write it at offset 0 of a new file through any backend.
 * virtual_size must be a non-zero multiple of 512. backing_path NULL builds a
 * standalone empty qcow2 (image_create); otherwise backing_path must be
 * absolute or a plain relative path (no ':' before its first '/', so qemu
 * never reads it as a protocol such as "json:" or "nbd:"), without control
 * characters. */
int fmt_qcow2_overlay_build(const char *backing_path, const char *backing_fmt,
                            uint64_t virtual_size, void **buf, size_t *len);

/* ---- a qcow2's guest view (flattening a chain of layers) ---- */

enum fmt_extent_kind {
    FMT_EXT_DATA,       /* in this file at host */
    FMT_EXT_ZERO,       /* reads as zeros */
    FMT_EXT_BACKING,    /* not here: the backing file's bytes at the same offset */
    FMT_EXT_COMPRESSED, /* one deflated cluster: clen bytes at host inflate to the cluster at
                         * guest offset cluster (len: the part of it asked for) */
};
struct fmt_extent {
    enum fmt_extent_kind kind;
    uint64_t len;  /* guest bytes from the offset asked for */
    uint64_t host; /* DATA, COMPRESSED: where in the file */
    uint64_t clen;
    uint64_t cluster;
};
struct fmt_qcow2_map;
/* Read the header and L1 table of the qcow2 image behind src. -EINVAL with why for an image
 * this reader does not map (encrypted, external data file, subclusters, broken tables),
 * another -errno when src fails. */
int fmt_qcow2_map_open(const struct fmt_source *src, struct fmt_qcow2_map **out, char *why,
                       size_t why_len);
uint64_t fmt_qcow2_map_size(const struct fmt_qcow2_map *m); /* the virtual size */
int fmt_qcow2_map_has_backing(const struct fmt_qcow2_map *m);
uint64_t fmt_qcow2_map_cluster_size(const struct fmt_qcow2_map *m);
/* Where the guest bytes at off (< the virtual size) are: the longest run of one kind (and,
 * for data, contiguous in the file) of at most max bytes. -EIO for a table past the end. */
int fmt_qcow2_map_get(struct fmt_qcow2_map *m, uint64_t off, uint64_t max, struct fmt_extent *x);
void fmt_qcow2_map_close(struct fmt_qcow2_map *m);

/* ---- command-line entries (dispatched by src/main.c) ---- */

/* `stowaged inspect FILE [--format DECLARED] [--max-virtual-size BYTES]`.
 * argv[0] is "inspect". Prints one JSON object on stdout; returns the exit
 * code: 0 accepted, 3 refused, 1 read error, 2 usage error. */
int fmt_cli_inspect(int argc, char **argv);
/* `stowaged qcow2-overlay OUT BACKING BACKING_FMT [--size BYTES]` (hidden,
 * for operators and tests): writes an overlay to the new file OUT. Without
 * --size the base's virtual size is read from BACKING. argv[0] is
 * "qcow2-overlay". Prints one JSON object; returns 0 ok, 1 error, 2 usage. */
int fmt_cli_overlay(int argc, char **argv);

#endif
