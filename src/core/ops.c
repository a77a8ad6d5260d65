/* ops.c — every operation on the catalogue: its neutral name, who may run it, the
 * fields it takes, its body, and how a restart tells whether it had committed.
 *
 * Params are checked when the job is submitted, so a client hears about a missing or
 * malformed field at once instead of from a failed job later; the body then reads only
 * fields that passed. Dialects name the operations and fields their own way and
 * translate (src/api/). The image and clone bodies are thin: the work is in image.c
 * and clone.c; the storage and volume bodies are in manage.c and manage_disk.c. */
#include "task_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024u * 1024u)

static int run_image_create(struct core_task_ctx *t, struct st_err *e);
static int run_image_copy(struct core_task_ctx *t, struct st_err *e);
static int run_image_release(struct core_task_ctx *t, struct st_err *e);
static int run_image_delete(struct core_task_ctx *t, struct st_err *e);
static int run_guest_clone(struct core_task_ctx *t, struct st_err *e);
static int run_clone_delete(struct core_task_ctx *t, struct st_err *e);
static int image_made(struct core_task_ctx *t, int64_t started_at);
static int image_released(struct core_task_ctx *t, int64_t started_at);
static int image_deleted(struct core_task_ctx *t, int64_t started_at);
static int clone_made(struct core_task_ctx *t, int64_t started_at);
static int clone_deleted(struct core_task_ctx *t, int64_t started_at);
static int run_image_update(struct core_task_ctx *t, struct st_err *e);
static int check_image_update(struct stowage *st, const json_t *params, struct st_err *e);
static int run_image_adopt(struct core_task_ctx *t, struct st_err *e);
static int run_image_unmanage(struct core_task_ctx *t, struct st_err *e);
static int image_adopted(struct core_task_ctx *t, int64_t started_at);
static int image_unmanaged(struct core_task_ctx *t, int64_t started_at);
static int adopt_precheck(struct stowage *st, const json_t *params, struct st_err *e);
static int unmanage_precheck(struct stowage *st, const json_t *params, struct st_err *e);
static int run_image_import(struct core_task_ctx *t, struct st_err *e);
static int image_imported(struct core_task_ctx *t, int64_t started_at);
static int import_precheck(struct stowage *st, const json_t *params, struct st_err *e);
static int run_imagestore_refresh(struct core_task_ctx *t, struct st_err *e);
static int run_snapshot_create(struct core_task_ctx *t, struct st_err *e);
static int run_snapshot_delete(struct core_task_ctx *t, struct st_err *e);
static int run_snapshot_image(struct core_task_ctx *t, struct st_err *e);
static int snapshot_made(struct core_task_ctx *t, int64_t started_at);
static int snapshot_deleted(struct core_task_ctx *t, int64_t started_at);
static int snapshot_image_precheck(struct stowage *st, const json_t *params, struct st_err *e);
static int run_imagestore_add(struct core_task_ctx *t, struct st_err *e);
static int run_imagestore_remove(struct core_task_ctx *t, struct st_err *e);
static int imagestore_added(struct core_task_ctx *t, int64_t started_at);
static int imagestore_removed(struct core_task_ctx *t, int64_t started_at);

/* A field of struct core_op_params, under its own name (one line each: clang-format 14
 * would spread each braced initializer over four). */
/* clang-format off */
#define FIELD_AT(member) .offset = offsetof(struct core_op_params, member), .name = #member
#define REQ(member, kind_) {FIELD_AT(member), .kind = kind_, .required = 1}
#define OPT(member, kind_) {FIELD_AT(member), .kind = kind_}
#define SAFE(member, max_) {FIELD_AT(member), .kind = TF_SAFE, .max = max_}
/* clang-format on */
/* The image's own metadata, which update, import and snapshot.image take alike. */
#define IMAGE_META                                                                                 \
    SAFE(alias, 32), SAFE(version, 16), SAFE(description, 128), OPT(tags, TF_TAGS),                \
        OPT(access, TF_ACCESS), OPT(resize, TF_BOOL), OPT(deploy, TF_BOOL)

