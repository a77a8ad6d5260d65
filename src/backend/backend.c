/* backend.c — the backend registry and the rules every backend shares.
 *
 * Callers pick an ops table by the volume's kind once and never test the kind again;
 * path validation and errno → st_err translation live here so that a local volume
 * and a Gluster volume refuse the same paths and fail with the same codes. */
#include "stowage/backend.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

const struct backend_ops *be_ops_for(const char *kind)
{
    static const struct {
        const char *kind;
        const struct backend_ops *ops;
    } table[] = {
        {"local", &be_posix_ops},
        {"external", &be_posix_ops},
        {"gluster", &be_gluster_ops},
    };
    size_t i;

    for (i = 0; kind && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(kind, table[i].kind) == 0)
            return table[i].ops;
    return NULL;
}

int be_path_ok(const char *rel)
{
    const char *p = rel, *slash;
    size_t n;

    if (!rel || !*rel || *rel == '/' || strlen(rel) >= PATH_MAX)
        return 0;
    for (;;) {
        slash = strchr(p, '/');
        n = slash ? (size_t)(slash - p) : strlen(p);
        /* Empty ("a//b", "a/"), "." and ".." components are how paths escape or alias. */
        if (n == 0 || n > NAME_MAX || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (!slash)
            return 1;
        p = slash + 1;
    }
}

static enum st_code code_of(int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
        return ST_NO_SPACE;
    case ENOTCONN:
    case EIO:
    case EROFS:
    case ETIMEDOUT:
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ESTALE:
    case ENODEV:
    case EAGAIN:
        return ST_UNAVAILABLE;
    case ENOENT:
        return ST_NOT_FOUND;
    case EEXIST:
        return ST_EXISTS;
    case ENOTEMPTY:
    case EBUSY:
    case ETXTBSY:
        return ST_IN_USE;
    case ELOOP: /* a symlink on the path: refused by design */
    case EXDEV: /* the path leaves the volume root */
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
        return ST_INVALID;
    case EACCES:
    case EPERM:
        return ST_FORBIDDEN;
    case EFBIG:
        return ST_TOO_LARGE;
    default:
        return ST_INTERNAL;
    }
}

int be_fail(struct st_err *e, int neg_errno, const char *what)
{
    int err = neg_errno < 0 ? -neg_errno : neg_errno;

    return st_fail(e, code_of(err), "%s: %s", what ? what : "storage",
                   err ? strerror(err) : "failed");
}
