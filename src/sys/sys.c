/* sys.c — formatting, mirrors and mounts: the daemon's only changes to the system.
 *
 * Programs run through st_run (posix_spawn, no shell, a timeout) and their output is
 * kept for the error message, folded onto one line. */
#include "stowage/sys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stowage/run.h"

#define MKFS_TIMEOUT_S 600
#define TOOL_TIMEOUT_S 60

/* The program's output as one line for a message: newlines become "; ". */
static void one_line(const char *in, char *out, size_t outlen)
{
    size_t len = 0;
    for (; *in && len + 3 < outlen; in++) {
        if (*in != '\n')
            out[len++] = *in;
        else if (len > 0 && out[len - 1] != ' ')
            len += (size_t)snprintf(out + len, outlen - len, "; ");
    }
    while (len > 0 && (out[len - 1] == ' ' || out[len - 1] == ';'))
        len--;
    out[len] = '\0';
}

/* Run a tool (argv[0] is its name) to the end. 0 when it exited 0; otherwise e says
 * what it printed. */
static int run_tool(char *const argv[], unsigned timeout_s, struct st_err *e)
{
    char msg[200];
    char *out = NULL;
    size_t len;
    int status;

    int rc = st_run(argv, 1, timeout_s * 1000, 64 * 1024, &out, &len, &status);
    if (rc == -ENOENT)
        return st_fail(e, ST_UNAVAILABLE, "%s is not installed", argv[0]);
    if (rc == -ETIMEDOUT)
        return st_fail(e, ST_UNAVAILABLE, "%s did not finish in %u s", argv[0], timeout_s);
    if (rc < 0)
        return st_fail_errno(e, -rc, "cannot run %s", argv[0]);
    one_line(out, msg, sizeof msg);
    free(out);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        return st_fail(e, ST_INTERNAL, "%s was killed by signal %d", argv[0], WTERMSIG(status));
    return st_fail(e, ST_INTERNAL, "%s failed (%d): %s", argv[0], WEXITSTATUS(status), msg);
}

int sys_mkfs_xfs(const char *dev, struct st_err *e)
{
    char *argv[] = {"mkfs.xfs", "-q", "-m", "reflink=1", (char *)dev, NULL};
    return run_tool(argv, MKFS_TIMEOUT_S, e);
}

int sys_wipe_xfs(const char *dev, struct st_err *e)
{
    char *argv[] = {"wipefs", "-q", "-a", "-t", "xfs", (char *)dev, NULL};
    return run_tool(argv, TOOL_TIMEOUT_S, e);
}

/* Said before any disk is looked at, so nothing is touched when it cannot work. */
int sys_md_usable(const char *field, struct st_err *e)
{
    char path[64];
    if (st_find_program("mdadm", path, sizeof path))
        return st_fail_field(e, ST_UNAVAILABLE, field,
                             "a mirrored volume needs md RAID1, but mdadm is not installed");
    if (access("/proc/mdstat", F_OK) != 0)
        return st_fail_field(e, ST_UNAVAILABLE, field,
                             "a mirrored volume needs md RAID1, but this kernel has no md "
                             "driver (/proc/mdstat is missing)");
    return 0;
}

int sys_md_create(const char *a, const char *b, char *dev, size_t dev_len, struct st_err *e)
{
    char path[32];
    int n;
    for (n = 0; n < 128; n++) {
        snprintf(path, sizeof path, "/sys/block/md%d", n);
        if (access(path, F_OK) != 0)
            break;
    }
    if (n == 128)
        return st_fail(e, ST_UNAVAILABLE, "no free md device");
    snprintf(dev, dev_len, "/dev/md%d", n);
    char *argv[] = {
        "mdadm",          "--create", dev,       "--run", "--level=1", "--raid-devices=2",
        "--metadata=1.2", (char *)a,  (char *)b, NULL};
    return run_tool(argv, TOOL_TIMEOUT_S, e);
}

int sys_md_destroy(const char *dev, const char *a, const char *b, struct st_err *e)
{
    char *stop[] = {"mdadm", "--stop", (char *)dev, NULL};
    char *zero[] = {"mdadm", "--zero-superblock", (char *)a, (char *)b, NULL};
    return run_tool(stop, TOOL_TIMEOUT_S, e) || run_tool(zero, TOOL_TIMEOUT_S, e) ? -1 : 0;
}

int sys_mount_xfs(const char *dev, const char *dir, struct st_err *e)
{
    if (mount(dev, dir, "xfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        return st_fail_errno(e, errno, "mount %s on %s", dev, dir);
    return 0;
}

int sys_umount(const char *dir, struct st_err *e)
{
    if (umount2(dir, 0) != 0)
        return st_fail_errno(e, errno, "cannot unmount %s", dir);
    return 0;
}
