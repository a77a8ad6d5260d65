/* esdc.c — Danube Cloud's namespace: /image/, /task/, /imagestore/, /vm/…/snapshot/,
 * /accounts/, at the root and under /api/ (where Danube's own clients send requests),
 * with and without the trailing slash (the router takes both; `es` follows no redirect).
 *
 * Every answer of a call is esdc's task envelope {"task_id","status","result"} with
 * the es_* headers; exceptions are {"detail": "…"} with esdc's statuses (403 for
 * missing or bad credentials in Django REST framework's words, 403 for a role that may
 * not, with core's reason, 406 exists, 412 bad order_by, 417 image not OK, 423
 * busy, 428 in use). The data path under /image/{name}/file/ is stowage's extension
 * and answers with the plain HTTP statuses of the native data path (docs/esdc.md). */
#include "esdc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

static json_t *detail(const char *msg)
{
    return json_pack("{s:s}", "detail", msg);
}

/* esdc words authentication as Django REST framework does, and answers 403 for both. */
static json_t *esdc_error(const struct st_err *e, unsigned *status)
{
    switch (e->code) {
    case ST_UNAUTHORIZED:
        *status = 403;
        return detail(strcmp(e->field, "Authorization") == 0
                          ? "Authentication credentials were not provided."
                          : "Invalid API key");
    case ST_EXISTS:
        *status = 406;
        break;
    case ST_CONFLICT:
        *status = 423;
        break;
    case ST_IN_USE:
    case ST_UNAVAILABLE:
        *status = 428;
        break;
    default:
        *status = http_status_of(e->code);
    }
    return detail(e->msg);
}

static json_t *data_error(const struct st_err *e, unsigned *status)
{
    *status = http_status_of(e->code);
    return detail(e->msg);
}

/* ---- the envelope ---- */

/* esdc's task ids of synchronous calls are never stored ("dummy" tasks): a random v4
 * uuid here, which /task/{id}/status/ does not know either. */
