/* task_types.c — every task type: who may submit it, the fields it takes, its body.
 *
 * Params are checked when the task is submitted, so a client hears about a missing
 * or malformed field at once (400) instead of from a failed task later; the body
 * then reads only fields that passed. The image and clone bodies are thin: the work
 * is in image.c and clone.c; the storage and volume bodies are in manage.c. */
#include "task_internal.h"

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

/* flexVDI names these types and their fields; the other dialects reuse them. */
static const struct core_task_type types[] = {
    {"istorage_create",
     ROLE_SUPERADMIN,
     0,
     {{"image_storage_id", TF_ID, 1}, {"name", TF_NAME, 1}, {"description", TF_TEXT, 0}},
     core_manage_istorage_create,
     core_manage_istorage_create_done},
    {"istorage_modify",
     ROLE_SUPERADMIN,
     0,
     {{"image_storage_id", TF_ID, 1}, {"name", TF_NAME, 0}, {"description", TF_TEXT, 0}},
     core_manage_istorage_modify,
     core_manage_istorage_modify_done},
    {"istorage_delete",
     ROLE_SUPERADMIN,
     0,
     {{"image_storage_id", TF_ID, 1}},
     core_manage_istorage_delete,
     core_manage_istorage_delete_done},
    {"volume_create",
     ROLE_SUPERADMIN,
     0,
     {{"image_storage_id", TF_ID, 1},
      {"volume_id", TF_ID, 1},
      {"primary_disk_id", TF_DISK, 1},
      {"secondary_disk_id", TF_DISK, 0}},
     core_manage_volume_create,
     core_manage_volume_create_done},
    {"volume_delete",
     ROLE_SUPERADMIN,
     0,
     {{"volume_id", TF_ID, 1}, {"image_storage_id", TF_ID, 0}},
     core_manage_volume_delete,
     core_manage_volume_delete_done},
    {"evolume_create",
     ROLE_SUPERADMIN,
     0,
     {{"image_storage_id", TF_ID, 1}, {"volume_id", TF_ID, 1}, {"mount_point", TF_PATH, 1}},
     core_manage_evolume_create,
     core_manage_evolume_create_done},
    {"evolume_delete",
     ROLE_SUPERADMIN,
     0,
     {{"volume_id", TF_ID, 1}, {"image_storage_id", TF_ID, 0}},
     core_manage_evolume_delete,
     core_manage_volume_delete_done},
    {"image_create",
     ROLE_ADMIN,
     0,
     {{"image_id", TF_ID, 1},
      {"volume_id", TF_ID, 1},
      {"image_storage_id", TF_ID, 1},
      {"size_mb", TF_SIZE_MB, 1},
      {"format", TF_FORMAT, 0}},
     run_image_create,
     image_made},
    {"image_copy",
     ROLE_ADMIN,
     1,
     {{"image_id", TF_ID, 1},
      {"volume_id", TF_ID, 1},
      {"image_storage_id", TF_ID, 1},
      {"source_image_id", TF_ID, 1},
      {"source_volume_id", TF_ID, 1}},
     run_image_copy,
     image_made},
    {"image_release",
     ROLE_ADMIN,
     0,
     {{"image_id", TF_ID, 1}, {"image_storage_id", TF_ID, 0}, {"volume_id", TF_ID, 0}},
     run_image_release,
     image_released},
    {"image_delete",
     ROLE_ADMIN,
     0,
     {{"image_id", TF_ID, 1}, {"image_storage_id", TF_ID, 0}, {"volume_id", TF_ID, 0}},
     run_image_delete,
     image_deleted},
    {"guest_clone",
     ROLE_ADMIN,
     0,
     {{"image_id", TF_ID, 1}, {"guest_id", TF_ID, 1}, {"clone_id", TF_ID, 0}},
     run_guest_clone,
     clone_made},
    {"clone_delete", ROLE_ADMIN, 0, {{"clone_id", TF_ID, 1}}, run_clone_delete, clone_deleted},
};

const struct core_task_type *core_task_type(const char *name)
{
    for (size_t i = 0; name && i < sizeof types / sizeof *types; i++)
        if (strcmp(types[i].name, name) == 0)
            return &types[i];
    return NULL;
}

/* ---- checking params ---- */

static int valid_disk_id(const char *s, size_t len)
{
    if (len == 0 || len > 95)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
            !(s[i] >= '0' && s[i] <= '9') && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

/* flexVDI sends numbers as strings ("size_mb": "1"): take both, digits only. */
static int get_size_mb(const struct st_config *cfg, const char *name, json_t *v, int64_t *out,
                       struct st_err *e)
{
    int64_t n = 0;
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= 18) {
        for (const char *p = json_string_value(v); *p; p++) {
            if (*p < '0' || *p > '9')
                return st_fail_field(e, ST_INVALID, name, "'%s' must be a whole number of MB",
                                     name);
            n = n * 10 + (*p - '0');
        }
    } else {
        return st_fail_field(e, ST_INVALID, name, "'%s' must be a whole number of MB", name);
    }
    if (n < 1)
        return st_fail_field(e, ST_INVALID, name, "'%s' must be at least 1", name);
    if ((uint64_t)n > cfg->max_image_size / MIB)
        return st_fail_field(e, ST_TOO_LARGE, name, "'%s' is over the limit of %llu MB", name,
                             (unsigned long long)(cfg->max_image_size / MIB));
    *out = n;
    return 0;
}