/* One row per operation, in enum core_op's order. */
static const struct core_task_type types[CORE_OP_COUNT] = {
    [CORE_OP_STORAGE_CREATE] = {.name = "storage.create",
                                .role = ROLE_SUPERADMIN,
                                .fields = {REQ(storage, TF_ID), REQ(name, TF_NAME),
                                           OPT(description, TF_TEXT)},
                                .run = core_manage_istorage_create,
                                .recover = core_manage_istorage_create_done},
    [CORE_OP_STORAGE_MODIFY] = {.name = "storage.modify",
                                .role = ROLE_SUPERADMIN,
                                .fields = {REQ(storage, TF_ID), OPT(name, TF_NAME),
                                           OPT(description, TF_TEXT)},
                                .run = core_manage_istorage_modify,
                                .recover = core_manage_istorage_modify_done},
    [CORE_OP_STORAGE_DELETE] = {.name = "storage.delete",
                                .role = ROLE_SUPERADMIN,
                                .fields = {REQ(storage, TF_ID)},
                                .run = core_manage_istorage_delete,
                                .recover = core_manage_istorage_delete_done},
    [CORE_OP_VOLUME_CREATE] = {.name = "volume.create",
                               .role = ROLE_SUPERADMIN,
                               .fields = {REQ(storage, TF_ID), REQ(volume, TF_ID),
                                          REQ(disk, TF_DISK), OPT(mirror_disk, TF_DISK)},
                               .run = core_manage_volume_create,
                               .recover = core_manage_volume_create_done},
    [CORE_OP_VOLUME_DELETE] = {.name = "volume.delete",
                               .role = ROLE_SUPERADMIN,
                               .fields = {REQ(volume, TF_ID), OPT(storage, TF_ID)},
                               .run = core_manage_volume_delete,
                               .recover = core_manage_volume_delete_done},
    [CORE_OP_EXTERNAL_CREATE] = {.name = "external.create",
                                 .role = ROLE_SUPERADMIN,
                                 .fields = {REQ(storage, TF_ID), REQ(volume, TF_ID),
                                            REQ(mount_point, TF_PATH)},
                                 .run = core_manage_evolume_create,
                                 .recover = core_manage_evolume_create_done},
    [CORE_OP_EXTERNAL_DELETE] = {.name = "external.delete",
                                 .role = ROLE_SUPERADMIN,
                                 .fields = {REQ(volume, TF_ID), OPT(storage, TF_ID)},
                                 .run = core_manage_evolume_delete,
                                 .recover = core_manage_volume_delete_done},
    [CORE_OP_IMAGE_CREATE] = {.name = "image.create",
                              .role = ROLE_ADMIN,
                              .fields = {REQ(name, TF_ID), REQ(volume, TF_ID), REQ(storage, TF_ID),
                                         REQ(size, TF_SIZE), OPT(format, TF_FORMAT)},
                              .run = run_image_create,
                              .recover = image_made},
    [CORE_OP_IMAGE_COPY] = {.name = "image.copy",
                            .role = ROLE_ADMIN,
                            .cancellable = 1,
                            .fields = {REQ(name, TF_ID), REQ(volume, TF_ID), REQ(storage, TF_ID),
                                       REQ(source, TF_ID), REQ(source_volume, TF_ID)},
                            .run = run_image_copy,
                            .recover = image_made},
    [CORE_OP_IMAGE_RELEASE] = {.name = "image.release",
                               .role = ROLE_ADMIN,
                               .fields = {REQ(name, TF_ID), OPT(storage, TF_ID),
                                          OPT(volume, TF_ID)},
                               .run = run_image_release,
                               .recover = image_released},
    [CORE_OP_IMAGE_DELETE] = {.name = "image.delete",
                              .role = ROLE_ADMIN,
                              .fields = {REQ(name, TF_ID), OPT(storage, TF_ID), OPT(volume, TF_ID)},
                              .run = run_image_delete,
                              .recover = image_deleted},
    [CORE_OP_CLONE_CREATE] = {.name = "clone.create",
                              .role = ROLE_ADMIN,
                              .fields = {REQ(image, TF_ID), REQ(guest, TF_ID), OPT(clone, TF_ID)},
                              .run = run_guest_clone,
                              .recover = clone_made},
    [CORE_OP_CLONE_DELETE] = {.name = "clone.delete",
                              .role = ROLE_ADMIN,
                              .fields = {REQ(clone, TF_ID)},
                              .run = run_clone_delete,
                              .recover = clone_deleted},
    [CORE_OP_IMAGE_UPDATE] = {.name = "image.update",
                              .role = ROLE_ADMIN,
                              .fields = {REQ(name, TF_ID), IMAGE_META, OPT(dc_bound, TF_BOOL),
                                         OPT(generation, TF_GEN)},
                              .run = run_image_update,
                              .precheck = check_image_update},
    /* The new image's uuid is the job's id: a client knows it from the submission on. */
    [CORE_OP_IMAGE_ADOPT] = {.name = "image.adopt",
                             .role = ROLE_ADMIN,
                             .fields = {REQ(object, TF_OBJECT), REQ(volume, TF_ID),
                                        OPT(storage, TF_ID), OPT(name, TF_ID), OPT(owner, TF_ID),
                                        OPT(description, TF_NAME), OPT(properties, TF_PROPS)},
                             .run = run_image_adopt,
                             .recover = image_adopted,
                             .precheck = adopt_precheck},
    [CORE_OP_IMAGE_UNMANAGE] = {.name = "image.unmanage",
                                .role = ROLE_ADMIN,
                                .fields = {REQ(name, TF_ID), OPT(volume, TF_ID)},
                                .run = run_image_unmanage,
                                .recover = image_unmanaged,
                                .precheck = unmanage_precheck},
    [CORE_OP_BACKUP_CREATE] = {.name = "backup.create",
                               .role = ROLE_SUPERADMIN,
                               .fields = {REQ(name, TF_NAME), REQ(url, TF_PLACE),
                                          REQ(hostname, TF_NAME), OPT(uuid, TF_ID),
                                          OPT(description, TF_TEXT), OPT(username, TF_ID),
                                          OPT(port, TF_GEN)},
                               .run = core_backup_create,
                               .precheck = core_backup_precheck_create},
    [CORE_OP_BACKUP_UPDATE] = {.name = "backup.update",
                               .role = ROLE_SUPERADMIN,
                               .fields = {REQ(backup_storage, TF_ID), OPT(name, TF_NAME),
                                          OPT(description, TF_TEXT), OPT(hostname, TF_NAME),
                                          OPT(username, TF_ID), OPT(port, TF_GEN)},
                               .run = core_backup_update},
    [CORE_OP_BACKUP_RECONNECT] = {.name = "backup.reconnect",
                                  .role = ROLE_SUPERADMIN,
                                  .fields = {REQ(backup_storage, TF_ID)},
                                  .run = core_backup_reconnect},
    [CORE_OP_BACKUP_STATE] = {.name = "backup.state",
                              .role = ROLE_SUPERADMIN,
                              .fields = {REQ(backup_storage, TF_ID), REQ(state, TF_ID)},
                              .run = core_backup_state,
                              .precheck = core_backup_precheck_state},
    [CORE_OP_BACKUP_DELETE] = {.name = "backup.delete",
                               .role = ROLE_SUPERADMIN,
                               .fields = {REQ(backup_storage, TF_ID), OPT(force, TF_BOOL)},
                               .run = core_backup_delete,
                               .precheck = core_backup_precheck_delete},
    /* The new image's uuid is the manifest's. */
    [CORE_OP_IMAGE_IMPORT] = {.name = "image.import",
                              .role = ROLE_ADMIN,
                              .cancellable = 1,
                              .fields = {REQ(name, TF_ID), OPT(storage, TF_ID), OPT(volume, TF_ID),
                                         REQ(manifest_url, TF_URL), OPT(file_url, TF_URL),
                                         IMAGE_META, OPT(dc_bound, TF_BOOL)},
                              .run = run_image_import,
                              .recover = image_imported,
                              .precheck = import_precheck},
    /* Only memory changes: a restart forgets the list, nothing to settle. */
    [CORE_OP_IMAGESTORE_REFRESH] = {.name = "imagestore.refresh",
                                    .role = ROLE_ADMIN,
                                    .fields = {REQ(name, TF_ID)},
                                    .run = run_imagestore_refresh},
    [CORE_OP_ZONE_CREATE] = {.name = "zone.create",
                             .role = ROLE_SUPERADMIN,
                             .fields = {REQ(name, TF_NAME), OPT(uuid, TF_ID),
                                        OPT(description, TF_TEXT)},
                             .run = core_zone_create,
                             .precheck = core_zone_precheck_create},
    [CORE_OP_ZONE_UPDATE] = {.name = "zone.update",
                             .role = ROLE_SUPERADMIN,
                             .fields = {REQ(zone, TF_ID), OPT(name, TF_NAME),
                                        OPT(description, TF_TEXT), OPT(state, TF_ID)},
                             .run = core_zone_update,
                             .precheck = core_zone_precheck_update},
    [CORE_OP_ZONE_DELETE] = {.name = "zone.delete",
                             .role = ROLE_SUPERADMIN,
                             .fields = {REQ(zone, TF_ID)},
                             .run = core_zone_delete,
                             .precheck = core_zone_precheck_delete},
    [CORE_OP_ZONE_ATTACH] = {.name = "zone.attach",
                             .role = ROLE_SUPERADMIN,
                             .fields = {REQ(zone, TF_ID), REQ(backup_storage, TF_ID)},
                             .run = core_zone_attach,
                             .precheck = core_zone_precheck_attach},
    [CORE_OP_ZONE_DETACH] = {.name = "zone.detach",
                             .role = ROLE_SUPERADMIN,
                             .fields = {REQ(zone, TF_ID), REQ(backup_storage, TF_ID)},
                             .run = core_zone_detach,
                             .precheck = core_zone_precheck_detach},
    /* Its keyring is written before it is queued (core_backup_ceph_submit); the row is
     * committed last, in one transaction with its mons. */
    [CORE_OP_BACKUP_CEPH_CREATE] = {.name = "backup.ceph_create",
                                    .role = ROLE_SUPERADMIN,
                                    .fields = {REQ(name, TF_NAME), REQ(mons, TF_LIST),
                                               OPT(pool, TF_ID), OPT(uuid, TF_ID),
                                               OPT(url, TF_PLACE), OPT(description, TF_TEXT)},
                                    .run = core_backup_ceph_create,
                                    .recover = core_backup_ceph_done,
                                    .precheck = core_backup_ceph_precheck},
    /* The new image's uuid is the client's, else the job's id without dashes. */
    [CORE_OP_BIMAGE_ADD] = {.name = "bimage.add",
                            .role = ROLE_ADMIN,
                            .cancellable = 1,
                            .fields = {REQ(name, TF_NAME), REQ(url, TF_PLACE),
                                       REQ(backup_storages, TF_TAGS), OPT(uuid, TF_ID),
                                       OPT(description, TF_TEXT), OPT(format, TF_ID),
                                       OPT(media_type, TF_ID), OPT(platform, TF_ID),
                                       OPT(guest_os_type, TF_NAME), OPT(sha256, TF_ID)},
                            .run = core_bimage_add,
                            .recover = core_bimage_add_done,
                            .precheck = core_bimage_precheck_add},
    /* A delete interrupted by a restart removed some copies; the client deletes again. */
    [CORE_OP_BIMAGE_DELETE] = {.name = "bimage.delete",
                               .role = ROLE_ADMIN,
                               .fields = {REQ(uuid, TF_ID), OPT(backup_storages, TF_TAGS)},
                               .run = core_bimage_delete,
                               .precheck = core_bimage_precheck_delete},
    [CORE_OP_BIMAGE_RESTORE] = {.name = "bimage.restore",
                                .role = ROLE_ADMIN,
                                .cancellable = 1,
                                .fields = {REQ(uuid, TF_ID), REQ(name, TF_ID), REQ(storage, TF_ID),
                                           REQ(volume, TF_ID), OPT(backup_storage, TF_ID)},
                                .run = core_bimage_restore,
                                .recover = image_made,
                                .precheck = core_bimage_precheck_restore},
    [CORE_OP_SNAPSHOT_CREATE] = {.name = "snapshot.create",
                                 .role = ROLE_ADMIN,
                                 .fields = {REQ(clone, TF_ID), REQ(snapshot, TF_ID),
                                            SAFE(description, 128)},
                                 .run = run_snapshot_create,
                                 .recover = snapshot_made},
    [CORE_OP_SNAPSHOT_DELETE] = {.name = "snapshot.delete",
                                 .role = ROLE_ADMIN,
                                 .fields = {REQ(clone, TF_ID), REQ(snapshot, TF_ID)},
                                 .run = run_snapshot_delete,
                                 .recover = snapshot_deleted},
    [CORE_OP_SNAPSHOT_IMAGE] = {.name = "snapshot.image",
                                .role = ROLE_ADMIN,
                                .cancellable = 1,
                                .fields = {REQ(clone, TF_ID), REQ(snapshot, TF_ID),
                                           REQ(name, TF_ID), OPT(storage, TF_ID),
                                           OPT(volume, TF_ID), OPT(owner, TF_ID), IMAGE_META},
                                .run = run_snapshot_image,
                                .recover = image_imported,
                                .precheck = snapshot_image_precheck},
    [CORE_OP_IMAGESTORE_ADD] = {.name = "imagestore.add",
                                .role = ROLE_SUPERADMIN,
                                .fields = {REQ(name, TF_ID), REQ(url, TF_URL)},
                                .run = run_imagestore_add,
                                .recover = imagestore_added,
                                .precheck = core_imagestore_precheck_add},
    [CORE_OP_IMAGESTORE_REMOVE] = {.name = "imagestore.remove",
                                   .role = ROLE_SUPERADMIN,
                                   .fields = {REQ(name, TF_ID)},
                                   .run = run_imagestore_remove,
                                   .recover = imagestore_removed,
                                   .precheck = core_imagestore_precheck_remove},
};

