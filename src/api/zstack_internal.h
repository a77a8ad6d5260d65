/* zstack_internal.h — what the ZStack dialect's files share: the replies (plain text of
 * the REST server, ErrorCodes of an API), sessions, api-jobs and the query language
 * (zstack.c), and the zones (zstack_zone.c). */
#ifndef STOWAGE_ZSTACK_INTERNAL_H
#define STOWAGE_ZSTACK_INTERNAL_H

#include "api_internal.h"

#define ZS_API "/zstack/v1"

/* The REST server's own refusals: plain text. */
void zs_plain(struct http_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An API's failure: 503 {"error": ErrorCode} from ZStack's catalogue for e->code. */
void zs_fail(struct http_req *r, const struct st_err *e);
/* ZStack's date of unix seconds, "Nov 14, 2017 10:20:57 PM" (UTC). */
json_t *zs_date_json(int64_t t);
/* 32 lowercase hex digits. */
int zs_is_uuid32(const char *s);
/* The session of an API call: 0, or replied (-1). */
int zs_authorize(struct http_req *r, struct st_principal *who);
/* Queue op as the api-job (the client's X-Job-UUID) and answer 202 with its location. */
void zs_submit(struct http_req *r, const struct st_principal *who, enum core_op op,
               const struct core_op_params *p);
/* The "params" (or an action's) object of a body: replied (NULL) when it is not one. */
json_t *zs_body_part(struct http_req *r, const char *key);

/* ---- the query language ---- */

/* ZStack's name of a field → the neutral one core queries by; {NULL, NULL} ends a list. */
struct zs_field {
    const char *zs;
    const char *neutral;
};

struct zs_query {
    struct st_query q;
    int count, with_count;
    char *fields;  /* "a,b" (ZStack names) or NULL */
    char bad[512]; /* the first refusal, "" when none */
    char names[ST_QUERY_MAX_CONDS][64];
    char *values[ST_QUERY_MAX_CONDS];
    char sort[64];
    const struct zs_field *allow;
    const char *extra_field; /* a field of the inventory `fields` may name but q may not */
};

/* Authorize and parse a list's query (uuid: GET …/{uuid}, one condition) over allow:
 * 0, or replied (-1, z freed). */
int zs_query_begin(struct http_req *r, struct zs_query *z, const struct zs_field *allow,
                   const char *extra_field, const char *uuid);
/* Core refused the query: 400 plain text for a bad field or value, else the ErrorCode. */
void zs_query_failed(struct http_req *r, const struct st_err *e);
/* The reply to a query: {"total"} for count=true, else the inventories (stolen) typed as
 * inv_class in "schema", the asked fields only, and "total" with replyWithCount. */
void zs_query_reply(struct http_req *r, struct zs_query *z, json_t *invs, int64_t total,
                    const char *inv_class);
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

#endif
