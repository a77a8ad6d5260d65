/* backup_ceph.c — backup storages on a Ceph pool (ZStack's Ceph backup storage).
 *
 * The place is a pool that the backend kind "rbd" opens; this file only says what a
 * backup storage on it is: a cluster known by the fsid every one of its mons reports
 * (each contacted alone, with the backend's timeouts), never registered twice, and a
 * pool that is named (it must exist) or made for it (bak-t-<uuid>). The cephx keys are
 * secrets: written 0600 into STATE_DIR/ceph/ as a keyring before the job is queued
 * (job-<id>.keyring, then renamed to <uuid>.keyring when the backup storage is made), so
 * that no job row and no view ever holds one.
 *
 * A pool stowage made is left in the cluster when its backup storage is deleted, as a
 * named one is: deleting a pool drops every image in it at once, and clusters usually
 * forbid it (mon_allow_pool_delete); `ceph osd pool rm` is the operator's to run. */
#include "task_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define CEPH_KIND "rbd" /* the registry's kind for a pool */
#define CEPH_TYPE "Ceph"
#define MAX_MONS 16

/* ---- the keyring ---- */

static int ceph_dir(struct stowage *st, char *out, size_t len, struct st_err *e)
{
    snprintf(out, len, "%s/ceph", st->cfg.state_dir);
    if (mkdir(out, 0700) && errno != EEXIST)
        return st_fail_errno(e, errno, "create %s", out);
    return 0;
}

static void keyring_path(struct stowage *st, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/ceph/%s.keyring", st->cfg.state_dir, name);
}

static int fsync_path(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* A cephx id as librados takes it: "client.admin" and "admin" are the same user. */
static const char *cephx_id(const char *user)
{
    return strncmp(user, "client.", 7) == 0 ? user + 7 : user;
}

static int key_ok(const char *k)
{
    size_t n = strlen(k);
    return n > 0 && n <= 128 &&
           strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789+/=") == n;
}

/* STATE_DIR/ceph/job-<id>.keyring with one section per user: written to a temporary
 * name, fsynced, renamed, the directory fsynced. */
static int write_keyring(struct stowage *st, const char *job, const struct core_ceph_add *rq,
                         struct st_err *e)
{
    char dir[4200], path[4300], tmp[4310];
    if (ceph_dir(st, dir, sizeof dir, e))
        return -1;
    snprintf(tmp, sizeof tmp, "%s/.job-%s.keyring.tmp", dir, job);
    snprintf(path, sizeof path, "%s/job-%s.keyring", dir, job);
    FILE *f = NULL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return st_fail_errno(e, err, "create %s", tmp);
    }
    for (size_t i = 0; i < rq->n_mons; i++) {
        size_t j = 0; /* one section per user: the first mon that names it */
        while (j < i && strcmp(cephx_id(rq->mons[j].user), cephx_id(rq->mons[i].user)))
            j++;
        if (j == i)
            fprintf(f, "[client.%s]\n\tkey = %s\n", cephx_id(rq->mons[i].user), rq->mons[i].key);
    }
    int ok = fflush(f) == 0 && fsync(fd) == 0, err = errno;
    if (fclose(f) != 0 && ok)
        ok = 0, err = errno;
    if (!ok || rename(tmp, path) || fsync_path(dir)) {
        if (ok)
            err = errno;
        unlink(tmp);
        unlink(path);
        return st_fail_errno(e, err, "write %s", path);
    }
    return 0;
}

/* ---- submitting ---- */

static int mon_fail(struct st_err *e, const struct core_ceph_mon_req *m, const char *why)
{
    return st_fail_field(e, ST_INVALID, "monUrls", "mon %.200s: %s", m->hostname, why);
}

