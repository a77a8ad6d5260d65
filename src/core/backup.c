/* backup.c — backup storages: a place on this host (a directory, a Gluster volume's
 * directory) that the backend registry opens from its URL, with the state and status
 * views show, and the jobs that add, change, look at again and remove them.
 *
 * Core never tests the kind: be_kind_for_url names it, the kind's ops open the place,
 * prepare its namespaces (init), say whether it is reachable and writable (health) and
 * how much room it has (statvfs). Places are opened (and kept, for kinds that keep
 * sessions) by backup_place.c, whose prober keeps status and capacities fresh. */
#include "task_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#define BS_TYPE "ImageStoreBackupStorage"

static void from_row(const struct db_backup_storage *b, struct core_backup *out)
{
    memset(out, 0, sizeof *out);
    CORE_COPY_TEXT(out, b, uuid);
    CORE_COPY_TEXT(out, b, name);
    CORE_COPY_TEXT(out, b, description);
    CORE_COPY_TEXT(out, b, type);
    CORE_COPY_TEXT(out, b, url);
    CORE_COPY_TEXT(out, b, hostname);
    CORE_COPY_TEXT(out, b, username);
    out->ssh_port = b->ssh_port;
    CORE_COPY_TEXT(out, b, state);
    CORE_COPY_TEXT(out, b, status);
    CORE_COPY_TEXT(out, b, status_msg);
    out->total = (uint64_t)b->total;
    out->available = (uint64_t)b->available;
    out->created_at = b->created_at;
    out->last_op_at = b->last_op_at;
}

static int add_zones(struct db_conn *c, struct core_backup *b, struct st_err *e)
{
    return db_bs_zones(c, b->uuid, &b->zones, &b->n_zones, e);
}

int core_backup_query(struct stowage *st, const struct st_query *q, struct core_backup **out,
                      size_t *n, int64_t *total, struct st_err *e)
{
    struct db_backup_storage *rows = NULL;
    size_t cnt = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bs_query(c, q, out ? &rows : NULL, &cnt, total, e);
    if (rc == 0 && out) {
        *out = calloc(cnt ? cnt : 1, sizeof **out);
        if (!*out)
            rc = st_fail(e, ST_INTERNAL, "out of memory");
        for (size_t i = 0; rc == 0 && i < cnt; i++) {
            from_row(&rows[i], &(*out)[i]);
            rc = add_zones(c, &(*out)[i], e);
        }
        if (rc && *out) {
            core_backups_free(*out, cnt);
            *out = NULL;
        }
        *n = rc ? 0 : cnt;
    }
    db_release(st->db, c);
    free(rows);
    return rc;
}

int core_backup_get(struct stowage *st, const char *uuid, struct core_backup *out, struct st_err *e)
{
    struct db_backup_storage *b = malloc(sizeof *b);
    if (!b)
        return st_fail(e, ST_INTERNAL, "out of memory");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bs_get(c, uuid, b, e);
    if (rc == 0) {
        from_row(b, out);
        rc = add_zones(c, out, e);
    }
    db_release(st->db, c);
    free(b);
    return rc;
}

void core_backups_free(struct core_backup *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].zones);
    free(v);
}

/* ---- looking at the place ---- */

int core_backup_look(struct stowage *st, struct db_backup_storage *b, struct st_err *e)
{
    struct core_bs_ref ref;
    struct be_space sp = {0};
    int rc = -1, err;

    if (core_bs_place_acquire(st, b, &ref, e))
        goto out;
    if ((err = ref.ops->init(ref.be)) < 0) {
        be_fail(e, err, b->url);
        goto out;
    }
    if (ref.ops->health(ref.be, e) || ref.ops->statvfs(ref.be, &sp, e))
        goto out;
    if (sp.readonly) {
        st_fail(e, ST_UNAVAILABLE, "%s: mounted read-only", b->url);
        goto out;
    }
    rc = 0;
out:
    core_bs_place_release(st, &ref);
    snprintf(b->status, sizeof b->status, "%s", rc ? "Disconnected" : "Connected");
    snprintf(b->status_msg, sizeof b->status_msg, "%s", rc ? e->msg : "");
    if (rc == 0) {
        b->total = (int64_t)sp.total_bytes;
        b->available = (int64_t)sp.free_bytes;
    }
    return rc;
}