static void dummy_task_id(char out[37])
{
    unsigned char b[16] = {0};
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        memset(b, 0, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void esdc_headers(struct http_req *r, const char *task_id, int task_response)
{
    char(*ids)[CORE_ID] = NULL;
    size_t n = 0;
    struct st_err e;

    http_add_header(r, "es_task_id", task_id);
    if (task_response)
        http_add_header(r, "es_task_response", "true");
    http_add_header(r, "es_version", STOWAGE_VERSION);
    http_add_header(r, "es_username", http_principal(r)->owner);
    /* Datacenters are image storages: the current one is the default storage. */
    if (core_storage_ids(http_st(r), &ids, &n, &e) == 0 && n > 0)
        http_add_header(r, "es_dc", ids[0]);
    else
        http_add_header(r, "es_dc", "");
    free(ids);
}

void esdc_reply_task(struct http_req *r, unsigned status, const char *task_id, json_t *result)
{
    const char *state = status == ESDC_SUCCESS   ? "SUCCESS"
                        : status == ESDC_PENDING ? "PENDING"
                        : status == ESDC_REVOKED ? "REVOKED"
                                                 : "FAILURE";
    esdc_headers(r, task_id, status == ESDC_PENDING);
    http_reply_json(r, status,
                    json_pack("{s:s, s:s, s:o}", "task_id", task_id, "status", state, "result",
                              result ? result : json_null()));
}

void esdc_reply_success(struct http_req *r, json_t *result)
{
    char id[37];
    dummy_task_id(id);
    esdc_reply_task(r, ESDC_SUCCESS, id, result);
}

void esdc_success_head(struct http_req *r, char *head, size_t len)
{
    char id[37];
    dummy_task_id(id);
    esdc_headers(r, id, 0);
    snprintf(head, len, "{\"task_id\":\"%s\",\"status\":\"SUCCESS\",\"result\":", id);
}

void esdc_reply_failure(struct http_req *r, json_t *errors)
{
    char id[37];
    dummy_task_id(id);
    esdc_reply_task(r, ESDC_FAILURE, id, errors);
}

void esdc_fail_field(struct http_req *r, const char *field, const char *msg)
{
    esdc_reply_failure(r, json_pack("{s:[s]}", field, msg));
}

void esdc_reply_detail(struct http_req *r, unsigned status, const char *msg)
{
    http_reply_json(r, status, detail(msg));
}

void esdc_reply_submitted(struct http_req *r, const char *task_id)
{
    const char *stream = http_header(r, "ES-STREAM");
    if (stream && *stream) {
        esdc_stream(r, task_id);
        return;
    }
    esdc_reply_task(r, ESDC_PENDING, task_id, NULL);
}

int esdc_query_bool(struct http_req *r, const char *key)
{
    static const char *const yes[] = {"t", "T", "true", "True", "TRUE", "1"};
    const char *v = http_query(r, key);
    for (size_t i = 0; v && i < sizeof yes / sizeof *yes; i++)
        if (strcmp(v, yes[i]) == 0)
            return 1;
    return 0;
}

/* ---- accounts ---- */

static void logged_in(struct http_req *r, const struct core_login_result *res)
{
    char expires[32];
    time_t t = time(NULL) + 12 * 3600; /* core's session lifetime */
    struct tm tm;

    if (!res->ok) {
        if (res->err.code == ST_UNAUTHORIZED)
            esdc_reply_detail(r, 400, "Unable to log in with provided credentials.");
        else
            http_reply_error(r, &res->err);
        return;
    }
    gmtime_r(&t, &tm);
    strftime(expires, sizeof expires, "%Y-%m-%dT%H:%M:%SZ", &tm);
    http_reply_json(r, 200,
                    json_pack("{s:s, s:s, s:s}", "token", res->session, "expires", expires,
                              "detail", "Welcome to Danube Cloud API."));
}

/* A field esdc's login serializer requires, in its {"detail": {field: [msg]}} form. */
static int login_field(struct http_req *r, json_t *body, const char *key, const char **out)
{
    json_t *v = json_object_get(body, key);
    *out = json_string_value(v);
    if (*out && **out && json_string_length(v) <= 1024 && strlen(*out) == json_string_length(v))
        return 0;
    http_reply_json(r, 400, json_pack("{s:{s:[s]}}", "detail", key, "This field is required."));
    return -1;
}

static void login(struct http_req *r)
{
    const char *user, *pass;
    json_t *body = http_json(r);
    if (!json_is_object(body)) {
        esdc_reply_detail(r, 400, "Invalid data");
        return;
    }
    if (login_field(r, body, "username", &user) || login_field(r, body, "password", &pass))
        return;
    api_login(r, user, pass, logged_in);
}

static void logout(struct http_req *r)
{
    const char *auth = http_header(r, "Authorization"), *key = http_header(r, "ES-API-KEY");
    struct st_err e;
    if (auth && strncasecmp(auth, "Token ", 6) == 0)
        key = auth + 6;
    if (key && *key)
        core_session_end(http_st(r), key, &e); /* an API key stays valid */
    http_reply_json(r, 200, detail("Bye."));
}

/* ---- routes ---- */

static void put_file(struct http_req *r)
{
    api_data_put(r, http_capture(r, 0), NULL);
}
static void get_file(struct http_req *r)
{
    api_data_get(r, http_capture(r, 0), NULL);
}

/* Each route at the root and under /api/. */
#define R(method, path, body, role, fn)                                                            \
    {method, path, body, role, fn},                                                                \
    {                                                                                              \
        method, "/api" path, body, role, fn                                                        \
    }

/* `curl -T disk.qcow2 …/image/win10/file/` appends the local file name to a URL
 * ending in '/': that last segment is accepted and ignored. */
static const struct http_route data_routes[] = {
    R("PUT", "/image/{name}/file/", HTTP_BODY_STREAM, ROLE_ADMIN, put_file),
    R("PUT", "/image/{name}/file/{client_file_name}", HTTP_BODY_STREAM, ROLE_ADMIN, put_file),
    R("GET", "/image/{name}/file/", HTTP_BODY_NONE, ROLE_READER, get_file),
    {NULL, NULL, 0, 0, NULL},
};

/* Owns no prefix: errors for unknown /image/… paths come from api_esdc. */
const struct http_dialect api_esdc_data = {
    .name = "esdc-data",
    .prefixes = NULL,
    .routes = data_routes,
    .error_body = data_error,
};

/* Literal segments before captures: /task/log/ is not a task called "log". */
static const struct http_route routes[] = {
    R("POST", "/accounts/login/", HTTP_BODY_JSON, ROLE_NONE, login),
    R("GET", "/accounts/logout/", HTTP_BODY_NONE, ROLE_READER, logout),
    R("GET", "/image/", HTTP_BODY_NONE, ROLE_READER, esdc_image_list),
    R("GET", "/image/{name}/", HTTP_BODY_NONE, ROLE_READER, esdc_image_get),
    R("PUT", "/image/{name}/", HTTP_BODY_JSON, ROLE_ADMIN, esdc_image_put),
    R("POST", "/image/{name}/", HTTP_BODY_JSON, ROLE_ADMIN, esdc_image_post),
    R("DELETE", "/image/{name}/", HTTP_BODY_JSON, ROLE_ADMIN, esdc_image_delete),
    R("GET", "/image/{name}/vm/", HTTP_BODY_NONE, ROLE_READER, esdc_image_vms),
    R("GET", "/imagestore/", HTTP_BODY_NONE, ROLE_READER, esdc_imagestore_list),
    R("GET", "/imagestore/{name}/", HTTP_BODY_NONE, ROLE_READER, esdc_imagestore_get),
    R("PUT", "/imagestore/{name}/", HTTP_BODY_JSON, ROLE_ADMIN, esdc_imagestore_refresh),
    R("POST", "/imagestore/{name}/", HTTP_BODY_JSON, ROLE_SUPERADMIN, esdc_imagestore_add),
    R("DELETE", "/imagestore/{name}/", HTTP_BODY_JSON, ROLE_SUPERADMIN, esdc_imagestore_remove),
    R("GET", "/imagestore/{name}/image/", HTTP_BODY_NONE, ROLE_READER, esdc_imagestore_images),
    R("GET", "/imagestore/{name}/image/{uuid}/", HTTP_BODY_NONE, ROLE_READER,
      esdc_imagestore_image),
    R("POST", "/imagestore/{name}/image/{uuid}/", HTTP_BODY_JSON, ROLE_ADMIN,
      esdc_imagestore_import),
    R("GET", "/vm/{guest}/snapshot/", HTTP_BODY_NONE, ROLE_READER, esdc_snapshot_list),
    R("GET", "/vm/{guest}/snapshot/{snap}/", HTTP_BODY_NONE, ROLE_READER, esdc_snapshot_get),
    R("POST", "/vm/{guest}/snapshot/{snap}/", HTTP_BODY_JSON, ROLE_ADMIN, esdc_snapshot_post),
    R("DELETE", "/vm/{guest}/snapshot/{snap}/", HTTP_BODY_JSON, ROLE_ADMIN, esdc_snapshot_delete),
    R("POST", "/vm/{guest}/snapshot/{snap}/image/{name}/", HTTP_BODY_JSON, ROLE_ADMIN,
      esdc_snapshot_image),
    R("GET", "/task/", HTTP_BODY_NONE, ROLE_READER, esdc_task_list),
    R("GET", "/task/log/", HTTP_BODY_NONE, ROLE_READER, esdc_task_log),
    R("GET", "/task/{id}/status/", HTTP_BODY_NONE, ROLE_READER, esdc_task_status),
    R("GET", "/task/{id}/state/", HTTP_BODY_NONE, ROLE_READER, esdc_task_status),
    R("GET", "/task/{id}/done/", HTTP_BODY_NONE, ROLE_READER, esdc_task_done),
    R("PUT", "/task/{id}/cancel/", HTTP_BODY_JSON, ROLE_ADMIN, esdc_task_cancel),
    {NULL, NULL, 0, 0, NULL},
};

static const char *const prefixes[] = {
    "/image",    "/task",           "/imagestore", "/vm",           "/accounts", "/api/image",
    "/api/task", "/api/imagestore", "/api/vm",     "/api/accounts", NULL,
};

const struct http_dialect api_esdc = {
    .name = "esdc",
    .prefixes = prefixes,
    .routes = routes,
    .error_body = esdc_error,
};
