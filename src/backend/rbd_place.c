/* rbd_place.c — a Ceph RBD volume's parameters, its place, and what the cluster says of it.
 *
 * Parameters: {"pool": "name", "conf": "/etc/ceph/ceph.conf" or "mon_host": "addr[,addr]",
 * "user": "admin" (the cephx id, client.<user>), "key": "<secret>" or "keyring": "/path"}.
 * The key is a secret: it is kept in the catalogue's params, never in what views show
 * (check's details are the pool and the cluster's fsid). "create_pool": true makes the
 * pool when it does not exist (a backup storage's own pool). The place is the pool of a
 * cluster: the cluster is known by its fsid once a session recorded it (own_place), by
 * its conf or mon addresses before. A pool is never inside another. */
#include "rbd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *param(const json_t *params, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(params, key));
    return s && *s ? s : dflt;
}

const char *rb_pool(const json_t *params)
{
    return param(params, "pool", "");
}

static int set(rados_t c, const char *opt, const char *val, char *msg, size_t len)
{
    int rc = rados_conf_set(c, opt, val);
    if (rc < 0)
        snprintf(msg, len, "ceph option %s: %s", opt, strerror(-rc));
    return rc;
}

/* What every session sets, whatever the cluster's conf says. */
static const struct {
    const char *opt, *val;
} fixed[] = {
    {"client_mount_timeout", RB_TIMEOUT_S},
    {"rados_mon_op_timeout", RB_TIMEOUT_S},
    {"rados_osd_op_timeout", RB_TIMEOUT_S},
    {"log_to_stderr", "false"},
    {"err_to_stderr", "false"},
    /* A write completes when the OSDs have it, never from a client-side cache: the
     * written end an image records counts only such bytes. */
    {"rbd_cache", "false"},
    /* librbd sends our write buffer as it is instead of copying it into one of its own
     * (a fresh mapping per piece, faulted in page by page): a third of an upload's CPU
     * (bench/REPORT.md, RBD). Safe here: every write's buffer stays untouched until its
     * AIO is waited for, and librbd completes an AIO only once it let go of the buffer. */
    {"rbd_disable_zero_copy_writes", "false"},
};

int rb_connect(const json_t *params, rados_t *out, char *msg, size_t len)
{
    const char *conf = param(params, "conf", NULL), *mon = param(params, "mon_host", NULL);
    const char *key = param(params, "key", NULL), *keyring = param(params, "keyring", NULL);
    rados_t c;
    int rc;

    *out = NULL;
    if ((rc = rados_create(&c, param(params, "user", "admin"))) < 0) {
        snprintf(msg, len, "cannot make a ceph client: %s", strerror(-rc));
        return rc;
    }
    /* Without a conf nothing is read: not even /etc/ceph/ceph.conf may decide the place. */
    if (conf && (rc = rados_conf_read_file(c, conf)) < 0)
        snprintf(msg, len, "ceph conf %s: %s", conf, strerror(-rc));
    if (rc == 0 && mon)
        rc = set(c, "mon_host", mon, msg, len);
    if (rc == 0 && key)
        rc = set(c, "key", key, msg, len);
    if (rc == 0 && keyring)
        rc = set(c, "keyring", keyring, msg, len);
    for (size_t i = 0; rc == 0 && i < sizeof fixed / sizeof *fixed; i++)
        rc = set(c, fixed[i].opt, fixed[i].val, msg, len);
    if (rc == 0 && (rc = rados_connect(c)) < 0)
        snprintf(msg, len, "ceph cluster %s: cannot connect: %s",
                 mon    ? mon
                 : conf ? conf
                        : "",
                 strerror(-rc));
    if (rc < 0) {
        rados_shutdown(c);
        return rc;
    }
    *out = c;
    return 0;
}

