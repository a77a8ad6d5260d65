/* posix_place.c — a POSIX volume's parameters and its place on the host.
 *
 * Parameters: {"mount_point": "/abs/dir", "require_mount": bool}. A directory that was
 * a mount point when it was registered (or that stowage formatted and mounted) must
 * stay one: otherwise an unmount would silently redirect writes into the filesystem
 * underneath. The place of a volume is its directory: two volumes are the same place
 * when their directories are one (device and inode after resolving), and one is inside
 * another when its real path is below the other's. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "stowage/path.h"
#include "stowage/probe.h"

static const char *mount_point(const json_t *params)
{
    return json_string_value(json_object_get(params, "mount_point"));
}

int be_posix_parse(json_t *params, struct st_err *e)
{
    const char *k;
    json_t *v;
    char cwd[PATH_MAX], abs[PATH_MAX];

    json_object_foreach(params, k, v)
    {
        int known = !strcmp(k, "mount_point") || !strcmp(k, "require_mount") ||
                    !strcmp(k, "root_dev") || !strcmp(k, "root_ino");
        int typed = !strcmp(k, "mount_point")     ? json_is_string(v)
                    : !strcmp(k, "require_mount") ? json_is_boolean(v)
                                                  : json_is_integer(v);
        if (!known || !typed)
            return st_fail_field(e, ST_INVALID, k, "%s",
                                 known ? "has the wrong type" : "is not a parameter of this kind");
    }
    const char *mp = mount_point(params);
    if (!mp || !*mp || strlen(mp) >= PATH_MAX)
        return st_fail_field(e, ST_INVALID, "mount_point", "needs a mount_point");
    if (mp[0] != '/') { /* relative to where the daemon was started */
        if (!getcwd(cwd, sizeof cwd) ||
            (size_t)snprintf(abs, sizeof abs, "%s/%s", cwd, mp) >= sizeof abs)
            return st_fail_field(e, ST_INVALID, "mount_point", "cannot make %s absolute", mp);
        json_object_set_new(params, "mount_point", json_string(abs));
    }
    return 0;
}

/* ---- where a directory is ----
 * A volume is a directory, not a spelling of it: "/srv/a/", "/srv/a" and a symlink to it
 * are one directory, told by its st_dev and st_ino after resolving. Whether one lies inside
 * another is told the same way, by walking ".." from it to "/" and comparing every
 * ancestor's identity. A path that cannot be opened (not mounted yet, not created yet) is
 * judged by its nearest existing ancestor, then by the text of the paths. */

#define MAX_DEPTH 256

struct dir_id {
    dev_t dev;
    ino_t ino;
};

/* A directory and its ancestors up to "/": ids[0] is the directory itself when exact,
 * else its nearest ancestor that exists. */
struct dir_chain {
    int ok, exact;
    size_t n;
    struct dir_id ids[MAX_DEPTH];
};

/* Cut the last component of an absolute path ("/a/b/" → "/a"); 0 when nothing is left. */
static int cut_last(char *p)
{
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    char *slash = strrchr(p, '/');
    if (!slash || n <= 1)
        return 0;
    if (slash == p)
        slash[1] = '\0';
    else
        *slash = '\0';
    return 1;
}

