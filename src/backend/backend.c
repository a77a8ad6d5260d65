/* backend.c — the backend registry and the rules every backend shares.
 *
 * The kinds are listed here and nowhere else. Callers pick an ops table by the volume's
 * kind once and never test the kind again;
 * path validation and errno → st_err translation live here so that a local volume
 * and a Gluster volume refuse the same paths and fail with the same codes. */
#include "stowage/backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The one list of storage kinds. local and external share the POSIX backend: local is a
 * disk stowage formatted and mounts, external a directory an operator mounted. A kind
 * with a module is a shared object loaded on its first use (its ops NULL until then), so
 * a daemon without such a volume never maps that module's libraries. */
static struct be_kind kinds[] = {
    {"local", &be_posix_ops, BE_FORMATTED, NULL},
    {"external", &be_posix_ops, BE_REGISTERED, NULL},
    {"gluster", &be_gluster_ops, BE_FROM_CONFIG, NULL},
#ifdef STOWAGE_WITH_CEPH
    /* librados and librbd weigh 16 MiB of RSS: only in the module (STOWAGE_WITH_CEPH) */
    {"rbd", NULL, BE_FROM_CONFIG, "stowage-rbd.so"},
#endif
};
#define N_KINDS (sizeof kinds / sizeof *kinds)

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;

const struct be_kind *be_kind(const char *name)
{
    for (size_t i = 0; name && i < N_KINDS; i++)
        if (strcmp(name, kinds[i].name) == 0)
            return &kinds[i];
    return NULL;
}

/* The directory of the running binary ("" when /proc/self/exe cannot be read). */
static void exe_dir(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    out[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
    else
        out[0] = '\0';
}

/* dlopen a kind's module: beside the binary, then in the install's module directory.
 * NULL with why in msg (every place looked at, and dlerror's last word). */
static const struct backend_ops *load_module(const struct be_kind *k, char *msg, size_t len)
{
    char dir[PATH_MAX], path[PATH_MAX + 64], tried[2 * PATH_MAX + 160] = "", err[256] = "";
    const char *dirs[2] = {dir, BE_MODULE_DIR};

    exe_dir(dir, sizeof dir);
    for (size_t i = 0; i < 2; i++) {
        if (!*dirs[i] || (i == 1 && strcmp(dirs[0], dirs[1]) == 0))
            continue;
        snprintf(path, sizeof path, "%s/%s", dirs[i], k->module);
        size_t t = strlen(tried);
        snprintf(tried + t, sizeof tried - t, "%s%s", t ? ", " : "", path);
        if (access(path, F_OK) != 0)
            continue;
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* never closed: ops outlive volumes */
        const struct be_module *m = h ? dlsym(h, "be_module") : NULL;
        if (m && m->abi == BE_MODULE_ABI && m->ops_size == sizeof(struct backend_ops))
            return m->ops;
        snprintf(err, sizeof err, "%s", !h ? dlerror() : !m ? "no be_module in it" :
                                                   "built for another version of stowaged");
        if (h && m)
            dlclose(h);
        break;
    }
    if (*err)
        snprintf(msg, len, "the %s backend module %s cannot be loaded: %s", k->name, path, err);
    else
        snprintf(msg, len, "the %s backend module %s is not installed (looked for %s)", k->name,
                 k->module, tried);
    return NULL;
}

const struct backend_ops *be_kind_ops(const char *name, struct st_err *e)
{
    struct be_kind *k = (struct be_kind *)be_kind(name);
    char msg[2 * PATH_MAX + 512];

    if (!k) {
        if (e)
            st_fail(e, ST_INVALID, "volume kind '%s' has no backend", name ? name : "");
        return NULL;
    }
    pthread_mutex_lock(&load_mu);
    const struct backend_ops *ops = k->ops;
    if (!ops && k->module && (ops = load_module(k, msg, sizeof msg)) != NULL)
        k->ops = ops;
    pthread_mutex_unlock(&load_mu);
    if (!ops && e)
        st_fail(e, ST_UNAVAILABLE, "%s", msg);
    return ops;
}

const struct backend_ops *be_ops_for(const char *kind)
{
    return be_kind_ops(kind, NULL);
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
    /* built-in kinds come first: a module is loaded only for a URL none of them takes */
    for (size_t i = 0; url && i < N_KINDS; i++) {
        const struct backend_ops *ops = be_ops_for(kinds[i].name);
        if (kinds[i].origin == BE_FORMATTED || !ops || !ops->from_url)
            continue;
        int rc = ops->from_url(url, params, e);
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
