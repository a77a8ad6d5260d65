/* disk.c — the physical disks of this host, as sysfs and libblkid see them.
 *
 * flexVDI's PhysicalDiskInfo needs a stable id per disk (the WWN where there is one),
 * vendor and model, and volume_create must refuse a disk that holds anything: a
 * filesystem, a partition table, a RAID member, a mount, a holder. sysfs answers the
 * identity questions without opening the device; libblkid reads the signatures through
 * a read-only fd. Nothing here ever writes to a device. The id rules are in docs/disks.md. */
#include "stowage/probe.h"

#include <blkid.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "mountinfo.h"

#define MAX_RELATED 64 /* a disk, its partitions and the md/dm devices stacked on them */

/* ---- small sysfs helpers ---- */

/* Read a sysfs attribute into buf with surrounding whitespace trimmed. 0 or -errno. */
__attribute__((format(printf, 3, 4))) static int sysfs_read(char *buf, size_t len, const char *fmt,
                                                            ...)
{
    char path[512];
    va_list ap;
    ssize_t n;
    size_t s = 0;
    int fd, rc;

    va_start(ap, fmt);
    rc = vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    if (rc < 0 || (size_t)rc >= sizeof path)
        return -ENAMETOOLONG;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    n = read(fd, buf, len - 1);
    rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc < 0)
        return rc;
    buf[n] = '\0';
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    while (buf[s] && isspace((unsigned char)buf[s]))
        s++;
    memmove(buf, buf + s, (size_t)n - s + 1);
    return 0;
}

/* /sys/block/NAME/ATTR as a number. */
static int sysfs_u64(uint64_t *v, const char *name, const char *attr)
{
    char buf[32], *end;

    if (sysfs_read(buf, sizeof buf, "/sys/block/%s/%s", name, attr) < 0)
        return -ENOENT;
    errno = 0;
    *v = strtoull(buf, &end, 10);
    return (errno || end == buf) ? -EINVAL : 0;
}

__attribute__((format(printf, 1, 2))) static int sysfs_exists(const char *fmt, ...)
{
    char path[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    return n > 0 && (size_t)n < sizeof path && access(path, F_OK) == 0;
}

/* A kernel block device name: no '/', not "." or "..", fits struct probe_disk. */
static int name_ok(const char *name)
{
    return name && name[0] && name[0] != '.' && !strchr(name, '/') &&
           strlen(name) < sizeof(((struct probe_disk *)0)->name);
}

/* ---- ids ---- */

static int is_hex(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return n > 0;
}

/* Copy src into out keeping [A-Za-z0-9._-]: whitespace runs become one '_' (as udev
 * does for by-id names), other bytes '_', ends trimmed. Returns the length, or -ERANGE. */
static int sanitize(const char *src, char *out, size_t outlen)
{
    size_t n = 0;

    while (isspace((unsigned char)*src))
        src++;
    for (; *src; src++) {
        unsigned char c = (unsigned char)*src;

        if (isspace(c)) {
            while (isspace((unsigned char)src[1]))
                src++;
            if (!src[1])
                break;
            c = '_';
        } else if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
            c = '_';
        }
        if (n + 1 >= outlen)
            return -ERANGE;
        out[n++] = (char)c;
    }
    if (outlen)
        out[n] = '\0';
    return (int)n;
}

/* "naa.5002…" → "35002…", the form scsi_id/multipath print (the SCSI designator type
 * digit, then the identifier): 3 NAA, 2 EUI-64, 1 T10 vendor id. by-id's "0x…" is an
 * NAA WWN. Returns the length written, 0 when wwid is not a WWN (e.g. "nvme.…"). */