static int check_string(const struct core_task_field *f, json_t *v, struct st_err *e)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    static const size_t max[] = {[TF_NAME] = 128, [TF_TEXT] = 256, [TF_PATH] = DB_PATH - 1};

    if (strlen(s) != len)
        return st_fail_field(e, ST_INVALID, f->name, "'%s' contains a NUL byte", f->name);
    switch (f->kind) {
    case TF_ID:
        if (!core_valid_id(s))
            return st_fail_field(e, ST_INVALID, f->name,
                                 "'%s' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", f->name);
        return 0;
    case TF_DISK:
        if (!valid_disk_id(s, len))
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
    case TF_NAME:
        if (len == 0)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must not be empty", f->name);
        break;
    default:
        break;
    }
    if (len > max[f->kind])
        return st_fail_field(e, ST_INVALID, f->name, "'%s' is longer than %zu", f->name,
                             max[f->kind]);
    return 0;
}

static int check_field(const struct st_config *cfg, const struct core_task_field *f, json_t *params,
                       json_t *clean, struct st_err *e)
{
    json_t *v = json_object_get(params, f->name);
    int64_t mb = 0;

    if (!v || json_is_null(v)) {
        if (f->required)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' is required", f->name);
        return 0;
    }
    if (f->kind == TF_SIZE_MB) {
        if (get_size_mb(cfg, f->name, v, &mb, e))
            return -1;
        v = json_integer(mb);
    } else {
        if (!json_is_string(v))
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must be a string", f->name);
        if (check_string(f, v, e))
            return -1;
        v = json_incref(v);
    }
    if (!v || json_object_set_new(clean, f->name, v))
        return st_fail(e, ST_INTERNAL, "out of memory");
    return 0;
}

int core_task_check(const struct st_config *cfg, const char *type, json_t *params,
                    enum st_role role, json_t **clean, struct st_err *e)
{
    const struct core_task_type *tt = core_task_type(type);

    *clean = NULL;
    if (!tt)
        return st_fail_field(e, ST_INVALID, "type", "unknown task type '%.40s'", type ? type : "");
    if (role < tt->role)
        return st_fail(e, ST_FORBIDDEN, "role %s may not run %s (needs %s)", core_role_name(role),
                       tt->name, core_role_name(tt->role));
    if (!json_is_object(params))
        return st_fail_field(e, ST_INVALID, "body", "task params must be a JSON object");
    if (!(*clean = json_object()))
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (int i = 0; i < CORE_TASK_MAX_FIELDS && tt->fields[i].name; i++) {
        if (check_field(cfg, &tt->fields[i], params, *clean, e)) {
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
    return volume_in_storage(t->st, im->volume_id, core_task_str(t, "image_storage_id"), e);
}

static json_t *image_result(const struct db_image *im)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "image_id", im->name, "uuid", im->uuid,
                     "volume_id", im->volume_id, "format", im->format, "size_mb",
                     (json_int_t)((im->virtual_size + MIB - 1) / MIB));
}

static int run_image_create(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "image_id"), *vol = core_task_str(t, "volume_id");
    const char *format = core_task_str(t, "format");
    int64_t mb = core_task_int(t, "size_mb");
    struct db_image im;

    if (volume_in_storage(t->st, vol, core_task_str(t, "image_storage_id"), e))
        return -1;
    wait_probed(t, vol);
    if (core_image_create_empty(t->st, name, vol, (uint64_t)mb * MIB, *format ? format : "raw",
                                t->owner, &im, e))
        return -1;
    snprintf(t->msg, sizeof t->msg, "image '%s' created on volume '%s' (%lld MB, %s)", name, vol,
             (long long)mb, im.format);
    t->result = image_result(&im);
    return 0;
}

static int run_image_copy(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "image_id"), *vol = core_task_str(t, "volume_id");
    const char *src_name = core_task_str(t, "source_image_id");
    const char *src_vol = core_task_str(t, "source_volume_id");
    struct db_image src, im;

    if (volume_in_storage(t->st, vol, core_task_str(t, "image_storage_id"), e))
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
    snprintf(t->msg, sizeof t->msg, "image '%s' copied from '%s' to volume '%s'", name, src_name,
             vol);
    t->result = image_result(&im);
    return 0;
}

static int run_image_release(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "image_id");
    struct db_image im;

    if (find_image(t, name, core_task_str(t, "volume_id"), &im, e) ||
        core_image_release(t->st, name, e))
        return -1;
    snprintf(t->msg, sizeof t->msg, "image '%s' released", name);
    return 0;
}

