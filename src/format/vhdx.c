/* vhdx.c — VHDX validation, following Microsoft's [MS-VHDX] v1.0 and the
 * checks qemu's vhdx_open makes.
 *
 * Layout: the file identifier at 0, two headers (64 and 128 KiB, the one with
 * the higher sequence number wins), the region table at 192 KiB locating the
 * BAT and the metadata region, and in the metadata region the items that
 * give the virtual size. A differencing disk (parent locator) and a file
 * whose log must be replayed (writes pending in the log) are refused. BAT
 * entries are not read: the size is known without them. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "fmt_int.h"

#define MiB (UINT64_C(1) << 20)
#define KiB (UINT64_C(1) << 10)
#define HEADER1_OFF (64 * KiB)
#define HEADER2_OFF (128 * KiB)
#define HEADER_SIZE (4 * KiB)
#define REGION_TABLE_OFF (192 * KiB)
#define REGION_TABLE_SIZE (64 * KiB)
#define METADATA_TABLE_SIZE (64 * KiB)
#define MAX_ENTRIES 2047u
#define MAX_VIRTUAL_SIZE (UINT64_C(64) << 40)
#define MAX_SECTORS_PER_BLOCK (UINT64_C(1) << 23)
#define META_IS_REQUIRED (1u << 2)
#define PARAMS_HAS_PARENT (1u << 1)

/* 2DC27766-F623-4200-9D64-115E9BFD4A08 */
static const uint8_t GUID_BAT[16] = {0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
                                     0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08};
/* 8B7CA206-4790-4B9A-B8FE-575F050F886E */
static const uint8_t GUID_METADATA[16] = {0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
                                          0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e};
/* CAA16737-FA36-4D43-B3B6-33F0AA44E76B */
static const uint8_t GUID_FILE_PARAMS[16] = {0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
                                             0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b};
/* 2FA54224-CD1B-4876-B211-5DBED83BF4B8 */
static const uint8_t GUID_DISK_SIZE[16] = {0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48,
                                           0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8};
/* BECA12AB-B2E6-4523-93EF-C309E000C746 */
static const uint8_t GUID_PAGE83[16] = {0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45,
                                        0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46};
/* 8141BF1D-A96F-4709-BA47-F233A8FAAB5F */
static const uint8_t GUID_LOGICAL_SECTOR[16] = {0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47,
                                                0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f};
/* CDA348C7-445D-4471-9CC9-E9885251C556 */
static const uint8_t GUID_PHYSICAL_SECTOR[16] = {0xc7, 0x48, 0xa3, 0xcd, 0x5d, 0x44, 0x71, 0x44,
                                                 0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56};
/* A8D35F2D-B30B-454D-ABF7-D3D84834AB0C */
static const uint8_t GUID_PARENT_LOCATOR[16] = {0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45,
                                                0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c};

/* CRC-32C (Castagnoli, reflected 0x82F63B78), the checksum of VHDX headers. */
static const uint32_t crc32c_table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c, 0x26a1e7e8, 0xd4ca64eb,
    0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b, 0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24,
    0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b,
    0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a, 0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35,
    0xaa64d611, 0x580f5512, 0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
    0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a, 0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595,
    0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f, 0xed03a29b, 0x1f682198,
    0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927, 0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38,
    0xdbfc821c, 0x2997011f, 0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789,
    0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859, 0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
    0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de, 0xdde0eb2a, 0x2f8b6829,
    0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c, 0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93,
    0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc,
    0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c, 0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033,
    0xa24bb5a6, 0x502036a5, 0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975, 0x0e330a81, 0xfc588982,
    0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d, 0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622,
    0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f,
    0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff, 0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0,
    0xd3d3e1ab, 0x21b862a8, 0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
    0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee, 0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1,
    0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69, 0xd5cf889d, 0x27a40b9e,
    0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e, 0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

struct vhdx_region {
    uint64_t off, len;
};

struct vhdx_item {
    uint32_t off, len;
    int present;
};