static int wwn_id(const char *wwid, char *out, size_t outlen)
{
    const char *hex = NULL;
    char type = 0, t10[96];
    size_t n, i;

    if (!strncasecmp(wwid, "naa.", 4) || !strncasecmp(wwid, "0x", 2))
        type = '3', hex = wwid + (wwid[1] == 'x' || wwid[1] == 'X' ? 2 : 4);
    else if (!strncasecmp(wwid, "eui.", 4))
        type = '2', hex = wwid + 4;
    if (hex) {
        n = strlen(hex);
        if (!is_hex(hex, n) || n > 32 || n + 2 > outlen)
            return 0;
        out[0] = type;
        for (i = 0; i < n; i++)
            out[i + 1] = (char)tolower((unsigned char)hex[i]);
        out[n + 1] = '\0';
        return (int)n + 1;
    }
    if (!strncasecmp(wwid, "t10.", 4) && sanitize(wwid + 4, t10, sizeof t10) > 0 &&
        strlen(t10) + 2 <= outlen)
        return snprintf(out, outlen, "1%s", t10);
    return 0;
}

/* The bus a kernel name implies ("vdb" → virtio): stable when the disk is re-attached
 * under another name, and what udev uses as the by-id prefix for virtio. */
static void bus_of(const char *name, char *out, size_t outlen)
{
    static const struct {
        const char *prefix, *bus;
    } buses[] = {
        {"nvme", "nvme"}, {"xvd", "xen"},    {"vd", "virtio"},
        {"sd", "scsi"},   {"mmcblk", "mmc"}, {"hd", "ata"},
    };
    size_t i, n = 0;

    for (i = 0; i < sizeof buses / sizeof buses[0]; i++)
        if (!strncmp(name, buses[i].prefix, strlen(buses[i].prefix))) {
            snprintf(out, outlen, "%s", buses[i].bus);
            return;
        }
    while (isalpha((unsigned char)name[n]) && n + 1 < outlen)
        n++;
    snprintf(out, outlen, "%.*s", (int)n, n ? name : "dev");
}

static int loop_id(const char *backing, char *out, size_t outlen)
{
    static const char hexd[] = "0123456789abcdef";
    const char *deleted = strstr(backing, " (deleted)");
    unsigned char md[32];
    size_t len = deleted && !deleted[10] ? (size_t)(deleted - backing) : strlen(backing);
    int i;

    if (outlen < 5 + 16 + 1 || gnutls_hash_fast(GNUTLS_DIG_SHA256, backing, len, md) < 0)
        return -ERANGE;
    memcpy(out, "loop-", 5);
    for (i = 0; i < 8; i++) {
        out[5 + 2 * i] = hexd[md[i] >> 4];
        out[6 + 2 * i] = hexd[md[i] & 15];
    }
    out[21] = '\0';
    return 0;
}

int probe_disk_id(const char *name, const char *wwid, const char *serial,
                  const char *loop_backing_file, char *out, size_t outlen)
{
    char bus[16], clean[96];

    if (!out || outlen == 0)
        return -EINVAL;
    if (wwid && *wwid && wwn_id(wwid, out, outlen) > 0)
        return 0;
    if (loop_backing_file && *loop_backing_file)
        return loop_id(loop_backing_file, out, outlen);
    if (name && serial && sanitize(serial, clean, sizeof clean) > 0 &&
        strspn(clean, "_") != strlen(clean)) {
        bus_of(name, bus, sizeof bus);
        if ((size_t)snprintf(out, outlen, "%s-%s", bus, clean) < outlen)
            return 0;
    }
    if (!name_ok(name) || sanitize(name, clean, sizeof clean) <= 0)
        return -EINVAL;
    return (size_t)snprintf(out, outlen, "dev-%s", clean) < outlen ? 0 : -ERANGE;
}

/* ---- identity from sysfs ---- */

/* SCSI unit serial number, VPD page 0x80: 4-byte header, then ASCII. */
static int vpd80_serial(const char *name, char *out, size_t outlen)
{
    unsigned char buf[256];
    char path[128];
    size_t len;
    ssize_t n;
    int fd;

    snprintf(path, sizeof path, "/sys/block/%s/device/vpd_pg80", name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 5 || buf[1] != 0x80)
        return -ENOENT;
    len = (size_t)buf[3] < (size_t)n - 4 ? buf[3] : (size_t)n - 4;
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, buf + 4, len);
    out[len] = '\0';
    return sanitize(out, out, outlen) > 0 ? 0 : -ENOENT;
}

