/* posix_watch.c — whether a directory of a POSIX volume is still as a scan found it,
 * told without looking at it again (backend.h: watch_arm, watch_poll, watch_close).
 *
 * One inotify instance per watch holds a watch on the directory itself (entries made,
 * removed, renamed in or out; its own attributes, removal, move and unmount) and one on
 * each regular file in it. A file's own watch sees what reaches the inode by any name or
 * descriptor: writes, truncation, attributes and the link count (a hard link made or
 * removed in another directory), opens and the last close after writing. A file becomes
 * open for writing only by an open (IN_OPEN, which does not say for what, so every open
 * counts) and stops being so only when the last descriptor of that open goes, the holder
 * dying included (IN_CLOSE_WRITE): a quiet queue means nobody began or stopped writing.
 * An open handed on (fork, SCM_RIGHTS) is the same open, still writing.
 *
 * What inotify cannot see is looked at on every poll: whether the directory's path still
 * leads to the watched directory (a parent renamed, something mounted over it), and
 * whether the mount table changed (something mounted over an entry), which
 * /proc/self/mountinfo signals with POLLPRI. Opening a directory is never a writer, so
 * those opens (ours among them) are not reported. The watch is the caller's object: the
 * volume itself stays unchanged after open. */
#include "file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* IN_UNMOUNT, IN_Q_OVERFLOW and IN_IGNORED come without asking. */
#define DIR_EVENTS                                                                                 \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_MODIFY |                 \
     IN_CLOSE_WRITE | IN_OPEN | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define FILE_EVENTS                                                                                \
    (IN_ATTRIB | IN_MODIFY | IN_OPEN | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF |            \
     IN_DONT_FOLLOW)

struct be_watch {
    int ifd;    /* the inotify instance */
    int mfd;    /* /proc/self/mountinfo */
    int dir_wd; /* the directory's own watch, -1 before the first arm */
    int dead;   /* the directory's watch is gone (IN_IGNORED): nothing more will come */
    dev_t dev;  /* the directory watched */
    ino_t ino;
    char rel[256];
    int *wds; /* the files' watches, sorted */
    size_t n;
};

void be_posix_watch_close(struct be_watch *w)
{
    if (!w)
        return;
    close(w->ifd);
    close(w->mfd);
    free(w->wds);
    free(w);
}

static struct be_watch *watch_new(const char *reldir, int *rc)
{
    struct be_watch *w = calloc(1, sizeof *w);
    if (!w) {
        *rc = -ENOMEM;
        return NULL;
    }
    w->dir_wd = -1;
    snprintf(w->rel, sizeof w->rel, "%s", reldir ? reldir : "");
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->mfd = w->ifd < 0 ? -1 : open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (w->ifd < 0 || w->mfd < 0) {
        *rc = -errno;
        if (w->ifd >= 0)
            close(w->ifd);
        free(w);
        return NULL;
    }
    return w;
}

