/* mount.c — which mount holds a path, and how much room it has.
 *
 * External volumes are "any mount point" and local volumes are disks we mounted, so a
 * volume is healthy only while its root is still on the mount we expect. The kernel's
 * own table, /proc/self/mountinfo, answers that without trusting /etc/mtab; statvfs
 * gives the space the API reports in KB. */
#include "mountinfo.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include "stowage/probe.h"

static int odigit(char c)
{
    return c >= '0' && c <= '7';
}

int probe_mountinfo_unescape(char *s)
{
    char *w = s;

    for (; *s; s++) {
        if (*s != '\\') {
            *w++ = *s;
            continue;
        }
        if (!odigit(s[1]) || !odigit(s[2]) || !odigit(s[3]))
            return -EINVAL;
        *w++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
        s += 3;
    }
    *w = '\0';
    return 0;
}

static int copy_field(char *dst, size_t dstlen, char *src)
{
    if (probe_mountinfo_unescape(src) < 0 || strlen(src) >= dstlen)
        return -EINVAL;
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

/* "rw,noatime" / "ro,relatime": is the first option "ro" or any option exactly "ro"? */
static int has_ro(const char *opts)
{
    size_t n;

    while (*opts) {
        n = strcspn(opts, ",");
        if (n == 2 && opts[0] == 'r' && opts[1] == 'o')
            return 1;
        opts += n + (opts[n] == ',');
    }
    return 0;
}

/* 36 35 98:0 /root /mnt/point rw,noatime master:1 - ext4 /dev/sda1 rw,errors=continue */
int probe_mountinfo_parse_line(char *line, struct probe_mount *out)
{
    char *f[6], *fstype, *source, *super, *save = NULL, *tok;
    unsigned maj, min;
    int i;

    line[strcspn(line, "\n")] = '\0';
    for (i = 0; i < 6; i++)
        if (!(f[i] = strtok_r(i ? NULL : line, " ", &save)))
            return -EINVAL;
    /* Optional fields (shared:N, master:N, …) run up to the lone "-". */
    while ((tok = strtok_r(NULL, " ", &save)) && strcmp(tok, "-") != 0)
        ;
    if (!tok || !(fstype = strtok_r(NULL, " ", &save)) || !(source = strtok_r(NULL, " ", &save)) ||
        !(super = strtok_r(NULL, " ", &save)))
        return -EINVAL;
    if (sscanf(f[2], "%u:%u", &maj, &min) != 2)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    if (copy_field(out->mount_point, sizeof out->mount_point, f[4]) < 0 ||
        copy_field(out->source, sizeof out->source, source) < 0 ||
        copy_field(out->fstype, sizeof out->fstype, fstype) < 0)
        return -EINVAL;
    out->devno = makedev(maj, min);
    out->readonly = has_ro(f[5]) || has_ro(super);
    return 0;
}

/* Does mount point mp contain path p (both absolute, canonical)? Returns mp's length. */
static size_t covers(const char *mp, const char *p)
{
    size_t n = strlen(mp);

    if (n == 1 && mp[0] == '/')
        return 1;
    if (strncmp(mp, p, n) == 0 && (p[n] == '\0' || p[n] == '/'))
        return n;
    return 0;
}

/* Scan mountinfo; keep the entry with the longest mount point covering real (exact
 * when exact != 0). Later lines win ties: they are mounted on top. 1 found, 0 not. */
static int scan(const char *real, int exact, struct probe_mount *best, struct st_err *e)
{
    struct probe_mount *m = malloc(sizeof *m);
    FILE *fp = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0, n, best_len = 0;
    int found = 0, rc = 0;

    if (!m || !fp) {
        rc = m ? -errno : -ENOMEM;
        st_fail_errno(e, -rc, "reading /proc/self/mountinfo");
        goto out;
    }
    while (getline(&line, &cap, fp) > 0) {
        if (probe_mountinfo_parse_line(line, m) < 0)
            continue;
        n = exact ? (strcmp(m->mount_point, real) == 0 ? strlen(real) : 0)
                  : covers(m->mount_point, real);
        if (n > 0 && n >= best_len) {
            *best = *m;
            best_len = n;
            found = 1;
        }
    }
    rc = found;
out:
    free(line);
    free(m);
    if (fp)
        fclose(fp);
    return rc;
}

int probe_mount_of(const char *path, struct probe_mount *out, struct st_err *e)
{
    char real[PATH_MAX];
    int rc;

    if (!realpath(path, real)) {
        rc = -errno;
        st_fail_errno(e, -rc, "%s", path);
        return rc;
    }
    rc = scan(real, 0, out, e);
    if (rc == 0) {
        st_fail(e, ST_NOT_FOUND, "%s: no mount holds it", path);
        return -ENOENT;
    }
    return rc < 0 ? rc : 0;
}

int probe_is_mount_point(const char *path)
{
    struct probe_mount *m = malloc(sizeof *m);
    char real[PATH_MAX];
    int rc;

    if (!m)
        return -1;
    rc = realpath(path, real) ? scan(real, 1, m, NULL) : -1;
    free(m);
    return rc < 0 ? -1 : rc;
}

int probe_space_kb(const char *path, uint64_t *total_kb, uint64_t *free_kb, int *readonly,
                   struct st_err *e)
{
    struct statvfs sv;

    if (statvfs(path, &sv) < 0) {
        int rc = -errno;

        st_fail_errno(e, -rc, "statvfs %s", path);
        return rc;
    }
    /* Multiply before dividing: f_frsize may be 512 (not a multiple of 1024). */
    if (total_kb)
        *total_kb = (uint64_t)sv.f_blocks * sv.f_frsize / 1024;
    if (free_kb)
        *free_kb = (uint64_t)sv.f_bavail * sv.f_frsize / 1024;
    if (readonly)
        *readonly = (sv.f_flag & ST_RDONLY) != 0;
    return 0;
}
