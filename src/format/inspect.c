/* inspect.c — the format inspector: runs every detector on one image and
 * turns what they found into one verdict.
 *
 * Every detector runs, even after one matched, because a file that two
 * formats claim (a polyglot: an ISO with a qcow2 header at 0, a raw disk with
 * a VHD footer) is read differently by different tools and must be refused.
 * Only then come the declared format and the size cap, so that a refused
 * image names the most specific reason. */
#include <errno.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmt_int.h"

static const char *const format_names[FMT_COUNT] = {
    [FMT_UNKNOWN] = "unknown",
    [FMT_RAW] = "raw",
    [FMT_QCOW2] = "qcow2",
    [FMT_VMDK] = "vmdk",
    [FMT_VHD] = "vpc",
    [FMT_VHDX] = "vhdx",
    [FMT_ISO] = "iso",
    [FMT_QED] = "qed",
    [FMT_VDI] = "vdi",
    [FMT_LUKS] = "luks",
    [FMT_PARALLELS] = "parallels",
    [FMT_BOCHS] = "bochs",
    [FMT_CLOOP] = "cloop",
};

static const char *const reason_names[FMT_R_COUNT] = {
    [FMT_R_OK] = "ok",
    [FMT_R_READ_ERROR] = "read_error",
    [FMT_R_EMPTY] = "empty_file",
    [FMT_R_TOO_LARGE] = "virtual_size_over_cap",
    [FMT_R_MISMATCH] = "format_mismatch",
    [FMT_R_POLYGLOT] = "polyglot",
    [FMT_R_UNSUPPORTED] = "unsupported_format",
    [FMT_R_QED] = "qed_refused",
    [FMT_R_QCOW2_VERSION] = "qcow2_bad_version",
    [FMT_R_QCOW2_HEADER] = "qcow2_bad_header",
    [FMT_R_QCOW2_CLUSTER_BITS] = "qcow2_bad_cluster_bits",
    [FMT_R_QCOW2_BACKING] = "qcow2_backing_file",
    [FMT_R_QCOW2_DATA_FILE] = "qcow2_external_data_file",
    [FMT_R_QCOW2_INCOMPAT] = "qcow2_unknown_incompatible_feature",
    [FMT_R_QCOW2_CORRUPT] = "qcow2_corrupt",
    [FMT_R_QCOW2_ENCRYPTED] = "qcow2_encrypted",
    [FMT_R_QCOW2_L1] = "qcow2_bad_l1_table",
    [FMT_R_QCOW2_REFCOUNT] = "qcow2_bad_refcount_table",
    [FMT_R_QCOW2_SNAPSHOTS] = "qcow2_bad_snapshot_table",
    [FMT_R_QCOW2_EXTENSION] = "qcow2_bad_header_extension",
    [FMT_R_QCOW2_COMPRESSION] = "qcow2_bad_compression_type",
    [FMT_R_VMDK_HEADER] = "vmdk_bad_header",
    [FMT_R_VMDK_DESCRIPTOR_FILE] = "vmdk_descriptor_file",
    [FMT_R_VMDK_DESCRIPTOR] = "vmdk_bad_descriptor",
    [FMT_R_VMDK_CREATE_TYPE] = "vmdk_bad_create_type",
    [FMT_R_VMDK_EXTENT] = "vmdk_bad_extent",
    [FMT_R_VMDK_PARENT] = "vmdk_parent_link",
    [FMT_R_VHD_FOOTER] = "vhd_bad_footer",
    [FMT_R_VHD_DYNAMIC] = "vhd_bad_dynamic_header",
    [FMT_R_VHD_DIFFERENCING] = "vhd_differencing",
    [FMT_R_VHDX_HEADER] = "vhdx_bad_header",
    [FMT_R_VHDX_REGION] = "vhdx_bad_region_table",
    [FMT_R_VHDX_METADATA] = "vhdx_bad_metadata",
    [FMT_R_VHDX_DIFFERENCING] = "vhdx_differencing",
    [FMT_R_VHDX_LOG] = "vhdx_log_replay_needed",
    [FMT_R_ISO] = "iso_bad_volume_descriptor",
};

static const char *const flag_names[] = {
    "mbr",         "gpt",  "dirty",      "snapshots", "bitmaps",
    "extended_l2", "zstd", "compressed", "fixed",     "backing_file",
};

/* In priority order: the first match names a polyglot's format. */
static const fmt_detect_fn detectors[] = {
    fmt_detect_qcow2, fmt_detect_qed, fmt_detect_vmdk,  fmt_detect_vhdx,
    fmt_detect_vhd,   fmt_detect_iso, fmt_detect_other,
};

