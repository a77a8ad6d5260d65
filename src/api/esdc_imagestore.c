/* esdc_imagestore.c — Danube Cloud's /imagestore/: the image servers of the config, the
 * images each one listed at its last refresh (PUT, core's imagestore.refresh job), and
 * an import by uuid (core's image.import of URL/images/{uuid}). */
#include "esdc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *store_json(const struct core_imagestore *s)
{
    char at[24] = "";
    struct tm tm;
    time_t t = (time_t)s->refreshed_at;
    if (s->refreshed_at && gmtime_r(&t, &tm))
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:s, s:s, s:o, s:I, s:o}", "name", s->name, "url", s->url, "last_update",
                     at[0] ? json_string(at) : json_null(), "images",
                     (json_int_t)json_array_size(s->images), "error",
                     s->error[0] ? json_string(s->error) : json_null());
}

void esdc_imagestore_list(struct http_req *r)
{
    struct core_imagestore *v = NULL;
    size_t n = 0;
    struct st_err e;
    int full = esdc_query_bool(r, "full") || esdc_query_bool(r, "extended");

    if (core_imagestore_list(http_st(r), &v, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, full ? store_json(&v[i]) : json_string(v[i].name));
    core_imagestore_free(v, n);
    free(v);
    esdc_reply_success(r, arr);
}

static int find(struct http_req *r, struct core_imagestore *s)
{
    struct st_err e;
    if (core_imagestore_get(http_st(r), http_capture(r, 0), s, &e) == 0)
        return 0;
    esdc_reply_detail(r, 404, "Image server not found");
    return -1;
}

void esdc_imagestore_get(struct http_req *r)
{
    struct core_imagestore s;
    if (find(r, &s))
        return;
    esdc_reply_success(r, store_json(&s));
    core_imagestore_free(&s, 1);
}

void esdc_imagestore_refresh(struct http_req *r)
{
    struct core_imagestore s;
    struct core_op_params p = {0};
    struct st_err e;
    char id[37];

    if (find(r, &s))
        return;
    core_imagestore_free(&s, 1);
    p.name = http_capture(r, 0);
    if (core_job_submit(http_st(r), CORE_OP_IMAGESTORE_REFRESH, &p, http_principal(r), id, &e))
        http_reply_error(r, &e);
    else
        esdc_reply_submitted(r, id);
}

/* The cached list, or the reply (428 when the server never answered). */
static json_t *images(struct http_req *r, struct core_imagestore *s)
{
    if (find(r, s))
        return NULL;
    if (!s->images && s->error[0]) {
        esdc_reply_detail(r, 428, "Image server is not available");
        core_imagestore_free(s, 1);
        return NULL;
    }
    return s->images ? s->images : (s->images = json_array());
}

static json_t *by_uuid(json_t *list, const char *uuid)
{
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        const char *u = json_string_value(json_object_get(m, "uuid"));
        if (u && strcmp(u, uuid) == 0)
            return m;
    }
    return NULL;
}

void esdc_imagestore_images(struct http_req *r)
{
    struct core_imagestore s;
    json_t *list = images(r, &s);
    if (!list)
        return;
    esdc_reply_success(r, json_incref(list));
    core_imagestore_free(&s, 1);
}

void esdc_imagestore_image(struct http_req *r)
{
    struct core_imagestore s;
    json_t *list = images(r, &s), *m;
    if (!list)
        return;
    if ((m = by_uuid(list, http_capture(r, 1))))
        esdc_reply_success(r, json_incref(m));
    else
        esdc_reply_detail(r, 404, "Image not found");
    core_imagestore_free(&s, 1);
}

/* The new image's name: the body's, else the manifest's. */
void esdc_imagestore_import(struct http_req *r)
{
    struct core_imagestore s;
    char url[1200], name[CORE_ID];
    json_t *list = images(r, &s), *m;
    if (!list)
        return;
    const char *uuid = http_capture(r, 1);
    /* it goes into a URL: only what a uuid is made of */
    if (!(m = by_uuid(list, uuid)) || strspn(uuid, "0123456789abcdefABCDEF-") != strlen(uuid)) {
        esdc_reply_detail(r, 404, "Image not found");
        core_imagestore_free(&s, 1);
        return;
    }
    const char *n = json_string_value(json_object_get(http_json(r), "name"));
    const char *listed = json_string_value(json_object_get(m, "name"));
    snprintf(name, sizeof name, "%s", n ? n : listed ? listed : "");
    snprintf(url, sizeof url, "%s/images/%s", s.url, http_capture(r, 1));
    core_imagestore_free(&s, 1);
    esdc_import(r, name, url);
}

/* ---- stowage's extension: image servers added and removed by a superadmin ---- */

/* POST /imagestore/{name}/ {url}: core's imagestore.add (kept in the catalogue). */
void esdc_imagestore_add(struct http_req *r)
{
    struct core_op_params p = {0};
    json_t *body = http_json(r);
    const char *name = http_capture(r, 0);

    if (body && !json_is_object(body)) {
        esdc_reply_detail(r, 400, "Invalid data");
        return;
    }
    if (!core_valid_id(name) || strlen(name) > 32) {
        esdc_fail_field(r, "name", "Enter a valid value.");
        return;
    }
    json_t *url = json_object_get(body, "url");
    if (!json_is_string(url) || !json_string_length(url)) {
        esdc_fail_field(r, "url", url ? "Enter a valid URL." : "This field is required.");
        return;
    }
    p.name = name;
    p.url = json_string_value(url);
    esdc_submit(r, CORE_OP_IMAGESTORE_ADD, &p, body, "Image server");
}

/* DELETE /imagestore/{name}/: core's imagestore.remove (the config's stay: 403). */
void esdc_imagestore_remove(struct http_req *r)
{
    struct core_op_params p = {.name = http_capture(r, 0)};
    esdc_submit(r, CORE_OP_IMAGESTORE_REMOVE, &p, http_json(r), "Image server");
}
