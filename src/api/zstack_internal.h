/* zstack_internal.h — what the ZStack dialect's files share (zstack.c: replies, sessions,
 * api-jobs, the query language, queries over backup storages; zstack_ceph.c: Ceph backup
 * storages; zstack_zone.c: zones; zstack_image.c: images on backup storages). */
#ifndef STOWAGE_API_ZSTACK_INTERNAL_H
#define STOWAGE_API_ZSTACK_INTERNAL_H

#include "api_internal.h"

#define TYPE_CEPH "Ceph"
#define ZS_API "/zstack/v1"

/* The RestServer's own refusals: plain text. */
void zs_plain(struct http_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* What the HTTP layer refuses before a handler runs (the dialects' error_body). */
json_t *zs_error(const struct st_err *e, unsigned *status);
/* An API's failure: 503 {"error": ErrorCode} from ZStack's catalogue for e's code. */
void zs_fail(struct http_req *r, const struct st_err *e);
/* The session of an API call: 0, or replied (-1). */
int zs_authorize(struct http_req *r, struct st_principal *who);
/* The job id of a call (X-Job-UUID, else a new one): 0, or replied. */
int zs_job_id(struct http_req *r, char id[33]);
/* Queue op as the api-job (the client's X-Job-UUID) and answer 202 with its location. */
void zs_submit(struct http_req *r, const struct st_principal *who, enum core_op op,
               const struct core_op_params *p);
/* Answer a submit: 202 with the api-job's location (rc 0), else the refusal. */
void zs_submitted(struct http_req *r, int rc, const char *id, const char *got,
                  const struct st_err *e);
/* A handler's last step: queue op as zs_submit does when reading its params gave rc 0,
 * else reply e, the refusal. */
void zs_submit_checked(struct http_req *r, const struct st_principal *who, enum core_op op,
                       const struct core_op_params *p, int rc, const struct st_err *e);
/* 400: the body holds no action this URL takes (ZStack's RestServer's wording). */
void zs_no_action(struct http_req *r);
/* A uuid a client chose (NULL: none): 32 hex digits, else ST_INVALID naming field. */
int zs_check_uuid(const char *field, const char *uuid, struct st_err *e);
/* The "params" (or an action's) object of a body: replied (NULL) when it is not one. */
json_t *zs_body_part(struct http_req *r, const char *key);
json_t *zs_date_json(int64_t t);
int zs_is_uuid32(const char *s);
/* A backup storage's inventory, and the class name its "schema" entry gives. */
json_t *zs_bs_inventory(struct stowage *st, const struct core_backup *b);
const char *zs_bs_schema(const struct core_backup *b);
/* GET a list of backup storages: of type (NULL: all), one uuid (NULL: a query). */
void zs_query_bs(struct http_req *r, const char *type, const char *uuid);

/* ---- the query language ---- */

/* ZStack's name of a field → the neutral one core queries by; {NULL, NULL} ends a list. */
struct zs_field {
    const char *zs;
    const char *neutral;
};

/* A parsed query string (q=, limit, start, count, replyWithCount, fields, sort). */
struct zs_query {
    struct st_query q;
    int count, with_count;
    char *fields;  /* "a,b" (ZStack names) or NULL */
    char bad[512]; /* the first refusal, "" when none */
    char names[ST_QUERY_MAX_CONDS][64];
    char *values[ST_QUERY_MAX_CONDS];
    char sort[64];
    const struct zs_field *allow;
    /* the inventory's fields that `fields` may name but q may not, NULL-ended (NULL: those
     * of the backup storages' inventories) */
    const char *const *extra;
};

/* Authorize and parse a list's query (uuid: GET …/{uuid}, one condition) over allow:
 * 0, or replied (-1, z freed). */
int zs_query_begin(struct http_req *r, struct zs_query *z, const struct zs_field *allow,
                   const char *const *extra, const char *uuid);
/* Core refused the query: 400 plain text for a bad field or value, else the ErrorCode. */
void zs_query_failed(struct http_req *r, const struct st_err *e);
/* schema["inventories[i]"] = inv_class. */
void zs_schema_add(json_t *schema, size_t i, const char *inv_class);
/* The reply to a query: {"total"} for count=true, else the inventories and their schema
 * (both stolen), the asked fields only, and "total" with replyWithCount. */
void zs_query_reply(struct http_req *r, struct zs_query *z, json_t *invs, json_t *schema,
                    int64_t total);
void zs_query_free(struct zs_query *z);

/* ---- zones (zstack_zone.c) ---- */

/* A finished zone job's result: the zone's inventory. */
void zs_zone_result(struct http_req *r, const char *zone);
void zs_query_zones(struct http_req *r);
void zs_get_zone(struct http_req *r);
void zs_create_zone(struct http_req *r);
void zs_delete_zone(struct http_req *r);
void zs_zone_action(struct http_req *r);
void zs_attach_bs(struct http_req *r);
void zs_detach_bs(struct http_req *r);

/* ---- images on backup storages (zstack_image.c) ---- */

/* The reply of a finished api-job whose outcome names a backup image. */
void zs_image_result(struct http_req *r, const json_t *outcome);

/* zstack_ceph.c: the Ceph fields of a Ceph backup storage's inventory, added to inv. */
void zs_ceph_fields(struct stowage *st, const struct core_backup *b, json_t *inv);

#endif
