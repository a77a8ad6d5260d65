/* fuzz_inspect.c — libFuzzer harness for the format inspector.
 *
 * The input is an image (flat, or sparse as sparse_input.h describes),
 * inspected through the read callback as the daemon does. Beyond "no crash,
 * no leak, no sanitizer report", every verdict must be self-consistent: an
 * accepted image is of an accepted format and under the cap, a raw one is as
 * big as its file, details are printable, and the bytes read stay bounded.
 * An input starting with "STWOVRL1" instead drives the overlay writer: what
 * it builds must be accepted back (with allow_backing_file) at the same size
 * and backing path. Build: fuzz/run.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparse_input.h"
#include "stowage/format.h"

#define OVERLAY_MAGIC "STWOVRL1"

static void fail(const char *why, const struct fmt_info *info)
{
    fprintf(stderr,
            "fuzz_inspect: invariant broken: %s (format %s, reason %s, vsize %llu, detail '%s')\n",
            why, fmt_name(info->format), fmt_reason_str(info->reason),
            (unsigned long long)info->virtual_size, info->detail);
    abort();
}

static void check_verdict(const struct fuzz_image *img, const struct fmt_info *info, int ret)
{
    uint64_t cap = img->opts.max_virtual_size;

    if (ret == -ENOMEM)
        return;
    if (ret != 0)
        fail("a memory source cannot fail to read", info);
    if (info->reason < 0 || info->reason >= FMT_R_COUNT || info->format < 0 ||
        info->format >= FMT_COUNT)
        fail("out-of-range enum", info);
    for (const char *c = info->detail; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            fail("unprintable detail", info);
    if (memchr(info->detail, 0, sizeof(info->detail)) == NULL)
        fail("unterminated detail", info);
    /* Each region is read at most a few times, never a loop over the file. */
    uint64_t bound = img->flat ? 8 * img->size + 256 * 1024 : UINT64_C(96) << 20;
    if (info->bytes_read > bound)
        fail("read too much", info);
    if (info->reason != FMT_R_OK)
        return;
    switch (info->format) {
    case FMT_RAW:
        if (info->virtual_size != img->size)
            fail("raw size differs from the file size", info);
        break;
    case FMT_ISO:
        if (info->virtual_size != img->size)
            fail("iso size differs from the file size", info);
        break;
    case FMT_QCOW2:
    case FMT_VMDK:
    case FMT_VHD:
    case FMT_VHDX:
        break;
    default:
        fail("accepted a refused format", info);
    }
    if (info->virtual_size > cap)
        fail("accepted over the cap", info);
    if ((info->flags & FMT_F_BACKING) && (!img->opts.allow_backing_file || !info->backing_file[0]))
        fail("backing file without allow_backing_file", info);
}

/* "STWOVRL1" | u64 virtual size | u8 format index | backing path bytes */
static void overlay_roundtrip(const uint8_t *d, size_t n)
{
    static const char *const fmts[] = {"raw",  "qcow2", "vmdk", "vpc",
                                       "vhdx", "iso",   "qed",  "bogus"};
    char path[1100];
    void *buf = NULL;
    size_t len = 0;

    if (n < 17)
        return;
    uint64_t size = sparse_le(d + 8, 8);
    const char *fmt = fmts[d[16] % 8];
    size_t plen = n - 17 < sizeof(path) - 1 ? n - 17 : sizeof(path) - 1;
    memcpy(path, d + 17, plen);
    path[plen] = '\0';
    if (fmt_qcow2_overlay_build(path, fmt, size, &buf, &len) < 0)
        return;

    struct fuzz_image img;
    struct fmt_info info;
    if (fuzz_image_init(&img, buf, len) < 0) {
        free(buf);
        return;
    }
    img.opts.allow_backing_file = 1;
    img.opts.max_virtual_size = UINT64_MAX;
    struct fmt_source src = fuzz_image_source(&img);
    int ret = fmt_inspect(&src, &img.opts, &info);
    if (ret == 0) {
        if (info.reason != FMT_R_OK || info.format != FMT_QCOW2)
            fail("an overlay we built is refused", &info);
        if (info.virtual_size != size || strcmp(info.backing_file, path) ||
            strcmp(info.backing_format, fmt_qemu_driver(fmt_from_name(fmt))))
            fail("an overlay reads back differently", &info);
    }
    fuzz_image_free(&img);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_image img;
    struct fmt_info info;

    if (size >= 8 && !memcmp(data, OVERLAY_MAGIC, 8)) {
        overlay_roundtrip(data, size);
        return 0;
    }
    if (fuzz_image_init(&img, data, size) < 0)
        return 0;
    struct fmt_source src = fuzz_image_source(&img);
    int ret = fmt_inspect(&src, &img.opts, &info);
    check_verdict(&img, &info, ret);
    fuzz_image_free(&img);
    return 0;
}
