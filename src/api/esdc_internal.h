/* esdc_internal.h — what the Danube Cloud dialect's files share: the envelope, the
 * exception replies and the answer to a submitted job (esdc.c), the catalogue
 * (esdc_image.c), the tasks and ES-STREAM (esdc_task.c). */
#ifndef STOWAGE_ESDC_INTERNAL_H
#define STOWAGE_ESDC_INTERNAL_H

#include "api_internal.h"

/* esdc's task states and the HTTP status each one answers with. */
#define ESDC_SUCCESS 200
#define ESDC_PENDING 201
#define ESDC_FAILURE 400
#define ESDC_REVOKED 410

/* The headers every answer of a call carries: es_task_id, es_version, es_username,
 * es_dc, and es_task_response: true for the answers of tasks. */
void esdc_headers(struct http_req *r, const char *task_id, int task_response);
/* {"task_id", "status", "result"} (result stolen) with the headers. */
void esdc_reply_task(struct http_req *r, unsigned status, const char *task_id, json_t *result);
/* A synchronous call's answer: a new dummy task id, 200 SUCCESS. */
void esdc_reply_success(struct http_req *r, json_t *result);
/* A synchronous answer around a result kept in the reply cache: adds the headers of a new
 * dummy task and writes '{"task_id":…,"status":"SUCCESS","result":' to head (≥ 96 bytes);
 * the reply is head + the result's text + "}". */
void esdc_success_head(struct http_req *r, char *head, size_t len);
/* 400 FAILURE with result {field: [message]} (errors stolen). */
void esdc_reply_failure(struct http_req *r, json_t *errors);
/* One field's message as FAILURE. */
void esdc_fail_field(struct http_req *r, const char *field, const char *msg);
/* An exception: {"detail": msg} with status. */
void esdc_reply_detail(struct http_req *r, unsigned status, const char *msg);
/* A job was submitted: 201 PENDING, or the ES-STREAM answer when the client asked. */
void esdc_reply_submitted(struct http_req *r, const char *task_id);
/* A boolean GET parameter: t T true True TRUE 1. */
int esdc_query_bool(struct http_req *r, const char *key);

/* esdc_task.c */
const char *esdc_state_name(const struct core_job *j, unsigned *status);
json_t *esdc_task_status_json(const struct core_job *j, unsigned *status);
void esdc_stream(struct http_req *r, const char *task_id);
void esdc_task_list(struct http_req *r);
void esdc_task_status(struct http_req *r);
void esdc_task_done(struct http_req *r);
void esdc_task_cancel(struct http_req *r);
void esdc_task_log(struct http_req *r);

/* esdc_image.c */
void esdc_iso_time(int64_t t, char out[24]);
/* esdc's name rule (ImageSerializer.name: stricter than core's): a valid id of at most max
 * bytes; 0 after a FAILURE answer of field name. */
#define ESDC_IMAGE_NAME_MAX 32
int esdc_name_ok(struct http_req *r, const char *name, size_t max);
/* The image fields of a body (alias, version, desc, tags, access, resize, deploy, dc_bound)
 * into p; each refusal goes to errors as {field: [message]}. Tags text is kept in *tags. */
void esdc_image_fields(json_t *body, struct core_op_params *p, char **tags, json_t *errors);
/* Submit a job and answer: PENDING (or the stream), or core's refusal in esdc's terms
 * (ST_NOT_FOUND: 404 "<what> not found", ST_EXISTS: 406 "<what> already exists", but an
 * alias and version in use: FAILURE). */
void esdc_submit(struct http_req *r, enum core_op op, const struct core_op_params *p, json_t *body,
                 const char *what);
void esdc_image_list(struct http_req *r);
void esdc_image_get(struct http_req *r);
void esdc_image_put(struct http_req *r);
void esdc_image_post(struct http_req *r);
/* An import as POST /image/{name}/ takes it; manifest_url NULL: the body's. */
void esdc_import(struct http_req *r, const char *name, const char *manifest_url);

/* esdc_imagestore.c */
void esdc_imagestore_list(struct http_req *r);
void esdc_imagestore_get(struct http_req *r);
void esdc_imagestore_refresh(struct http_req *r);
void esdc_imagestore_images(struct http_req *r);
void esdc_imagestore_image(struct http_req *r);
void esdc_imagestore_import(struct http_req *r);
void esdc_imagestore_add(struct http_req *r);
void esdc_imagestore_remove(struct http_req *r);
void esdc_image_delete(struct http_req *r);
void esdc_image_vms(struct http_req *r);

/* esdc_snapshot.c */
void esdc_snapshot_list(struct http_req *r);
void esdc_snapshot_get(struct http_req *r);
void esdc_snapshot_post(struct http_req *r);
void esdc_snapshot_delete(struct http_req *r);
void esdc_snapshot_image(struct http_req *r);

#endif