/* hostname names this host: its name, localhost or a loopback address. */
static int is_this_host(struct stowage *st, const char *h)
{
    return strcmp(h, core_hostname(st)) == 0 || strcmp(h, "localhost") == 0 ||
           strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0;
}

static int bs_row(struct stowage *st, const char *uuid, struct db_backup_storage *b,
                  struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bs_get(c, uuid, b, e);
    db_release(st->db, c);
    return rc;
}

static int bs_write(struct stowage *st, const struct db_backup_storage *b, int insert,
                    struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = insert ? db_bs_insert(c, b, e) : db_bs_update(c, b, e);
    db_release(st->db, c);
    if (rc == 0)
        core_bump(st);
    return rc;
}

static int made(struct core_task_ctx *t, const char *uuid)
{
    t->result = json_pack("{s:s}", "backup_storage", uuid);
    return t->result ? 0 : -1;
}

/* ---- the operations ---- */

void core_backup_uuid(const struct core_task_ctx *t, char out[CORE_ID])
{
    if (*core_task_str(t, "uuid"))
        snprintf(out, CORE_ID, "%s", core_task_str(t, "uuid"));
    else
        core_uuid32(out);
}

void core_uuid32(char out[CORE_ID])
{
    char s[37], *o = out;
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, s);
    for (const char *p = s; *p; p++) /* 32 hex digits, as backup storages are named */
        if (*p != '-')
            *o++ = *p;
    *o = '\0';
}

int core_backup_precheck_create(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *host = json_string_value(json_object_get(params, "hostname"));
    const char *url = json_string_value(json_object_get(params, "url"));
    const char *uuid = json_string_value(json_object_get(params, "uuid"));
    json_int_t port = json_integer_value(json_object_get(params, "port"));
    struct db_backup_storage *b;
    json_t *bp = NULL;

    if (!is_this_host(st, host))
        return st_fail_field(e, ST_INVALID, "hostname",
                             "hostname %.128s is not this host (%s): stowage keeps backups "
                             "on its own host and does not ssh anywhere",
                             host, core_hostname(st));
    if (json_object_get(params, "port") && (port < 1 || port > 65535))
        return st_fail_field(e, ST_INVALID, "port", "'port' must be 1 to 65535");
    if (!be_kind_for_url(url, &bp, e))
        return -1;
    json_decref(bp);
    if (uuid && (b = malloc(sizeof *b))) {
        int found = bs_row(st, uuid, b, e) == 0;
        free(b);
        if (found)
            return st_fail_field(e, ST_EXISTS, "uuid", "backup storage %s already exists", uuid);
    }
    return 0;
}

int core_backup_create(struct core_task_ctx *t, struct st_err *e)
{
    struct db_backup_storage *b = calloc(1, sizeof *b);
    json_t *params = NULL;
    const char *kind;
    int rc = -1;

    if (!b)
        return st_fail(e, ST_INTERNAL, "out of memory");
    core_backup_uuid(t, b->uuid);
    snprintf(b->name, sizeof b->name, "%s", core_task_str(t, "name"));
    snprintf(b->description, sizeof b->description, "%s", core_task_str(t, "description"));
    snprintf(b->type, sizeof b->type, "%s", BS_TYPE);
    snprintf(b->url, sizeof b->url, "%s", core_task_str(t, "url"));
    snprintf(b->hostname, sizeof b->hostname, "%s", core_task_str(t, "hostname"));
    snprintf(b->username, sizeof b->username, "%s", core_task_str(t, "username"));
    b->ssh_port = core_task_int(t, "port") ? core_task_int(t, "port") : 22;
    snprintf(b->state, sizeof b->state, "Enabled");
    b->created_at = b->last_op_at = time(NULL);
    if (!(kind = be_kind_for_url(b->url, &params, e)))
        goto out;
    snprintf(b->kind, sizeof b->kind, "%s", kind);
    const struct backend_ops *ops = be_ops_for(kind);
    if (ops->parse && ops->parse(params, e))
        goto out;
    char *pj = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    if (!pj || strlen(pj) >= sizeof b->params) {
        free(pj);
        st_fail_field(e, ST_INVALID, "url", "url is too long");
        goto out;
    }
    snprintf(b->params, sizeof b->params, "%s", pj);
    free(pj);
    /* A place that cannot be reached is refused: nothing is recorded. */
    if (core_backup_look(t->st, b, e) || bs_write(t->st, b, 1, e)) {
        core_bs_place_forget(t->st, b->uuid);
        goto out;
    }
    rc = made(t, b->uuid);
out:
    json_decref(params);
    free(b);
    return rc;
}