const struct core_task_type *core_task_type(const char *name)
{
    int op = core_op_by_name(name);
    return op < 0 ? NULL : &types[op];
}

const char *core_op_name(enum core_op op)
{
    return (unsigned)op < CORE_OP_COUNT ? types[op].name : NULL;
}

int core_op_by_name(const char *name)
{
    for (int i = 0; name && i < CORE_OP_COUNT; i++)
        if (strcmp(types[i].name, name) == 0)
            return i;
    return -1;
}

enum st_role core_op_role(enum core_op op)
{
    return (unsigned)op < CORE_OP_COUNT ? types[op].role : ROLE_SUPERADMIN;
}

/* ---- checking params ---- */

int core_valid_disk_id(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > 95)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
            !(s[i] >= '0' && s[i] <= '9') && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

#define SAFE_REFUSED "<>%$&;'\""

/* A JSON array of strings, each 1 to 64 bytes, as its parsed value. */
static json_t *parse_tags(const char *name, const char *s, struct st_err *e)
{
    json_error_t je;
    size_t i;
    json_t *v = json_loads(s, JSON_REJECT_DUPLICATES, &je), *tag;
    if (!json_is_array(v)) {
        json_decref(v);
        st_fail_field(e, ST_INVALID, name, "'%s' must be an array of strings", name);
        return NULL;
    }
    json_array_foreach(v, i, tag)
    {
        size_t len = json_string_length(tag);
        if (!json_is_string(tag) || len == 0 || len > 64 || strlen(json_string_value(tag)) != len) {
            json_decref(v);
            st_fail_field(e, ST_INVALID, name, "'%s' must be strings of 1 to 64 bytes", name);
            return NULL;
        }
    }
    return v;
}