static uint32_t crc32c(const uint8_t *b, size_t len)
{
    uint32_t crc = 0xffffffffu;

    while (len--)
        crc = crc32c_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* Checksums cover the whole structure with the checksum field (bytes 4..7)
 * zeroed. */
static int checksum_ok(uint8_t *b, size_t len)
{
    uint32_t stored = get_le32(b + 4);

    memset(b + 4, 0, 4);
    return !FMT_VERIFY_CHECKSUMS || crc32c(b, len) == stored;
}

static int overlap(struct vhdx_region a, struct vhdx_region b)
{
    return a.off < b.off + b.len && b.off < a.off + a.len;
}

/* 1MiB-aligned, non-empty, past the 1 MiB header section, inside the file. */
static int region_ok(const struct fmt_reader *r, struct vhdx_region g)
{
    return g.off % MiB == 0 && g.off >= MiB && g.len % MiB == 0 && g.len > 0 &&
           rd_inside(r, g.off, g.len);
}

struct vhdx_header {
    int valid;
    uint64_t seq;
    uint8_t fields[80];
};

static int read_header(struct fmt_reader *r, uint64_t off, uint8_t *buf, struct vhdx_header *h)
{
    int ret = rd_read(r, off, buf, HEADER_SIZE);

    memset(h, 0, sizeof(*h));
    if (ret < 0)
        return ret;
    if (ret == RD_OUTSIDE || memcmp(buf, "head", 4) || !checksum_ok(buf, HEADER_SIZE) ||
        get_le16(buf + 66) != 1)
        return 0;
    h->valid = 1;
    h->seq = get_le64(buf + 8);
    memcpy(h->fields, buf, sizeof(h->fields));
    return 0;
}

/* The current header: the valid one with the higher sequence number. */
static int check_headers(struct fmt_reader *r, uint8_t *buf, struct vhdx_region *log,
                         struct fmt_probe *p)
{
    static const uint8_t zero_guid[16] = {0};
    struct vhdx_header h1, h2;
    const uint8_t *f;
    int ret;

    if ((ret = read_header(r, HEADER1_OFF, buf, &h1)) < 0 ||
        (ret = read_header(r, HEADER2_OFF, buf, &h2)) < 0)
        return ret;
    if (!h1.valid && !h2.valid)
        return probe_refuse(p, FMT_R_VHDX_HEADER, "no valid header");
    if (h1.valid && h2.valid && h1.seq == h2.seq && memcmp(h1.fields, h2.fields, sizeof(h1.fields)))
        return probe_refuse(p, FMT_R_VHDX_HEADER, "two different headers with one sequence number");
    f = (h1.valid && (!h2.valid || h1.seq >= h2.seq)) ? h1.fields : h2.fields;
    if (get_le16(f + 64) != 0)
        return probe_refuse(p, FMT_R_VHDX_HEADER, "unknown log version %u", get_le16(f + 64));
    if (memcmp(f + 48, zero_guid, sizeof(zero_guid)))
        return probe_refuse(p, FMT_R_VHDX_LOG, "the log holds writes that must be replayed");
    log->len = get_le32(f + 68);
    log->off = get_le64(f + 72);
    if (!region_ok(r, *log))
        return probe_refuse(p, FMT_R_VHDX_HEADER, "the log lies outside the file or is misaligned");
    return 0;
}

static int check_regions(struct fmt_reader *r, uint8_t *buf, struct vhdx_region log,
                         struct vhdx_region *bat, struct vhdx_region *meta, struct fmt_probe *p)
{
    int ret = rd_read(r, REGION_TABLE_OFF, buf, REGION_TABLE_SIZE);

    if (ret < 0)
        return ret;
    if (ret == RD_OUTSIDE || memcmp(buf, "regi", 4) || !checksum_ok(buf, REGION_TABLE_SIZE))
        return probe_refuse(p, FMT_R_VHDX_REGION, "no valid region table");
    uint32_t count = get_le32(buf + 8);
    if (count > MAX_ENTRIES)
        return probe_refuse(p, FMT_R_VHDX_REGION, "%" PRIu32 " regions is over 2047", count);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = buf + 16 + 32 * i;
        struct vhdx_region g = {get_le64(e + 16), get_le32(e + 24)};
        struct vhdx_region *known = !memcmp(e, GUID_BAT, 16)        ? bat
                                    : !memcmp(e, GUID_METADATA, 16) ? meta
                                                                    : NULL;
        if (!known) {
            if (get_le32(e + 28) & 1)
                return probe_refuse(p, FMT_R_VHDX_REGION, "unknown required region %" PRIu32, i);
            continue;
        }
        if (known->len)
            return probe_refuse(p, FMT_R_VHDX_REGION, "duplicate region %" PRIu32, i);
        if (!region_ok(r, g))
            return probe_refuse(p, FMT_R_VHDX_REGION,
                                "region %" PRIu32 " lies outside the file or is misaligned", i);
        *known = g;
    }
    if (!bat->len || !meta->len)
        return probe_refuse(p, FMT_R_VHDX_REGION, "no BAT or no metadata region");
    if (overlap(*bat, *meta) || overlap(*bat, log) || overlap(*meta, log))
        return probe_refuse(p, FMT_R_VHDX_REGION, "the BAT, metadata and log regions overlap");
    return 0;
}

