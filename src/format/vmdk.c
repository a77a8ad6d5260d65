/* vmdk.c — VMDK validation: only single-file sparse images are accepted
 * (monolithicSparse and streamOptimized: a "KDMV" header with an embedded
 * descriptor).
 *
 * A VMDK descriptor is a text file listing extents — other files, FLAT
 * devices, VMFS volumes — and a parent link. qemu follows them: a bare
 * descriptor, or a sparse header with capacity 0 (qemu then reads its
 * embedded descriptor as a descriptor file), makes qemu open any path on the
 * host. So the embedded descriptor must name exactly one extent, the image's
 * own SPARSE extent by a plain file name, and no parent. qemu also searches
 * the 10 KiB at offset 512 for "parentFileNameHint" whatever the header says;
 * that region is checked the same way. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "fmt_int.h"

#define SECTOR 512u
#define GD_AT_END UINT64_MAX
#define FLAG_RGD (1u << 1)
#define MAX_DESC_BYTES (64u * 1024) /* a real one is 20 sectors */
#define QEMU_DESC_OFFSET 512u       /* where qemu looks for the parent link */
#define QEMU_DESC_SIZE (20u * SECTOR)
#define MAX_GRAIN_SECTORS 0x200000u /* qemu: "Invalid granularity" above */
#define MAX_GTES 512u
#define MAX_L1_ENTRIES (32u * 1024 * 1024) /* qemu: "L1 size too big" above */
#define MARKER_END_OF_STREAM 0u
#define MARKER_FOOTER 3u

struct vmdk_hdr {
    uint32_t version, flags, num_gtes;
    uint64_t capacity, granularity, desc_offset, desc_size, rgd_offset, gd_offset, grain_offset;
    uint8_t unclean;
    uint16_t compress;
};

static void parse_header(const uint8_t *b, struct vmdk_hdr *h)
{
    h->version = get_le32(b + 4);
    h->flags = get_le32(b + 8);
    h->capacity = get_le64(b + 12);
    h->granularity = get_le64(b + 20);
    h->desc_offset = get_le64(b + 28);
    h->desc_size = get_le64(b + 36);
    h->num_gtes = get_le32(b + 44);
    h->rgd_offset = get_le64(b + 48);
    h->gd_offset = get_le64(b + 56);
    h->grain_offset = get_le64(b + 64);
    h->unclean = b[72];
    h->compress = get_le16(b + 77);
}

/* qemu's vmdk_probe: comment and blank lines, then "version=N". */
static int qemu_probes_descriptor(const uint8_t *buf, size_t len)
{
    const char *p = (const char *)buf, *end = p + len;

    while (p < end) {
        if (*p == '#') {
            while (p < end && *p != '\n')
                p++;
            p++;
            continue;
        }
        if (*p == ' ') {
            while (p < end && *p == ' ')
                p++;
            if (p < end && *p == '\r')
                p++;
            if (p == end || *p != '\n')
                return 0;
            p++;
            continue;
        }
        for (char v = '1'; v <= '3'; v++) {
            char lf[] = {'v', 'e', 'r', 's', 'i', 'o', 'n', '=', v, '\n'};
            char crlf[] = {'v', 'e', 'r', 's', 'i', 'o', 'n', '=', v, '\r', '\n'};
            if ((size_t)(end - p) >= sizeof(lf) && !memcmp(p, lf, sizeof(lf)))
                return 1;
            if ((size_t)(end - p) >= sizeof(crlf) && !memcmp(p, crlf, sizeof(crlf)))
                return 1;
        }
        return 0;
    }
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

static char *skip_space(char *s)
{
    while (is_space(*s))
        s++;
    return s;
}

/* A file name that can only mean "a file next to the descriptor". */
static int plain_name(const char *s, size_t len)
{
    if (len == 0 || len > 255 || strstr(s, ".."))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == ':')
            return 0;
    }
    return 1;
}

/* `RW <sectors> SPARSE "<name>"` and nothing after; streams exported by
 * ovftool and VirtualBox say RDONLY, which is as harmless. */