/* The mons as the job's params hold them (no key), checked. */
static json_t *mons_json(struct stowage *st, const struct core_ceph_add *rq, int *with_keys,
                         struct st_err *e)
{
    json_t *arr = json_array();
    *with_keys = rq->n_mons && rq->mons[0].key && *rq->mons[0].key;
    if (rq->n_mons == 0 || rq->n_mons > MAX_MONS) {
        st_fail_field(e, ST_INVALID, "monUrls", "give 1 to %d mon URLs", MAX_MONS);
        goto fail;
    }
    for (size_t i = 0; arr && i < rq->n_mons; i++) {
        const struct core_ceph_mon_req *m = &rq->mons[i];
        int has_key = m->key && *m->key;
        if (!m->hostname || !*m->hostname || strlen(m->hostname) > 255 ||
            strpbrk(m->hostname, ",;[]/ \n\r\t")) {
            st_fail_field(e, ST_INVALID, "monUrls", "a mon's hostname must be an address");
            goto fail;
        }
        if (m->mon_port < 1 || m->mon_port > 65535 || m->ssh_port < 1 || m->ssh_port > 65535) {
            mon_fail(e, m, "its ports must be 1 to 65535");
            goto fail;
        }
        if (!m->user || !core_valid_id(cephx_id(m->user))) {
            mon_fail(e, m, "the cephx user must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$");
            goto fail;
        }
        if (has_key != *with_keys) {
            mon_fail(e, m, "give every mon URL a key, or none (the config's ceph_keyring)");
            goto fail;
        }
        if (has_key && !key_ok(m->key)) {
            mon_fail(e, m, "the cephx key must be base64 (up to 128 characters)");
            goto fail;
        }
        for (size_t j = 0; has_key && j < i; j++)
            if (strcmp(cephx_id(rq->mons[j].user), cephx_id(m->user)) == 0 &&
                strcmp(rq->mons[j].key, m->key) != 0) {
                mon_fail(e, m, "another mon URL gives cephx user a different key");
                goto fail;
            }
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:s}", "hostname", m->hostname,
                                             "mon_port", (json_int_t)m->mon_port, "ssh_port",
                                             (json_int_t)m->ssh_port, "user", cephx_id(m->user)));
    }
    if (!*with_keys && !st->cfg.ceph_keyring) {
        st_fail_field(e, ST_INVALID, "monUrls",
                      "the mon URLs carry no key and the config names no ceph_keyring");
        goto fail;
    }
    if (arr)
        return arr;
    st_fail(e, ST_INTERNAL, "out of memory");
fail:
    json_decref(arr);
    return NULL;
}

int core_backup_ceph_submit(struct stowage *st, const struct core_ceph_add *rq,
                            const struct st_principal *who, const char *want_id, char id[37],
                            struct st_err *e)
{
    char job[37], path[4300];
    int with_keys;
    uuid_t u;

    if (!who || who->role < core_op_role(CORE_OP_BACKUP_CEPH_CREATE))
        return st_fail(e, ST_FORBIDDEN, "only a superadmin may add a backup storage");
    json_t *mons = mons_json(st, rq, &with_keys, e);
    if (!mons)
        return -1;
    char *text = json_dumps(mons, JSON_COMPACT);
    json_decref(mons);
    if (!text)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (want_id) {
        snprintf(job, sizeof job, "%s", want_id);
    } else {
        uuid_generate_random(u);
        uuid_unparse_lower(u, job);
    }
    /* The uuid is chosen now, so that a restart can tell whether the job committed. */
    char uuid[CORE_ID];
    if (rq->uuid && *rq->uuid)
        snprintf(uuid, sizeof uuid, "%.64s", rq->uuid);
    else
        core_uuid32(uuid);
    struct core_op_params p = {.name = rq->name,
                               .description = rq->description,
                               .uuid = uuid,
                               .url = rq->url && *rq->url ? rq->url : NULL,
                               .pool = rq->pool && *rq->pool ? rq->pool : NULL,
                               .mons = text};
    /* The keys are on disk before any worker can pick the job up. */
    int rc = with_keys && core_valid_id(job) ? write_keyring(st, job, rq, e) : 0;
    if (with_keys && !core_valid_id(job))
        rc = st_fail_field(e, ST_INVALID, "id", "a job id is 1 to 36 of [0-9a-f-]");
    if (rc == 0 && (rc = core_job_submit_as(st, CORE_OP_BACKUP_CEPH_CREATE, &p, who, job, id, e))) {
        snprintf(path, sizeof path, "%s/ceph/job-%s.keyring", st->cfg.state_dir, job);
        unlink(path);
    }
    free(text);
    return rc;
}

