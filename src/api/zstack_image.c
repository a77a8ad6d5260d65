/* zstack_image.c — ZStack's images on backup storages: add (from an http(s) URL or a
 * catalogue image), query, delete from some or all backup storages, and stowage's
 * restoreImage action, which copies a backup into a catalogue volume as a new image.
 *
 * Sessions, api-jobs, the query language and the error envelope are zstack.c's; this
 * file maps ZStack's fields onto core's bimage.* operations and renders ImageInventory.
 * md5Sum carries the copy's SHA-256 (stowage computes no MD5): docs/zstack.md. */
#include "zstack_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZS_API "/zstack/v1"

#define INV_IMAGE "org.zstack.header.image.ImageInventory"
#define INV_IMAGE_REF "org.zstack.header.image.ImageBackupStorageRefInventory"

static const struct zs_field image_fields[] = {
    {"uuid", "uuid"},
    {"name", "name"},
    {"description", "description"},
    {"url", "url"},
    {"mediaType", "media_type"},
    {"guestOsType", "guest_os_type"},
    {"platform", "platform"},
    {"format", "format"},
    {"state", "state"},
    {"status", "status"},
    {"size", "size"},
    {"actualSize", "actual_size"},
    {"md5Sum", "sha256"},
    {"createDate", "created_at"},
    {"lastOpDate", "last_op_at"},
    {NULL, NULL},
};

static const char *const image_extra[] = {"type", "system", "backupStorageRefs", NULL};

/* ---- ImageInventory ---- */

static json_t *ref_inventory(const char *image_uuid, const struct core_bimage_ref *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "imageUuid", image_uuid, "backupStorageUuid",
                     r->bs_uuid, "installPath", r->install_path, "status", r->status, "createDate",
                     zs_date_json(r->created_at), "lastOpDate", zs_date_json(r->last_op_at));
}

static json_t *image_inventory(const struct core_bimage *b)
{
    json_t *refs = json_array();
    for (size_t i = 0; refs && i < b->n_refs; i++)
        json_array_append_new(refs, ref_inventory(b->uuid, &b->refs[i]));
    json_t *inv = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:o, s:o, s:o}", "uuid",
        b->uuid, "name", b->name, "state", b->state, "status", b->status, "size",
        (json_int_t)b->size, "actualSize", (json_int_t)b->actual_size, "md5Sum", b->sha256, "url",
        b->url, "mediaType", b->media_type, "type", "zstack", "platform", b->platform, "format",
        b->format, "system", b->system, "createDate", zs_date_json(b->created_at), "lastOpDate",
        zs_date_json(b->last_op_at), "backupStorageRefs", refs);
    /* ZStack's nulls are omitted */
    if (inv && b->description[0])
        json_object_set_new(inv, "description", json_string(b->description));
    if (inv && b->guest_os_type[0])
        json_object_set_new(inv, "guestOsType", json_string(b->guest_os_type));
    return inv;
}

/* The schema entries of one inventory at key ("inventory", "inventories[3]"). */
static void type_image(json_t *schema, const char *key, const struct core_bimage *b)
{
    char k[96];
    json_object_set_new(schema, key, json_string(INV_IMAGE));
    for (size_t i = 0; i < b->n_refs; i++) {
        snprintf(k, sizeof k, "%s.backupStorageRefs[%zu]", key, i);
        json_object_set_new(schema, k, json_string(INV_IMAGE_REF));
    }
}

void zs_image_result(struct http_req *r, const json_t *outcome)
{
    const char *uuid = json_string_value(json_object_get(outcome, "backup_image"));
    const char *restored = json_string_value(json_object_get(outcome, "image"));
    struct core_bimage b;
    struct st_err e;
    if (core_bimage_get(http_st(r), uuid, &b, &e)) {
        zs_fail(r, &e);
        return;
    }
    json_t *schema = json_object();
    type_image(schema, "inventory", &b);
    json_t *reply = json_pack("{s:o, s:o}", "inventory", image_inventory(&b), "schema", schema);
    if (restored) /* restoreImage: the catalogue image it made */
        json_object_set_new(reply, "restoredImage",
                            json_pack("{s:s, s:O, s:O, s:O}", "uuid", restored, "name",
                                      json_object_get(outcome, "name"), "volumeId",
                                      json_object_get(outcome, "volume"), "format",
                                      json_object_get(outcome, "format")));
    http_reply_json(r, 200, reply);
    free(b.refs);
}