int be_rbd_parse(json_t *params, struct st_err *e)
{
    static const char *const keys[] = {"pool", "conf",    "mon_host", "user",
                                       "key",  "keyring", "fsid"};
    const char *k;
    json_t *v;

    json_object_foreach(params, k, v)
    {
        size_t i = 0;
        while (i < sizeof keys / sizeof *keys && strcmp(k, keys[i]))
            i++;
        if (strcmp(k, "create_pool") == 0) { /* make the pool when it does not exist */
            if (!json_is_boolean(v))
                return st_fail_field(e, ST_INVALID, k, "must be true or false");
            continue;
        }
        if (strcmp(k, "pool_id") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return st_fail_field(e, ST_INVALID, k, "must be a pool id");
            continue;
        }
        if (i == sizeof keys / sizeof *keys)
            return st_fail_field(e, ST_INVALID, k, "is not a parameter of this kind");
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 255 ||
            strpbrk(json_string_value(v), "\n\r"))
            return st_fail_field(e, ST_INVALID, k, "must be a string of 1 to 255 bytes");
    }
    if (!param(params, "pool", NULL))
        return st_fail_field(e, ST_INVALID, "pool", "an rbd volume needs a pool");
    if (!param(params, "conf", NULL) && !param(params, "mon_host", NULL))
        return st_fail_field(e, ST_INVALID, "mon_host", "an rbd volume needs a conf or a mon_host");
    const char *conf = param(params, "conf", NULL), *keyring = param(params, "keyring", NULL);
    if ((conf && conf[0] != '/') || (keyring && keyring[0] != '/'))
        return st_fail_field(e, ST_INVALID, conf && conf[0] != '/' ? "conf" : "keyring",
                             "must be an absolute path");
    if (param(params, "key", NULL) && keyring)
        return st_fail_field(e, ST_INVALID, "key", "give a key or a keyring, not both");
    return 0;
}

int be_rbd_prepare(json_t *params, int formatted, const struct be_env *env, struct st_err *e)
{
    return 0; /* the cluster's fsid is recorded by the first session (own_place) */
}

int be_rbd_same_place(const json_t *a, const json_t *b, enum be_place *out, struct st_err *e)
{
    const char *fa = param(a, "fsid", NULL), *fb = param(b, "fsid", NULL);
    int cluster = fa && fb ? strcmp(fa, fb) == 0
                           : strcmp(param(a, "conf", ""), param(b, "conf", "")) == 0 &&
                                 strcmp(param(a, "mon_host", ""), param(b, "mon_host", "")) == 0;
    *out = cluster && strcmp(rb_pool(a), rb_pool(b)) == 0 ? BE_PLACE_SAME : BE_PLACE_APART;
    return 0;
}

void be_rbd_describe_place(const json_t *params, char *out, size_t len)
{
    const char *where = param(params, "mon_host", param(params, "conf", ""));
    snprintf(out, len, "ceph pool %s on %s", rb_pool(params), where);
}

int be_rbd_own_place(rados_t cluster, rados_ioctx_t io, json_t *params, int *changed, char *why,
                     size_t len)
{
    char fsid[64];
    const char *had = param(params, "fsid", NULL);
    json_t *pid = json_object_get(params, "pool_id");
    int64_t id = rados_ioctx_get_id(io);

    *changed = 0;
    if (rados_cluster_fsid(cluster, fsid, sizeof fsid) < 0)
        return snprintf(why, len, "the cluster does not tell its fsid"), -1;
    if (had && strcmp(had, fsid) != 0)
        return snprintf(why, len, "the cluster is %s, not %s that was registered", fsid, had), -1;
    /* A pool deleted and made again under its name is another place. */
    if (pid && json_integer_value(pid) != id)
        return snprintf(why, len, "pool %s has id %lld, not %lld that was registered",
                        rb_pool(params), (long long)id, (long long)json_integer_value(pid)),
               -1;
    if (!had) {
        json_object_set_new(params, "fsid", json_string(fsid));
        *changed = 1;
    }
    if (!pid) {
        json_object_set_new(params, "pool_id", json_integer(id));
        *changed = 1;
    }
    return 0;
}

/* A look from outside the session: a fresh client (a few ms on a live cluster, the
 * timeout on a dead one) says whether the cluster answers and the pool is there. */
void be_rbd_check(const struct be_params *p, struct be_check *out)
{
    char fsid[64] = "", msg[256];
    rados_t c;
    rados_ioctx_t io;

    int rc = rb_connect(p->params, &c, msg, sizeof msg);
    if (rc == 0 && rados_cluster_fsid(c, fsid, sizeof fsid) < 0)
        fsid[0] = '\0';
    out->details = json_pack("{s:s, s:s}", "ceph_pool", rb_pool(p->params), "ceph_fsid", fsid);
    if (rc < 0) {
        be_check_set(out, "broken", "%s", msg);
        return;
    }
    if ((rc = rados_ioctx_create(c, rb_pool(p->params), &io)) < 0)
        be_check_set(out, "broken", "ceph pool %s: %s", rb_pool(p->params),
                     rc == -ENOENT ? "no such pool" : strerror(-rc));
    else {
        rados_ioctx_destroy(io);
        be_check_set(out, "ok", "%s", "");
    }
    rados_shutdown(c);
}