static int by_wd(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Watch every regular file of the open directory d (and nothing else: a directory, FIFO
 * or link entry changes only by the directory's own events); the files' watches of the
 * last arm that no file has now are dropped. */
static int watch_files(struct be_watch *w, DIR *d)
{
    struct dirent *de;
    char path[320];
    int *wds = NULL, rc = 0;
    size_t n = 0, cap = 0;

    while ((de = readdir(d))) {
        if ((de->d_type != DT_REG && de->d_type != DT_UNKNOWN) || !strcmp(de->d_name, ".") ||
            !strcmp(de->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%d/%s", dirfd(d), de->d_name);
        int wd = inotify_add_watch(w->ifd, path, FILE_EVENTS);
        if (wd < 0 && (errno == ENOENT || errno == ENOTDIR))
            continue; /* gone meanwhile: the directory's watch saw it go */
        if (wd < 0) {
            rc = -errno; /* ENOSPC: max_user_watches */
            break;
        }
        if (n == cap) {
            int *grown = realloc(wds, (cap = cap ? cap * 2 : 256) * sizeof *wds);
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            wds = grown;
        }
        wds[n++] = wd;
    }
    if (rc < 0) {
        free(wds);
        return rc;
    }
    if (n)
        qsort(wds, n, sizeof *wds, by_wd);
    for (size_t i = 0, k = 0; i < w->n; i++) { /* both sorted: drop the old ones not kept */
        while (k < n && wds[k] < w->wds[i])
            k++;
        if (k == n || wds[k] != w->wds[i])
            inotify_rm_watch(w->ifd, w->wds[i]);
    }
    free(w->wds);
    w->wds = wds;
    w->n = n;
    return 0;
}

/* What one event says. The files' watches end when we drop them or their inode goes,
 * which its last name's removal (the directory's event) said first. */
static int event_says(struct be_watch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW)
        return BE_SEEN_CHANGE;
    if (ev->mask & IN_IGNORED) {
        if (ev->wd == w->dir_wd)
            w->dead = 1;
        return 0;
    }
    if (ev->mask & IN_OPEN)
        return (ev->mask & IN_ISDIR) ? 0 : BE_SEEN_OPEN;
    return BE_SEEN_CHANGE;
}

/* Every queued event read: what they say, or -errno. */
static int drain(struct be_watch *w)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int seen = 0;

    for (;;) {
        ssize_t len = read(w->ifd, buf, sizeof buf);
        if (len < 0 && errno == EINTR)
            continue;
        if (len < 0 && errno == EAGAIN)
            break;
        if (len < 0)
            return -errno;
        for (ssize_t off = 0; off < len;) {
            const struct inotify_event *ev = (const void *)(buf + off);
            seen |= event_says(w, ev);
            off += (ssize_t)(sizeof *ev + ev->len);
        }
    }
    return w->dead ? -ESTALE : seen;
}

/* 1 when the mount table changed since the last look (the look resets it). */
static int mounts_changed(const struct be_watch *w)
{
    struct pollfd p = {.fd = w->mfd, .events = POLLPRI};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLPRI | POLLERR));
}

static int arm(struct be_volume *v, struct be_watch *w)
{
    char path[32];
    struct stat sb;
    int rc = 0;

    int fd = be_posix_open_dir(v, w->rel, O_RDONLY);
    if (fd < 0)
        return fd;
    DIR *d = fstat(fd, &sb) < 0 ? NULL : fdopendir(fd);
    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(w->ifd, path, DIR_EVENTS);
    if (wd < 0)
        rc = -errno;
    else {
        if (w->dir_wd >= 0 && w->dir_wd != wd) /* another directory now: the path was re-made */
            inotify_rm_watch(w->ifd, w->dir_wd);
        w->dir_wd = wd;
        w->dev = sb.st_dev;
        w->ino = sb.st_ino;
        rc = watch_files(w, d);
    }
    closedir(d);
    if (rc < 0)
        return rc;
    /* Everything so far is the past: the scan that follows looks at it afresh. */
    mounts_changed(w);
    return drain(w) < 0 ? -ESTALE : 0;
}

int be_posix_watch_arm(struct be_volume *v, const char *reldir, struct be_watch **w)
{
    int rc = 0;
    if (*w && (*w)->dead) {
        be_posix_watch_close(*w);
        *w = NULL;
    }
    if (!*w && !(*w = watch_new(reldir, &rc)))
        return rc;
    if ((rc = arm(v, *w)) < 0) {
        be_posix_watch_close(*w);
        *w = NULL;
    }
    return rc;
}

int be_posix_watch_poll(struct be_volume *v, struct be_watch *w)
{
    struct stat sb;
    int seen = drain(w);
    if (seen < 0)
        return seen;
    if (mounts_changed(w))
        seen |= BE_SEEN_CHANGE;
    int fd = be_posix_open_dir(v, w->rel, O_PATH);
    if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_dev != w->dev || sb.st_ino != w->ino)
        seen |= BE_SEEN_CHANGE; /* the scan that follows says why */
    if (fd >= 0)
        close(fd);
    return seen;
}
