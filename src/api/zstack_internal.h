/* zstack_internal.h — what the ZStack dialect's files share (zstack.c: replies, sessions,
 * api-jobs, queries over backup storages; zstack_ceph.c: Ceph backup storages). */
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

/* zstack_ceph.c: the Ceph fields of a Ceph backup storage's inventory, added to inv. */
void zs_ceph_fields(struct stowage *st, const struct core_backup *b, json_t *inv);

#endif