/* ---- pool statistics ---- */

/* A mon command's JSON answer; NULL with e. */
static json_t *mon_json(rados_t c, const char *cmd, const char *what, struct st_err *e)
{
    char *out = NULL, *status = NULL;
    size_t outlen = 0, statuslen = 0;
    const char *cmds[] = {cmd};
    json_error_t je;
    json_t *j = NULL;

    int rc = rados_mon_command(c, cmds, 1, "", 0, &out, &outlen, &status, &statuslen);
    if (rc < 0)
        st_fail_errno(e, -rc, "ceph %s: %.*s", what, (int)(statuslen < 200 ? statuslen : 200),
                      status ? status : "");
    else if (!(j = json_loadb(out ? out : "", outlen, 0, &je)))
        st_fail(e, ST_INTERNAL, "ceph %s: the answer is not JSON", what);
    rados_buffer_free(out);
    rados_buffer_free(status);
    return j;
}

static json_t *pool_in(json_t *list, const char *key, const char *pool)
{
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        if (json_is_string(json_object_get(p, key)) &&
            strcmp(json_string_value(json_object_get(p, key)), pool) == 0)
            return p;
    }
    return NULL;
}

/* Replicated: each byte is stored size times. Erasure coded (type 3): k data chunks in
 * k + m. */
static int share_of_data(rados_t c, json_t *detail, double *util, const char **policy,
                         struct st_err *e)
{
    json_int_t size = json_integer_value(json_object_get(detail, "size"));
    *policy = "Copy";
    *util = size > 0 ? 1.0 / (double)size : 0;
    if (json_integer_value(json_object_get(detail, "type")) != 3)
        return 0;
    const char *prof = json_string_value(json_object_get(detail, "erasure_code_profile"));
    char cmd[320];
    snprintf(cmd, sizeof cmd,
             "{\"prefix\":\"osd erasure-code-profile get\",\"name\":\"%.200s\","
             "\"format\":\"json\"}",
             prof ? prof : "default");
    json_t *p = mon_json(c, cmd, "osd erasure-code-profile get", e);
    if (!p)
        return -1;
    const char *ks = json_string_value(json_object_get(p, "k"));
    const char *ms = json_string_value(json_object_get(p, "m"));
    double k = ks ? atof(ks) : 0, m = ms ? atof(ms) : 0;
    json_decref(p);
    *policy = "ErasureCode";
    *util = k + m > 0 ? k / (k + m) : 0;
    return 0;
}

int be_rbd_pool_stats(rados_t c, const char *pool, json_t **out, struct st_err *e)
{
    char fsid[64];
    json_t *df = NULL, *ls = NULL;
    const char *policy;
    double util;
    int rc = -1;

    *out = NULL;
    if (rados_cluster_fsid(c, fsid, sizeof fsid) < 0)
        return st_fail(e, ST_UNAVAILABLE, "the ceph cluster does not tell its fsid");
    if (!(df = mon_json(c, "{\"prefix\":\"df\",\"format\":\"json\"}", "df", e)) ||
        !(ls = mon_json(c, "{\"prefix\":\"osd pool ls\",\"detail\":\"detail\",\"format\":\"json\"}",
                        "osd pool ls", e)))
        goto out;
    json_t *st = json_object_get(pool_in(json_object_get(df, "pools"), "name", pool), "stats");
    json_t *detail = pool_in(ls, "pool_name", pool);
    if (!detail) {
        st_fail(e, ST_NOT_FOUND, "ceph pool %s does not exist", pool);
        goto out;
    }
    if (share_of_data(c, detail, &util, &policy, e))
        goto out;
    /* The mgr's statistics lag a new pool by a second or two: until then, zeros. */
    *out = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:s}", "fsid", fsid, "pool", pool, "used",
                     json_integer_value(json_object_get(st, "stored")), "avail",
                     json_integer_value(json_object_get(st, "max_avail")), "replicas",
                     json_integer_value(json_object_get(detail, "size")), "utilization", util,
                     "policy", policy);
    rc = *out ? 0 : st_fail(e, ST_INTERNAL, "out of memory");
out:
    json_decref(df);
    json_decref(ls);
    return rc;
}