static json_t *parse_props(const char *name, const char *s, struct st_err *e)
{
    json_t *v = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(v)) {
        json_decref(v);
        st_fail_field(e, ST_INVALID, name, "'%s' must be a JSON object", name);
        return NULL;
    }
    return v;
}

/* The fields that are not strings: ints and tri-states whose 0 means absent. */
static int check_number(const struct core_task_field *f, const char *at, json_t **v,
                        struct st_err *e)
{
    *v = NULL;
    if (f->kind == TF_ACCESS) {
        int a = *(const int *)(const void *)at;
        if (a == 0)
            return 0;
        if (a != 1 && a != 3 && a != 4)
            return st_fail_field(e, ST_INVALID, f->name,
                                 "'%s' must be 1 (public), 3 (private) or 4 (deleted)", f->name);
        *v = json_integer(a);
    } else if (f->kind == TF_BOOL) {
        enum core_tri b = *(const enum core_tri *)(const void *)at;
        if (b == CORE_UNSET)
            return 0;
        *v = json_boolean(b == CORE_TRUE);
    } else {
        int64_t g = *(const int64_t *)(const void *)at;
        if (g == 0)
            return 0;
        if (g < 0)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must be positive", f->name);
        *v = json_integer((json_int_t)g);
    }
    return *v ? 0 : st_fail(e, ST_INTERNAL, "out of memory");
}

static json_t *parse_list(const char *field, const char *s, struct st_err *e)
{
    json_error_t je;
    size_t i;
    json_t *v = json_loads(s, JSON_REJECT_DUPLICATES, &je), *o;
    int ok = json_is_array(v) && json_array_size(v) > 0;
    json_array_foreach(v, i, o) ok = ok && json_is_object(o);
    if (!ok) {
        json_decref(v);
        st_fail_field(e, ST_INVALID, field, "'%s' must be a non-empty list of objects", field);
        return NULL;
    }
    return v;
}

static int check_string(const struct core_task_field *f, const char *s, struct st_err *e)
{
    size_t len = strlen(s);
    static const size_t max[] = {[TF_NAME] = 128,
                                 [TF_TEXT] = 256,
                                 [TF_PATH] = DB_PATH - 1,
                                 [TF_OBJECT] = 255,
                                 [TF_PLACE] = DB_PATH - 1};

    switch (f->kind) {
    case TF_ID:
        if (!core_valid_id(s))
            return st_fail_field(e, ST_INVALID, f->name,
                                 "'%s' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", f->name);
        return 0;
    case TF_DISK:
        if (!core_valid_disk_id(s))
            return st_fail_field(e, ST_INVALID, f->name,
                                 "'%s' must be a physical_disk_id ([A-Za-z0-9._-], up to 95)",
                                 f->name);
        return 0;
    case TF_FORMAT:
        if (strcmp(s, "raw") && strcmp(s, "qcow2"))
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must be raw or qcow2", f->name);
        return 0;
    case TF_PATH:
        if (s[0] != '/')
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must be an absolute path", f->name);
        break;
    case TF_OBJECT:
        if (len == 0 || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must be a name in a volume's root",
                                 f->name);
        break;
    case TF_PLACE:
    case TF_NAME:
        if (len == 0)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must not be empty", f->name);
        break;
    case TF_URL:
        if (len > 1024 || (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0))
            return st_fail_field(e, ST_INVALID, f->name,
                                 "'%s' must be an http:// or https:// URL of up to 1024 bytes",
                                 f->name);
        return 0;
    case TF_LIST:
        if (len > DB_PATH - 1)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' is too long", f->name);
        return 0;
    case TF_PROPS:
        if (len > 4096)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' is longer than 4096 bytes", f->name);
        return 0;
    case TF_TAGS:
        if (len > 1023)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' is longer than 1023 bytes", f->name);
        return 0;
    case TF_SAFE:
        if (len > f->max)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' is longer than %u", f->name, f->max);
        if (s[strcspn(s, SAFE_REFUSED)])
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must not contain any of %s", f->name,
                                 SAFE_REFUSED);
        return 0;
    default:
        break;
    }
    if (len > max[f->kind])
        return st_fail_field(e, ST_INVALID, f->name, "'%s' is longer than %zu", f->name,
                             max[f->kind]);
    return 0;
}

static int check_field(const struct st_config *cfg, const struct core_task_field *f,
                       const struct core_op_params *p, json_t *clean, struct st_err *e)
{
    const char *at = (const char *)p + f->offset;
    json_t *v;

    if (f->kind == TF_SIZE) {
        uint64_t size = *(const uint64_t *)(const void *)at;
        if (size == 0) {
            if (f->required)
                return st_fail_field(e, ST_INVALID, f->name, "'%s' is required", f->name);
            return 0;
        }
        if (size > cfg->max_image_size)
            return st_fail_field(e, ST_TOO_LARGE, f->name, "'%s' is over the limit of %llu bytes",
                                 f->name, (unsigned long long)cfg->max_image_size);
        v = json_integer((json_int_t)size);
    } else if (f->kind == TF_ACCESS || f->kind == TF_BOOL || f->kind == TF_GEN) {
        if (check_number(f, at, &v, e))
            return -1;
        if (!v) {
            if (f->required)
                return st_fail_field(e, ST_INVALID, f->name, "'%s' is required", f->name);
            return 0;
        }
    } else {
        const char *s = *(const char *const *)(const void *)at;
        if (!s) {
            if (f->required)
                return st_fail_field(e, ST_INVALID, f->name, "'%s' is required", f->name);
            return 0;
        }
        if (check_string(f, s, e))
            return -1;
        switch (f->kind) {
        case TF_TAGS:
            v = parse_tags(f->name, s, e);
            break;
        case TF_LIST:
            v = parse_list(f->name, s, e);
            break;
        case TF_PROPS:
            v = parse_props(f->name, s, e);
            break;
        default:
            v = json_string(s);
            break;
        }
        if (!v && (f->kind == TF_TAGS || f->kind == TF_LIST || f->kind == TF_PROPS))
            return -1; /* the parser said why */
    }
    if (!v || json_object_set_new(clean, f->name, v))
        return st_fail(e, ST_INTERNAL, "out of memory");
    return 0;
}

