/* zstack_internal.h — what the ZStack dialect's files share: zstack.c (sessions, api-jobs,
 * the query language, backup storages) and zstack_image.c (images on backup storages). */
#ifndef STOWAGE_ZSTACK_INTERNAL_H
#define STOWAGE_ZSTACK_INTERNAL_H

#include "api_internal.h"

#define ZS_API "/zstack/v1"

/* ZStack's name of a field → the neutral one core queries by. */
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
    const struct zs_field *allow; /* terminated by {NULL, NULL} */
    const char *const *extra;     /* inventory fields fields= may name beyond allow (NULL-ended) */
};

/* A plain-text refusal, as ZStack's RestServer sends them. */
void api_zs_plain(struct http_req *r, unsigned status, const char *text);
/* An API's failure: 503 {"error": ErrorCode}. */
void api_zs_fail(struct http_req *r, const struct st_err *e);
/* The session of an API call: 0, or replied (-1). */
int api_zs_authorize(struct http_req *r, struct st_principal *who);
/* Queue op as the api-job (the client's X-Job-UUID) and answer 202 with its location. */
void api_zs_submit(struct http_req *r, const struct st_principal *who, enum core_op op,
                   const struct core_op_params *p);
/* ZStack's "Nov 14, 2017 10:20:57 PM" (UTC). */
json_t *api_zs_date(int64_t t);
int api_zs_is_uuid32(const char *s);
/* The body's object under key (the params or an action); replied (NULL) when none. */
json_t *api_zs_body_part(struct http_req *r, const char *key);
json_t *api_zs_error_body(const struct st_err *e, unsigned *status);
/* Fill z from the request's query string (z->allow set, z->q.limit its default first). */
void api_zs_query_parse(struct http_req *r, struct zs_query *z);
/* Keep only fields= of each inventory; -1 with z->bad naming an unknown one. */
int api_zs_pick_fields(struct zs_query *z, json_t *invs);
void api_zs_query_free(struct zs_query *z);

/* The reply of a finished api-job whose outcome names a backup image (zstack_image.c). */
void api_zs_image_result(struct http_req *r, const json_t *outcome);

#endif