int core_backup_ceph_precheck(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *uuid = json_string_value(json_object_get(params, "uuid"));
    struct db_backup_storage *b;
    if (!be_ops_for(CEPH_KIND))
        return st_fail(e, ST_INVALID, "this stowaged was built without Ceph (STOWAGE_WITH_CEPH)");
    if (uuid && (b = malloc(sizeof *b))) {
        struct db_conn *c = db_acquire(st->db);
        int found = db_bs_get(c, uuid, b, e) == 0;
        db_release(st->db, c);
        free(b);
        if (found)
            return st_fail_field(e, ST_EXISTS, "uuid", "backup storage %s already exists", uuid);
    }
    return 0;
}

/* ---- contacting the cluster ---- */

/* A mon's address as librados takes it: msgr2 on 3300, the v1 protocol elsewhere (6789). */
static void mon_addr(const char *host, int64_t port, char *out, size_t len)
{
    int v6 = strchr(host, ':') != NULL;
    snprintf(out, len, "%s:%s%s%s:%lld", port == 3300 ? "v2" : "v1", v6 ? "[" : "", host,
             v6 ? "]" : "", (long long)port);
}

/* The backend's parameters for the pool through mon_host. */
static json_t *place_params(const char *mon_host, const char *user, const char *keyring,
                            const char *pool)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "mon_host", mon_host, "user", user, "keyring", keyring,
                     "pool", pool);
}

/* Ask one mon alone for its cluster's fsid: 0, or -1 with why. */
static int mon_fsid(struct stowage *st, const char *addr, const char *user, const char *keyring,
                    const char *pool, char fsid[64], char *why, size_t len)
{
    const struct backend_ops *ops = be_ops_for(CEPH_KIND);
    const struct be_env env = {st->cfg.state_dir, st->cfg.gluster_cli, st->cfg.gluster_timeout_ms};
    json_t *params = place_params(addr, user, keyring, pool);
    const struct be_params bp = {"", params, &env};
    struct be_check chk = {0};

    fsid[0] = '\0';
    if (params)
        ops->check(&bp, &chk);
    const char *f = json_string_value(json_object_get(chk.details, "ceph_fsid"));
    if (f && *f)
        snprintf(fsid, 64, "%s", f);
    else
        snprintf(why, len, "%s", params ? chk.msg : "out of memory");
    json_decref(chk.details);
    json_decref(params);
    return fsid[0] ? 0 : -1;
}

/* What place_stats said, into the row's Ceph part and the backup storage's capacities. */
static int take_stats(const json_t *s, struct db_ceph *c, struct db_backup_storage *b,
                      struct st_err *e)
{
    const char *policy = json_string_value(json_object_get(s, "policy"));
    if (!json_is_object(s) || !policy)
        return st_fail(e, ST_INTERNAL, "the pool's statistics cannot be read");
    c->used = json_integer_value(json_object_get(s, "used"));
    c->avail = json_integer_value(json_object_get(s, "avail"));
    c->replicas = json_integer_value(json_object_get(s, "replicas"));
    c->util_ppm = (int64_t)(json_number_value(json_object_get(s, "utilization")) * 1e6 + 0.5);
    snprintf(c->policy, sizeof c->policy, "%s", policy);
    /* As ZStack shows a Ceph backup storage: the pool's room, not the cluster's. */
    b->total = c->used + c->avail;
    b->available = c->avail;
    return 0;
}

/* Open the pool (made when params say create_pool), prepare it, and read its room. */
static int look_pool(struct stowage *st, json_t *params, struct db_ceph *c,
                     struct db_backup_storage *b, int named, struct st_err *e)
{
    const struct backend_ops *ops = be_ops_for(CEPH_KIND);
    const struct be_env env = {st->cfg.state_dir, st->cfg.gluster_cli, st->cfg.gluster_timeout_ms};
    const struct be_params bp = {b->uuid, params, &env};
    struct be_volume *v = NULL;
    json_t *stats = NULL;
    int rc = -1, err;

    if (ops->parse && ops->parse(params, e))
        return -1;
    if (ops->open(&bp, &v, e)) {
        if (named && e->code == ST_NOT_FOUND)
            st_fail(e, ST_NOT_FOUND,
                    "cannot find pool[%s] in the ceph cluster, you must create it manually",
                    c->pool);
        return -1;
    }
    if ((err = ops->init(v)) < 0)
        be_fail(e, err, c->pool);
    else if (ops->health(v, e) == 0 && ops->place_stats && ops->place_stats(v, &stats, e) == 0)
        rc = take_stats(stats, c, b, e);
    json_decref(stats);
    ops->close(v);
    return rc;
}