/* ---- queries ---- */

static void query(struct http_req *r, const char *uuid)
{
    struct zs_query z;
    struct core_bimage *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    struct st_err e;
    char key[48];

    if (zs_query_begin(r, &z, image_fields, image_extra, uuid))
        return;
    /* counting costs a second pass: only when asked */
    if (core_bimage_query(http_st(r), &z.q, z.count ? NULL : &v, &n,
                          z.count || z.with_count ? &total : NULL, &e)) {
        zs_query_failed(r, &e);
    } else {
        json_t *invs = json_array(), *schema = json_object();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(invs, image_inventory(&v[i]));
            snprintf(key, sizeof key, "inventories[%zu]", i);
            type_image(schema, key, &v[i]);
        }
        zs_query_reply(r, &z, invs, schema, total);
    }
    core_bimages_free(v, n);
    zs_query_free(&z);
}

static void query_images(struct http_req *r)
{
    query(r, NULL);
}

static void get_image(struct http_req *r)
{
    query(r, http_capture(r, 0));
}

/* ---- changes ---- */

/* value is one of allowed (NULL-ended), or refused naming field. */
static int one_of(const char *value, const char *field, const char *const *allowed,
                  struct st_err *e)
{
    char list[160] = "";
    if (!value)
        return 0;
    for (const char *const *a = allowed; *a; a++) {
        if (strcmp(*a, value) == 0)
            return 0;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == allowed ? "" : ", ",
                 *a);
    }
    return st_fail_field(e, ST_INVALID, field, "%s must be one of [%s]", field, list);
}

/* backupStorageUuids: an array of 32-hex uuids, as JSON text for core. */
static int bs_list(json_t *arr, const char *field, char **out, struct st_err *e)
{
    size_t i;
    json_t *v;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return st_fail_field(e, ST_INVALID, field, "'%s' must be a non-empty array of uuids",
                             field);
    json_array_foreach(arr, i, v) if (!zs_is_uuid32(json_string_value(v))) return st_fail_field(
        e, ST_INVALID, field, "'%s' must hold uuids of 32 hex digits without '-'", field);
    if (!(*out = json_dumps(arr, JSON_COMPACT)))
        return st_fail(e, ST_INTERNAL, "out of memory");
    return 0;
}

static int add_params(json_t *b, struct core_op_params *p, char **bss, struct st_err *e)
{
    static const char *const media[] = {"RootVolumeTemplate", "DataVolumeTemplate", "ISO", NULL};
    static const char *const platforms[] = {
        "Linux", "Windows", "WindowsVirtio", "Other", "Paravirtualization", NULL};
    if (http_json_string(b, "name", 1, 128, &p->name, e) ||
        http_json_string(b, "url", 1, 1024, &p->url, e) ||
        http_json_string(b, "description", 0, 256, &p->description, e) ||
        http_json_string(b, "format", 0, 16, &p->format, e) ||
        http_json_string(b, "mediaType", 0, 32, &p->media_type, e) ||
        http_json_string(b, "platform", 0, 32, &p->platform, e) ||
        http_json_string(b, "guestOsType", 0, 64, &p->guest_os_type, e) ||
        http_json_string(b, "resourceUuid", 0, 64, &p->uuid, e) ||
        http_json_string(b, "sha256", 0, 64, &p->sha256, e) ||
        one_of(p->media_type, "mediaType", media, e) ||
        one_of(p->platform, "platform", platforms, e) ||
        bs_list(json_object_get(b, "backupStorageUuids"), "backupStorageUuids", bss, e))
        return -1;
    if (zs_check_uuid("resourceUuid", p->uuid, e))
        return -1;
    p->backup_storages = *bss;
    return 0;
}