static void chain_of(const char *path, struct dir_chain *ch)
{
    char buf[PATH_MAX];
    struct stat st, up;
    int fd;

    memset(ch, 0, sizeof *ch);
    if (!path || path[0] != '/' || strlen(path) >= sizeof buf)
        return;
    snprintf(buf, sizeof buf, "%s", path);
    ch->exact = 1;
    while ((fd = open(buf, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        if ((errno != ENOENT && errno != ENOTDIR) || !cut_last(buf))
            return;
        ch->exact = 0;
    }
    if (fstat(fd, &st) != 0)
        goto out;
    while (ch->n < MAX_DEPTH) {
        ch->ids[ch->n++] = (struct dir_id){st.st_dev, st.st_ino};
        int parent = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (parent < 0)
            goto out;
        close(fd);
        fd = parent;
        if (fstat(fd, &up) != 0)
            goto out;
        if (up.st_dev == st.st_dev && up.st_ino == st.st_ino)
            break; /* "/" is its own parent */
        st = up;
    }
    ch->ok = 1;
out:
    close(fd);
}

static int chain_has(const struct dir_chain *ch, size_t from, struct dir_id id)
{
    for (size_t i = from; i < ch->n; i++)
        if (ch->ids[i].dev == id.dev && ch->ids[i].ino == id.ino)
            return 1;
    return 0;
}

/* The path without trailing slashes and doubled ones, for comparing text. */
static void normalize(const char *in, char *out, size_t len)
{
    size_t n = 0;
    for (; *in && n + 1 < len; in++)
        if (!(*in == '/' && n > 0 && out[n - 1] == '/'))
            out[n++] = *in;
    while (n > 1 && out[n - 1] == '/')
        n--;
    out[n] = '\0';
}

/* The identity recorded when a volume was registered (0 0: not recorded). */
static struct dir_id recorded(const json_t *params)
{
    return (struct dir_id){(dev_t)json_integer_value(json_object_get(params, "root_dev")),
                           (ino_t)json_integer_value(json_object_get(params, "root_ino"))};
}

static enum be_place relate(const json_t *a, const struct dir_chain *ca, const json_t *b,
                            const struct dir_chain *cb)
{
    char na[PATH_MAX], nb[PATH_MAX];
    struct dir_id rb = recorded(b);

    if (ca->ok && ca->exact && rb.dev && ca->ids[0].dev == rb.dev && ca->ids[0].ino == rb.ino)
        return BE_PLACE_SAME;
    if (ca->ok && cb->ok) {
        if (ca->exact && cb->exact && ca->ids[0].dev == cb->ids[0].dev &&
            ca->ids[0].ino == cb->ids[0].ino)
            return BE_PLACE_SAME;
        if (cb->exact && chain_has(ca, ca->exact ? 1 : 0, cb->ids[0]))
            return BE_PLACE_INSIDE;
        if (ca->exact && chain_has(cb, cb->exact ? 1 : 0, ca->ids[0]))
            return BE_PLACE_CONTAINS;
        if (ca->exact && cb->exact)
            return BE_PLACE_APART;
    }
    normalize(mount_point(a), na, sizeof na);
    normalize(mount_point(b), nb, sizeof nb);
    if (strcmp(na, nb) == 0)
        return BE_PLACE_SAME;
    if (st_path_under(na, nb))
        return BE_PLACE_INSIDE;
    if (st_path_under(nb, na))
        return BE_PLACE_CONTAINS;
    return BE_PLACE_APART;
}

int be_posix_same_place(const json_t *a, const json_t *b, enum be_place *out, struct st_err *e)
{
    struct dir_chain *ca = malloc(sizeof *ca), *cb = malloc(sizeof *cb);
    int rc = 0;

    *out = BE_PLACE_APART;
    if (!ca || !cb)
        rc = st_fail(e, ST_INTERNAL, "out of memory");
    else if (mount_point(a) && mount_point(b)) {
        chain_of(mount_point(a), ca);
        chain_of(mount_point(b), cb);
        *out = relate(a, ca, b, cb);
    }
    free(ca);
    free(cb);
    return rc;
}

void be_posix_describe_place(const json_t *params, char *out, size_t len)
{
    snprintf(out, len, "%s", mount_point(params) ? mount_point(params) : "");
}

/* The root the session opened is the directory recorded at registration; a volume
 * registered before identities were recorded gets its own now. */
int be_posix_own_place(const struct backend_ops *ops, struct be_volume *v, const char *name,
                       json_t *params, int *changed, char *why, size_t len)
{
    struct stat root;
    struct dir_id id = recorded(params);

    *changed = 0;
    if (ops->stat(v, "", &root) != 0) {
        snprintf(why, len, "cannot stat the root of %s", mount_point(params));
        return -1;
    }
    if (!id.dev) {
        json_object_set_new(params, "root_dev", json_integer((json_int_t)root.st_dev));
        json_object_set_new(params, "root_ino", json_integer((json_int_t)root.st_ino));
        *changed = 1;
        return 0;
    }
    if (id.dev == root.st_dev && id.ino == root.st_ino)
        return 0;
    snprintf(why, len,
             "%s is not the directory registered as %s (device %llu inode %llu, registered "
             "device %llu inode %llu)",
             mount_point(params), name, (unsigned long long)root.st_dev,
             (unsigned long long)root.st_ino, (unsigned long long)id.dev,
             (unsigned long long)id.ino);
    return -1;
}

__attribute__((format(printf, 3, 4))) void be_check_set(struct be_check *c, const char *status,
                                                        const char *fmt, ...)
{
    va_list ap;
    snprintf(c->status, sizeof c->status, "%s", status);
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
}

void be_posix_check(const struct be_params *p, struct be_check *out)
{
    const char *mp = mount_point(p->params);
    struct stat sb;
    struct probe_mount m;
    struct st_err e;

    out->details = json_pack("{s:s}", "mount_point", mp ? mp : "");
    if (!mp || lstat(mp, &sb)) {
        be_check_set(out, "broken", "mount point %s: %s", mp ? mp : "(none)", strerror(errno));
        return;
    }
    if (!S_ISDIR(sb.st_mode)) {
        be_check_set(out, "broken", "mount point %s is not a directory", mp);
        return;
    }
    int is_mount = probe_is_mount_point(mp);
    if (json_is_true(json_object_get(p->params, "require_mount")) && is_mount != 1) {
        be_check_set(out, "broken", "%s is not mounted", mp);
        return;
    }
    if (is_mount == 1 && probe_mount_of(mp, &m, &e) == 0)
        out->devno = m.devno;
    be_check_set(out, "ok", "%s", "");
}

int be_posix_prepare(json_t *params, int formatted, const struct be_env *env, struct st_err *e)
{
    const char *mp = mount_point(params);
    size_t sl = env && env->state_dir ? strlen(env->state_dir) : 0;

    if (!mp)
        return st_fail_field(e, ST_INVALID, "mount_point", "needs a mount_point");
    /* A directory under the state dir (make run's default volume) is created. */
    if (!formatted && sl && strncmp(mp, env->state_dir, sl) == 0 && mp[sl] == '/')
        mkdir(mp, 0700);
    if (!json_object_get(params, "require_mount"))
        json_object_set_new(params, "require_mount",
                            json_boolean(formatted || probe_is_mount_point(mp) == 1));
    struct stat st;
    if (!recorded(params).dev && stat(mp, &st) == 0 && S_ISDIR(st.st_mode)) {
        json_object_set_new(params, "root_dev", json_integer((json_int_t)st.st_dev));
        json_object_set_new(params, "root_ino", json_integer((json_int_t)st.st_ino));
    }
    return 0;
}