static int check_extent(char *s, struct fmt_probe *p)
{
    char *tok = s, *q;
    size_t n;

    n = strcspn(tok, " \t\v\f");
    if (!(n == 2 && !strncmp(tok, "RW", 2)) && !(n == 6 && !strncmp(tok, "RDONLY", 6)))
        return probe_refuse(p, FMT_R_VMDK_EXTENT, "extent access is not RW or RDONLY");
    tok = skip_space(tok + n);
    n = strspn(tok, "0123456789");
    if (n == 0 || n > 19 || !is_space(tok[n]) || strtoull(tok, NULL, 10) == 0)
        return probe_refuse(p, FMT_R_VMDK_EXTENT, "extent size is invalid");
    tok = skip_space(tok + n);
    n = strcspn(tok, " \t\v\f");
    if (n != 6 || strncmp(tok, "SPARSE", 6))
        return probe_refuse(p, FMT_R_VMDK_EXTENT, "extent type is not SPARSE (%.*s)",
                            (int)(n > 16 ? 16 : n), tok);
    tok = skip_space(tok + n);
    if (*tok != '"')
        return probe_refuse(p, FMT_R_VMDK_EXTENT, "extent file name is not quoted");
    q = strchr(tok + 1, '"');
    if (!q)
        return probe_refuse(p, FMT_R_VMDK_EXTENT, "extent file name is not quoted");
    *q = '\0';
    if (!plain_name(tok + 1, (size_t)(q - tok - 1)))
        return probe_refuse(p, FMT_R_VMDK_EXTENT, "extent names another file or a path");
    if (*skip_space(q + 1))
        return probe_refuse(p, FMT_R_VMDK_EXTENT, "extent line has an offset or trailing fields");
    return 0;
}

/* `createType = "monolithicSparse"` */
static int check_create_type(char *s, struct fmt_probe *p)
{
    char *v = skip_space(s + strlen("createType"));
    char *q;

    if (*v != '=')
        return probe_refuse(p, FMT_R_VMDK_DESCRIPTOR, "malformed createType line");
    v = skip_space(v + 1);
    if (*v != '"' || !(q = strchr(v + 1, '"')) || *skip_space(q + 1))
        return probe_refuse(p, FMT_R_VMDK_DESCRIPTOR, "malformed createType line");
    *q = '\0';
    v++;
    if (strcmp(v, "monolithicSparse") && strcmp(v, "streamOptimized"))
        return probe_refuse(p, FMT_R_VMDK_CREATE_TYPE,
                            "createType \"%.40s\" is not a single-file sparse type", v);
    return 0;
}

/* text is NUL-terminated and modified in place. Line by line, no recursion. */
static int check_descriptor(char *text, struct fmt_probe *p)
{
    int extents = 0, types = 0;
    char *line = text;

    if (strstr(text, "parentFileNameHint"))
        return probe_refuse(p, FMT_R_VMDK_PARENT, "the descriptor names a parent disk");
    while (*line && p->reason == FMT_R_OK) {
        char *nl = strchr(line, '\n');
        char *next = nl ? nl + 1 : line + strlen(line);
        if (nl)
            *nl = '\0';
        char *s = skip_space(line);
        size_t n = strlen(s);
        while (n > 0 && (is_space(s[n - 1]) || s[n - 1] == '\r'))
            s[--n] = '\0';
        line = next;
        if (*s == '\0' || *s == '#')
            continue;
        size_t tok = strcspn(s, " \t\v\f=");
        if (tok == strlen("createType") && !strncmp(s, "createType", tok)) {
            if (types++)
                return probe_refuse(p, FMT_R_VMDK_DESCRIPTOR, "more than one createType");
            check_create_type(s, p);
        } else if ((tok == 2 && !strncmp(s, "RW", 2)) || (tok == 6 && !strncmp(s, "RDONLY", 6)) ||
                   (tok == 8 && !strncmp(s, "NOACCESS", 8))) {
            if (extents++)
                return probe_refuse(p, FMT_R_VMDK_EXTENT, "more than one extent");
            check_extent(s, p);
        }
    }
    if (p->reason != FMT_R_OK)
        return 0;
    if (!types)
        return probe_refuse(p, FMT_R_VMDK_CREATE_TYPE, "the descriptor has no createType");
    if (!extents)
        return probe_refuse(p, FMT_R_VMDK_EXTENT, "the descriptor names no extent");
    return 0;
}

