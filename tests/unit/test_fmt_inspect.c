/* test_fmt_inspect.c — the inspector and the overlay writer on images built
 * in memory: no qemu-img, no files (except for the fd helpers). The corpus
 * made with qemu-img is checked by test_fmt_corpus.c. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "stowage/format.h"

#define GiB (UINT64_C(1) << 30)

struct mem {
    const uint8_t *b;
    size_t n;
    size_t chunk;   /* non-zero: return at most this much per call */
    int fail;       /* return -EIO */
    uint64_t bytes; /* what the inspector asked for */
    uint64_t calls;
};

static ssize_t mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    struct mem *m = ctx;

    m->calls++;
    if (m->fail)
        return -EIO;
    if (off >= m->n)
        return 0;
    if (len > m->n - off)
        len = m->n - off;
    if (m->chunk && len > m->chunk)
        len = m->chunk;
    memcpy(buf, m->b + off, len);
    m->bytes += len;
    return (ssize_t)len;
}

static int inspect_mem(struct mem *m, const struct fmt_opts *o, struct fmt_info *info)
{
    struct fmt_source src = {.ctx = m, .pread = mem_pread, .size = m->n};
    return fmt_inspect(&src, o, info);
}

static int inspect_buf(const void *b, size_t n, const struct fmt_opts *o, struct fmt_info *info)
{
    struct mem m = {.b = b, .n = n};
    return inspect_mem(&m, o, info);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static struct fmt_opts trusted_opts(void)
{
    struct fmt_opts o;
    fmt_opts_init(&o);
    o.allow_backing_file = 1;
    return o;
}

static uint8_t *overlay(uint64_t size, size_t *len)
{
    void *buf;
    assert_int_equal(fmt_qcow2_overlay_build("/srv/stowage/base.raw", "raw", size, &buf, len), 0);
    return buf;
}

/* ---- names */

static void test_format_names_round_trip(void **state)
{
    for (int f = FMT_RAW; f < FMT_COUNT; f++)
        assert_int_equal(fmt_from_name(fmt_name((enum fmt_format)f)), f);
    assert_string_equal(fmt_name(FMT_VHD), "vpc");
    assert_int_equal(fmt_from_name("vhd"), FMT_VHD);
    assert_int_equal(fmt_from_name("auto"), FMT_UNKNOWN);
    assert_int_equal(fmt_from_name(""), FMT_UNKNOWN);
    assert_int_equal(fmt_from_name(NULL), FMT_UNKNOWN);
    assert_int_equal(fmt_from_name("qcow3"), FMT_INVALID);
    assert_string_equal(fmt_qemu_driver(FMT_ISO), "raw");
    assert_string_equal(fmt_qemu_driver(FMT_QCOW2), "qcow2");
    assert_string_equal(fmt_flag_name(FMT_F_GPT), "gpt");
    assert_null(fmt_flag_name(1u << 31));
}

static void test_reason_strings_are_distinct(void **state)
{
    for (int a = 0; a < FMT_R_COUNT; a++) {
        const char *s = fmt_reason_str((enum fmt_reason)a);
        assert_non_null(s);
        assert_string_not_equal(s, "invalid");
        for (int b = a + 1; b < FMT_R_COUNT; b++)
            assert_string_not_equal(s, fmt_reason_str((enum fmt_reason)b));
    }
    assert_string_equal(fmt_reason_str(FMT_R_TOO_LARGE), "virtual_size_over_cap");
}

/* ---- generic verdicts */

static void test_empty_file_is_refused(void **state)
{
    struct fmt_info info;
    assert_int_equal(inspect_buf("", 0, NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_EMPTY);
    assert_string_equal(fmt_reason_str(info.reason), "empty_file");
}

static void test_plain_bytes_are_raw_of_file_size(void **state)
{
    uint8_t b[3000];
    struct fmt_info info;

    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(inspect_buf(b, sizeof(b), NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_OK);
    assert_int_equal(info.format, FMT_RAW);
    assert_int_equal(info.virtual_size, sizeof(b));
    assert_int_equal(info.flags, 0);
}

static void test_read_error_is_not_a_verdict(void **state)
{
    uint8_t b[4096] = {0};
    struct mem m = {.b = b, .n = sizeof(b), .fail = 1};
    struct fmt_info info;

    assert_int_equal(inspect_mem(&m, NULL, &info), -EIO);
    assert_int_equal(info.reason, FMT_R_READ_ERROR);
}

static void test_source_shorter_than_its_size_is_a_read_error(void **state)
{
    uint8_t b[1000] = {0};
    struct mem m = {.b = b, .n = sizeof(b)};
    struct fmt_source src = {.ctx = &m, .pread = mem_pread, .size = 5000};
    struct fmt_info info;

    assert_int_equal(fmt_inspect(&src, NULL, &info), -EIO);
    assert_int_equal(info.reason, FMT_R_READ_ERROR);
}

static void test_short_reads_give_the_same_verdict(void **state)
{
    size_t len;
    uint8_t *b = overlay(GiB, &len);
    struct fmt_opts o = trusted_opts();
    struct mem m = {.b = b, .n = len, .chunk = 7};
    struct fmt_info whole, bits;

    assert_int_equal(inspect_buf(b, len, &o, &whole), 0);
    assert_int_equal(inspect_mem(&m, &o, &bits), 0);
    assert_int_equal(whole.reason, FMT_R_OK);
    assert_int_equal(bits.reason, whole.reason);
    assert_int_equal(bits.virtual_size, whole.virtual_size);
    assert_int_equal(bits.bytes_read, whole.bytes_read);
    free(b);
}

/* ---- the overlay writer */

static void test_overlay_build_refuses_bad_arguments(void **state)
{
    char long_path[1100];
    void *buf = (void *)1;
    size_t len = 1;

    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    const struct {
        const char *path, *fmt;
        uint64_t size;
    } bad[] = {
        {"", "raw", GiB},
        {"json:{\"x\":1}", "raw", GiB},
        {"nbd:host:10809", "raw", GiB},
        {"a\nb", "raw", GiB},
        {long_path, "raw", GiB},
        {"/b", "qed", GiB},
        {"/b", "auto", GiB},
        {"/b", NULL, GiB},
        {"/b", "raw", 0},
        {"/b", "raw", 1000},
        {"/b", "raw", UINT64_C(1) << 49},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(fmt_qcow2_overlay_build(bad[i].path, bad[i].fmt, bad[i].size, &buf, &len),
                         -EINVAL);
        assert_null(buf);
        assert_int_equal(len, 0);
    }
    /* a colon after a slash is a file name, not a protocol */
    assert_int_equal(fmt_qcow2_overlay_build("/srv/a:b.raw", "raw", GiB, &buf, &len), 0);
    free(buf);
}

static void test_without_backing_path_a_standalone_qcow2_is_built(void **state)
{
    void *buf;
    size_t len;
    struct fmt_info info;

    assert_int_equal(fmt_qcow2_overlay_build(NULL, NULL, 10 * GiB, &buf, &len), 0);
    assert_int_equal(len, 4 * 65536);
    /* nothing points outside it: accepted as client bytes would be */
    assert_int_equal(inspect_buf(buf, len, NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_OK);
    assert_int_equal(info.format, FMT_QCOW2);
    assert_int_equal(info.virtual_size, 10 * GiB);
    assert_int_equal(info.flags, 0);
    free(buf);
}

static void test_overlay_size_does_not_grow_with_the_base(void **state)
{
    size_t small, big, huge;
    free(overlay(GiB, &small));
    free(overlay(100 * GiB, &big));
    free(overlay(4096 * GiB, &huge));
    assert_int_equal(small, 4 * 65536);
    assert_int_equal(big, small);
    assert_int_equal(huge, small);
}

static void test_overlay_is_refused_unless_trusted(void **state)
{
    size_t len;
    uint8_t *b = overlay(GiB, &len);
    struct fmt_opts o = trusted_opts();
    struct fmt_info info;

    assert_int_equal(inspect_buf(b, len, NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_QCOW2_BACKING);
    assert_int_equal(info.format, FMT_QCOW2);
    assert_int_equal(info.virtual_size, GiB);

    assert_int_equal(inspect_buf(b, len, &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_OK);
    assert_int_equal(info.virtual_size, GiB);
    assert_string_equal(info.backing_file, "/srv/stowage/base.raw");
    assert_string_equal(info.backing_format, "raw");
    assert_true(info.flags & FMT_F_BACKING);
    free(b);
}

static void test_inspecting_a_100g_overlay_reads_a_few_kib(void **state)
{
    size_t len;
    uint8_t *b = overlay(100 * GiB, &len);
    struct fmt_opts o = trusted_opts();
    struct mem m = {.b = b, .n = len};
    struct fmt_info info;

    assert_int_equal(inspect_mem(&m, &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_OK);
    assert_int_equal(info.virtual_size, 100 * GiB);
    assert_int_equal(m.bytes, info.bytes_read);
    /* head 4 KiB + tail 1.5 KiB + a 1600-byte L1 table + 8 bytes of refcount table */
    assert_true(m.bytes <= 8 * 1024);
    free(b);
}

/* ---- qcow2 refusals, each from one field of a valid overlay */

static void test_qcow2_header_fields_each_have_their_reason(void **state)
{
    const struct {
        size_t off;
        int width; /* 4 or 8 bytes, big-endian */
        uint64_t value;
        enum fmt_reason why;
    } cases[] = {
        {4, 4, 1, FMT_R_QCOW2_VERSION},
        {4, 4, 4, FMT_R_QCOW2_VERSION},
        {20, 4, 8, FMT_R_QCOW2_CLUSTER_BITS},
        {20, 4, 22, FMT_R_QCOW2_CLUSTER_BITS},
        {24, 8, UINT64_C(1) << 62, FMT_R_QCOW2_HEADER},
        {32, 4, 2, FMT_R_QCOW2_ENCRYPTED},
        {36, 4, 1, FMT_R_QCOW2_L1},                   /* too small for 1 GiB */
        {40, 8, UINT64_C(1) << 40, FMT_R_QCOW2_L1},   /* past the end */
        {40, 8, UINT64_MAX - 0xffff, FMT_R_QCOW2_L1}, /* overflows */
        {40, 8, 3 * 65536 + 8, FMT_R_QCOW2_L1},       /* unaligned */
        {48, 8, UINT64_C(1) << 40, FMT_R_QCOW2_REFCOUNT},
        {56, 4, 0, FMT_R_QCOW2_REFCOUNT},
        {56, 4, 1000, FMT_R_QCOW2_REFCOUNT},
        {60, 4, 1, FMT_R_QCOW2_SNAPSHOTS}, /* at offset 0: in the header */
        {72, 8, 0x2, FMT_R_QCOW2_CORRUPT},
        {72, 8, 0x4, FMT_R_QCOW2_DATA_FILE},
        {72, 8, 0x40, FMT_R_QCOW2_INCOMPAT},
        {72, 8, 0x8, FMT_R_QCOW2_COMPRESSION}, /* zstd bit, zlib type */
        {96, 4, 7, FMT_R_QCOW2_HEADER},
        {100, 4, 96, FMT_R_QCOW2_HEADER},
        {100, 4, 0x20000, FMT_R_QCOW2_HEADER},
        {65536, 8, UINT64_C(1) << 40, FMT_R_QCOW2_REFCOUNT}, /* refcount block pointer */
        {3 * 65536, 8, UINT64_C(1) << 40, FMT_R_QCOW2_L1},   /* L2 table pointer */
        {3 * 65536, 8, 0x30001, FMT_R_QCOW2_L1},             /* reserved bit */
    };
    struct fmt_opts o = trusted_opts();
    struct fmt_info info;
    size_t len;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *b = overlay(GiB, &len);
        if (cases[i].width == 4)
            put_be32(b + cases[i].off, (uint32_t)cases[i].value);
        else
            put_be64(b + cases[i].off, cases[i].value);
        assert_int_equal(inspect_buf(b, len, &o, &info), 0);
        if (info.reason != cases[i].why)
            fail_msg("case %zu: got %s (%s), want %s", i, fmt_reason_str(info.reason), info.detail,
                     fmt_reason_str(cases[i].why));
        assert_int_equal(info.format, FMT_QCOW2);
        free(b);
    }
}

static void test_qcow2_data_file_extension_alone_is_refused(void **state)
{
    size_t len;
    uint8_t *b = overlay(GiB, &len);
    struct fmt_opts o = trusted_opts();
    struct fmt_info info;

    /* replace the backing format extension by a data file name */
    put_be32(b + 112, 0x44415441);
    assert_int_equal(inspect_buf(b, len, &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_QCOW2_DATA_FILE);
    free(b);
}

static void test_qcow2_extension_walk_is_bounded_and_batched(void **state)
{
    size_t len;
    uint8_t *b = overlay(GiB, &len);
    struct mem m = {.b = b, .n = len};
    struct fmt_info info;

    /* no backing file: extensions may fill the whole 64 KiB header cluster,
     * here 8178 empty unknown ones */
    memset(b + 8, 0, 12);
    for (size_t off = 112; off + 8 <= 65536; off += 8) {
        put_be32(b + off, 0x11111111);
        put_be32(b + off + 4, 0);
    }
    assert_int_equal(inspect_mem(&m, NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_OK);
    assert_true(m.calls < 200); /* 512-byte windows, not one pread per header */
    assert_true(m.bytes < 80 * 1024);
    free(b);
}

/* ---- declared format, cap, polyglot */

static void test_declared_format_must_match_both_ways(void **state)
{
    size_t len;
    uint8_t *b = overlay(GiB, &len), raw[2048] = {1};
    struct fmt_opts o = trusted_opts();
    struct fmt_info info;

    o.declared = FMT_RAW;
    assert_int_equal(inspect_buf(b, len, &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_MISMATCH);
    assert_int_equal(info.format, FMT_QCOW2);
    o.declared = FMT_QCOW2;
    assert_int_equal(inspect_buf(b, len, &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_OK);
    assert_int_equal(inspect_buf(raw, sizeof(raw), &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_MISMATCH);
    assert_int_equal(info.format, FMT_RAW);
    free(b);
}

static void test_virtual_size_over_cap_has_its_own_reason(void **state)
{
    size_t len;
    uint8_t *b = overlay(2 * GiB, &len);
    struct fmt_opts o = trusted_opts();
    struct fmt_info info;

    o.max_virtual_size = GiB;
    assert_int_equal(inspect_buf(b, len, &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_TOO_LARGE);
    assert_int_equal(info.virtual_size, 2 * GiB);
    o.max_virtual_size = 2 * GiB;
    assert_int_equal(inspect_buf(b, len, &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_OK);
    free(b);
}

static void put_iso_pvd(uint8_t *b, uint32_t blocks)
{
    uint8_t *d = b + 16 * 2048;
    d[0] = 1;
    memcpy(d + 1, "CD001", 5);
    d[6] = 1;
    put_le32(d + 80, blocks);
    put_be32(d + 84, blocks);
    d[128] = 0x00, d[129] = 0x08, d[130] = 0x08, d[131] = 0x00; /* 2048 both-endian */
    d[2048] = 255;
    memcpy(d + 2049, "CD001", 5);
}

static void test_iso_with_qcow2_header_is_a_polyglot(void **state)
{
    size_t len;
    uint8_t *b = overlay(GiB, &len);
    struct fmt_opts o = trusted_opts();
    struct fmt_info info;

    put_iso_pvd(b, (uint32_t)(len / 2048));
    assert_int_equal(inspect_buf(b, len, &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_POLYGLOT);
    assert_int_equal(info.format, FMT_QCOW2);
    assert_non_null(strstr(info.detail, "qcow2 and iso"));
    free(b);
}

static void test_isohybrid_mbr_is_not_a_polyglot(void **state)
{
    static uint8_t b[40 * 2048];
    struct fmt_opts o;
    struct fmt_info info;

    put_iso_pvd(b, 40);
    b[510] = 0x55, b[511] = 0xAA;
    fmt_opts_init(&o);
    o.declared = FMT_RAW; /* an ISO is raw bytes to qemu */
    assert_int_equal(inspect_buf(b, sizeof(b), &o, &info), 0);
    assert_int_equal(info.reason, FMT_R_OK);
    assert_int_equal(info.format, FMT_ISO);
    assert_int_equal(info.virtual_size, sizeof(b));
    assert_int_equal(info.flags, FMT_F_MBR);
}

/* ---- vmdk descriptors */

/* A 1 MiB monolithicSparse image: header, descriptor at sector 1, grain
 * directories at 21 and 22, grains from 32. */
static uint8_t *vmdk(const char *desc, size_t *len)
{
    uint8_t *b = calloc(1, 64 * 512);

    assert_non_null(b);
    memcpy(b, "KDMV", 4);
    put_le32(b + 4, 1);
    put_le32(b + 8, 3);
    put_le64(b + 12, 2048);
    put_le64(b + 20, 128);
    put_le64(b + 28, 1);
    put_le64(b + 36, 20);
    put_le32(b + 44, 512);
    put_le64(b + 48, 21);
    put_le64(b + 56, 22);
    put_le64(b + 64, 32);
    memcpy(b + 73, "\n \r\n", 4);
    memcpy(b + 512, desc, strlen(desc));
    *len = 64 * 512;
    return b;
}

static void test_vmdk_descriptor_rules(void **state)
{
    const struct {
        const char *desc;
        enum fmt_reason why;
    } cases[] = {
        {"createType=\"monolithicSparse\"\nRW 2048 SPARSE \"a.vmdk\"\n", FMT_R_OK},
        {"# c\n  createType = \"streamOptimized\"  \r\n\tRW 2048 SPARSE \"my disk.vmdk\"\r\n",
         FMT_R_OK},
        {"createType=\"monolithicSparse\"\nRW 2048 SPARSE \"a.vmdk\"\n\0RW 1 FLAT \"/etc/passwd\" "
         "0\n",
         FMT_R_OK}, /* a C string, as for qemu: nothing after the NUL counts */
        {"createType=\"monolithicSparse\"\nRW 2048 FLAT \"/etc/passwd\" 0\n", FMT_R_VMDK_EXTENT},
        {"createType=\"monolithicSparse\"\nRW 2048 SPARSE \"../a.vmdk\"\n", FMT_R_VMDK_EXTENT},
        {"createType=\"monolithicSparse\"\nRW 2048 SPARSE \"/a.vmdk\"\n", FMT_R_VMDK_EXTENT},
        {"createType=\"monolithicSparse\"\nRW 2048 SPARSE \"a\\b\"\n", FMT_R_VMDK_EXTENT},
        {"createType=\"monolithicSparse\"\nRW 1 SPARSE \"a\"\nRW 1 SPARSE \"b\"\n",
         FMT_R_VMDK_EXTENT},
        {"createType=\"monolithicSparse\"\nNOACCESS 2048 SPARSE \"a\"\n", FMT_R_VMDK_EXTENT},
        {"createType=\"streamOptimized\"\nRDONLY 2048 SPARSE \"a-disk1.vmdk\"\n", FMT_R_OK},
        {"createType=\"monolithicSparse\"\nRW 0 SPARSE \"a\"\n", FMT_R_VMDK_EXTENT},
        {"createType=\"monolithicSparse\"\nRW 2048 SPARSE a\n", FMT_R_VMDK_EXTENT},
        {"createType=\"monolithicSparse\"\n", FMT_R_VMDK_EXTENT},
        {"createType=\"vmfs\"\nRW 2048 SPARSE \"a\"\n", FMT_R_VMDK_CREATE_TYPE},
        {"RW 2048 SPARSE \"a\"\n", FMT_R_VMDK_CREATE_TYPE},
        {"createType=\"monolithicSparse\"\ncreateType=\"monolithicSparse\"\nRW 1 SPARSE \"a\"\n",
         FMT_R_VMDK_DESCRIPTOR},
        {"createType=monolithicSparse\nRW 1 SPARSE \"a\"\n", FMT_R_VMDK_DESCRIPTOR},
        {"createType=\"monolithicSparse\"\nparentFileNameHint=\"b.vmdk\"\nRW 1 SPARSE \"a\"\n",
         FMT_R_VMDK_PARENT},
    };
    struct fmt_info info;
    size_t len;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *b = vmdk(cases[i].desc, &len);
        /* memcpy stopped at the first NUL: put the rest of case 2 in too */
        if (i == 2)
            memcpy(b + 512 + strlen(cases[i].desc) + 1, "RW 1 FLAT \"/etc/passwd\" 0\n", 26);
        assert_int_equal(inspect_buf(b, len, NULL, &info), 0);
        if (info.reason != cases[i].why)
            fail_msg("case %zu: got %s (%s), want %s", i, fmt_reason_str(info.reason), info.detail,
                     fmt_reason_str(cases[i].why));
        assert_int_equal(info.format, FMT_VMDK);
        if (cases[i].why == FMT_R_OK)
            assert_int_equal(info.virtual_size, 2048 * 512);
        free(b);
    }
}

static void test_details_quoting_image_bytes_are_printable(void **state)
{
    size_t len;
    uint8_t *b = vmdk("createType=\"\x01\x1b[31m\xff\xfe\"\nRW 1 SPARSE \"a\"\n", &len);
    struct fmt_info info;

    assert_int_equal(inspect_buf(b, len, NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_VMDK_CREATE_TYPE);
    for (const char *c = info.detail; *c; c++)
        assert_true(*c >= 0x20 && *c <= 0x7e);
    free(b);
}

static void test_vmdk_zero_capacity_with_descriptor_is_refused(void **state)
{
    size_t len;
    uint8_t *b = vmdk("createType=\"monolithicFlat\"\nRW 1 FLAT \"/etc/passwd\" 0\n", &len);
    struct fmt_info info;

    put_le64(b + 12, 0);
    assert_int_equal(inspect_buf(b, len, NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_VMDK_EXTENT);
    free(b);
}

static void test_vmdk_text_descriptor_is_always_refused(void **state)
{
    const char *texts[] = {
        "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicSparse\"\nRW 1 SPARSE \"a\"\n",
        "version=2\n",
        "  \n#x\nversion=3\r\n",
    };
    struct fmt_info info;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        assert_int_equal(inspect_buf(texts[i], strlen(texts[i]), NULL, &info), 0);
        assert_int_equal(info.reason, FMT_R_VMDK_DESCRIPTOR_FILE);
        assert_int_equal(info.format, FMT_VMDK);
    }
    /* qemu's probe wants version= right after comments and blank lines */
    assert_int_equal(inspect_buf("hello\nversion=1\n", 16, NULL, &info), 0);
    assert_int_equal(info.format, FMT_RAW);
}

static void test_qed_and_unsupported_formats_are_refused(void **state)
{
    uint8_t b[1024] = {0};
    struct fmt_info info;

    memcpy(b, "QED", 4);
    assert_int_equal(inspect_buf(b, sizeof(b), NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_QED);
    memcpy(b, "LUKS\xba\xbe", 6);
    assert_int_equal(inspect_buf(b, sizeof(b), NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_UNSUPPORTED);
    assert_int_equal(info.format, FMT_LUKS);
}

/* ---- fd helpers */

static int tmpfile_fd(char *path)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, 256, "%s/test_fmt_XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    return fd;
}

struct extents {
    uint64_t data, zero, end;
    int ordered;
};

static int count_extent(void *ud, uint64_t off, uint64_t len, int zero)
{
    struct extents *e = ud;
    if (off != e->end || len == 0)
        e->ordered = 0;
    e->end = off + len;
    *(zero ? &e->zero : &e->data) += len;
    return 0;
}

static void test_fd_inspection_and_sparse_helpers(void **state)
{
    char path[256];
    int fd = tmpfile_fd(path);
    static uint8_t chunk[65536];
    struct fmt_info info;
    struct extents e = {0, 0, 0, 1};

    memset(chunk, 0x5a, sizeof(chunk));
    assert_int_equal(pwrite(fd, chunk, sizeof(chunk), 0), sizeof(chunk));
    assert_int_equal(fmt_raw_is_sparse(fd), 0);
    assert_int_equal(pwrite(fd, chunk, sizeof(chunk), 8 << 20), sizeof(chunk));
    assert_int_equal(ftruncate(fd, 64 << 20), 0);

    assert_int_equal(fmt_inspect_fd(fd, NULL, &info), 0);
    assert_int_equal(info.reason, FMT_R_OK);
    assert_int_equal(info.format, FMT_RAW);
    assert_int_equal(info.virtual_size, 64 << 20);
    assert_true(info.actual_size < (64 << 20)); /* allocated bytes, not the length */

    int sparse = fmt_raw_is_sparse(fd);
    assert_true(sparse == 0 || sparse == 1);
    assert_int_equal(fmt_raw_extents(fd, count_extent, &e), 0);
    assert_true(e.ordered);
    assert_int_equal(e.end, 64 << 20);
    assert_true(e.data >= 2 * sizeof(chunk));
    if (sparse)
        assert_true(e.zero > 0);
    close(fd);
    unlink(path);
}

static void test_fd_inspection_refuses_a_pipe(void **state)
{
    int p[2];
    struct fmt_info info;

    assert_int_equal(pipe(p), 0);
    assert_int_equal(fmt_inspect_fd(p[0], NULL, &info), -EINVAL);
    assert_int_equal(info.reason, FMT_R_READ_ERROR);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_names_round_trip),
        cmocka_unit_test(test_reason_strings_are_distinct),
        cmocka_unit_test(test_empty_file_is_refused),
        cmocka_unit_test(test_plain_bytes_are_raw_of_file_size),
        cmocka_unit_test(test_read_error_is_not_a_verdict),
        cmocka_unit_test(test_source_shorter_than_its_size_is_a_read_error),
        cmocka_unit_test(test_short_reads_give_the_same_verdict),
        cmocka_unit_test(test_overlay_build_refuses_bad_arguments),
        cmocka_unit_test(test_without_backing_path_a_standalone_qcow2_is_built),
        cmocka_unit_test(test_overlay_size_does_not_grow_with_the_base),
        cmocka_unit_test(test_overlay_is_refused_unless_trusted),
        cmocka_unit_test(test_inspecting_a_100g_overlay_reads_a_few_kib),
        cmocka_unit_test(test_qcow2_header_fields_each_have_their_reason),
        cmocka_unit_test(test_qcow2_data_file_extension_alone_is_refused),
        cmocka_unit_test(test_qcow2_extension_walk_is_bounded_and_batched),
        cmocka_unit_test(test_declared_format_must_match_both_ways),
        cmocka_unit_test(test_virtual_size_over_cap_has_its_own_reason),
        cmocka_unit_test(test_iso_with_qcow2_header_is_a_polyglot),
        cmocka_unit_test(test_isohybrid_mbr_is_not_a_polyglot),
        cmocka_unit_test(test_vmdk_descriptor_rules),
        cmocka_unit_test(test_details_quoting_image_bytes_are_printable),
        cmocka_unit_test(test_vmdk_zero_capacity_with_descriptor_is_refused),
        cmocka_unit_test(test_vmdk_text_descriptor_is_always_refused),
        cmocka_unit_test(test_qed_and_unsupported_formats_are_refused),
        cmocka_unit_test(test_fd_inspection_and_sparse_helpers),
        cmocka_unit_test(test_fd_inspection_refuses_a_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