static int run_image_delete(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "image_id");
    struct db_image im;

    if (find_image(t, name, core_task_str(t, "volume_id"), &im, e))
        return -1;
    wait_probed(t, im.volume_id);
    if (core_image_delete(t->st, name, e))
        return -1;
    snprintf(t->msg, sizeof t->msg, "image '%s' deleted from volume '%s'", name, im.volume_id);
    return 0;
}

/* What a guest_clone says on success: the same whether its run or a restart tells it. */
static void clone_made_msg(struct core_task_ctx *t, const char *id, const char *image,
                           const char *guest)
{
    snprintf(t->msg, sizeof t->msg, "clone '%s' of image '%s' created for guest '%s'", id, image,
             guest);
}

/* Inside the clone's transaction: the task's success commits with the clone's row. */
static int clone_success(struct db_conn *c, const void *row, void *ud, struct st_err *e)
{
    const struct db_clone *cl = row;
    struct core_task_ctx *t = ud;

    clone_made_msg(t, cl->clone_id, cl->image_name, cl->guest_id);
    json_decref(t->result);
    t->result = json_pack("{s:s, s:s, s:s, s:s}", "clone_id", cl->clone_id, "image_id",
                          cl->image_name, "guest_id", cl->guest_id, "volume_id", cl->volume_id);
    return core_task_record_success(t, c, e);
}

static int run_guest_clone(struct core_task_ctx *t, struct st_err *e)
{
    const char *name = core_task_str(t, "image_id"), *guest = core_task_str(t, "guest_id");
    const char *clone_id = core_task_str(t, "clone_id");
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
    const char *clone_id = core_task_str(t, "clone_id");
    struct db_clone cl;

    if (core_clone_get(t->st, clone_id, &cl, e))
        return -1;
    wait_probed(t, cl.volume_id);
    if (core_clone_delete(t->st, clone_id, e))
        return -1;
    snprintf(t->msg, sizeof t->msg, "clone '%s' deleted", clone_id);
    return 0;
}

/* ---- after a restart: did the body's effect commit before the process died? ---- */

/* The image is ours when it was made after the task started. A 'saving' row is left to
 * its volume's recovery, which either rolls it forward (its bytes were renamed into
 * place) or removes it; until then nobody can tell. */
static int image_made(struct core_task_ctx *t, int64_t started_at)
{
    const char *name = core_task_str(t, "image_id"), *vol = core_task_str(t, "volume_id");
    struct db_image im;
    struct st_err e;

    if (core_image_by_name(t->st, name, &im, &e) || strcmp(im.volume_id, vol) != 0 ||
        im.created_at < started_at)
        return 0;
    if (strcmp(im.status, "active") != 0)
        return strcmp(im.status, "saving") == 0 ? -1 : 0;
    snprintf(t->msg, sizeof t->msg, "image '%s' is active on volume '%s'", name, vol);
    return 1;
}

static int image_released(struct core_task_ctx *t, int64_t started_at)
{
    struct db_image im;
    struct st_err e;
    const char *name = core_task_str(t, "image_id");
    if (core_image_by_name(t->st, name, &im, &e) || im.guest_id[0])
        return 0;
    snprintf(t->msg, sizeof t->msg, "image '%s' released", name);
    return 1;
}

static int image_deleted(struct core_task_ctx *t, int64_t started_at)
{
    struct db_image im;
    struct st_err e;
    const char *name = core_task_str(t, "image_id");
    if (core_image_by_name(t->st, name, &im, &e) == 0 || e.code != ST_NOT_FOUND)
        return 0;
    snprintf(t->msg, sizeof t->msg, "image '%s' deleted", name);
    return 1;
}

/* A clone's file is committed before its row: the row says it is done. */
static int clone_made(struct core_task_ctx *t, int64_t started_at)
{
    const char *name = core_task_str(t, "image_id"), *guest = core_task_str(t, "guest_id");
    char id[DB_ID * 2 + 2];
    struct db_clone cl;
    struct st_err e;

    snprintf(id, sizeof id, "%s", core_task_str(t, "clone_id"));
    if (!id[0])
        snprintf(id, sizeof id, "%s_%s", name, guest); /* the id it would have been given */
    if (core_clone_get(t->st, id, &cl, &e) || strcmp(cl.image_name, name) != 0 ||
        strcmp(cl.guest_id, guest) != 0 || cl.created_at < started_at)
        return 0;
    clone_made_msg(t, id, name, guest);
    return 1;
}

static int clone_deleted(struct core_task_ctx *t, int64_t started_at)
{
    struct db_clone cl;
    struct st_err e;
    const char *id = core_task_str(t, "clone_id");
    if (core_clone_get(t->st, id, &cl, &e) == 0 || e.code != ST_NOT_FOUND)
        return 0;
    snprintf(t->msg, sizeof t->msg, "clone '%s' deleted", id);
    return 1;
}
