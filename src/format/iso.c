/* iso.c — ISO 9660 detection.
 *
 * Volume descriptors start at sector 16 (byte 0x8000) of 2048-byte sectors,
 * each "CD001" at byte 1; a UDF bridge may put its "BEA01"/"NSR0x" markers
 * first, so "CD001" is looked for at 0x8001, 0x8801 and 0x9001 as libmagic
 * does. The primary volume descriptor's size must fit in the file. The
 * virtual size is the file size: qemu opens an ISO as raw bytes, and that is
 * what a guest sees. The 32 KiB system area before the descriptors may hold
 * an MBR/GPT (isohybrid): that is flagged, not a polyglot. */
#include <inttypes.h>

#include "fmt_int.h"

#define ISO_SECTOR 2048u
#define FIRST_VD 16u
#define MAX_VD 64u /* a real disc has a handful; this bounds the walk */
#define VD_PRIMARY 1u
#define VD_TERMINATOR 255u

static int is_udf_marker(const uint8_t *id)
{
    static const char *const ids[] = {"BEA01", "NSR02", "NSR03", "TEA01", "BOOT2", "CDW02"};

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (!memcmp(id, ids[i], 5))
            return 1;
    return 0;
}

static int check_pvd(struct fmt_reader *r, uint64_t off, struct fmt_probe *p)
{
    uint8_t d[136];
    int ret = rd_read(r, off, d, sizeof(d));

    if (ret < 0)
        return ret;
    if (ret == RD_OUTSIDE)
        return probe_refuse(p, FMT_R_ISO, "the primary volume descriptor is truncated");
    uint32_t blocks = get_le32(d + 80);
    uint16_t bsize = get_le16(d + 128);
    /* Both-endian fields: a mismatch means a damaged or forged descriptor. */
    if (d[6] != 1 || blocks != get_be32(d + 84) || bsize != get_be16(d + 130))
        return probe_refuse(p, FMT_R_ISO, "inconsistent primary volume descriptor");
    if (bsize != 512 && bsize != 1024 && bsize != 2048)
        return probe_refuse(p, FMT_R_ISO, "logical block size %u is invalid", bsize);
    if ((uint64_t)blocks * bsize > r->size)
        return probe_refuse(p, FMT_R_ISO, "the volume (%" PRIu64 " bytes) is larger than the file",
                            (uint64_t)blocks * bsize);
    return 0;
}

int fmt_detect_iso(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p)
{
    static const uint64_t magic_at[] = {0x8001, 0x8801, 0x9001};
    uint8_t vd[7];
    int ret, found = 0;

    for (size_t i = 0; i < sizeof(magic_at) / sizeof(magic_at[0]) && !found; i++) {
        ret = rd_read(r, magic_at[i], vd, 5);
        if (ret < 0)
            return ret;
        found = ret == 0 && !memcmp(vd, "CD001", 5);
    }
    if (!found)
        return 0;
    p->matched = 1;
    p->format = FMT_ISO;
    p->virtual_size = r->size;
    for (uint64_t s = FIRST_VD; s < FIRST_VD + MAX_VD; s++) {
        uint64_t off = s * ISO_SECTOR;
        ret = rd_read(r, off, vd, sizeof(vd));
        if (ret < 0)
            return ret;
        if (ret == RD_OUTSIDE)
            break;
        if (is_udf_marker(vd + 1))
            continue;
        if (memcmp(vd + 1, "CD001", 5) || vd[0] == VD_TERMINATOR)
            break;
        if (vd[0] == VD_PRIMARY)
            return check_pvd(r, off, p);
    }
    return probe_refuse(p, FMT_R_ISO, "no primary volume descriptor");
}