/* Read [off, off+len) (clipped to the file) as a C string, as qemu does. */
static int read_text(struct fmt_reader *r, uint64_t off, uint64_t len, char **out)
{
    if (off >= r->size) {
        *out = NULL;
        return RD_OUTSIDE;
    }
    if (len > r->size - off)
        len = r->size - off;
    char *buf = malloc((size_t)len + 1);
    if (!buf)
        return -ENOMEM;
    int ret = rd_read(r, off, buf, (size_t)len);
    if (ret != 0) {
        free(buf);
        return ret;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static int check_qemu_parent_region(struct fmt_reader *r, struct fmt_probe *p)
{
    char *text = NULL;
    int ret = read_text(r, QEMU_DESC_OFFSET, QEMU_DESC_SIZE, &text);

    if (ret == RD_OUTSIDE)
        return 0;
    if (ret < 0)
        return ret;
    if (strstr(text, "parentFileNameHint"))
        probe_refuse(p, FMT_R_VMDK_PARENT,
                     "parentFileNameHint at offset 512 (qemu reads it there)");
    free(text);
    return 0;
}

/* streamOptimized may keep its real header in a footer before the
 * end-of-stream marker (qemu: "the footer takes precedence"). */
static int read_stream_footer(struct fmt_reader *r, struct vmdk_hdr *h, struct fmt_probe *p)
{
    uint8_t f[3 * SECTOR];
    uint64_t end = (r->size + SECTOR - 1) / SECTOR * SECTOR;

    int ret = end < sizeof(f) ? RD_OUTSIDE : rd_read(r, end - sizeof(f), f, sizeof(f));
    if (ret < 0)
        return ret;
    if (ret == RD_OUTSIDE)
        return probe_refuse(p, FMT_R_VMDK_HEADER, "the stream footer is missing");
    if (memcmp(f + SECTOR, "KDMV", 4) || get_le32(f + 8) != 0 ||
        get_le32(f + 12) != MARKER_FOOTER || get_le64(f + 2 * SECTOR) != 0 ||
        get_le32(f + 2 * SECTOR + 8) != 0 || get_le32(f + 2 * SECTOR + 12) != MARKER_END_OF_STREAM)
        return probe_refuse(p, FMT_R_VMDK_HEADER, "the stream footer is invalid");
    parse_header(f + SECTOR, h);
    return 0;
}

static int check_tables(struct fmt_reader *r, const struct vmdk_hdr *h, struct fmt_probe *p)
{
    if (h->version < 1 || h->version > 3)
        return probe_refuse(p, FMT_R_VMDK_HEADER, "version %" PRIu32 " is not 1..3", h->version);
    if (h->capacity == 0 || h->capacity > (UINT64_MAX >> 9))
        return probe_refuse(p, FMT_R_VMDK_HEADER, "capacity %" PRIu64 " sectors is invalid",
                            h->capacity);
    if (!is_pow2(h->granularity) || h->granularity > MAX_GRAIN_SECTORS)
        return probe_refuse(p, FMT_R_VMDK_HEADER, "grain size %" PRIu64 " sectors is invalid",
                            h->granularity);
    if (h->num_gtes == 0 || h->num_gtes > MAX_GTES)
        return probe_refuse(p, FMT_R_VMDK_HEADER, "%" PRIu32 " grain table entries is invalid",
                            h->num_gtes);
    if (h->compress > 1)
        return probe_refuse(p, FMT_R_VMDK_HEADER, "unknown compression algorithm %u", h->compress);
    uint64_t per_gde = (uint64_t)h->num_gtes * h->granularity; /* at most 2^30 sectors */
    uint64_t gd_entries = h->capacity / per_gde + (h->capacity % per_gde != 0);
    if (gd_entries > MAX_L1_ENTRIES)
        return probe_refuse(p, FMT_R_VMDK_HEADER,
                            "grain directory of %" PRIu64 " entries is too large", gd_entries);
    if (h->grain_offset > r->size / SECTOR)
        return probe_refuse(p, FMT_R_VMDK_HEADER, "the file is truncated before its grains");
    if (h->gd_offset == 0 || h->gd_offset > r->size / SECTOR ||
        !rd_inside(r, h->gd_offset * SECTOR, gd_entries * 4))
        return probe_refuse(p, FMT_R_VMDK_HEADER, "the grain directory lies outside the file");
    if ((h->flags & FLAG_RGD) && (h->rgd_offset == 0 || h->rgd_offset > r->size / SECTOR ||
                                  !rd_inside(r, h->rgd_offset * SECTOR, gd_entries * 4)))
        return probe_refuse(p, FMT_R_VMDK_HEADER,
                            "the redundant grain directory lies outside the file");
    return 0;
}

static int check_embedded_descriptor(struct fmt_reader *r, const struct vmdk_hdr *h,
                                     struct fmt_probe *p)
{
    char *text = NULL;
    int ret;

    if (h->desc_offset == 0 || h->desc_size == 0)
        return probe_refuse(p, FMT_R_VMDK_DESCRIPTOR, "no embedded descriptor");
    if (h->desc_size > MAX_DESC_BYTES / SECTOR || h->desc_offset > r->size / SECTOR ||
        !rd_inside(r, h->desc_offset * SECTOR, h->desc_size * SECTOR))
        return probe_refuse(p, FMT_R_VMDK_DESCRIPTOR,
                            "the descriptor is too large or outside the file");
    ret = read_text(r, h->desc_offset * SECTOR, h->desc_size * SECTOR, &text);
    if (ret != 0)
        return ret < 0
                   ? ret
                   : probe_refuse(p, FMT_R_VMDK_DESCRIPTOR, "the descriptor lies outside the file");
    check_descriptor(text, p);
    free(text);
    return 0;
}

static int check_sparse(struct fmt_reader *r, struct fmt_probe *p)
{
    struct vmdk_hdr h;
    int ret;

    if (r->head_len < SECTOR)
        return probe_refuse(p, FMT_R_VMDK_HEADER, "the file ends inside the header");
    parse_header(r->head, &h);
    if (h.capacity == 0 && h.desc_offset != 0)
        return probe_refuse(p, FMT_R_VMDK_EXTENT,
                            "capacity 0: qemu would open the descriptor's extents as other files");
    if (h.gd_offset == GD_AT_END) {
        ret = read_stream_footer(r, &h, p);
        if (ret < 0 || p->reason != FMT_R_OK)
            return ret;
    }
    if (h.capacity <= (UINT64_MAX >> 9))
        p->virtual_size = h.capacity * SECTOR;
    if (h.compress == 1)
        p->flags |= FMT_F_COMPRESSED;
    if (h.unclean)
        p->flags |= FMT_F_DIRTY;
    ret = check_tables(r, &h, p);
    if (ret < 0 || p->reason != FMT_R_OK)
        return ret;
    /* The usual layout (descriptor at sector 1, 20 sectors) covers qemu's
     * region: one read checks both. */
    if (h.desc_offset != QEMU_DESC_OFFSET / SECTOR || h.desc_size < QEMU_DESC_SIZE / SECTOR) {
        ret = check_qemu_parent_region(r, p);
        if (ret < 0 || p->reason != FMT_R_OK)
            return ret;
    }
    return check_embedded_descriptor(r, &h, p);
}

int fmt_detect_vmdk(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p)
{
    static const char desc_magic[] = "# Disk DescriptorFile";
    size_t probe_len = r->head_len < 2048 ? r->head_len : 2048; /* qemu's probe buffer */

    if (r->head_len >= 4 && !memcmp(r->head, "KDMV", 4)) {
        p->matched = 1;
        p->format = FMT_VMDK;
        return check_sparse(r, p);
    }
    if (r->head_len >= 4 && !memcmp(r->head, "COWD", 4)) {
        p->matched = 1;
        p->format = FMT_VMDK;
        return probe_refuse(p, FMT_R_VMDK_CREATE_TYPE,
                            "COWD (vmfsSparse) extent: only KDMV sparse images are accepted");
    }
    if (qemu_probes_descriptor(r->head, probe_len) ||
        (r->head_len >= sizeof(desc_magic) - 1 &&
         !memcmp(r->head, desc_magic, sizeof(desc_magic) - 1))) {
        p->matched = 1;
        p->format = FMT_VMDK;
        return probe_refuse(p, FMT_R_VMDK_DESCRIPTOR_FILE,
                            "a text descriptor: its extents are other files");
    }
    return 0;
}
