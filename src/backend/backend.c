/* backend.c — the backend registry and the rules every backend shares.
 *
 * The kinds are listed here and nowhere else. Callers pick an ops table by the volume's
 * kind once and never test the kind again;
 * path validation and errno → st_err translation live here so that a local volume
 * and a Gluster volume refuse the same paths and fail with the same codes. */
#include "stowage/backend.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* The one list of storage kinds. local and external share the POSIX backend: local is a
 * disk stowage formatted and mounts, external a directory an operator mounted. */
static const struct be_kind kinds[] = {
    {"local", &be_posix_ops, BE_FORMATTED},
    {"external", &be_posix_ops, BE_REGISTERED},
    {"gluster", &be_gluster_ops, BE_FROM_CONFIG},
#ifdef STOWAGE_WITH_CEPH
    {"rbd", &be_rbd_ops, BE_FROM_CONFIG}, /* built only with librbd (STOWAGE_WITH_CEPH) */
#endif
};
#define N_KINDS (sizeof kinds / sizeof *kinds)

const struct be_kind *be_kind(const char *name)
{
    for (size_t i = 0; name && i < N_KINDS; i++)
        if (strcmp(name, kinds[i].name) == 0)
            return &kinds[i];
    return NULL;
}

const struct backend_ops *be_ops_for(const char *kind)
{
    const struct be_kind *k = be_kind(kind);
    return k ? k->ops : NULL;
}

const char *be_kind_from(enum be_origin origin)
{
    for (size_t i = 0; i < N_KINDS; i++)
        if (kinds[i].origin == origin)
            return kinds[i].name;
    return NULL;
}

const char *be_kind_for_url(const char *url, json_t **params, struct st_err *e)
{
    *params = NULL;
    for (size_t i = 0; url && i < N_KINDS; i++) {
        if (kinds[i].origin == BE_FORMATTED || !kinds[i].ops->from_url)
            continue;
        int rc = kinds[i].ops->from_url(url, params, e);
        if (rc < 0)
            return NULL;
        if (rc > 0)
            return kinds[i].name;
    }
    st_fail_field(e, ST_INVALID, "url",
                  "url must be an absolute directory or gluster://server/volume/dir");
    return NULL;
}

void be_kind_names(char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_KINDS && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s%s",
                              i == 0             ? ""
                              : i + 1 == N_KINDS ? " or "
                                                 : ", ",
                              kinds[i].name);
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