enum { ITEM_PARAMS, ITEM_SIZE, ITEM_PAGE83, ITEM_LOGICAL, ITEM_PHYSICAL, ITEM_COUNT };

static const struct {
    const uint8_t *guid;
    uint32_t len;
} known_items[ITEM_COUNT] = {
    [ITEM_PARAMS] = {GUID_FILE_PARAMS, 8},       [ITEM_SIZE] = {GUID_DISK_SIZE, 8},
    [ITEM_PAGE83] = {GUID_PAGE83, 16},           [ITEM_LOGICAL] = {GUID_LOGICAL_SECTOR, 4},
    [ITEM_PHYSICAL] = {GUID_PHYSICAL_SECTOR, 4},
};

static int find_items(const uint8_t *buf, struct vhdx_region meta, struct vhdx_item *items,
                      struct fmt_probe *p)
{
    if (memcmp(buf, "metadata", 8))
        return probe_refuse(p, FMT_R_VHDX_METADATA, "no metadata table");
    uint16_t count = get_le16(buf + 10);
    if (count > MAX_ENTRIES)
        return probe_refuse(p, FMT_R_VHDX_METADATA, "%u metadata items is over 2047", count);
    for (uint16_t i = 0; i < count; i++) {
        const uint8_t *e = buf + 32 + 32 * (size_t)i;
        uint32_t off = get_le32(e + 16), len = get_le32(e + 20), flags = get_le32(e + 24);
        int k;

        if (!memcmp(e, GUID_PARENT_LOCATOR, 16))
            return probe_refuse(p, FMT_R_VHDX_DIFFERENCING,
                                "a parent locator: its data lives in a parent file");
        for (k = 0; k < ITEM_COUNT && memcmp(e, known_items[k].guid, 16); k++)
            ;
        if (k == ITEM_COUNT) {
            if (flags & META_IS_REQUIRED)
                return probe_refuse(p, FMT_R_VHDX_METADATA, "unknown required metadata item %u", i);
            continue;
        }
        if (items[k].present)
            return probe_refuse(p, FMT_R_VHDX_METADATA, "duplicate metadata item %u", i);
        if (len != known_items[k].len || off < METADATA_TABLE_SIZE ||
            (uint64_t)off + len > meta.len)
            return probe_refuse(p, FMT_R_VHDX_METADATA, "metadata item %u is out of bounds", i);
        items[k] = (struct vhdx_item){off, len, 1};
    }
    for (int k = 0; k < ITEM_COUNT; k++)
        if (!items[k].present)
            return probe_refuse(p, FMT_R_VHDX_METADATA, "a required metadata item is missing");
    return 0;
}

