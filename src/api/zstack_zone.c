/* zstack_zone.c — ZStack's zones: create, query, update, change state, delete, and the
 * attachment of backup storages (POST / DELETE /zones/{zone}/backup-storage/{bs}).
 *
 * A zone is a named group here (core/zone.c): it holds no storage of its own, and a
 * backup storage's inventory lists the zones it is attached to (attachedZoneUuids).
 * Attach and detach answer the backup storage's inventory, as ZStack's events do. */
#include "zstack_internal.h"

#include <stdlib.h>
#include <string.h>

#define INV_ZONE "org.zstack.header.zone.ZoneInventory"
#define ZONE_TYPE "zstack" /* ZStack's only zone type */

static const struct zs_field zone_fields[] = {
    {"uuid", "uuid"},
    {"name", "name"},
    {"description", "description"},
    {"state", "state"},
    {"createDate", "created_at"},
    {"lastOpDate", "last_op_at"},
    {NULL, NULL},
};
/* shown, never queried by */
static const char *const zone_extra[] = {"type", NULL};

static json_t *zone_inventory(const struct core_zone *z)
{
    json_t *inv = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "uuid", z->uuid, "name", z->name,
                            "state", z->state, "type", ZONE_TYPE, "createDate",
                            zs_date_json(z->created_at), "lastOpDate", zs_date_json(z->last_op_at));
    if (inv && z->description[0]) /* ZStack's null description is omitted */
        json_object_set_new(inv, "description", json_string(z->description));
    return inv;
}

void zs_zone_result(struct http_req *r, const char *zone)
{
    struct core_zone z;
    struct st_err e;
    if (core_zone_get(http_st(r), zone, &z, &e)) {
        zs_fail(r, &e);
        return;
    }
    http_reply_json(r, 200,
                    json_pack("{s:o, s:{s:s}}", "inventory", zone_inventory(&z), "schema",
                              "inventory", INV_ZONE));
}

static void query(struct http_req *r, const char *uuid)
{
    struct zs_query z;
    struct core_zone *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    struct st_err e;

    if (zs_query_begin(r, &z, zone_fields, zone_extra, uuid))
        return;
    if (core_zone_query(http_st(r), &z.q, z.count ? NULL : &v, &n, &total, &e)) {
        zs_query_failed(r, &e);
    } else {
        json_t *invs = json_array(), *schema = json_object();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(invs, zone_inventory(&v[i]));
            zs_schema_add(schema, i, INV_ZONE);
        }
        zs_query_reply(r, &z, invs, schema, total);
    }
    free(v);
    zs_query_free(&z);
}

void zs_query_zones(struct http_req *r)
{
    query(r, NULL);
}

void zs_get_zone(struct http_req *r)
{
    query(r, http_capture(r, 0));
}

void zs_create_zone(struct http_req *r)
{
    struct st_principal who;
    struct core_op_params p = {0};
    struct st_err e;
    json_t *b;
    if (zs_authorize(r, &who) || !(b = zs_body_part(r, "params")))
        return;
    int rc = http_json_string(b, "name", 1, 255, &p.name, &e) ||
             http_json_string(b, "description", 0, 2048, &p.description, &e) ||
             http_json_string(b, "resourceUuid", 0, 64, &p.uuid, &e) ||
             zs_check_uuid("resourceUuid", p.uuid, &e);
    zs_submit_checked(r, &who, CORE_OP_ZONE_CREATE, &p, rc, &e);
}

void zs_delete_zone(struct http_req *r)
{
    struct st_principal who;
    struct core_op_params p = {0};
    if (zs_authorize(r, &who))
        return;
    p.zone = http_capture(r, 0);
    zs_submit(r, &who, CORE_OP_ZONE_DELETE, &p);
}

/* {"updateZone": {name, description}} or {"changeZoneState": {"stateEvent"}}. */
void zs_zone_action(struct http_req *r)
{
    struct st_principal who;
    struct core_op_params p = {0};
    struct st_err e;
    json_t *body = http_json(r), *b;
    int rc;
    if (zs_authorize(r, &who))
        return;
    p.zone = http_capture(r, 0);
    if (json_is_object(b = json_object_get(body, "updateZone"))) {
        rc = http_json_string(b, "name", 0, 255, &p.name, &e) ||
             http_json_string(b, "description", 0, 2048, &p.description, &e);
    } else if (json_is_object(b = json_object_get(body, "changeZoneState"))) {
        rc = http_json_string(b, "stateEvent", 1, 16, &p.state, &e);
    } else {
        zs_no_action(r);
        return;
    }
    zs_submit_checked(r, &who, CORE_OP_ZONE_UPDATE, &p, rc, &e);
}

static void pair(struct http_req *r, enum core_op op)
{
    struct st_principal who;
    struct core_op_params p = {0};
    if (zs_authorize(r, &who))
        return;
    p.zone = http_capture(r, 0);
    p.backup_storage = http_capture(r, 1);
    zs_submit(r, &who, op, &p);
}

void zs_attach_bs(struct http_req *r)
{
    pair(r, CORE_OP_ZONE_ATTACH);
}

void zs_detach_bs(struct http_req *r)
{
    pair(r, CORE_OP_ZONE_DETACH);
}