int core_task_check(const struct st_config *cfg, enum core_op op, const struct core_op_params *p,
                    enum st_role role, json_t **clean, struct st_err *e)
{
    *clean = NULL;
    if ((unsigned)op >= CORE_OP_COUNT)
        return st_fail_field(e, ST_INVALID, "op", "unknown operation %d", (int)op);
    const struct core_task_type *tt = &types[op];
    if (role < tt->role)
        return st_fail(e, ST_FORBIDDEN, "role %s may not run %s (needs %s)", core_role_name(role),
                       tt->name, core_role_name(tt->role));
    if (!(*clean = json_object()))
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (int i = 0; i < CORE_TASK_MAX_FIELDS && tt->fields[i].name; i++) {
        if (check_field(cfg, &tt->fields[i], p, *clean, e)) {
            json_decref(*clean);
            *clean = NULL;
            return -1;
        }
    }
    return 0;
}

const char *core_task_str(const struct core_task_ctx *t, const char *key)
{
    const char *s = json_string_value(json_object_get(t->params, key));
    return s ? s : "";
}

int64_t core_task_int(const struct core_task_ctx *t, const char *key)
{
    return json_integer_value(json_object_get(t->params, key));
}

int core_task_cancelled(const struct core_task_ctx *t)
{
    return t->progress && t->progress->cancel && atomic_load(t->progress->cancel);
}

/* ---- image and clone bodies ---- */

/* A volume is "unknown" until its prober has looked at it and run restart recovery;
 * until then it refuses data operations. A task that comes right after a start
 * waits for that (a few probe periods at most) instead of failing. */
static void wait_probed(struct core_task_ctx *t, const char *volume_id)
{
    static const struct timespec tick = {0, 100 * 1000 * 1000};
    struct core_vol_state *s = malloc(sizeof *s);
    for (int i = 0; s && i < 300; i++) {
        if (core_volume_state(t->st, volume_id, s) != 0 || strcmp(s->status, "unknown") != 0)
            break;
        if (core_task_cancelled(t) || atomic_load(&t->st->stopping))
            break;
        nanosleep(&tick, NULL);
    }
    free(s);
}

/* The volume exists and belongs to the storage the client named. */
static int volume_in_storage(struct stowage *st, const char *volume_id, const char *storage_id,
                             struct st_err *e)
{
    struct db_volume v;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_volume_get(c, volume_id, &v, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    if (storage_id && *storage_id && strcmp(v.storage_id, storage_id) != 0)
        return st_fail(e, ST_NOT_FOUND, "volume '%s' is not in image storage '%s' (it is in '%s')",
                       volume_id, storage_id, v.storage_id);
    return 0;
}

/* The live image called name, on the volume and storage the client named (if any). */
static int find_image(struct core_task_ctx *t, const char *name, const char *volume_id,
                      struct db_image *im, struct st_err *e)
{
    if (core_image_by_name(t->st, name, im, e))
        return -1;
    if (*volume_id && strcmp(im->volume_id, volume_id) != 0)
        return st_fail(e, ST_NOT_FOUND, "image '%s' is not on volume '%s' (it is on '%s')", name,
                       volume_id, im->volume_id);
    return volume_in_storage(t->st, im->volume_id, core_task_str(t, "storage"), e);
}

/* What an image operation made, in neutral fields. */
static json_t *image_result(const struct db_image *im)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "name", im->name, "uuid", im->uuid, "volume",
                     im->volume_id, "format", im->format, "size", (json_int_t)im->virtual_size);
}

static int run_image_create(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "name"), *vol = core_task_str(t, "volume");
    const char *format = core_task_str(t, "format");
    uint64_t size = (uint64_t)core_task_int(t, "size");
    struct db_image im;

    if (volume_in_storage(t->st, vol, core_task_str(t, "storage"), e))
        return -1;
    wait_probed(t, vol);
    if (core_image_create_empty(t->st, name, vol, size, *format ? format : "raw", t->owner, &im, e))
        return -1;
    t->result = image_result(&im);
    return 0;
}

static int run_image_copy(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "name"), *vol = core_task_str(t, "volume");
    const char *src_name = core_task_str(t, "source");
    const char *src_vol = core_task_str(t, "source_volume");
    struct db_image src, im;

    if (volume_in_storage(t->st, vol, core_task_str(t, "storage"), e))
        return -1;
    if (core_image_by_name(t->st, src_name, &src, e))
        return -1;
    if (strcmp(src.volume_id, src_vol) != 0)
        return st_fail(e, ST_NOT_FOUND, "image '%s' is not on volume '%s' (it is on '%s')",
                       src_name, src_vol, src.volume_id);
    wait_probed(t, src_vol);
    wait_probed(t, vol);
    if (core_image_copy(t->st, src_name, name, vol, t->owner, t->progress, &im, e))
        return -1;
    t->result = image_result(&im);
    json_object_set_new(t->result, "source", json_string(src_name));
    return 0;
}

static int run_image_release(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "name");
    struct db_image im;

    if (find_image(t, name, core_task_str(t, "volume"), &im, e) ||
        core_image_release(t->st, name, e))
        return -1;
    t->result = json_pack("{s:s}", "name", name);
    return 0;
}

static int run_image_delete(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "name");
    struct db_image im;

    if (find_image(t, name, core_task_str(t, "volume"), &im, e))
        return -1;
    wait_probed(t, im.volume_id);
    if (core_image_delete(t->st, name, e))
        return -1;
    t->result = json_pack("{s:s, s:s}", "name", name, "volume", im.volume_id);
    return 0;
}

/* What a clone.create made: the same whether its run or a restart tells it. */
static void clone_outcome(struct core_task_ctx *t, const struct db_clone *cl)
{
    json_decref(t->result);
    t->result = json_pack("{s:s, s:s, s:s, s:s}", "clone", cl->clone_id, "image", cl->image_name,
                          "guest", cl->guest_id, "volume", cl->volume_id);
}

/* Inside the clone's transaction: the task's success commits with the clone's row. */
static int clone_success(struct db_conn *c, const void *row, void *ud, struct st_err *e)
{
    const struct db_clone *cl = row;
    struct core_task_ctx *t = ud;

    clone_outcome(t, cl);
    return core_task_record_success(t, c, e);
}