static int read_item(struct fmt_reader *r, struct vhdx_region meta, struct vhdx_item it,
                     uint8_t *out)
{
    return rd_read(r, meta.off + it.off, out, it.len); /* inside: region_ok + find_items */
}

static int check_metadata(struct fmt_reader *r, uint8_t *buf, struct vhdx_region meta,
                          struct vhdx_region bat, struct fmt_probe *p)
{
    struct vhdx_item items[ITEM_COUNT] = {{0}};
    uint8_t params[8] = {0}, size[8] = {0}, logical[4] = {0}, physical[4] = {0};
    /* Read the table header, then only the entries it declares. */
    int ret = rd_read(r, meta.off, buf, 32);

    if (ret == 0 && get_le16(buf + 10) <= MAX_ENTRIES)
        ret = rd_read(r, meta.off + 32, buf + 32, 32 * (size_t)get_le16(buf + 10));
    if (ret != 0)
        return ret < 0 ? ret : probe_refuse(p, FMT_R_VHDX_METADATA, "no metadata table");
    ret = find_items(buf, meta, items, p);
    if (ret < 0 || p->reason != FMT_R_OK)
        return ret;
    if ((ret = read_item(r, meta, items[ITEM_PARAMS], params)) < 0 ||
        (ret = read_item(r, meta, items[ITEM_SIZE], size)) < 0 ||
        (ret = read_item(r, meta, items[ITEM_LOGICAL], logical)) < 0 ||
        (ret = read_item(r, meta, items[ITEM_PHYSICAL], physical)) < 0)
        return ret;
    uint32_t block = get_le32(params), lss = get_le32(logical), pss = get_le32(physical);
    uint64_t vsize = get_le64(size);
    p->virtual_size = vsize;
    if (get_le32(params + 4) & PARAMS_HAS_PARENT)
        return probe_refuse(p, FMT_R_VHDX_DIFFERENCING,
                            "a differencing disk: its data lives in a parent file");
    if (!is_pow2(block) || block < MiB || block > 256 * MiB)
        return probe_refuse(p, FMT_R_VHDX_METADATA, "block size %" PRIu32 " is invalid", block);
    if ((lss != 512 && lss != 4096) || (pss != 512 && pss != 4096))
        return probe_refuse(p, FMT_R_VHDX_METADATA,
                            "sector sizes %" PRIu32 "/%" PRIu32 " are invalid", lss, pss);
    if (vsize > MAX_VIRTUAL_SIZE || vsize % lss)
        return probe_refuse(p, FMT_R_VHDX_METADATA, "virtual size %" PRIu64 " is invalid", vsize);
    /* One sector bitmap entry follows every chunk_ratio payload entries. */
    uint64_t chunk_ratio = MAX_SECTORS_PER_BLOCK * lss / block;
    uint64_t blocks = vsize / block + (vsize % block != 0);
    uint64_t entries = blocks ? blocks + (blocks - 1) / chunk_ratio : 0;
    if (entries > bat.len / 8)
        return probe_refuse(p, FMT_R_VHDX_REGION,
                            "the BAT region is too small for the virtual size");
    return 0;
}

int fmt_detect_vhdx(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p)
{
    struct vhdx_region log = {0, 0}, bat = {0, 0}, meta = {0, 0};
    uint8_t *buf;
    int ret;

    if (r->head_len < 8 || memcmp(r->head, "vhdxfile", 8))
        return 0;
    p->matched = 1;
    p->format = FMT_VHDX;
    /* One buffer for the largest structure read whole (region and metadata
     * tables are 64 KiB): too big for the stack of a daemon thread. */
    buf = malloc(REGION_TABLE_SIZE);
    if (!buf)
        return -ENOMEM;
    ret = check_headers(r, buf, &log, p);
    if (ret == 0 && p->reason == FMT_R_OK)
        ret = check_regions(r, buf, log, &bat, &meta, p);
    if (ret == 0 && p->reason == FMT_R_OK)
        ret = check_metadata(r, buf, meta, bat, p);
    free(buf);
    return ret;
}
