/* imgapi.c — stowage as an IMGAPI server (Joyent's image API, which Danube Cloud's
 * /imagestore/ and `imgadm` read): GET /images, GET /images/{uuid} (the manifest),
 * GET /images/{uuid}/file (the bytes, through the data path). So one stowage imports
 * from another.
 *
 * Like a public IMGAPI server it answers without credentials, and then shows only public
 * images (access 1); a client with any valid token sees every active image. The file is
 * served as stored (compression "none"); files[0].sha1 is core's cached SHA-1 of it.
 * Errors are IMGAPI's {"code", "message"} (ResourceNotFound, InternalError …). */
#include "api_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MIB (1024u * 1024u)

static json_t *imgapi_error(const struct st_err *e, unsigned *status)
{
    const char *code;
    *status = http_status_of(e->code);
    switch (e->code) {
    case ST_NOT_FOUND:
        code = "ResourceNotFound";
        break;
    case ST_INVALID:
        code = "ValidationFailed";
        break;
    case ST_UNAUTHORIZED:
    case ST_FORBIDDEN:
        code = "NotAuthorized";
        break;
    default:
        code = *status >= 500 ? "InternalError" : "ImageNotActive";
    }
    return json_pack("{s:s, s:s}", "code", code, "message", e->msg);
}

/* Any valid token of this daemon: the client may see private images too. */
static int trusted(struct http_req *r)
{
    struct st_principal who;
    struct st_err e;
    const char *h = http_header(r, "Authorization");
    if (!h)
        return 0;
    if (strncasecmp(h, "Bearer ", 7) == 0 || strncasecmp(h, "Token ", 6) == 0)
        h = strchr(h, ' ') + 1;
    return core_authenticate(http_st(r), h, &who, &e) == 0 && who.role >= ROLE_READER;
}

static int visible(struct http_req *r, const struct core_image *im, int trust)
{
    return strcmp(im->status, "active") == 0 && (trust || im->access == 1);
}

static const char *os_of(int ostype)
{
    static const char *const os[] = {"other", "linux", "smartos", "bsd", "windows"};
    return ostype >= 0 && ostype <= 4 ? os[ostype] : "other";
}

static json_t *manifest(struct http_req *r, const struct core_image *im, struct st_err *e)
{
    char sha1[41], published[24];
    uint64_t size = 0;
    struct tm tm;
    time_t t = (time_t)im->created_at;
    json_error_t je;

    if (core_image_sha1(http_st(r), im->uuid, sha1, &size, e))
        return NULL;
    published[0] = '\0';
    if (gmtime_r(&t, &tm))
        strftime(published, sizeof published, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *tags = json_loads(im->tags[0] ? im->tags : "[]", 0, &je);
    if (!json_is_array(tags)) {
        json_decref(tags);
        tags = json_array();
    }
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:s, s:s, s:s, s:I, "
                     "s:{s:o, s:b, s:b}, s:[{s:s, s:I, s:s}]}",
                     "v", 2, "uuid", im->uuid, "owner", "00000000-0000-0000-0000-000000000000",
                     "name", im->name, "version", im->version, "state", "active", "disabled", 0,
                     "public", im->access == 1, "published_at", published, "type", "zvol", "os",
                     os_of(im->ostype), "description", im->description, "image_size",
                     (json_int_t)((im->virtual_size + MIB - 1) / MIB), "tags", "tags", tags,
                     "resize", im->resize, "deploy", im->deploy, "files", "sha1", sha1, "size",
                     (json_int_t)size, "compression", "none");
}

static void list(struct http_req *r)
{
    struct core_image *v = NULL;
    size_t n = 0;
    struct st_err e;
    int trust = trusted(r);

    if (core_image_list(http_st(r), &v, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!visible(r, &v[i], trust))
            continue;
        json_t *m = manifest(r, &v[i], &e);
        if (m)
            json_array_append_new(arr, m); /* an image gone meanwhile is left out */
    }
    free(v);
    http_reply_json(r, 200, arr);
}

/* The visible image of the path's uuid; else the reply is sent. */
static int find(struct http_req *r, struct core_image *im)
{
    struct st_err e;
    if (core_image_get(http_st(r), http_capture(r, 0), im, &e) == 0 && visible(r, im, trusted(r)))
        return 0;
    st_fail(&e, ST_NOT_FOUND, "image %.40s does not exist", http_capture(r, 0));
    http_reply_error(r, &e);
    return -1;
}

static void get(struct http_req *r)
{
    struct core_image im;
    struct st_err e;
    if (find(r, &im))
        return;
    json_t *m = manifest(r, &im, &e);
    if (!m)
        http_reply_error(r, &e);
    else
        http_reply_json(r, 200, m);
}

static void get_file(struct http_req *r)
{
    struct core_image im;
    if (find(r, &im) == 0)
        api_data_get(r, NULL, im.uuid);
}

static const struct http_route routes[] = {
    {"GET", "/images", HTTP_BODY_NONE, ROLE_NONE, list},
    {"GET", "/images/{uuid}", HTTP_BODY_NONE, ROLE_NONE, get},
    {"GET", "/images/{uuid}/file", HTTP_BODY_NONE, ROLE_NONE, get_file},
    {NULL, NULL, 0, 0, NULL},
};

static const char *const prefixes[] = {"/images", NULL};

const struct http_dialect api_imgapi = {
    .name = "imgapi",
    .prefixes = prefixes,
    .routes = routes,
    .error_body = imgapi_error,
};