/* ---- the job ---- */

struct mons {
    struct db_ceph_mon v[MAX_MONS];
    size_t n;
    char hosts[MAX_MONS * 300]; /* every mon's address, comma-separated */
};

static int read_mons(const struct core_task_ctx *t, const char *bs, struct mons *m,
                     struct st_err *e)
{
    json_t *arr = json_object_get(t->params, "mons"), *o;
    size_t i, used = 0;
    int64_t now = time(NULL);
    memset(m, 0, sizeof *m);
    json_array_foreach(arr, i, o)
    {
        const char *host = json_string_value(json_object_get(o, "hostname"));
        const char *user = json_string_value(json_object_get(o, "user"));
        if (i >= MAX_MONS || !host || !user)
            return st_fail_field(e, ST_INVALID, "mons", "a mon needs a hostname and a user");
        struct db_ceph_mon *d = &m->v[m->n++];
        core_uuid32(d->uuid);
        snprintf(d->bs_uuid, sizeof d->bs_uuid, "%s", bs);
        snprintf(d->hostname, sizeof d->hostname, "%s", host);
        snprintf(d->mon_addr, sizeof d->mon_addr, "%s", host);
        d->mon_port = json_integer_value(json_object_get(o, "mon_port"));
        d->ssh_port = json_integer_value(json_object_get(o, "ssh_port"));
        snprintf(d->username, sizeof d->username, "%s", user);
        snprintf(d->status, sizeof d->status, "Connecting");
        d->created_at = d->last_op_at = now;
        char addr[300];
        mon_addr(host, d->mon_port, addr, sizeof addr);
        used +=
            (size_t)snprintf(m->hosts + used, sizeof m->hosts - used, "%s%s", i ? "," : "", addr);
    }
    return 0;
}

/* Every mon alone must answer with one fsid, which no other backup storage has. A mon
 * that does not answer fails the whole add, as ZStack's connect does for a new one. */
static int check_mons(struct stowage *st, struct mons *m, const char *keyring, const char *pool,
                      char fsid[64], struct st_err *e)
{
    char got[MAX_MONS][64], why[256], owner[DB_ID], name[129];
    int same = 1;
    for (size_t i = 0; i < m->n; i++) {
        char addr[300];
        mon_addr(m->v[i].hostname, m->v[i].mon_port, addr, sizeof addr);
        if (mon_fsid(st, addr, m->v[i].username, keyring, pool, got[i], why, sizeof why))
            return st_fail(e, ST_UNAVAILABLE, "cannot reach the ceph mon[%s:%lld]: %s",
                           m->v[i].hostname, (long long)m->v[i].mon_port, why);
        snprintf(m->v[i].status, sizeof m->v[i].status, "Connected");
        same = same && strcmp(got[i], got[0]) == 0;
    }
    if (!same) {
        char list[1024] = "";
        size_t n = 0;
        for (size_t i = 0; i < m->n && n < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s (mon ip) --> %s (fsid)\n",
                                  m->v[i].hostname, got[i]);
        return st_fail(e, ST_CONFLICT,
                       "the fsid returned by mons are mismatching, it seems the mons belong to "
                       "different ceph clusters:\n%s",
                       list);
    }
    snprintf(fsid, 64, "%s", got[0]);
    struct db_conn *c = db_acquire(st->db);
    int rc = db_ceph_by_fsid(c, fsid, owner, name, e);
    db_release(st->db, c);
    if (rc > 0)
        return st_fail(e, ST_EXISTS,
                       "there is another CEPH backup storage[name:%s, uuid:%s] with the same "
                       "FSID[%s], you cannot add the same CEPH setup as two different backup "
                       "storage",
                       name, owner, fsid);
    return rc;
}

/* The row, its Ceph part and its mons, in one transaction. */
static int record(struct stowage *st, const struct db_backup_storage *b, const struct db_ceph *x,
                  const struct mons *m, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0 && (db_bs_insert(c, b, e) || db_ceph_insert(c, b->uuid, x, m->v, m->n, e)))
        rc = -1;
    rc = core_txn_end(st, c, rc, e);
    if (rc == 0)
        core_bump(st);
    return rc;
}