int core_backup_update(struct core_task_ctx *t, struct st_err *e)
{
    struct db_backup_storage *b = malloc(sizeof *b);
    int rc = -1;
    if (!b)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (bs_row(t->st, core_task_str(t, "backup_storage"), b, e))
        goto out;
    if (json_object_get(t->params, "hostname") &&
        !is_this_host(t->st, core_task_str(t, "hostname"))) {
        st_fail_field(e, ST_INVALID, "hostname", "hostname %.128s is not this host (%s)",
                      core_task_str(t, "hostname"), core_hostname(t->st));
        goto out;
    }
    if (json_object_get(t->params, "port") &&
        (core_task_int(t, "port") < 1 || core_task_int(t, "port") > 65535)) {
        st_fail_field(e, ST_INVALID, "port", "'port' must be 1 to 65535");
        goto out;
    }
#define TAKE(key, member)                                                                          \
    if (json_object_get(t->params, key))                                                           \
        snprintf(b->member, sizeof b->member, "%s", core_task_str(t, key));
    TAKE("name", name)
    TAKE("description", description)
    TAKE("hostname", hostname)
    TAKE("username", username)
#undef TAKE
    if (json_object_get(t->params, "port"))
        b->ssh_port = core_task_int(t, "port");
    b->last_op_at = time(NULL);
    if (bs_write(t->st, b, 0, e))
        goto out;
    rc = made(t, b->uuid);
out:
    free(b);
    return rc;
}

int core_backup_reconnect(struct core_task_ctx *t, struct st_err *e)
{
    struct db_backup_storage *b = malloc(sizeof *b);
    struct st_err ignore;
    int rc = -1;
    if (!b)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (bs_row(t->st, core_task_str(t, "backup_storage"), b, e))
        goto out;
    int seen = core_backup_look(t->st, b, e);
    if (seen == 0)
        core_backup_ceph_refresh(t->st, b);
    b->last_op_at = time(NULL);
    /* The status is recorded either way; a place that is not there fails the job. */
    if (bs_write(t->st, b, 0, seen ? &ignore : e) || seen)
        goto out;
    rc = made(t, b->uuid);
out:
    free(b);
    return rc;
}

int core_backup_precheck_state(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *s = json_string_value(json_object_get(params, "state"));
    (void)st;
    if (strcmp(s, "enable") && strcmp(s, "disable"))
        return st_fail_field(e, ST_INVALID, "state", "'state' must be enable or disable");
    return 0;
}

int core_backup_state(struct core_task_ctx *t, struct st_err *e)
{
    struct db_backup_storage *b = malloc(sizeof *b);
    int rc = -1;
    if (!b)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (bs_row(t->st, core_task_str(t, "backup_storage"), b, e))
        goto out;
    snprintf(b->state, sizeof b->state, "%s",
             strcmp(core_task_str(t, "state"), "enable") == 0 ? "Enabled" : "Disabled");
    b->last_op_at = time(NULL);
    if (bs_write(t->st, b, 0, e))
        goto out;
    rc = made(t, b->uuid);
out:
    free(b);
    return rc;
}

int core_backup_precheck_delete(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *uuid = json_string_value(json_object_get(params, "backup_storage"));
    int force = json_is_true(json_object_get(params, "force"));
    struct db_backup_storage *b = malloc(sizeof *b);
    int64_t n = 0;
    if (!b)
        return st_fail(e, ST_INTERNAL, "out of memory");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_bs_get(c, uuid, b, e);
    if (rc == 0)
        rc = db_bs_backup_count(c, uuid, &n, e);
    db_release(st->db, c);
    free(b);
    if (rc == 0 && n > 0 && !force)
        return st_fail(e, ST_IN_USE,
                       "backup storage %s holds %lld image backup(s); delete them first or "
                       "delete in the Enforcing mode",
                       uuid, (long long)n);
    return rc;
}