const char *fmt_name(enum fmt_format f)
{
    if (f < 0 || f >= FMT_COUNT)
        return "invalid";
    return format_names[f];
}

enum fmt_format fmt_from_name(const char *name)
{
    if (!name || !*name || !strcmp(name, "auto"))
        return FMT_UNKNOWN;
    if (!strcmp(name, "vhd"))
        return FMT_VHD;
    for (int f = FMT_RAW; f < FMT_COUNT; f++)
        if (!strcmp(name, format_names[f]))
            return (enum fmt_format)f;
    return FMT_INVALID;
}

const char *fmt_qemu_driver(enum fmt_format f)
{
    return f == FMT_ISO ? "raw" : fmt_name(f);
}

const char *fmt_reason_str(enum fmt_reason r)
{
    if (r < 0 || r >= FMT_R_COUNT)
        return "invalid";
    return reason_names[r];
}

const char *fmt_flag_name(uint32_t flag)
{
    for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++)
        if (flag == 1u << i)
            return flag_names[i];
    return NULL;
}

void fmt_opts_init(struct fmt_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->declared = FMT_UNKNOWN;
    o->max_virtual_size = FMT_DEFAULT_MAX_VIRTUAL_SIZE;
}

int probe_refuse(struct fmt_probe *p, enum fmt_reason why, const char *fmt, ...)
{
    va_list ap;

    p->reason = why;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
    va_end(ap);
    /* Details quote bytes from the image: keep them printable ASCII so logs,
     * JSON and task messages never carry control characters or bad UTF-8. */
    for (char *c = p->detail; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            *c = '?';
    return 0;
}

int rd_inside(const struct fmt_reader *r, uint64_t off, uint64_t len)
{
    return off <= r->size && len <= r->size - off;
}

/* The source may return short counts; only a read that makes no progress
 * before the promised size is an error (the file shrank under us). */
static int src_read_full(struct fmt_reader *r, uint64_t off, uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = r->src->pread(r->src->ctx, buf, len, off);
        if (n == -EINTR)
            continue;
        if (n < 0)
            return n >= -4095 ? (int)n : -EIO;
        if (n == 0 || (size_t)n > len)
            return -EIO;
        r->bytes_read += (uint64_t)n;
        buf += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int rd_read(struct fmt_reader *r, uint64_t off, void *buf, size_t len)
{
    if (!rd_inside(r, off, len))
        return RD_OUTSIDE;
    if (off + len <= r->head_len) {
        memcpy(buf, r->head + off, len);
        return 0;
    }
    if (off >= r->tail_off && off + len <= r->tail_off + r->tail_len) {
        memcpy(buf, r->tail + (off - r->tail_off), len);
        return 0;
    }
    return src_read_full(r, off, buf, len);
}

static int reader_init(struct fmt_reader *r, const struct fmt_source *src)
{
    int ret;

    memset(r, 0, sizeof(*r));
    r->src = src;
    r->size = src->size;
    r->head_len = r->size < RD_HEAD_SIZE ? (size_t)r->size : RD_HEAD_SIZE;
    ret = src_read_full(r, 0, r->head, r->head_len);
    if (ret < 0)
        return ret;
    r->tail_len = r->size < RD_TAIL_SIZE ? (size_t)r->size : RD_TAIL_SIZE;
    r->tail_off = r->size - r->tail_len;
    if (r->tail_off + r->tail_len <= r->head_len) {
        memcpy(r->tail, r->head + r->tail_off, r->tail_len);
        return 0;
    }
    return src_read_full(r, r->tail_off, r->tail, r->tail_len);
}

static int declared_matches(enum fmt_format declared, enum fmt_format found)
{
    /* qemu reads an ISO as raw bytes, so an ISO declared raw is what it claims. */
    return declared == FMT_UNKNOWN || declared == found ||
           (declared == FMT_RAW && found == FMT_ISO);
}

static void fill_info(struct fmt_info *out, const struct fmt_probe *p)
{
    out->format = p->format;
    out->virtual_size = p->virtual_size;
    out->flags = p->flags;
    out->reason = p->reason;
    memcpy(out->detail, p->detail, sizeof(out->detail));
    memcpy(out->backing_file, p->backing_file, sizeof(out->backing_file));
    memcpy(out->backing_format, p->backing_format, sizeof(out->backing_format));
}

/* Run every detector and return how many matched. The first match is kept
 * in *found; any further one turns it into a polyglot. */
static int run_detectors(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *found)
{
    const size_t ndet = sizeof(detectors) / sizeof(detectors[0]);
    enum fmt_format matched[sizeof(detectors) / sizeof(detectors[0])];
    struct fmt_probe p;
    int nmatch = 0;

    for (size_t i = 0; i < ndet; i++) {
        memset(&p, 0, sizeof(p));
        int ret = detectors[i](r, o, &p);
        if (ret < 0)
            return ret;
        if (!p.matched)
            continue;
        if (nmatch == 0)
            *found = p;
        matched[nmatch++] = p.format;
    }
    if (nmatch > 1) {
        size_t used = 0;
        found->reason = FMT_R_POLYGLOT;
        for (int i = 0; i < nmatch && used < sizeof(found->detail); i++) {
            int n = snprintf(found->detail + used, sizeof(found->detail) - used, "%s%s",
                             i == 0 ? "the bytes are both " : " and ", fmt_name(matched[i]));
            if (n < 0)
                break;
            used += (size_t)n;
        }
    }
    return nmatch;
}

int fmt_inspect(const struct fmt_source *src, const struct fmt_opts *opts, struct fmt_info *out)
{
    struct fmt_opts defaults;
    struct fmt_reader *r = NULL;
    struct fmt_probe found;
    int ret;

    memset(out, 0, sizeof(*out));
    out->actual_size = src->size;
    if (!opts) {
        fmt_opts_init(&defaults);
        opts = &defaults;
    }
    if (src->size == 0) {
        out->reason = FMT_R_EMPTY;
        snprintf(out->detail, sizeof(out->detail), "the file is empty");
        return 0;
    }
    /* The reader holds two caches (5.5 KiB): keep it off small thread stacks. */
    r = malloc(sizeof(*r));
    if (!r) {
        ret = -ENOMEM;
        goto fail;
    }
    ret = reader_init(r, src);
    if (ret < 0)
        goto fail;

    memset(&found, 0, sizeof(found));
    ret = run_detectors(r, opts, &found);
    if (ret < 0)
        goto fail;
    if (ret == 0) {
        found.format = FMT_RAW;
        found.virtual_size = r->size;
    }
    if (found.format == FMT_RAW || found.format == FMT_ISO)
        found.flags |= fmt_partition_flags(r);
    fill_info(out, &found);

    uint64_t cap = opts->max_virtual_size ? opts->max_virtual_size : FMT_DEFAULT_MAX_VIRTUAL_SIZE;
    if (out->reason == FMT_R_OK && !declared_matches(opts->declared, out->format)) {
        out->reason = FMT_R_MISMATCH;
        snprintf(out->detail, sizeof(out->detail), "declared %s but the bytes are %s",
                 fmt_name(opts->declared), fmt_name(out->format));
    } else if (out->reason == FMT_R_OK && out->virtual_size > cap) {
        out->reason = FMT_R_TOO_LARGE;
        snprintf(out->detail, sizeof(out->detail),
                 "virtual size %llu bytes is over the cap of %llu bytes",
                 (unsigned long long)out->virtual_size, (unsigned long long)cap);
    }
    out->bytes_read = r->bytes_read;
    free(r);
    return 0;

fail:
    memset(out, 0, sizeof(*out));
    if (r)
        out->bytes_read = r->bytes_read;
    free(r);
    out->reason = FMT_R_READ_ERROR;
    snprintf(out->detail, sizeof(out->detail), "read failed: %s", strerror(-ret));
    return ret;
}

static ssize_t fd_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    ssize_t n;

    if (off > (uint64_t)INT64_MAX)
        return -EINVAL;
    do {
        n = pread(*(int *)ctx, buf, len, (off_t)off);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int fmt_inspect_fd(int fd, const struct fmt_opts *opts, struct fmt_info *out)
{
    struct fmt_source src = {.ctx = &fd, .pread = fd_pread};
    struct stat st;
    uint64_t allocated;
    int ret;

    memset(out, 0, sizeof(*out));
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        goto fail;
    }
    if (S_ISREG(st.st_mode)) {
        src.size = (uint64_t)st.st_size;
        allocated = (uint64_t)st.st_blocks * 512;
    } else if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &src.size) < 0) {
            ret = -errno;
            goto fail;
        }
        allocated = src.size;
    } else {
        ret = -EINVAL; /* a FIFO or socket would block or lie about its size */
        goto fail;
    }
    ret = fmt_inspect(&src, opts, out);
    if (ret == 0)
        out->actual_size = allocated;
    return ret;

fail:
    out->reason = FMT_R_READ_ERROR;
    snprintf(out->detail, sizeof(out->detail), "cannot inspect: %s", strerror(-ret));
    return ret;
}
