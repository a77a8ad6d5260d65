/* other.c — formats that are recognised only to be refused.
 *
 * QED is refused outright (qemu deprecated it; it has backing files and no
 * one uploads it legitimately). The others are formats qemu's probe would
 * pick over raw: were such a file accepted as raw, anything that later let
 * qemu probe it would read it as something else. Their magic is enough. */
#include "fmt_int.h"

#define QED_MAGIC "QED\0"

#define MAGIC(f, off, s)                                                                           \
    {                                                                                              \
        f, off, s, sizeof(s) - 1                                                                   \
    }

static const struct {
    enum fmt_format format;
    size_t off;
    const char *magic;
    size_t len;
} unsupported[] = {
    MAGIC(FMT_VDI, 0x40, "\x7f\x10\xda\xbe"), /* 0xbeda107f little-endian */
    MAGIC(FMT_LUKS, 0, "LUKS\xba\xbe"),
    MAGIC(FMT_PARALLELS, 0, "WithoutFreeSpace"),
    MAGIC(FMT_PARALLELS, 0, "WithouFreSpacExt"),
    MAGIC(FMT_BOCHS, 0, "Bochs Virtual HD Image"),
    MAGIC(FMT_CLOOP, 0, "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$IMAGE offset=$OFFSET\n"),
};

int fmt_detect_qed(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p)
{
    if (r->head_len < 4 || memcmp(r->head, QED_MAGIC, 4))
        return 0;
    p->matched = 1;
    p->format = FMT_QED;
    if (r->head_len >= 56)
        p->virtual_size = get_le64(r->head + 48);
    return probe_refuse(p, FMT_R_QED, "QED images are never accepted");
}

int fmt_detect_other(struct fmt_reader *r, const struct fmt_opts *o, struct fmt_probe *p)
{
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        size_t end = unsupported[i].off + unsupported[i].len;
        if (r->head_len < end ||
            memcmp(r->head + unsupported[i].off, unsupported[i].magic, unsupported[i].len))
            continue;
        p->matched = 1;
        p->format = unsupported[i].format;
        return probe_refuse(p, FMT_R_UNSUPPORTED, "%s images are not accepted",
                            fmt_name(unsupported[i].format));
    }
    return 0;
}