/* /dev/disk/by-id/wwn-* → name (udev's ID_WWN), for disks whose sysfs has no wwid. */
static int byid_wwn(const char *name, char *out, size_t outlen)
{
    DIR *d = opendir("/dev/disk/by-id");
    struct dirent *de;
    char link[512], target[256];
    ssize_t n;
    int rc = -ENOENT;

    if (!d)
        return -errno;
    while (rc < 0 && (de = readdir(d))) {
        if (strncmp(de->d_name, "wwn-", 4) != 0)
            continue;
        snprintf(link, sizeof link, "/dev/disk/by-id/%s", de->d_name);
        if ((n = readlink(link, target, sizeof target - 1)) < 0)
            continue;
        target[n] = '\0';
        if (strcmp(strrchr(target, '/') ? strrchr(target, '/') + 1 : target, name) == 0 &&
            strlen(de->d_name + 4) < outlen) {
            snprintf(out, outlen, "%s", de->d_name + 4);
            rc = 0;
        }
    }
    closedir(d);
    return rc;
}

static void read_identity(const char *name, struct probe_disk *d)
{
    char wwid[128] = "", backing[4096] = "";

    sysfs_read(d->vendor, sizeof d->vendor, "/sys/block/%s/device/vendor", name);
    sysfs_read(d->model, sizeof d->model, "/sys/block/%s/device/model", name);
    if (sysfs_read(d->serial, sizeof d->serial, "/sys/block/%s/device/serial", name) < 0 &&
        sysfs_read(d->serial, sizeof d->serial, "/sys/block/%s/serial", name) < 0 &&
        vpd80_serial(name, d->serial, sizeof d->serial) < 0)
        d->serial[0] = '\0';
    if (sysfs_read(wwid, sizeof wwid, "/sys/block/%s/device/wwid", name) < 0 &&
        sysfs_read(wwid, sizeof wwid, "/sys/block/%s/wwid", name) < 0 &&
        byid_wwn(name, wwid, sizeof wwid) < 0)
        wwid[0] = '\0';
    if (!strncmp(name, "loop", 4))
        sysfs_read(backing, sizeof backing, "/sys/block/%s/loop/backing_file", name);
    probe_disk_id(name, wwid, d->serial, backing, d->id, sizeof d->id);
}

/* ---- partitions and holders ---- */

struct related {
    char name[MAX_RELATED][32];
    size_t n;
    size_t n_parts; /* name[0] is the disk, then partitions, then holders */
};

static void add_related(struct related *r, const char *name)
{
    size_t i;

    if (r->n == MAX_RELATED || strlen(name) >= sizeof r->name[0])
        return;
    for (i = 0; i < r->n; i++)
        if (!strcmp(r->name[i], name))
            return;
    memcpy(r->name[r->n++], name, strlen(name) + 1);
}

/* Partitions are the subdirectories of /sys/block/X that have a "partition" file. */
static void collect_partitions(const char *disk, struct related *r)
{
    char path[300];
    struct dirent *de;
    DIR *d;

    snprintf(path, sizeof path, "/sys/block/%s", disk);
    if (!(d = opendir(path)))
        return;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, disk, strlen(disk)) &&
            sysfs_exists("/sys/block/%s/%s/partition", disk, de->d_name))
            add_related(r, de->d_name);
    closedir(d);
}

/* md/dm devices built on the disk or its partitions, and what is stacked on those. */
static void collect_holders(struct related *r)
{
    char path[300];
    struct dirent *de;
    size_t i;
    DIR *d;

    for (i = 0; i < r->n; i++) {
        snprintf(path, sizeof path, "/sys/class/block/%s/holders", r->name[i]);
        if (!(d = opendir(path)))
            continue;
        while ((de = readdir(d)))
            if (de->d_name[0] != '.')
                add_related(r, de->d_name);
        closedir(d);
    }
}

/* ---- signatures ---- */

