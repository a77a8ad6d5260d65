/* identity.c — which place a volume is, and whether two volumes overlap.
 *
 * A volume is a directory, not a spelling of it: "/srv/a/", "/srv/a" and a symlink to
 * it are one directory, told by its st_dev and st_ino after resolving. Whether one
 * directory lies inside another is told the same way, by walking ".." from it to "/"
 * and comparing every ancestor's identity. A path that cannot be opened (not mounted
 * yet, not created yet) is judged by its nearest existing ancestor, then by the text
 * of the paths. A Gluster volume is its server and volume name (its root is always
 * "/"); it never overlaps a directory volume.
 *
 * Two volumes on one place would each take the other's files for leftovers of their
 * own, so registration refuses overlaps, and recovery asks core_volume_doubt before
 * it removes anything. */
#include "core_internal.h"
#include "task_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

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

enum place { PLACE_APART, PLACE_SAME, PLACE_INSIDE, PLACE_CONTAINS };

static int is_dir_volume(const struct db_volume *v)
{
    return strcmp(v->kind, "gluster") != 0;
}

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
    char buf[DB_PATH];
    struct stat st, up;
    int fd;

    memset(ch, 0, sizeof *ch);
    if (path[0] != '/' || strlen(path) >= sizeof buf)
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

/* Where directory volume a stands to b (ca, cb: their chains). */
static enum place relate(const struct db_volume *a, const struct dir_chain *ca,
                         const struct db_volume *b, const struct dir_chain *cb)
{
    char na[DB_PATH], nb[DB_PATH];

    if (ca->ok && ca->exact && b->root_dev && ca->ids[0].dev == (dev_t)b->root_dev &&
        ca->ids[0].ino == (ino_t)b->root_ino)
        return PLACE_SAME;
    if (ca->ok && cb->ok) {
        if (ca->exact && cb->exact && ca->ids[0].dev == cb->ids[0].dev &&
            ca->ids[0].ino == cb->ids[0].ino)
            return PLACE_SAME;
        if (cb->exact && chain_has(ca, ca->exact ? 1 : 0, cb->ids[0]))
            return PLACE_INSIDE;
        if (ca->exact && chain_has(cb, cb->exact ? 1 : 0, ca->ids[0]))
            return PLACE_CONTAINS;
        if (ca->exact && cb->exact)
            return PLACE_APART;
    }
    normalize(a->mount_point, na, sizeof na);
    normalize(b->mount_point, nb, sizeof nb);
    if (strcmp(na, nb) == 0)
        return PLACE_SAME;
    if (core_manage_path_under(na, nb))
        return PLACE_INSIDE;
    if (core_manage_path_under(nb, na))
        return PLACE_CONTAINS;
    return PLACE_APART;
}

static int same_gluster(const struct db_volume *a, const struct db_volume *b)
{
    return !is_dir_volume(a) && !is_dir_volume(b) &&
           strcasecmp(a->gluster_server, b->gluster_server) == 0 &&
           strcmp(a->gluster_name, b->gluster_name) == 0;
}

int core_volume_check_place(const struct db_volume *v, const struct db_volume *rows, size_t n,
                            const char *field, struct st_err *e)
{
    struct dir_chain *ca = NULL, *cb = NULL;
    int rc = 0;

    if (!is_dir_volume(v)) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(rows[i].id, v->id) != 0 && same_gluster(v, &rows[i]))
                return st_fail_field(e, ST_EXISTS, field,
                                     "gluster volume %s on %s is already volume '%s'",
                                     v->gluster_name, v->gluster_server, rows[i].id);
        return 0;
    }
    if (!(ca = malloc(sizeof *ca)) || !(cb = malloc(sizeof *cb))) {
        rc = st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    chain_of(v->mount_point, ca);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct db_volume *o = &rows[i];
        if (strcmp(o->id, v->id) == 0 || !is_dir_volume(o))
            continue;
        chain_of(o->mount_point, cb);
        switch (relate(v, ca, o, cb)) {
        case PLACE_SAME:
            if (strcmp(o->mount_point, v->mount_point) == 0)
                rc = st_fail_field(e, ST_EXISTS, field, "%s is already volume '%s'", v->mount_point,
                                   o->id);
            else
                rc = st_fail_field(e, ST_EXISTS, field,
                                   "%s is already volume '%s' (registered as %s)", v->mount_point,
                                   o->id, o->mount_point);
            break;
        case PLACE_INSIDE:
            rc = st_fail_field(e, ST_CONFLICT, field, "%s is inside volume '%s' (%s)",
                               v->mount_point, o->id, o->mount_point);
            break;
        case PLACE_CONTAINS:
            rc = st_fail_field(e, ST_CONFLICT, field, "%s contains volume '%s' (%s)",
                               v->mount_point, o->id, o->mount_point);
            break;
        case PLACE_APART:
            break;
        }
    }
out:
    free(ca);
    free(cb);
    return rc;
}

int core_dir_identity(const char *path, uint64_t *dev, uint64_t *ino)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return -1;
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return 0;
}

void core_volume_doubt(const struct db_volume *v, const struct stat *root,
                       const struct db_volume *rows, size_t n, char *why, size_t len)
{
    why[0] = '\0';
    if (is_dir_volume(v) && root && v->root_dev &&
        (v->root_dev != (uint64_t)root->st_dev || v->root_ino != (uint64_t)root->st_ino)) {
        snprintf(why, len,
                 "%s is not the directory registered as volume '%s' (device %llu inode %llu, "
                 "registered device %llu inode %llu)",
                 v->mount_point, v->id, (unsigned long long)root->st_dev,
                 (unsigned long long)root->st_ino, (unsigned long long)v->root_dev,
                 (unsigned long long)v->root_ino);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct db_volume *o = &rows[i];
        uint64_t dev, ino;
        if (strcmp(o->id, v->id) == 0)
            continue;
        int same = same_gluster(v, o);
        if (!same && is_dir_volume(v) && is_dir_volume(o) && root) {
            if (o->root_dev)
                same =
                    o->root_dev == (uint64_t)root->st_dev && o->root_ino == (uint64_t)root->st_ino;
            if (!same && core_dir_identity(o->mount_point, &dev, &ino) == 0)
                same = dev == (uint64_t)root->st_dev && ino == (uint64_t)root->st_ino;
        }
        if (same) {
            snprintf(why, len, "volume '%s' uses the same directory", o->id);
            return;
        }
    }
}