int core_backup_ceph_create(struct core_task_ctx *t, struct st_err *e)
{
    struct db_backup_storage *b = calloc(1, sizeof *b);
    struct mons *m = calloc(1, sizeof *m);
    struct db_ceph x;
    memset(&x, 0, sizeof x);
    char job_keyring[4300], keyring[4300];
    json_t *params = NULL;
    int rc = -1, moved = 0;

    snprintf(job_keyring, sizeof job_keyring, "%s/ceph/job-%s.keyring", t->st->cfg.state_dir,
             t->id);
    if (!b || !m) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    const char *use_keyring =
        access(job_keyring, F_OK) == 0 ? job_keyring : t->st->cfg.ceph_keyring;
    if (!use_keyring) {
        st_fail(e, ST_INVALID, "no cephx key: the config names no ceph_keyring");
        goto out;
    }
    core_backup_uuid(t, b->uuid);
    if (read_mons(t, b->uuid, m, e))
        goto out;
    int named = *core_task_str(t, "pool") != '\0';
    if (named)
        snprintf(x.pool, sizeof x.pool, "%s", core_task_str(t, "pool"));
    else
        snprintf(x.pool, sizeof x.pool, "bak-t-%s", b->uuid);
    if (check_mons(t->st, m, use_keyring, x.pool, x.fsid, e))
        goto out;

    snprintf(b->name, sizeof b->name, "%s", core_task_str(t, "name"));
    snprintf(b->description, sizeof b->description, "%s", core_task_str(t, "description"));
    snprintf(b->type, sizeof b->type, CEPH_TYPE);
    snprintf(b->kind, sizeof b->kind, CEPH_KIND);
    if (*core_task_str(t, "url"))
        snprintf(b->url, sizeof b->url, "%s", core_task_str(t, "url"));
    else
        snprintf(b->url, sizeof b->url, "ceph://%s/%s", x.fsid, x.pool);
    snprintf(b->hostname, sizeof b->hostname, "%s", m->v[0].hostname);
    snprintf(b->username, sizeof b->username, "%s", m->v[0].username);
    b->ssh_port = m->v[0].ssh_port;
    snprintf(b->state, sizeof b->state, "Enabled");
    snprintf(b->status, sizeof b->status, "Connected");
    b->created_at = b->last_op_at = time(NULL);
    x.pool_created = !named;

    /* The keys move to the backup storage's own name before its row can name them. */
    if (use_keyring == job_keyring) {
        keyring_path(t->st, b->uuid, keyring, sizeof keyring);
        if (rename(job_keyring, keyring)) {
            st_fail_errno(e, errno, "keep the cephx keys");
            goto out;
        }
        moved = 1;
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/ceph", t->st->cfg.state_dir);
        fsync_path(dir);
    } else {
        snprintf(keyring, sizeof keyring, "%s", use_keyring);
    }
    if (!(params = place_params(m->hosts, m->v[0].username, keyring, x.pool))) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    if (!named)
        json_object_set_new(params, "create_pool", json_true());
    if (look_pool(t->st, params, &x, b, named, e))
        goto out;
    json_object_del(params, "create_pool"); /* a reconnect never makes it again */
    char *pj = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    if (!pj || strlen(pj) >= sizeof b->params) {
        free(pj);
        st_fail(e, ST_INVALID, "the mons' addresses are too long");
        goto out;
    }
    snprintf(b->params, sizeof b->params, "%s", pj);
    free(pj);
    if (record(t->st, b, &x, m, e))
        goto out;
    t->result = json_pack("{s:s}", "backup_storage", b->uuid);
    rc = t->result ? 0 : st_fail(e, ST_INTERNAL, "out of memory");
out:
    if (rc && moved)
        unlink(keyring);
    else if (rc)
        unlink(job_keyring);
    json_decref(params);
    free(m);
    free(b);
    return rc;
}

/* A job the last process left running committed when its row is there; otherwise what it
 * left is removed: its keyring under either name (a pool it made stays, as on delete). */
