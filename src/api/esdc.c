/* esdc.c — Danube Cloud's namespace: /image/, /task/, /imagestore/, /vm/.
 *
 * Errors are {"detail": "…"}. Danube Cloud's own calls use its statuses
 * (406 exists, 423 busy, 428 in use or image server unavailable); the data
 * path under /image/{name}/file/ is stowage's extension and answers with the
 * plain HTTP statuses of the native data path (400, 409, 413, 416, 507 …),
 * documented in docs/esdc.md. */
#include "api_internal.h"

static json_t *detail(const struct st_err *e)
{
    return json_pack("{s:s}", "detail", e->msg);
}

static json_t *esdc_error(const struct st_err *e, unsigned *status)
{
    switch (e->code) {
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
    return detail(e);
}

static json_t *data_error(const struct st_err *e, unsigned *status)
{
    *status = http_status_of(e->code);
    return detail(e);
}

static void put_file(struct http_req *r)
{
    api_data_put(r, http_capture(r, 0), NULL);
}
static void get_file(struct http_req *r)
{
    api_data_get(r, http_capture(r, 0), NULL);
}

/* `curl -T disk.qcow2 …/image/win10/file/` appends the local file name to a URL
 * ending in '/': that last segment is accepted and ignored. */
static const struct http_route data_routes[] = {
    {"PUT", "/image/{name}/file/", HTTP_BODY_STREAM, ROLE_ADMIN, put_file},
    {"PUT", "/image/{name}/file/{client_file_name}", HTTP_BODY_STREAM, ROLE_ADMIN, put_file},
    {"GET", "/image/{name}/file/", HTTP_BODY_NONE, ROLE_READER, get_file},
    {NULL, NULL, 0, 0, NULL},
};

/* Owns no prefix: errors for unknown /image/… paths come from api_esdc. */
const struct http_dialect api_esdc_data = {
    .name = "esdc-data",
    .prefixes = NULL,
    .routes = data_routes,
    .error_body = data_error,
};

static const struct http_route routes[] = {
    {NULL, NULL, 0, 0, NULL},
};

static const char *const prefixes[] = {"/image", "/task", "/imagestore", "/vm", "/accounts", NULL};

const struct http_dialect api_esdc = {
    .name = "esdc",
    .prefixes = prefixes,
    .routes = routes,
    .error_body = esdc_error,
};
