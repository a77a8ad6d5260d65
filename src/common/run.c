/* run.c — running a program (the gluster CLI, mkfs.xfs, mdadm, wipefs) safely.
 *
 * No shell: argv goes to posix_spawn as it is. The child gets stdin from
 * /dev/null, a fixed PATH and the C locale (messages we can quote), default
 * signal dispositions and an empty mask (the daemon's threads block signals
 * for sigwait), and its own process group so a timeout kills all of it. Its
 * output is captured up to a cap. The child is always reaped: no zombie
 * outlives a call. */
#include "stowage/run.h"
#include "stowage/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *const child_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};

static int64_t now_ms(void)
{
    return (int64_t)(st_mono_ns() / 1000000u);
}

int st_find_program(const char *name, char *out, size_t len)
{
    static const char *const dirs[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin"};
    if (strchr(name, '/')) {
        snprintf(out, len, "%s", name);
        return access(out, X_OK) == 0 ? 0 : -ENOENT;
    }
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        if ((size_t)snprintf(out, len, "%s/%s", dirs[i], name) < len && access(out, X_OK) == 0)
            return 0;
    }
    return -ENOENT;
}

static int spawn(const char *path, char *const argv[], int out_fd, int merge_stderr, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    int rc;

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return -rc;
    if ((rc = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    sigemptyset(&none);
    sigfillset(&all);
    if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) ||
        (rc = posix_spawn_file_actions_adddup2(&fa, out_fd, 1)) ||
        (rc = merge_stderr ? posix_spawn_file_actions_adddup2(&fa, out_fd, 2)
                           : posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0)) ||
        (rc = posix_spawnattr_setsigmask(&at, &none)) ||
        (rc = posix_spawnattr_setsigdefault(&at, &all)) ||
        (rc = posix_spawnattr_setpgroup(&at, 0)) ||
        (rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                POSIX_SPAWN_SETPGROUP)))
        goto out;
    rc = posix_spawn(pid, path, &fa, &at, argv, child_env);
out:
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
}

/* Read the pipe until EOF, the deadline or the cap. 0, -ETIMEDOUT, -EFBIG, -errno. */
static int read_all(int fd, int64_t deadline, size_t max, char **buf, size_t *len)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    size_t cap = 0;

    *len = 0;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        int rc = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -errno;
        if (rc == 0)
            continue;
        if (*len + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            if (ncap > max + 1)
                ncap = max + 1;
            if (*len + 1 >= ncap)
                return -EFBIG;
            char *nb = realloc(*buf, ncap);
            if (!nb)
                return -ENOMEM;
            *buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, *buf + *len, cap - *len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        *len += (size_t)n;
    }
}

/* Wait for the child until the deadline, then kill its group; always reap. */
static int reap(pid_t pid, int64_t deadline, int *status)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (now_ms() >= deadline)
            break;
        usleep(2000);
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    return -ETIMEDOUT;
}

int st_run(char *const argv[], int merge_stderr, unsigned timeout_ms, size_t max, char **out,
           size_t *len, int *status)
{
    char path[256];
    int fds[2], rc;
    pid_t pid;
    int64_t deadline = now_ms() + timeout_ms;

    *out = NULL;
    *len = 0;
    *status = 0;
    if ((rc = st_find_program(argv[0], path, sizeof path)) < 0)
        return rc;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    rc = spawn(path, argv, fds[1], merge_stderr, &pid);
    close(fds[1]);
    if (rc < 0) {
        close(fds[0]);
        return rc;
    }
    rc = read_all(fds[0], deadline, max, out, len);
    close(fds[0]);
    int rrc = reap(pid, rc < 0 ? 0 : deadline, status);
    if (rc == 0 && rrc < 0)
        rc = rrc;
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *len = 0;
        return rc;
    }
    if (!*out && !(*out = calloc(1, 1)))
        return -ENOMEM;
    (*out)[*len] = '\0';
    return 0;
}
