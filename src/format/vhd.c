/* vhd.c — VHD ("vpc") validation: fixed and dynamic disks.
 *
 * A fixed disk is raw data followed by a 512-byte "conectix" footer; a
 * dynamic one starts with a copy of the footer, then a "cxsparse" header and
 * a block table. A differencing disk names a parent file: refused. The
 * virtual size follows qemu's vpc_open, which trusts the CHS geometry unless
 * the creator is known to use the footer's current_size. qemu's probe only
 * looks at offset 0, so it calls a fixed VHD "raw"; we detect the footer at
 * the end too, so such a file is never mistaken for a plain raw disk. */
#include <inttypes.h>

#include "fmt_int.h"

#define FOOTER 512u
#define DYN_HEADER 1024u
#define TYPE_FIXED 2u
#define TYPE_DYNAMIC 3u
#define TYPE_DIFFERENCING 4u
#define MAX_GEOMETRY (65535ull * 16 * 255)
#define MAX_SECTORS 0xff000000ull /* qemu: 2040 GiB */

static uint32_t vhd_checksum(const uint8_t *b, size_t len, size_t skip)
{
    uint32_t sum = 0;

    for (size_t i = 0; i < len; i++)
        if (i < skip || i >= skip + 4)
            sum += b[i];
    return ~sum;
}

static uint64_t footer_sectors(const uint8_t *f)
{
    static const char *const size_creators[] = {"win ", "qem2", "d2v ", "CTXS"};
    uint64_t chs = (uint64_t)get_be16(f + 56) * f[58] * f[59];
    int use_chs = memcmp(f + 28, "tap\0", 4) != 0;

    for (size_t i = 0; i < sizeof(size_creators) / sizeof(size_creators[0]); i++)
        if (!memcmp(f + 28, size_creators[i], 4))
            use_chs = 0;
    /* The maximal geometry means "bigger than CHS can say": use current_size. */
    if (!use_chs || chs == MAX_GEOMETRY)
        return get_be64(f + 48) / 512;
    return chs;
}

static int check_dynamic(struct fmt_reader *r, const uint8_t *f, uint64_t sectors,
                         struct fmt_probe *p)
{
    uint8_t d[DYN_HEADER];
    uint64_t off = get_be64(f + 16);

    int ret = rd_read(r, off, d, sizeof(d));
    if (ret < 0)
        return ret;
    if (ret == RD_OUTSIDE)
        return probe_refuse(p, FMT_R_VHD_DYNAMIC, "the dynamic disk header lies outside the file");
    if (memcmp(d, "cxsparse", 8))
        return probe_refuse(p, FMT_R_VHD_DYNAMIC, "no cxsparse dynamic disk header");
    if (FMT_VERIFY_CHECKSUMS && vhd_checksum(d, sizeof(d), 36) != get_be32(d + 36))
        return probe_refuse(p, FMT_R_VHD_DYNAMIC, "dynamic disk header checksum mismatch");
    uint64_t bat = get_be64(d + 16);
    uint32_t entries = get_be32(d + 28), block = get_be32(d + 32);
    if (!is_pow2(block) || block < 512)
        return probe_refuse(p, FMT_R_VHD_DYNAMIC, "block size %" PRIu32 " is invalid", block);
    if (sectors * 512 / block > 0xffffffffu || entries > MAX_SECTORS * 512 / block ||
        (uint64_t)entries * block < sectors * 512)
        return probe_refuse(p, FMT_R_VHD_DYNAMIC, "the block table does not match the disk size");
    if (!rd_inside(r, bat, (uint64_t)entries * 4))
        return probe_refuse(p, FMT_R_VHD_DYNAMIC, "the block table lies outside the file");
    return 0;
}

int fmt_detect_vhd(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p)
{
    int at0 = r->head_len >= FOOTER && !memcmp(r->head, "conectix", 8);
    int at_end = r->size >= FOOTER && !memcmp(r->tail + r->tail_len - FOOTER, "conectix", 8);
    int at_511 =
        r->size >= FOOTER - 1 && !memcmp(r->tail + r->tail_len - (FOOTER - 1), "conectix", 8);
    const uint8_t *f;

    if (!at0 && !at_end && !at_511)
        return 0;
    p->matched = 1;
    p->format = FMT_VHD;
    if (!at0 && !at_end)
        return probe_refuse(p, FMT_R_VHD_FOOTER,
                            "511-byte footer of early Virtual PC: qemu cannot open it");
    f = at0 ? r->head : r->tail + r->tail_len - FOOTER;
    uint32_t type = get_be32(f + 60);
    uint64_t sectors = footer_sectors(f); /* current_size / 512 or CHS: sectors * 512 fits */
    p->virtual_size = sectors * 512;
    if (FMT_VERIFY_CHECKSUMS && vhd_checksum(f, FOOTER, 64) != get_be32(f + 64))
        return probe_refuse(p, FMT_R_VHD_FOOTER, "footer checksum mismatch");
    if (type == TYPE_DIFFERENCING)
        return probe_refuse(p, FMT_R_VHD_DIFFERENCING,
                            "a differencing disk: its data lives in a parent file");
    if (type != TYPE_FIXED && type != TYPE_DYNAMIC)
        return probe_refuse(p, FMT_R_VHD_FOOTER, "unknown disk type %" PRIu32, type);
    if (sectors > MAX_SECTORS)
        return probe_refuse(p, FMT_R_VHD_FOOTER, "disk size over 2040 GiB");
    if (type == TYPE_FIXED) {
        /* A fixed disk's data starts at 0: a footer there would be guest data. */
        if (at0)
            return probe_refuse(p, FMT_R_VHD_FOOTER, "a fixed disk with a footer at offset 0");
        if (!at_end || sectors * 512 > r->size - FOOTER)
            return probe_refuse(p, FMT_R_VHD_FOOTER, "the fixed disk is larger than the file");
        p->flags |= FMT_F_FIXED;
        return 0;
    }
    if (!at0)
        return probe_refuse(p, FMT_R_VHD_FOOTER,
                            "a dynamic disk without its footer copy at offset 0");
    return check_dynamic(r, f, sectors, p);
}