/* What libblkid sees on /dev/name (read-only fd). 1 found, 0 nothing, -errno. */
static int blkid_one(const char *name, struct probe_disk *d)
{
    char dev[64];
    const char *v;
    blkid_probe pr;
    int rc;

    snprintf(dev, sizeof dev, "/dev/%s", name);
    errno = 0;
    if (!(pr = blkid_new_probe_from_filename(dev)))
        return errno ? -errno : -EIO;
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr,
                                      BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_USAGE);
    blkid_probe_enable_partitions(pr, 1);
    rc = blkid_do_safeprobe(pr);
    if (rc == 0) {
        if (!d->fs_type[0] && !blkid_probe_lookup_value(pr, "TYPE", &v, NULL)) {
            snprintf(d->fs_type, sizeof d->fs_type, "%s", v);
            if (!blkid_probe_lookup_value(pr, "UUID", &v, NULL))
                snprintf(d->fs_uuid, sizeof d->fs_uuid, "%s", v);
        }
        if (!d->pt_type[0] && !blkid_probe_lookup_value(pr, "PTTYPE", &v, NULL))
            snprintf(d->pt_type, sizeof d->pt_type, "%s", v);
    }
    blkid_free_probe(pr);
    /* -2: several signatures that contradict each other — certainly not empty. */
    return rc == 0 || rc == -2 ? 1 : rc == 1 ? 0 : -EIO;
}

/* has_signature: 1 something, 0 nothing, -1 could not look (treat as "not empty"). */
static void probe_signatures(const struct related *r, struct probe_disk *d)
{
    size_t i;
    int rc;

    d->has_signature = 0;
    for (i = 0; i <= r->n_parts; i++) {
        rc = blkid_one(r->name[i], d);
        if (rc > 0)
            d->has_signature = 1;
        else if (rc < 0 && d->has_signature == 0)
            d->has_signature = -1;
    }
    /* Partitions themselves are a layout someone made, even when blkid saw no table. */
    if (r->n_parts > 0 && d->has_signature == 0)
        d->has_signature = 1;
}

/* ---- in use: mounted or swap ---- */

struct usage {
    dev_t *dev;
    size_t n, cap;
};

static int usage_add(struct usage *u, dev_t dev)
{
    dev_t *nd;

    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 64;
        if (!(nd = realloc(u->dev, u->cap * sizeof *nd)))
            return -ENOMEM;
        u->dev = nd;
    }
    u->dev[u->n++] = dev;
    return 0;
}

static void usage_add_path(struct usage *u, const char *path)
{
    struct stat st;

    if (!strncmp(path, "/dev/", 5) && stat(path, &st) == 0 && S_ISBLK(st.st_mode))
        usage_add(u, st.st_rdev);
}

/* Block devices in use: every mount (its st_dev and its /dev source) and every swap. */
static int load_usage(struct usage *u)
{
    struct probe_mount *m = malloc(sizeof *m);
    FILE *fp = fopen("/proc/self/mountinfo", "re");
    char *line = NULL, path[4096];
    size_t cap = 0;
    int rc = 0;

    if (!m || !fp) {
        rc = m ? -errno : -ENOMEM;
        goto out;
    }
    while (getline(&line, &cap, fp) > 0)
        if (probe_mountinfo_parse_line(line, m) == 0) {
            if (usage_add(u, m->devno) < 0)
                rc = -ENOMEM;
            usage_add_path(u, m->source);
        }
    fclose(fp);
    if ((fp = fopen("/proc/swaps", "re")))
        while (getline(&line, &cap, fp) > 0)
            if (sscanf(line, "%4095s", path) == 1)
                usage_add_path(u, path);
out:
    if (fp)
        fclose(fp);
    free(line);
    free(m);
    return rc;
}

static int is_used(const struct usage *u, const char *name)
{
    char buf[32];
    unsigned maj, min;
    size_t i;

    if (sysfs_read(buf, sizeof buf, "/sys/class/block/%s/dev", name) < 0 ||
        sscanf(buf, "%u:%u", &maj, &min) != 2)
        return 0;
    for (i = 0; i < u->n; i++)
        if (u->dev[i] == makedev(maj, min))
            return 1;
    return 0;
}

/* ---- one disk ---- */

