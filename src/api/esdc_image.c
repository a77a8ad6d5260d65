/* esdc_image.c — Danube Cloud's /image/: the catalogue as esdc's ImageSerializer shows
 * it, and its changes as core's neutral operations (image.update, image.delete).
 *
 * What a value must be is core's rule (image.update's params); this file checks only
 * how esdc sends a field and words core's refusals as Django REST framework 2 does
 * ({field: ["Ensure this value has at most 32 characters (it has 40)."]}). */
#include "esdc_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024u * 1024u)

void esdc_iso_time(int64_t t, char out[24])
{
    struct tm tm;
    time_t tt = (time_t)t;
    out[0] = '\0';
    if (gmtime_r(&tt, &tm))
        strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* esdc's Image: status 1 ok, 2 pending (not yet active); size in MB. */
static json_t *image_json(const struct core_image *im, int extended)
{
    char created[24];
    json_error_t je;
    json_t *tags = json_loads(im->tags[0] ? im->tags : "[]", 0, &je);

    esdc_iso_time(im->created_at, created);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:I, s:b, s:b, s:o, s:i, s:s, s:b}", "name",
        im->name, "uuid", im->uuid, "alias", im->alias[0] ? im->alias : im->name, "version",
        im->version, "owner", im->owner, "access", im->access, "desc", im->description, "ostype",
        im->ostype, "size", (json_int_t)((im->virtual_size + MIB - 1) / MIB), "resize", im->resize,
        "deploy", im->deploy, "tags", json_is_array(tags) ? tags : json_array(), "status",
        strcmp(im->status, "active") == 0 ? 1 : 2, "created", created, "dc_bound", im->dc_bound);
    if (!json_is_array(tags))
        json_decref(tags);
    if (j && extended)
        json_object_set_new(j, "dcs", json_pack("[s]", im->storage_id));
    return j;
}

static void not_found(struct http_req *r)
{
    esdc_reply_detail(r, 404, "Image not found");
}

/* ---- GET /image/ ---- */

#define MAX_KEYS 4

struct order {
    int n;
    struct {
        int created; /* else name */
        int desc;
    } key[MAX_KEYS];
};

/* "name", "-created,name"...; -1 when a key is not a sort field. */
static int parse_order(const char *s, struct order *o)
{
    o->n = 0;
    while (s && *s) {
        size_t len = strcspn(s, ",");
        int desc = *s == '-';
        const char *k = s + desc;
        size_t kl = len - (size_t)desc;
        if (o->n == MAX_KEYS)
            return -1;
        if (kl == 4 && strncmp(k, "name", 4) == 0)
            o->key[o->n].created = 0;
        else if (kl == 7 && strncmp(k, "created", 7) == 0)
            o->key[o->n].created = 1;
        else
            return -1;
        o->key[o->n++].desc = desc;
        s += len + (s[len] == ',');
    }
    if (o->n == 0)
        o->key[o->n++].created = 0, o->key[0].desc = 0;
    return 0;
}

static int compare(const struct core_image *a, const struct core_image *b, const struct order *o)
{
    for (int i = 0; i < o->n; i++) {
        int c = o->key[i].created
                    ? (a->created_at > b->created_at) - (a->created_at < b->created_at)
                    : strcmp(a->name, b->name);
        if (c)
            return o->key[i].desc ? -c : c;
    }
    return strcmp(a->name, b->name);
}