static int run_guest_clone(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "image"), *guest = core_task_str(t, "guest");
    const char *clone_id = core_task_str(t, "clone");
    const struct core_also also = {clone_success, t};
    struct db_image im;
    struct db_clone cl;

    if (core_image_by_name(t->st, name, &im, e))
        return -1;
    wait_probed(t, im.volume_id);
    if (core_clone_create(t->st, name, guest, *clone_id ? clone_id : NULL, &also, &cl, e))
        return -1;
    t->recorded = 1;
    return 0;
}

static int run_clone_delete(struct core_task_ctx *t, struct st_err *e)
{
    const char *clone_id = core_task_str(t, "clone");
    struct db_clone cl;

    if (core_clone_get(t->st, clone_id, &cl, e))
        return -1;
    wait_probed(t, cl.volume_id);
    if (core_clone_delete(t->st, clone_id, e))
        return -1;
    t->result = json_pack("{s:s}", "clone", clone_id);
    return 0;
}

static int check_image_update(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    return core_image_update(st, name, params, 0, NULL, e);
}

static int run_image_update(struct core_task_ctx *t, struct st_err *e)
{
    struct db_image im;
    if (core_image_update(t->st, core_task_str(t, "name"), t->params, 1, &im, e))
        return -1;
    t->result = image_result(&im);
    return 0;
}

/* ---- after a restart: did the body's effect commit before the process died? ---- */

/* The image is ours when it was made after the task started. A 'saving' row is left to
 * its volume's recovery, which either rolls it forward (its bytes were renamed into
 * place) or removes it; until then nobody can tell. */
static int image_made(struct core_task_ctx *t, int64_t started_at)
{
    const char *name = core_task_str(t, "name"), *vol = core_task_str(t, "volume");
    struct db_image im;
    struct st_err e;

    if (core_image_by_name(t->st, name, &im, &e) || strcmp(im.volume_id, vol) != 0 ||
        im.created_at < started_at)
        return 0;
    if (strcmp(im.status, "active") != 0)
        return strcmp(im.status, "saving") == 0 ? -1 : 0;
    t->result = image_result(&im);
    return 1;
}

static int image_released(struct core_task_ctx *t, int64_t started_at)
{
    struct db_image im;
    struct st_err e;
    const char *name = core_task_str(t, "name");
    if (core_image_by_name(t->st, name, &im, &e) || im.guest_id[0])
        return 0;
    t->result = json_pack("{s:s}", "name", name);
    return 1;
}

static int image_deleted(struct core_task_ctx *t, int64_t started_at)
{
    struct db_image im;
    struct st_err e;
    const char *name = core_task_str(t, "name");
    if (core_image_by_name(t->st, name, &im, &e) == 0 || e.code != ST_NOT_FOUND)
        return 0;
    t->result = json_pack("{s:s}", "name", name);
    return 1;
}

/* A clone's file is committed before its row: the row says it is done. */
static int clone_made(struct core_task_ctx *t, int64_t started_at)
{
    const char *name = core_task_str(t, "image"), *guest = core_task_str(t, "guest");
    char id[DB_ID * 2 + 2];
    struct db_clone cl;
    struct st_err e;

    snprintf(id, sizeof id, "%s", core_task_str(t, "clone"));
    if (!id[0])
        snprintf(id, sizeof id, "%s_%s", name, guest); /* the id it would have been given */
    if (core_clone_get(t->st, id, &cl, &e) || strcmp(cl.image_name, name) != 0 ||
        strcmp(cl.guest_id, guest) != 0 || cl.created_at < started_at)
        return 0;
    clone_outcome(t, &cl);
    return 1;
}

static int clone_deleted(struct core_task_ctx *t, int64_t started_at)
{
    struct db_clone cl;
    struct st_err e;
    const char *id = core_task_str(t, "clone");
    if (core_clone_get(t->st, id, &cl, &e) == 0 || e.code != ST_NOT_FOUND)
        return 0;
    t->result = json_pack("{s:s}", "clone", id);
    return 1;
}

/* ---- objects outside the catalogue: adopt and release ---- */

static const char *param(const json_t *params, const char *key)
{
    const char *s = json_string_value(json_object_get(params, key));
    return s && *s ? s : NULL;
}

static int adopt_precheck(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *vol = param(params, "volume"), *storage = param(params, "storage");
    if (volume_in_storage(st, vol, storage, e))
        return -1;
    return core_adopt_check(st, vol, param(params, "object"), param(params, "name"), e);
}

static void adopt_outcome(struct core_task_ctx *t, const struct db_image *im)
{
    json_decref(t->result);
    t->result = image_result(im);
    json_object_set_new(t->result, "object", json_string(core_task_str(t, "object")));
}

/* Inside the transaction that makes the adopted image active. */
static int adopt_success(struct db_conn *c, const void *row, void *ud, struct st_err *e)
{
    adopt_outcome(ud, row);
    return core_task_record_success(ud, c, e);
}

static int run_image_adopt(struct core_task_ctx *t, struct st_err *e)
{
    const char *vol = core_task_str(t, "volume"), *name = core_task_str(t, "name");
    const char *owner = core_task_str(t, "owner");
    const struct core_also also = {adopt_success, t};
    struct db_image im;

    if (volume_in_storage(t->st, vol, core_task_str(t, "storage"), e))
        return -1;
    wait_probed(t, vol);
    json_t *props = json_object_get(t->params, "properties");
    char *props_text = props ? json_dumps(props, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    struct core_adoption a = {vol,
                              core_task_str(t, "object"),
                              *name ? name : t->id,
                              t->id,
                              *owner ? owner : t->owner,
                              core_task_str(t, "description"),
                              props_text ? props_text : "{}",
                              &also};
    int rc = core_image_adopt(t->st, &a, &im, e);
    free(props_text);
    if (rc)
        return -1;
    t->recorded = 1;
    return 0;
}

static int unmanage_precheck(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *vol = param(params, "volume"), *name = param(params, "name");
    struct db_image im;
    if (core_image_by_name(st, name, &im, e))
        return -1;
    if (vol && strcmp(im.volume_id, vol) != 0)
        return st_fail(e, ST_NOT_FOUND, "image '%s' is not on volume '%s' (it is on '%s')", name,
                       vol, im.volume_id);
    return core_unmanage_check(st, name, e);
}

struct released {
    struct core_task_ctx *t;
    const char *object;
};

/* Inside the transaction that drops the released image's row. */
static int unmanage_success(struct db_conn *c, const void *row, void *ud, struct st_err *e)
{
    const struct db_image *im = row;
    struct released *r = ud;
    json_decref(r->t->result);
    r->t->result = json_pack("{s:s, s:s, s:s, s:s}", "name", im->name, "uuid", im->uuid, "volume",
                             im->volume_id, "object", r->object);
    return core_task_record_success(r->t, c, e);
}

static int run_image_unmanage(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "name");
    char object[256];
    struct released r = {t, object};
    const struct core_also also = {unmanage_success, &r};
    struct db_image im;

    if (find_image(t, name, core_task_str(t, "volume"), &im, e))
        return -1;
    wait_probed(t, im.volume_id);
    if (core_image_unmanage(t->st, name, &also, object, sizeof object, e))
        return -1;
    t->recorded = 1;
    return 0;
}

