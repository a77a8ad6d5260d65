/* zone.c — ZStack's zones as stowage keeps them: named groups with a state, to which
 * backup storages are attached. A zone owns no storage and no image storage: attaching
 * only records the pair, and a backup storage's views list its zones. */
#include "task_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void from_row(const struct db_zone *z, struct core_zone *out)
{
    memset(out, 0, sizeof *out);
    CORE_COPY_TEXT(out, z, uuid);
    CORE_COPY_TEXT(out, z, name);
    CORE_COPY_TEXT(out, z, description);
    CORE_COPY_TEXT(out, z, state);
    out->created_at = z->created_at;
    out->last_op_at = z->last_op_at;
}

int core_zone_query(struct stowage *st, const struct st_query *q, struct core_zone **out, size_t *n,
                    int64_t *total, struct st_err *e)
{
    struct db_zone *rows = NULL;
    size_t cnt = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_zone_query(c, q, out ? &rows : NULL, &cnt, total, e);
    db_release(st->db, c);
    if (rc == 0 && out) {
        if (!(*out = calloc(cnt ? cnt : 1, sizeof **out))) {
            free(rows);
            return st_fail(e, ST_INTERNAL, "out of memory");
        }
        for (size_t i = 0; i < cnt; i++)
            from_row(&rows[i], &(*out)[i]);
        *n = cnt;
    }
    free(rows);
    return rc;
}

static int zone_row(struct stowage *st, const char *uuid, struct db_zone *z, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_zone_get(c, uuid, z, e);
    db_release(st->db, c);
    return rc;
}

int core_zone_get(struct stowage *st, const char *uuid, struct core_zone *out, struct st_err *e)
{
    struct db_zone z;
    if (zone_row(st, uuid, &z, e))
        return -1;
    from_row(&z, out);
    return 0;
}

static int zone_write(struct stowage *st, const struct db_zone *z, int insert, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = insert ? db_zone_insert(c, z, e) : db_zone_update(c, z, e);
    db_release(st->db, c);
    if (rc == 0)
        core_bump(st);
    return rc;
}

static int made(struct core_task_ctx *t, const char *key, const char *uuid, struct st_err *e)
{
    t->result = json_pack("{s:s}", key, uuid);
    return t->result ? 0 : st_fail(e, ST_INTERNAL, "out of memory");
}

/* ---- the operations ---- */

int core_zone_precheck_create(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *uuid = json_string_value(json_object_get(params, "uuid"));
    struct db_zone z;
    if (uuid && zone_row(st, uuid, &z, e) == 0)
        return st_fail_field(e, ST_EXISTS, "uuid", "zone %s already exists", uuid);
    return 0;
}

int core_zone_create(struct core_task_ctx *t, struct st_err *e)
{
    struct db_zone z = {0};
    if (*core_task_str(t, "uuid"))
        snprintf(z.uuid, sizeof z.uuid, "%s", core_task_str(t, "uuid"));
    else
        core_uuid32(z.uuid);
    snprintf(z.name, sizeof z.name, "%s", core_task_str(t, "name"));
    snprintf(z.description, sizeof z.description, "%s", core_task_str(t, "description"));
    snprintf(z.state, sizeof z.state, "Enabled");
    z.created_at = z.last_op_at = time(NULL);
    if (zone_write(t->st, &z, 1, e))
        return -1;
    return made(t, "zone", z.uuid, e);
}

int core_zone_precheck_update(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *s = json_string_value(json_object_get(params, "state"));
    struct db_zone z;
    if (s && strcmp(s, "enable") && strcmp(s, "disable"))
        return st_fail_field(e, ST_INVALID, "state", "'state' must be enable or disable");
    return zone_row(st, json_string_value(json_object_get(params, "zone")), &z, e);
}

int core_zone_update(struct core_task_ctx *t, struct st_err *e)
{
    struct db_zone z;
    if (zone_row(t->st, core_task_str(t, "zone"), &z, e))
        return -1;
    if (json_object_get(t->params, "name"))
        snprintf(z.name, sizeof z.name, "%s", core_task_str(t, "name"));
    if (json_object_get(t->params, "description"))
        snprintf(z.description, sizeof z.description, "%s", core_task_str(t, "description"));
    if (json_object_get(t->params, "state"))
        snprintf(z.state, sizeof z.state, "%s",
                 strcmp(core_task_str(t, "state"), "enable") == 0 ? "Enabled" : "Disabled");
    z.last_op_at = time(NULL);
    if (zone_write(t->st, &z, 0, e))
        return -1;
    return made(t, "zone", z.uuid, e);
}

int core_zone_precheck_delete(struct stowage *st, const json_t *params, struct st_err *e)
{
    struct db_zone z;
    return zone_row(st, json_string_value(json_object_get(params, "zone")), &z, e);
}

/* The backup storages attached to it are detached, as ZStack's zone deletion does. */
int core_zone_delete(struct core_task_ctx *t, struct st_err *e)
{
    struct db_conn *c = db_acquire(t->st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = db_zone_delete(c, core_task_str(t, "zone"), e);
    if (core_txn_end(t->st, c, rc, e))
        return -1;
    core_bump(t->st);
    t->result = json_object();
    return 0;
}

/* Both the zone and the backup storage exist; attached says whether they must be. */
static int check_pair(struct stowage *st, const json_t *params, int attached, struct st_err *e)
{
    const char *zone = json_string_value(json_object_get(params, "zone"));
    const char *bs = json_string_value(json_object_get(params, "backup_storage"));
    struct core_backup *b = malloc(sizeof *b);
    struct db_zone z;
    int rc = -1;
    if (!b)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (zone_row(st, zone, &z, e) || core_backup_get(st, bs, b, e))
        goto out;
    int is = 0;
    for (size_t i = 0; i < b->n_zones; i++)
        is |= strcmp(b->zones[i], zone) == 0;
    if (is && !attached)
        st_fail_field(e, ST_INVALID, "backup_storage",
                      "backup storage %s has been attached to zone %s", bs, zone);
    else if (!is && attached)
        st_fail_field(e, ST_INVALID, "backup_storage",
                      "backup storage %s is not attached to zone %s", bs, zone);
    else
        rc = 0;
    free(b->zones);
out:
    free(b);
    return rc;
}

int core_zone_precheck_attach(struct stowage *st, const json_t *params, struct st_err *e)
{
    return check_pair(st, params, 0, e);
}

int core_zone_precheck_detach(struct stowage *st, const json_t *params, struct st_err *e)
{
    return check_pair(st, params, 1, e);
}

static int pair_op(struct core_task_ctx *t, int attach, struct st_err *e)
{
    const char *zone = core_task_str(t, "zone"), *bs = core_task_str(t, "backup_storage");
    struct db_zone z;
    if (zone_row(t->st, zone, &z, e))
        return -1;
    struct db_conn *c = db_acquire(t->st->db);
    int rc = attach ? db_zone_attach(c, zone, bs, e) : db_zone_detach(c, zone, bs, e);
    db_release(t->st->db, c);
    if (rc)
        return -1;
    core_bump(t->st);
    return made(t, "backup_storage", bs, e);
}

int core_zone_attach(struct core_task_ctx *t, struct st_err *e)
{
    return pair_op(t, 1, e);
}

int core_zone_detach(struct core_task_ctx *t, struct st_err *e)
{
    return pair_op(t, 0, e);
}
