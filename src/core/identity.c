/* identity.c — which place a volume is, and whether two volumes overlap.
 *
 * A volume is a place, not a spelling of it: a directory however it is written, a
 * Gluster volume on its server. What a place is and how two places of one kind relate
 * is its backend's business (same_place, describe_place, own_place); this file holds
 * the policy. Two volumes on one place would each take the other's files for leftovers
 * of their own, so registration refuses overlaps, and recovery asks core_volume_doubt
 * before it removes anything. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *core_volume_params(const struct db_volume *v)
{
    json_t *p = json_loads(v->params[0] ? v->params : "{}", 0, NULL);
    return json_is_object(p) ? p : (json_decref(p), json_object());
}

int core_volume_set_params(struct db_volume *v, const json_t *params, struct st_err *e)
{
    char *text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    size_t len = text ? strlen(text) : 0;
    if (text && len < sizeof v->params)
        memcpy(v->params, text, len + 1);
    free(text);
    if (!text)
        return st_fail(e, ST_INTERNAL, "out of memory");
    return len < sizeof v->params ? 0 : st_fail(e, ST_INVALID, "volume parameters too long");
}

void core_volume_mount_dir(struct stowage *st, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s/volumes/%s", st->cfg.state_dir, id);
}

int core_volume_prepare(struct stowage *st, struct db_volume *v, struct st_err *e)
{
    const struct be_kind *k = be_kind(v->kind);
    const struct backend_ops *ops = be_kind_ops(v->kind, e);
    const struct be_env env = {st->cfg.state_dir, st->cfg.gluster_cli, st->cfg.gluster_timeout_ms};
    if (!ops)
        return -1;
    json_t *params = core_volume_params(v);
    int rc = ops->parse(params, e) || ops->prepare(params, k->origin == BE_FORMATTED, &env, e) ||
                     core_volume_set_params(v, params, e)
                 ? -1
                 : 0;
    json_decref(params);
    return rc;
}

/* How a and b relate, when their kinds share a backend (else apart). */
static int relate(const struct db_volume *a, const json_t *pa, const struct db_volume *b,
                  enum be_place *out, struct st_err *e)
{
    const struct backend_ops *ops = be_ops_for(a->kind);
    *out = BE_PLACE_APART;
    if (!ops || ops != be_ops_for(b->kind))
        return 0;
    json_t *pb = core_volume_params(b);
    int rc = ops->same_place(pa, pb, out, e);
    json_decref(pb);
    return rc;
}

static void place_of(const struct db_volume *v, const json_t *params, char *out, size_t len)
{
    const struct backend_ops *ops = be_ops_for(v->kind);
    out[0] = '\0';
    if (ops)
        ops->describe_place(params, out, len);
}

int core_volume_check_place(const struct db_volume *v, const struct db_volume *rows, size_t n,
                            const char *field, struct st_err *e)
{
    char mine[DB_PATH], theirs[DB_PATH];
    json_t *pv = core_volume_params(v);
    int rc = 0;

    place_of(v, pv, mine, sizeof mine);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct db_volume *o = &rows[i];
        enum be_place rel;
        if (strcmp(o->id, v->id) == 0)
            continue;
        if ((rc = relate(v, pv, o, &rel, e)))
            break;
        json_t *po = core_volume_params(o);
        place_of(o, po, theirs, sizeof theirs);
        json_decref(po);
        switch (rel) {
        case BE_PLACE_SAME:
            if (strcmp(mine, theirs) == 0)
                rc = st_fail_field(e, ST_EXISTS, field, "%s is already volume '%s'", mine, o->id);
            else
                rc = st_fail_field(e, ST_EXISTS, field,
                                   "%s is already volume '%s' (registered as %s)", mine, o->id,
                                   theirs);
            break;
        case BE_PLACE_INSIDE:
            rc = st_fail_field(e, ST_CONFLICT, field, "%s is inside volume '%s' (%s)", mine, o->id,
                               theirs);
            break;
        case BE_PLACE_CONTAINS:
            rc = st_fail_field(e, ST_CONFLICT, field, "%s contains volume '%s' (%s)", mine, o->id,
                               theirs);
            break;
        case BE_PLACE_APART:
            break;
        }
    }
    json_decref(pv);
    return rc;
}

int core_volume_doubt(struct stowage *st, const struct db_volume *v, const struct backend_ops *ops,
                      struct be_volume *be, const struct db_volume *rows, size_t n, char *why,
                      size_t len)
{
    json_t *params = core_volume_params(v);
    struct st_err e;
    int changed = 0;

    why[0] = '\0';
    char name[DB_ID + 16];
    snprintf(name, sizeof name, "volume '%s'", v->id);
    if (ops->own_place(be, name, params, &changed, why, len) == 0 && changed) {
        /* A volume registered before its place was recorded: it is now. */
        char *text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
        struct db_conn *c = db_acquire(st->db);
        if (text && db_volume_set_params(c, v->id, text, &e))
            fprintf(stderr, "stowaged: volume %s: %s\n", v->id, e.msg);
        db_release(st->db, c);
        free(text);
    }
    for (size_t i = 0; !why[0] && i < n; i++) {
        enum be_place rel;
        if (strcmp(rows[i].id, v->id) != 0 && relate(v, params, &rows[i], &rel, &e) == 0 &&
            rel == BE_PLACE_SAME)
            snprintf(why, len, "volume '%s' uses the same place", rows[i].id);
    }
    json_decref(params);
    return why[0] ? -1 : 0;
}
