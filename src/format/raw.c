/* raw.c — what is known about raw images: partition table signatures (which
 * keep a disk raw) and the sparse layout the data path needs to skip holes. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmt_int.h"

uint32_t fmt_partition_flags(const struct fmt_reader *r)
{
    uint32_t flags = 0;

    if (r->head_len >= 512 && r->head[510] == 0x55 && r->head[511] == 0xAA)
        flags |= FMT_F_MBR;
    /* The GPT header sits in LBA 1 (512-byte sectors; a 4K-sector GPT
     * keeps its protective MBR, so it is still flagged as one). */
    if (r->head_len >= 520 && !memcmp(r->head + 512, "EFI PART", 8))
        flags |= FMT_F_GPT;
    return flags;
}

static int data_after(int fd, off_t off, off_t size, off_t *data)
{
    off_t d = lseek(fd, off, SEEK_DATA);

    if (d < 0 && errno == ENXIO) {
        *data = size; /* only a hole up to the end */
        return 0;
    }
    if (d < 0)
        return -errno;
    *data = d;
    return 0;
}

int fmt_raw_is_sparse(int fd)
{
    struct stat st;
    off_t hole;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if (st.st_size == 0)
        return 0;
    /* pread-only callers share the fd: SEEK_HOLE moves the offset, put it back. */
    off_t saved = lseek(fd, 0, SEEK_CUR);
    hole = lseek(fd, 0, SEEK_HOLE);
    int err = hole < 0 ? errno : 0;
    if (saved >= 0)
        lseek(fd, saved, SEEK_SET);
    if (hole < 0)
        return err == EINVAL ? 0 : -err; /* EINVAL: the filesystem cannot tell */
    return hole < st.st_size;
}

int fmt_raw_extents(int fd, fmt_extent_fn fn, void *ud)
{
    struct stat st;
    off_t off = 0, data = 0, hole;
    int ret = 0;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    off_t saved = lseek(fd, 0, SEEK_CUR);
    while (off < st.st_size) {
        ret = data_after(fd, off, st.st_size, &data);
        if (ret == -EINVAL) { /* no SEEK_DATA: all of it is data */
            ret = fn(ud, (uint64_t)off, (uint64_t)(st.st_size - off), 0);
            break;
        }
        if (ret < 0)
            break;
        if (data > off) {
            ret = fn(ud, (uint64_t)off, (uint64_t)(data - off), 1);
            if (ret)
                break;
        }
        if (data >= st.st_size)
            break;
        hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0) {
            ret = -errno;
            break;
        }
        if (hole > st.st_size || hole <= data) /* the file changed under us */
            hole = st.st_size;
        ret = fn(ud, (uint64_t)data, (uint64_t)(hole - data), 0);
        if (ret)
            break;
        off = hole;
    }
    if (saved >= 0)
        lseek(fd, saved, SEEK_SET);
    return ret;
}