int core_backup_delete(struct core_task_ctx *t, struct st_err *e)
{
    if (core_backup_precheck_delete(t->st, t->params, e) ||
        core_bimage_drop_bs(t->st, core_task_str(t, "backup_storage"), e))
        return -1;
    struct db_conn *c = db_acquire(t->st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = db_bs_delete(c, core_task_str(t, "backup_storage"), e);
    if (core_txn_end(t->st, c, rc, e))
        return -1;
    core_backup_ceph_forget(t->st, core_task_str(t, "backup_storage"));
    core_bs_place_forget(t->st, core_task_str(t, "backup_storage"));
    core_bump(t->st);
    t->result = json_object();
    return 0;
}

/* ---- capacities ---- */

static int seen_uuid(char (*v)[DB_ID], size_t n, const char *uuid)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], uuid) == 0)
            return 1;
    return 0;
}

/* Add a backup storage's room once (in *picked). */
static int add_room(struct db_conn *c, const char *uuid, char (*picked)[DB_ID], size_t *n_picked,
                    uint64_t *total, uint64_t *available, struct db_backup_storage *b,
                    struct st_err *e)
{
    if (seen_uuid(picked, *n_picked, uuid))
        return 0;
    if (db_bs_get(c, uuid, b, e))
        return -1;
    snprintf(picked[(*n_picked)++], DB_ID, "%s", uuid);
    *total += (uint64_t)b->total;
    *available += (uint64_t)b->available;
    return 0;
}

int core_backup_capacity(struct stowage *st, const char *const *zones, size_t n_zones,
                         const char *const *bs, size_t n_bs, uint64_t *total, uint64_t *available,
                         struct st_err *e)
{
    struct db_backup_storage *b = malloc(sizeof *b);
    char(*picked)[DB_ID] = NULL, (*in_zone)[DB_ID] = NULL;
    size_t n_picked = 0, n_in = 0, cap = 0;
    int rc = -1;

    *total = *available = 0;
    if (!b)
        return st_fail(e, ST_INTERNAL, "out of memory");
    struct db_conn *c = db_acquire(st->db);
    if (n_zones == 0 && n_bs == 0) {
        struct db_backup_storage *rows = NULL;
        struct st_query all = {.limit = -1};
        size_t n = 0;
        rc = db_bs_query(c, &all, &rows, &n, NULL, e);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            *total += (uint64_t)rows[i].total;
            *available += (uint64_t)rows[i].available;
        }
        free(rows);
        goto out;
    }
    if (!(picked = malloc((n_bs + 1) * sizeof *picked))) {
        st_fail(e, ST_INTERNAL, "out of memory");
        goto out;
    }
    cap = n_bs + 1;
    for (size_t i = 0; i < n_bs; i++)
        if (add_room(c, bs[i], picked, &n_picked, total, available, b, e))
            goto out;
    for (size_t i = 0; i < n_zones; i++) {
        struct db_zone z;
        if (db_zone_get(c, zones[i], &z, e) ||
            db_zone_backup_storages(c, zones[i], &in_zone, &n_in, e))
            goto out;
        void *grown =
            n_picked + n_in > cap ? realloc(picked, (n_picked + n_in) * sizeof *picked) : picked;
        if (!grown) {
            st_fail(e, ST_INTERNAL, "out of memory");
            goto out;
        }
        picked = grown;
        cap = n_picked + n_in > cap ? n_picked + n_in : cap;
        for (size_t k = 0; k < n_in; k++)
            if (add_room(c, in_zone[k], picked, &n_picked, total, available, b, e))
                goto out;
        free(in_zone);
        in_zone = NULL;
    }
    rc = 0;
out:
    db_release(st->db, c);
    free(in_zone);
    free(picked);
    free(b);
    return rc;
}