static int fill_disk(const char *name, const struct usage *u, struct probe_disk *d,
                     struct st_err *e)
{
    struct related *r = calloc(1, sizeof *r);
    uint64_t sectors = 0, ro = 0;
    unsigned maj, min;
    char buf[32];
    size_t i;

    if (!r)
        return st_fail(e, ST_INTERNAL, "out of memory"), -ENOMEM;
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->host_device, sizeof d->host_device, "/dev/%s", name);
    if (sysfs_read(buf, sizeof buf, "/sys/block/%s/dev", name) == 0 &&
        sscanf(buf, "%u:%u", &maj, &min) == 2)
        d->devno = makedev(maj, min);
    sysfs_u64(&sectors, name, "size"); /* always 512-byte units */
    d->size_bytes = sectors * 512;
    sysfs_u64(&ro, name, "ro");
    d->readonly = ro != 0;
    read_identity(name, d);

    add_related(r, name);
    collect_partitions(name, r);
    r->n_parts = r->n - 1;
    collect_holders(r);
    if (r->n > r->n_parts + 1)
        snprintf(d->holder, sizeof d->holder, "%s", r->name[r->n_parts + 1]);
    probe_signatures(r, d);
    for (i = 0; i < r->n && !d->mounted; i++)
        d->mounted = is_used(u, r->name[i]);
    free(r);
    return 0;
}

int probe_disk_one(const char *name, struct probe_disk *out, struct st_err *e)
{
    struct usage u = {0};
    int rc;

    if (!name_ok(name))
        return st_fail_field(e, ST_INVALID, "name", "bad block device name"), -EINVAL;
    if (!sysfs_exists("/sys/block/%s", name))
        return st_fail(e, ST_NOT_FOUND, "no block device %s", name), -ENOENT;
    if ((rc = load_usage(&u)) < 0) {
        st_fail_errno(e, -rc, "reading mounts");
        goto out;
    }
    rc = fill_disk(name, &u, out, e);
out:
    free(u.dev);
    return rc;
}

/* ---- all disks ---- */

/* Not a physical disk we could offer: RAM disks, composites (md, dm — their members
 * are listed instead, with holder set), loop devices with nothing attached. */
static int skip_name(const char *name)
{
    char backing[8];

    if ((!strncmp(name, "ram", 3) && isdigit((unsigned char)name[3])) ||
        !strncmp(name, "zram", 4) || !strncmp(name, "dm-", 3) ||
        (!strncmp(name, "md", 2) && (isdigit((unsigned char)name[2]) || name[2] == '_')))
        return 1;
    return !strncmp(name, "loop", 4) &&
           sysfs_read(backing, sizeof backing, "/sys/block/%s/loop/backing_file", name) < 0;
}

static int filter_sysblock(const struct dirent *de)
{
    return de->d_name[0] != '.' && name_ok(de->d_name) && !skip_name(de->d_name);
}

int probe_disks(struct probe_disk **out, size_t *n, struct st_err *e)
{
    struct dirent **names = NULL;
    struct probe_disk *disks = NULL;
    struct usage u = {0};
    int count, i, rc = 0;

    *out = NULL;
    *n = 0;
    if ((count = scandir("/sys/block", &names, filter_sysblock, versionsort)) < 0) {
        rc = -errno;
        st_fail_errno(e, -rc, "/sys/block");
        return rc;
    }
    if ((rc = load_usage(&u)) < 0) {
        st_fail_errno(e, -rc, "reading mounts");
        goto out;
    }
    if (count > 0 && !(disks = calloc((size_t)count, sizeof *disks))) {
        st_fail(e, ST_INTERNAL, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    for (i = 0; i < count; i++) {
        struct probe_disk *d = &disks[*n];

        /* A device that vanished mid-scan is simply not listed. */
        if (fill_disk(names[i]->d_name, &u, d, NULL) == 0 && d->size_bytes > 0)
            (*n)++;
    }
    *out = disks;
    disks = NULL;
out:
    for (i = 0; i < count; i++)
        free(names[i]);
    free(names);
    free(disks);
    free(u.dev);
    return rc;
}