static void add_image(struct http_req *r)
{
    struct st_principal who;
    struct core_op_params p = {0};
    struct st_err e;
    char *bss = NULL;
    json_t *b;
    if (zs_authorize(r, &who) || !(b = zs_body_part(r, "params")))
        return;
    zs_submit_checked(r, &who, CORE_OP_BIMAGE_ADD, &p, add_params(b, &p, &bss, &e), &e);
    free(bss);
}

/* DELETE …/images/{uuid}?backupStorageUuids=a,b: only from those (ZStack's param). */
static void delete_image(struct http_req *r)
{
    struct st_principal who;
    struct core_op_params p = {0};
    const char *only = http_query(r, "backupStorageUuids");
    struct st_err e;
    char *bss = NULL;
    if (zs_authorize(r, &who))
        return;
    p.uuid = http_capture(r, 0);
    if (only && *only) {
        json_t *arr = json_array();
        char *list = strdup(only), *save = NULL;
        for (char *u = list ? strtok_r(list, ",", &save) : NULL; u; u = strtok_r(NULL, ",", &save))
            json_array_append_new(arr, json_string(u));
        int rc = bs_list(arr, "backupStorageUuids", &bss, &e);
        free(list);
        json_decref(arr);
        if (rc) {
            zs_fail(r, &e);
            return;
        }
        p.backup_storages = bss;
    }
    zs_submit(r, &who, CORE_OP_BIMAGE_DELETE, &p);
    free(bss);
}

/* restoreImage {imageStorageId, volumeId, name?, backupStorageUuid?}: a new catalogue
 * image (named like the backup when its name is a valid image name). */
static void restore(struct http_req *r, const struct st_principal *who, json_t *b)
{
    struct core_op_params p = {0};
    struct core_bimage img;
    struct st_err e;
    p.uuid = http_capture(r, 0);
    if (http_json_string(b, "imageStorageId", 1, 64, &p.storage, &e) ||
        http_json_string(b, "volumeId", 1, 64, &p.volume, &e) ||
        http_json_string(b, "name", 0, 64, &p.name, &e) ||
        http_json_string(b, "backupStorageUuid", 0, 64, &p.backup_storage, &e) ||
        core_bimage_get(http_st(r), p.uuid, &img, &e)) {
        zs_fail(r, &e);
        return;
    }
    free(img.refs);
    if (!p.name)
        p.name = img.name;
    zs_submit(r, who, CORE_OP_BIMAGE_RESTORE, &p);
}

static void image_action(struct http_req *r)
{
    struct st_principal who;
    json_t *body = http_json(r), *b;
    struct st_err e;
    if (zs_authorize(r, &who))
        return;
    if (json_is_object(b = json_object_get(body, "restoreImage"))) {
        restore(r, &who, b);
    } else if (json_is_object(json_object_get(body, "recoverImage"))) {
        /* ZStack's recoverImage undeletes; stowage deletes at once, so there is nothing to
         * undelete: a copy goes back into the catalogue with restoreImage. */
        st_fail(&e, ST_CONFLICT,
                "image %.64s is not deleted: stowage removes deleted images at once; copy a "
                "backup into a catalogue volume with restoreImage",
                http_capture(r, 0));
        zs_fail(r, &e);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "the body doesn't contain action mapping to the URL[%.200s]",
                 http_path(r));
        zs_plain(r, 400, "%s", msg);
    }
}

/* ---- the dialect ---- */

static const char *const prefixes[] = {ZS_API "/images", NULL};

static const struct http_route routes[] = {
    {"GET", ZS_API "/images", HTTP_BODY_NONE, ROLE_NONE, query_images},
    {"POST", ZS_API "/images", HTTP_BODY_JSON, ROLE_NONE, add_image},
    {"GET", ZS_API "/images/{uuid}", HTTP_BODY_NONE, ROLE_NONE, get_image},
    {"DELETE", ZS_API "/images/{uuid}", HTTP_BODY_NONE, ROLE_NONE, delete_image},
    {"PUT", ZS_API "/images/{uuid}/actions", HTTP_BODY_JSON, ROLE_NONE, image_action},
    {NULL, NULL, 0, 0, NULL},
};

const struct http_dialect api_zstack_image = {
    .name = "zstack",
    .prefixes = prefixes,
    .routes = routes,
    .error_body = zs_error,
};
