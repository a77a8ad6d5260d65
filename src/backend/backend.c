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

int be_fail(struct st_err *e, int neg_errno, const char *what)
{
    int err = neg_errno < 0 ? -neg_errno : neg_errno;

    if (!err)
        return st_fail(e, ST_INTERNAL, "%s: failed", what ? what : "storage");
    return st_fail_errno(e, err, "%s", what ? what : "storage");
}