/* The image is the job's own uuid: active means the rename happened; 'saving' is left to
 * the volume's recovery (rolled forward when the file is in images/, else the row goes
 * and the object stays where it was). */
static int image_adopted(struct core_task_ctx *t, int64_t started_at)
{
    struct db_image im;
    struct st_err e;
    (void)started_at;
    if (core_image_row(t->st, t->id, &im, &e))
        return 0;
    if (strcmp(im.status, "active") != 0)
        return strcmp(im.status, "saving") == 0 ? -1 : 0;
    adopt_outcome(t, &im);
    return 1;
}

static int image_unmanaged(struct core_task_ctx *t, int64_t started_at)
{
    struct db_image im;
    struct st_err e;
    const char *name = core_task_str(t, "name");
    (void)started_at;
    /* The volume's recovery may drop a releasing row while this looks: the row found
     * first and then no longer releasing is looked up once more, so a release that
     * recovery finished in between is not taken for one it undid. */
    for (int look = 0; look < 2; look++) {
        if (core_image_by_name(t->st, name, &im, &e) != 0)
            break;
        if (core_image_releasing(t->st, &im))
            return -1; /* recovery decides */
        if (look == 1)
            return 0; /* still there, not releasing: the release was undone or never began */
    }
    if (e.code != ST_NOT_FOUND)
        return -1; /* cannot tell yet: asked again later */
    t->result = json_pack("{s:s}", "name", name);
    return 1;
}

/* ---- imports ---- */

static int import_precheck(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *name = param(params, "name"), *vol = param(params, "volume");
    struct db_image im;
    struct st_err nf;
    if (core_image_by_name(st, name, &im, &nf) == 0)
        return st_fail_field(e, ST_EXISTS, "name", "an image named '%s' already exists", name);
    /* The version defaults to the manifest's, known only once the job reads it (the job
     * checks again then). */
    const char *alias = param(params, "alias"), *version = param(params, "version");
    if (version && core_alias_free(st, alias && *alias ? alias : name, version, e))
        return -1;
    return vol ? volume_in_storage(st, vol, param(params, "storage"), e) : 0;
}

/* The request's metadata over the manifest's. */
static void import_meta(struct core_task_ctx *t, const struct core_manifest *m,
                        struct db_image_meta *meta)
{
    json_t *v;
    memset(meta, 0, sizeof *meta);
    snprintf(meta->alias, sizeof meta->alias, "%s", core_task_str(t, "alias"));
    snprintf(meta->version, sizeof meta->version, "%s",
             *core_task_str(t, "version") ? core_task_str(t, "version") : m->version);
    snprintf(meta->description, sizeof meta->description, "%s",
             json_object_get(t->params, "description") ? core_task_str(t, "description")
                                                       : m->description);
    char *tags = (v = json_object_get(t->params, "tags")) ? json_dumps(v, JSON_COMPACT) : NULL;
    snprintf(meta->tags, sizeof meta->tags, "%s", tags ? tags : "[]");
    free(tags);
    meta->ostype = m->ostype;
    meta->access = core_task_int(t, "access") ? (int)core_task_int(t, "access") : 3;
    meta->resize = json_is_true(json_object_get(t->params, "resize"));
    meta->deploy = json_is_true(json_object_get(t->params, "deploy"));
    v = json_object_get(t->params, "dc_bound");
    meta->dc_bound = v ? json_is_true(v) : 1;
}

static int run_image_import(struct core_task_ctx *t, struct st_err *e)
{
    const char *vol = core_task_str(t, "volume"), *storage = core_task_str(t, "storage");
    const char *murl = core_task_str(t, "manifest_url"), *furl = core_task_str(t, "file_url");
    char volume[DB_ID], file_url[1100];
    struct core_manifest m;
    struct core_import_req rq = {
        .name = core_task_str(t, "name"), .owner = t->owner, .volume_id = volume, .manifest = &m};
    struct db_image im;

    if (*vol) {
        if (volume_in_storage(t->st, vol, storage, e))
            return -1;
        snprintf(volume, sizeof volume, "%s", vol);
    } else if (*storage ? core_roomiest_volume(t->st, storage, volume, sizeof volume, e)
                        : core_default_volume(t->st, NULL, volume, sizeof volume, e)) {
        return -1; /* a storage named: its roomiest volume; none: the default one */
    }
    wait_probed(t, volume);
    if (core_manifest_fetch(t->st, murl, &m, e))
        return -1;
    if (*furl) {
        snprintf(file_url, sizeof file_url, "%s", furl);
    } else {
        size_t n = strlen(murl);
        while (n && murl[n - 1] == '/')
            n--;
        snprintf(file_url, sizeof file_url, "%.*s/file", (int)n, murl);
    }
    rq.file_url = file_url;
    import_meta(t, &m, &rq.meta);
    if (core_image_import(t->st, &rq, t->progress, &im, e))
        return -1;
    t->result = image_result(&im);
    return 0;
}

/* The image is ours when it was made after the task started (an import's row appears
 * only once the manifest was read); 'saving' is its volume's recovery's to settle. */
static int image_imported(struct core_task_ctx *t, int64_t started_at)
{
    struct db_image im;
    struct st_err e;
    if (core_image_by_name(t->st, core_task_str(t, "name"), &im, &e) || im.created_at < started_at)
        return 0;
    if (strcmp(im.status, "active") != 0)
        return strcmp(im.status, "saving") == 0 ? -1 : 0;
    t->result = image_result(&im);
    return 1;
}

static int run_imagestore_refresh(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "name");
    size_t n = 0;
    if (core_imagestore_refresh(t->st, name, &n, e))
        return -1;
    t->result = json_pack("{s:s, s:I}", "imagestore", name, "images", (json_int_t)n);
    return 0;
}