/* Stable, and the list arrives sorted by name: most orders cost one pass. */
static void sort_images(struct core_image *v, size_t n, const struct order *o)
{
    struct core_image tmp;
    for (size_t i = 1; i < n; i++) {
        size_t j = i;
        if (compare(&v[j - 1], &v[j], o) <= 0)
            continue;
        tmp = v[i];
        while (j > 0 && compare(&v[j - 1], &tmp, o) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = tmp;
    }
}

void esdc_image_list(struct http_req *r)
{
    struct core_image *v = NULL;
    size_t n = 0;
    struct st_err e;
    struct order o;
    int full = esdc_query_bool(r, "full"), extended = esdc_query_bool(r, "extended");

    const char *order_by = http_query(r, "order_by");
    char key[96], head[96];

    if (parse_order(order_by, &o)) {
        esdc_reply_detail(r, 412, "Invalid order_by; Possible sort fields are: name, created");
        return;
    }
    /* The result depends on the catalogue and these parameters only: rendered once per
     * generation (read before the list, so a change meanwhile is never kept as newer). */
    uint64_t gen = core_generation(http_st(r));
    snprintf(key, sizeof key, "esdc:image:%d%d:%.60s", full, extended, order_by ? order_by : "");
    esdc_success_head(r, head, sizeof head);
    if (http_reply_cached_within(r, key, gen, head, "}"))
        return;
    if (core_image_list(http_st(r), &v, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    sort_images(v, n, &o);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, full || extended ? image_json(&v[i], extended)
                                                    : json_string(v[i].name));
    free(v);
    http_reply_json_cached_within(r, key, gen, arr, head, "}");
}

/* ---- one image ---- */

static int find(struct http_req *r, struct core_image *im)
{
    struct st_err e;
    if (core_image_find(http_st(r), http_capture(r, 0), im, &e) == 0)
        return 0;
    if (e.code == ST_NOT_FOUND)
        not_found(r);
    else
        http_reply_error(r, &e);
    return -1;
}

static void etag(struct http_req *r, const struct core_image *im)
{
    char tag[32];
    snprintf(tag, sizeof tag, "\"%lld\"", (long long)im->generation);
    http_add_header(r, "ETag", tag);
}

void esdc_image_get(struct http_req *r)
{
    struct core_image im;
    if (find(r, &im))
        return;
    etag(r, &im);
    esdc_reply_success(r, image_json(&im, esdc_query_bool(r, "extended")));
}

void esdc_image_vms(struct http_req *r)
{
    struct core_clone *v = NULL;
    size_t n = 0;
    struct st_err e;
    struct core_image im;

    if (find(r, &im))
        return;
    if (core_image_clones(http_st(r), im.name, &v, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(v[k].guest_id, v[i].guest_id) == 0;
        if (!seen)
            json_array_append_new(arr, json_string(v[i].guest_id));
    }
    free(v);
    esdc_reply_success(r, arr);
}

/* ---- PUT /image/{name}/ ---- */

/* esdc's field, the param of image.update it fills, and how esdc sends it. */
enum ef_kind { EF_STR, EF_TAGS, EF_CHOICE, EF_BOOL };

static const struct esdc_field {
    const char *name;
    const char *neutral;
    enum ef_kind kind;
    size_t slot;
} image_fields[] = {
    {"alias", "alias", EF_STR, offsetof(struct core_op_params, alias)},
    {"version", "version", EF_STR, offsetof(struct core_op_params, version)},
    {"desc", "description", EF_STR, offsetof(struct core_op_params, description)},
    {"tags", "tags", EF_TAGS, offsetof(struct core_op_params, tags)},
    {"access", "access", EF_CHOICE, offsetof(struct core_op_params, access)},
    {"resize", "resize", EF_BOOL, offsetof(struct core_op_params, resize)},
    {"deploy", "deploy", EF_BOOL, offsetof(struct core_op_params, deploy)},
    {"dc_bound", "dc_bound", EF_BOOL, offsetof(struct core_op_params, dc_bound)},
};
#define N_FIELDS (sizeof image_fields / sizeof *image_fields)

/* Django's BooleanField: TRUE_VALUES and FALSE_VALUES of esdc's api/fields.py. */
static int parse_bool(json_t *v, enum core_tri *out)
{
    static const char *const yes[] = {"t", "T", "true", "True", "TRUE", "1"};
    static const char *const no[] = {"f", "F", "false", "False", "FALSE", "0"};
    if (json_is_boolean(v) || json_is_integer(v)) {
        *out = json_is_true(v) || (json_is_integer(v) && json_integer_value(v)) ? CORE_TRUE
                                                                                : CORE_FALSE;
        return 0;
    }
    for (size_t i = 0; json_is_string(v) && i < 6; i++) {
        if (strcmp(json_string_value(v), yes[i]) == 0)
            return *out = CORE_TRUE, 0;
        if (strcmp(json_string_value(v), no[i]) == 0)
            return *out = CORE_FALSE, 0;
    }
    return -1;
}

/* esdc's fields into image.update's params; 0, or -1 with msg for field. Strings and
 * the tags text are borrowed from body or kept in tags_text (freed by the caller). */
static int parse_field(const struct esdc_field *f, json_t *v, struct core_op_params *p,
                       char **tags_text, const char **msg)
{
    char *slot = (char *)p + f->slot;
    switch (f->kind) {
    case EF_STR:
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return *msg = "Enter a valid value.", -1;
        *(const char **)(void *)slot = json_string_value(v);
        return 0;
    case EF_TAGS:
        /* a list, or the comma-separated text `es -tags a,b` sends */
        if (json_is_string(v)) {
            json_t *arr = json_array();
            const char *s = json_string_value(v);
            while (*s) {
                size_t l = strcspn(s, ",");
                while (l && s[l - 1] == ' ')
                    l--;
                if (l)
                    json_array_append_new(arr, json_stringn(s, l));
                s += strcspn(s, ",");
                s += *s == ',';
                while (*s == ' ')
                    s++;
            }
            *tags_text = json_dumps(arr, JSON_COMPACT);
            json_decref(arr);
        } else if (json_is_array(v)) {
            *tags_text = json_dumps(v, JSON_COMPACT);
        } else {
            return *msg = "Enter a valid value.", -1;
        }
        *(const char **)(void *)slot = *tags_text;
        return *tags_text ? 0 : (*msg = "out of memory", -1);
    case EF_CHOICE: {
        long long n;
        char *end = NULL;
        if (json_is_integer(v))
            n = json_integer_value(v);
        else if (json_is_string(v) && *json_string_value(v))
            n = strtoll(json_string_value(v), &end, 10);
        else
            return *msg = "Enter a whole number.", -1;
        if (end && *end)
            return *msg = "Enter a whole number.", -1;
        /* 0 would read as absent: core's rule then never sees it, so say it here */
        *(int *)(void *)slot = n >= -1000 && n <= 1000 && n != 0 ? (int)n : -1;
        return 0;
    }
    case EF_BOOL:
        if (parse_bool(v, (enum core_tri *)(void *)slot))
            return *msg = "Enter a valid value.", -1;
        return 0;
    }
    return 0;
}

void esdc_image_fields(json_t *body, struct core_op_params *p, char **tags, json_t *errors)
{
    const char *msg = NULL;
    for (size_t i = 0; i < N_FIELDS; i++) {
        json_t *v = json_object_get(body, image_fields[i].name);
        if (v && !json_is_null(v) && parse_field(&image_fields[i], v, p, tags, &msg))
            json_object_set_new(errors, image_fields[i].name, json_pack("[s]", msg));
    }
}

/* Core's refusal of a param in DRF's words, under esdc's name of the field. */
static void failure_of(struct http_req *r, const struct st_err *e, json_t *body)
{
    char msg[160];
    const char *field = e->field;
    json_t *v = NULL;

    for (size_t i = 0; i < N_FIELDS; i++)
        if (strcmp(image_fields[i].neutral, e->field) == 0)
            field = image_fields[i].name, v = json_object_get(body, field);
    if (e->code == ST_EXISTS && strcmp(e->field, "alias") == 0) {
        esdc_fail_field(r, "alias",
                        "This alias is already in use. Please supply a different alias or "
                        "version.");
        return;
    }
    const char *longer = strstr(e->msg, "is longer than ");
    if (longer && json_is_string(v)) {
        size_t chars = 0;
        for (const char *s = json_string_value(v); *s; s++)
            chars += ((unsigned char)*s & 0xc0) != 0x80;
        snprintf(msg, sizeof msg, "Ensure this value has at most %d characters (it has %zu).",
                 atoi(longer + 15), chars);
    } else if (strcmp(e->field, "manifest_url") == 0 || strcmp(e->field, "file_url") == 0 ||
               strcmp(e->field, "url") == 0) {
        snprintf(msg, sizeof msg, "%s", "Enter a valid URL.");
    } else if (strcmp(e->field, "access") == 0) {
        snprintf(msg, sizeof msg, "Select a valid choice. %s is not one of the available choices.",
                 json_is_string(v) ? json_string_value(v) : "");
        if (json_is_integer(v))
            snprintf(msg, sizeof msg,
                     "Select a valid choice. %lld is not one of the available choices.",
                     (long long)json_integer_value(v));
    } else {
        snprintf(msg, sizeof msg, "%s", "Enter a valid value.");
    }
    esdc_fail_field(r, field, msg);
}

/* If-Match: "N" (the ETag of GET /image/{name}/), or a bare N. */
static int if_match(struct http_req *r, int64_t *gen)
{
    const char *h = http_header(r, "If-Match");
    char *end;
    *gen = 0;
    if (!h || strcmp(h, "*") == 0)
        return 0;
    if (*h == '"')
        h++;
    long long n = strtoll(h, &end, 10);
    if (end == h || (*end && strcmp(end, "\"") != 0) || n <= 0)
        return -1;
    *gen = n;
    return 0;
}

void esdc_submit(struct http_req *r, enum core_op op, const struct core_op_params *p, json_t *body,
                 const char *what)
{
    char id[37], msg[96];
    struct st_err e;
    if (core_job_submit(http_st(r), op, p, http_principal(r), id, &e) == 0) {
        esdc_reply_submitted(r, id);
        return;
    }
    if (e.code == ST_NOT_FOUND || (e.code == ST_EXISTS && strcmp(e.field, "alias") != 0)) {
        snprintf(msg, sizeof msg, "%s %s", what,
                 e.code == ST_NOT_FOUND ? "not found" : "already exists");
        esdc_reply_detail(r, e.code == ST_NOT_FOUND ? 404 : 406, msg);
    } else if (e.code == ST_PRECONDITION) {
        esdc_reply_detail(r, 412, e.msg);
    } else if (e.code == ST_INVALID || e.code == ST_EXISTS) {
        failure_of(r, &e, body);
    } else {
        http_reply_error(r, &e);
    }
}

void esdc_image_put(struct http_req *r)
{
    struct core_op_params p = {0};
    struct core_image im;
    char *tags = NULL;
    json_t *body = http_json(r), *errors = json_object();

    if (find(r, &im)) {
        json_decref(errors);
        return;
    }
    if (body && !json_is_object(body)) {
        json_decref(errors);
        esdc_reply_detail(r, 400, "Invalid data");
        return;
    }
    p.name = im.name;
    esdc_image_fields(body, &p, &tags, errors);
    if (if_match(r, &p.generation)) {
        esdc_reply_detail(r, 412, "If-Match must be the image's ETag");
    } else if (json_object_size(errors)) {
        esdc_reply_failure(r, errors);
        errors = NULL;
    } else {
        esdc_submit(r, CORE_OP_IMAGE_UPDATE, &p, body, "Image");
    }
    json_decref(errors);
    free(tags);
}

/* ---- DELETE /image/{name}/ ---- */

void esdc_image_delete(struct http_req *r)
{
    struct core_op_params p = {0};
    struct core_image im;
    struct core_clone *v = NULL;
    size_t n = 0;
    struct st_err e;

    if (find(r, &im))
        return;
    if (core_image_clones(http_st(r), im.name, &v, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    free(v);
    if (n > 0) {
        esdc_reply_detail(r, 428, "Image is used by some VMs");
        return;
    }
    if (strcmp(im.status, "active") != 0) {
        esdc_reply_detail(r, 417, "Image status is not OK");
        return;
    }
    p.name = im.name;
    esdc_submit(r, CORE_OP_IMAGE_DELETE, &p, http_json(r), "Image");
}

/* ---- POST /image/{name}/: an import from an IMGAPI manifest ---- */

int esdc_name_ok(struct http_req *r, const char *name, size_t max)
{
    char msg[96];
    size_t len = strlen(name);
    if (len > max) {
        snprintf(msg, sizeof msg, "Ensure this value has at most %zu characters (it has %zu).", max,
                 len);
        esdc_fail_field(r, "name", msg);
        return 0;
    }
    if (!core_valid_id(name)) {
        esdc_fail_field(r, "name", "Enter a valid value.");
        return 0;
    }
    return 1;
}

/* A string field of the import (a URL, dc, volume): NULL absent, else borrowed. */
static int import_string(json_t *body, const char *key, const char **out, json_t *errors)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
        json_string_length(v) == 0) {
        json_object_set_new(errors, key, json_pack("[s]", "Enter a valid value."));
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int storage_exists(struct http_req *r, const char *id)
{
    char(*ids)[CORE_ID] = NULL;
    size_t n = 0;
    struct st_err e;
    int found = 0;
    if (core_storage_ids(http_st(r), &ids, &n, &e) == 0)
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(ids[i], id) == 0;
    free(ids);
    return found;
}

void esdc_import(struct http_req *r, const char *name, const char *manifest_url)
{
    struct core_op_params p = {0};
    struct core_image im;
    struct st_err e;
    char *tags = NULL;
    const char *dc = NULL;
    json_t *body = http_json(r), *errors = json_object();

    if (!esdc_name_ok(r, name, ESDC_IMAGE_NAME_MAX))
        goto out;
    if (core_image_find(http_st(r), name, &im, &e) == 0) {
        esdc_reply_detail(r, 406, "Image already exists");
        goto out;
    }
    if (body && !json_is_object(body)) {
        esdc_reply_detail(r, 400, "Invalid data");
        goto out;
    }
    p.name = name;
    esdc_image_fields(body, &p, &tags, errors);
    if (manifest_url)
        p.manifest_url = manifest_url;
    else
        import_string(body, "manifest_url", &p.manifest_url, errors);
    import_string(body, "file_url", &p.file_url, errors);
    import_string(body, "dc", &dc, errors);
    import_string(body, "volume", &p.volume, errors);
    if (!p.manifest_url && !json_object_get(errors, "manifest_url"))
        json_object_set_new(errors, "manifest_url", json_pack("[s]", "This field is required."));
    if (json_object_size(errors)) {
        esdc_reply_failure(r, errors);
        errors = NULL;
        goto out;
    }
    /* esdc: a dc-bound image names its datacenter (an image storage here) */
    if (!dc && p.dc_bound != CORE_FALSE) {
        esdc_fail_field(r, "dc",
                        "You have to specify to which datacenter shall the image be bound. "
                        "Either use the \"dc\" parameter or set the \"dc_bound\" parameter to "
                        "false.");
        goto out;
    }
    if (dc && !storage_exists(r, dc)) {
        esdc_reply_detail(r, 404, "Datacenter not found");
        goto out;
    }
    p.storage = dc;
    esdc_submit(r, CORE_OP_IMAGE_IMPORT, &p, body, "Image");
out:
    json_decref(errors);
    free(tags);
}

void esdc_image_post(struct http_req *r)
{
    esdc_import(r, http_capture(r, 0), NULL);
}
