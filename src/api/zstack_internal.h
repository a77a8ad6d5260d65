/* zstack_internal.h — what the ZStack dialect's files share (zstack.c: replies, sessions,
 * api-jobs, the query language, queries over backup storages; zstack_ceph.c: Ceph backup
 * storages; zstack_image.c: images on backup storages). */
#ifndef STOWAGE_API_ZSTACK_INTERNAL_H
#define STOWAGE_API_ZSTACK_INTERNAL_H

#include "api_internal.h"

#define TYPE_CEPH "Ceph"

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

/* Fill z from the request's query string (z->allow set, z->q.limit its default first);
 * a refusal is left in z->bad. */
void zs_query_parse(struct http_req *r, struct zs_query *z);
/* Keep only fields= of each inventory; -1 with z->bad naming an unknown one. */
int zs_pick_fields(struct zs_query *z, json_t *invs);
void zs_query_free(struct zs_query *z);

/* zstack_image.c: the reply of a finished api-job whose outcome names a backup image. */
void zs_image_result(struct http_req *r, const json_t *outcome);

/* zstack_ceph.c: the Ceph fields of a Ceph backup storage's inventory, added to inv. */
void zs_ceph_fields(struct stowage *st, const struct core_backup *b, json_t *inv);

#endif