int core_backup_ceph_done(struct core_task_ctx *t, int64_t started_at)
{
    char path[4300];
    const char *uuid = core_task_str(t, "uuid");
    struct db_backup_storage *b = malloc(sizeof *b);
    struct st_err e;
    (void)started_at;
    if (!b)
        return -1;
    struct db_conn *c = db_acquire(t->st->db);
    int rc = db_bs_get(c, uuid, b, &e);
    db_release(t->st->db, c);
    free(b);
    snprintf(path, sizeof path, "%s/ceph/job-%s.keyring", t->st->cfg.state_dir, t->id);
    unlink(path);
    if (rc == 0) {
        t->result = json_pack("{s:s}", "backup_storage", uuid);
        return t->result ? 1 : -1;
    }
    if (e.code != ST_NOT_FOUND)
        return -1;
    core_backup_ceph_forget(t->st, uuid);
    return 0;
}

/* ---- looking again, views, forgetting ---- */

void core_backup_ceph_refresh(struct stowage *st, struct db_backup_storage *b)
{
    struct db_ceph x;
    struct db_ceph_mon *mons = NULL;
    size_t n = 0;
    struct st_err e;
    json_error_t je;
    char fsid[64], why[256], addr[300];

    struct db_conn *c = db_acquire(st->db);
    int rc = db_ceph_get(c, b->uuid, &x, &e);
    if (rc == 0)
        rc = db_ceph_mons(c, b->uuid, &mons, &n, &e);
    db_release(st->db, c);
    json_t *params = rc == 0 ? json_loads(b->params, 0, &je) : NULL;
    const char *keyring = json_string_value(json_object_get(params, "keyring"));
    if (!params || !keyring)
        goto out;
    for (size_t i = 0; i < n; i++) {
        mon_addr(mons[i].hostname, mons[i].mon_port, addr, sizeof addr);
        int up =
            mon_fsid(st, addr, mons[i].username, keyring, x.pool, fsid, why, sizeof why) == 0 &&
            strcmp(fsid, x.fsid) == 0;
        snprintf(mons[i].status, sizeof mons[i].status, up ? "Connected" : "Disconnected");
        mons[i].last_op_at = time(NULL);
    }
    if (look_pool(st, params, &x, b, 1, &e))
        goto out;
    c = db_acquire(st->db);
    if (db_begin(c, &e) == 0) {
        if (db_ceph_update(c, b->uuid, &x, mons, n, &e) == 0)
            db_commit(c, &e);
        else
            db_rollback(c);
    }
    db_release(st->db, c);
out:
    json_decref(params);
    free(mons);
}

int core_backup_ceph(struct stowage *st, const char *uuid, struct core_ceph_view *out,
                     struct st_err *e)
{
    struct db_ceph x;
    struct db_ceph_mon *m = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    struct db_conn *c = db_acquire(st->db);
    int rc = db_ceph_get(c, uuid, &x, e);
    if (rc == 0)
        rc = db_ceph_mons(c, uuid, &m, &n, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    snprintf(out->fsid, sizeof out->fsid, "%s", x.fsid);
    snprintf(out->pool, sizeof out->pool, "%s", x.pool);
    out->pool_used = (uint64_t)x.used;
    out->pool_avail = (uint64_t)x.avail;
    out->replicas = x.replicas;
    out->utilization = (double)x.util_ppm / 1e6;
    snprintf(out->policy, sizeof out->policy, "%s", x.policy);
    out->pool_created = x.pool_created;
    if (n && !(out->mons = calloc(n, sizeof *out->mons))) {
        free(m);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct core_ceph_mon *o = &out->mons[i];
        snprintf(o->uuid, sizeof o->uuid, "%s", m[i].uuid);
        snprintf(o->hostname, sizeof o->hostname, "%s", m[i].hostname);
        snprintf(o->mon_addr, sizeof o->mon_addr, "%s", m[i].mon_addr);
        o->mon_port = m[i].mon_port;
        o->ssh_port = m[i].ssh_port;
        snprintf(o->username, sizeof o->username, "%s", m[i].username);
        snprintf(o->status, sizeof o->status, "%s", m[i].status);
        o->created_at = m[i].created_at;
        o->last_op_at = m[i].last_op_at;
    }
    out->n_mons = n;
    free(m);
    return 0;
}

void core_ceph_view_free(struct core_ceph_view *v)
{
    free(v->mons);
    v->mons = NULL;
    v->n_mons = 0;
}

void core_backup_ceph_forget(struct stowage *st, const char *uuid)
{
    char path[4300];
    if (!core_valid_id(uuid))
        return;
    keyring_path(st, uuid, path, sizeof path);
    unlink(path);
}