/* ---- snapshots ---- */

static json_t *snapshot_result(const struct db_snapshot *s)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "clone", s->clone_id, "snapshot", s->name,
                     "guest", s->guest_id, "volume", s->volume_id, "size", (json_int_t)s->size);
}

static int run_snapshot_create(struct core_task_ctx *t, struct st_err *e)
{
    struct db_snapshot s;
    struct db_clone cl;
    if (core_clone_get(t->st, core_task_str(t, "clone"), &cl, e))
        return -1;
    wait_probed(t, cl.volume_id);
    if (core_snapshot_create(t->st, cl.clone_id, core_task_str(t, "snapshot"),
                             core_task_str(t, "description"), &s, e))
        return -1;
    t->result = snapshot_result(&s);
    return 0;
}

static int run_snapshot_delete(struct core_task_ctx *t, struct st_err *e)
{
    const char *clone = core_task_str(t, "clone"), *name = core_task_str(t, "snapshot");
    if (core_snapshot_delete(t->st, clone, name, e))
        return -1;
    t->result = json_pack("{s:s, s:s}", "clone", clone, "snapshot", name);
    return 0;
}

/* A snapshot's file is committed before its row: the row says it is done. */
static int snapshot_made(struct core_task_ctx *t, int64_t started_at)
{
    struct db_snapshot s;
    struct st_err e;
    struct db_conn *c = db_acquire(t->st->db);
    int rc = db_snapshot_get(c, core_task_str(t, "clone"), core_task_str(t, "snapshot"), &s, &e);
    db_release(t->st->db, c);
    if (rc || s.created_at < started_at)
        return 0;
    t->result = snapshot_result(&s);
    return 1;
}

static int snapshot_deleted(struct core_task_ctx *t, int64_t started_at)
{
    struct db_snapshot s;
    struct st_err e;
    const char *clone = core_task_str(t, "clone"), *name = core_task_str(t, "snapshot");
    struct db_conn *c = db_acquire(t->st->db);
    int rc = db_snapshot_get(c, clone, name, &s, &e);
    db_release(t->st->db, c);
    if (rc == 0 || e.code != ST_NOT_FOUND)
        return 0;
    t->result = json_pack("{s:s, s:s}", "clone", clone, "snapshot", name);
    return 1;
}

static int snapshot_image_precheck(struct stowage *st, const json_t *params, struct st_err *e)
{
    const char *name = param(params, "name"), *vol = param(params, "volume");
    const char *alias = param(params, "alias"), *version = param(params, "version");
    struct db_image im;
    struct st_err nf;
    if (core_image_by_name(st, name, &im, &nf) == 0)
        return st_fail_field(e, ST_EXISTS, "name", "an image named '%s' already exists", name);
    if (core_snapshot_image_check(st, param(params, "clone"), param(params, "snapshot"), e) ||
        core_alias_free(st, alias && *alias ? alias : name, version ? version : "1.0", e))
        return -1;
    return vol ? volume_in_storage(st, vol, param(params, "storage"), e) : 0;
}

static int run_snapshot_image(struct core_task_ctx *t, struct st_err *e)
{
    const char *vol = core_task_str(t, "volume"), *storage = core_task_str(t, "storage");
    char volume[DB_ID];
    struct db_clone cl;
    struct db_image im;
    struct core_snapshot_image_req rq = {
        .clone_id = core_task_str(t, "clone"),
        .snapshot = core_task_str(t, "snapshot"),
        .name = core_task_str(t, "name"),
        .volume_id = volume,
        .owner = *core_task_str(t, "owner") ? core_task_str(t, "owner") : t->owner};
    json_t *v;

    if (core_clone_get(t->st, rq.clone_id, &cl, e))
        return -1;
    /* On the volume named, else the roomiest of the storage named, else the clone's. */
    if (*vol) {
        if (volume_in_storage(t->st, vol, storage, e))
            return -1;
        snprintf(volume, sizeof volume, "%s", vol);
    } else if (*storage) {
        if (core_roomiest_volume(t->st, storage, volume, sizeof volume, e))
            return -1;
    } else {
        snprintf(volume, sizeof volume, "%s", cl.volume_id);
    }
    wait_probed(t, volume);
    struct db_image_meta *m = &rq.meta;
    snprintf(m->alias, sizeof m->alias, "%s", core_task_str(t, "alias"));
    snprintf(m->version, sizeof m->version, "%s",
             *core_task_str(t, "version") ? core_task_str(t, "version") : "1.0");
    snprintf(m->description, sizeof m->description, "%s", core_task_str(t, "description"));
    char *tags = (v = json_object_get(t->params, "tags")) ? json_dumps(v, JSON_COMPACT) : NULL;
    snprintf(m->tags, sizeof m->tags, "%s", tags ? tags : "[]");
    free(tags);
    m->access = core_task_int(t, "access") ? (int)core_task_int(t, "access") : 3;
    m->resize = json_is_true(json_object_get(t->params, "resize"));
    m->deploy = json_is_true(json_object_get(t->params, "deploy"));
    m->dc_bound = 1;
    if (core_snapshot_image(t->st, &rq, t->progress, &im, e))
        return -1;
    t->result = image_result(&im);
    return 0;
}

/* ---- image servers added at run time ---- */

static int run_imagestore_add(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "name");
    if (core_imagestore_add(t->st, name, core_task_str(t, "url"), e))
        return -1;
    return imagestore_added(t, 0) == 1 ? 0
                                       : st_fail(e, ST_INTERNAL, "image server '%s' is gone", name);
}

static int run_imagestore_remove(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "name");
    if (core_imagestore_remove(t->st, name, e))
        return -1;
    t->result = json_pack("{s:s}", "imagestore", name);
    return 0;
}

static int imagestore_added(struct core_task_ctx *t, int64_t started_at)
{
    struct core_imagestore s;
    struct st_err e;
    if (core_imagestore_get(t->st, core_task_str(t, "name"), &s, &e))
        return 0;
    core_imagestore_free(&s, 1);
    t->result = json_pack("{s:s, s:s}", "imagestore", s.name, "url", s.url);
    return 1;
}

static int imagestore_removed(struct core_task_ctx *t, int64_t started_at)
{
    struct core_imagestore s;
    struct st_err e;
    const char *name = core_task_str(t, "name");
    if (core_imagestore_get(t->st, name, &s, &e) == 0) {
        core_imagestore_free(&s, 1);
        return 0;
    }
    t->result = json_pack("{s:s}", "imagestore", name);
    return 1;
}
