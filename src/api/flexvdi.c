/* flexvdi.c — the flexVDI manager dialect: /authenticate, /logout, /imagestorages, /tasks.
 *
 * Errors use flexVDI's ErrorMessage {"status":"error","message":…}; the HTTP
 * status follows the code (400, 401, 403, 404, 409, 413, 500, 503, 507 …),
 * documented in docs/flexvdi.md. Sizes are KB (space) and MB (images). Every
 * write is a task: POST /tasks/create answers the task id at once. */
#include "api_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *flexvdi_error(const struct st_err *e, unsigned *status)
{
    *status = http_status_of(e->code);
    return json_pack("{s:s, s:s}", "status", "error", "message", e->msg);
}

static json_t *image_json(const struct db_image *im, const char *storage_id)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "image_id", im->name, "volume_id", im->volume_id,
                     "image_storage_id", storage_id, "guest_id", im->guest_id, "size_mb",
                     (json_int_t)((im->virtual_size + (1 << 20) - 1) >> 20));
}

static json_t *volume_json(const struct core_volume_view *v, const char *storage_id)
{
    json_t *images = json_array(), *clones = json_array();
    for (size_t i = 0; i < v->n_images; i++)
        json_array_append_new(images, image_json(&v->images[i], storage_id));
    for (size_t i = 0; i < v->n_clones; i++)
        json_array_append_new(
            clones, json_pack("{s:s, s:s, s:s}", "clone_id", v->clones[i].clone_id, "image_id",
                              v->clones[i].image_name, "guest_id", v->clones[i].guest_id));
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o}", "volume_id", v->row.id,
                  "primary_disk_id", v->row.primary_disk_id, "secondary_disk_id",
                  v->row.secondary_disk_id, "status", v->state.status, "status_msg",
                  v->state.status_msg, "total_space", (json_int_t)v->state.total_kb, "free_space",
                  (json_int_t)v->state.free_kb, "images", images, "clones", clones);
    if (!j)
        return NULL;
    if (strcmp(v->row.kind, "external") == 0) {
        json_object_set_new(j, "mount_point", json_string(v->row.mount_point));
    } else if (strcmp(v->row.kind, "gluster") == 0) {
        const struct probe_gluster *g = &v->state.gluster;
        json_t *bricks = json_array();
        for (size_t i = 0; v->state.have_gluster && i < g->n_bricks; i++)
            json_array_append_new(bricks, json_string(g->bricks[i].name));
        json_object_set_new(j, "bricks", bricks);
        json_object_set_new(j, "type", json_string(v->state.have_gluster ? g->type : ""));
        json_object_set_new(j, "configuration",
                            json_string(v->state.have_gluster ? g->configuration : ""));
        json_object_set_new(j, "transport", json_string(v->state.have_gluster ? g->transport : ""));
        json_object_set_new(j, "gvolume_name", json_string(v->row.gluster_name));
        json_object_set_new(j, "gluster_server", json_string(v->row.gluster_server));
    }
    return j;
}

static json_t *storage_json(const struct core_storage_view *v)
{
    json_t *hosts = json_array(), *local = json_array(), *ext = json_array(), *gl = json_array(),
           *disks = json_array();
    for (size_t i = 0; i < v->n_hosts; i++)
        json_array_append_new(hosts, json_string(v->hosts[i]));
    for (size_t i = 0; i < v->n_volumes; i++) {
        const struct core_volume_view *vv = &v->volumes[i];
        json_t *target = strcmp(vv->row.kind, "external") == 0  ? ext
                         : strcmp(vv->row.kind, "gluster") == 0 ? gl
                                                                : local;
        json_array_append_new(target, volume_json(vv, v->row.id));
    }
    for (size_t i = 0; i < v->n_disks; i++) {
        const struct core_disk_view *d = &v->disks[i];
        json_array_append_new(disks, json_pack("{s:s, s:s, s:s, s:s, s:s}", "physical_disk_id",
                                               d->disk.id, "product_number", d->disk.model,
                                               "vendor", d->disk.vendor, "host_device",
                                               d->disk.host_device, "volume_id", d->volume_id));
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "hosts", hosts, "volumes", local,
                     "external_volumes", ext, "gluster_volumes", gl, "disks", disks);
}

static void get_storage(struct http_req *r)
{
    struct stowage *st = http_st(r);
    struct core_storage_view v;
    struct st_err e;
    char key[96];
    const char *id = http_capture(r, 0);
    uint64_t gen = core_generation(st);

    snprintf(key, sizeof key, "flexvdi:is:%s", id);
    if (http_reply_cached(r, key, gen))
        return;
    if (!core_valid_id(id)) {
        st_fail(&e, ST_NOT_FOUND, "image storage '%.64s' not found", id);
        http_reply_error(r, &e);
        return;
    }
    if (core_storage_view(st, id, &v, &e)) {
        http_reply_error(r, &e);
        return;
    }
    json_t *j = storage_json(&v);
    core_storage_view_free(&v);
    http_reply_json_cached(r, key, gen, j);
}

static void list_storages(struct http_req *r)
{
    struct stowage *st = http_st(r);
    char(*ids)[DB_ID] = NULL;
    size_t n = 0;
    struct st_err e;
    uint64_t gen = core_generation(st);

    if (http_reply_cached(r, "flexvdi:is*", gen))
        return;
    if (core_storage_ids(st, &ids, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        struct core_storage_view v;
        if (core_storage_view(st, ids[i], &v, &e))
            continue; /* deleted between the list and the view */
        json_t *j = storage_json(&v);
        core_storage_view_free(&v);
        json_object_set_new(j, "image_storage_id", json_string(ids[i]));
        json_array_append_new(arr, j);
    }
    free(ids);
    http_reply_json_cached(r, "flexvdi:is*", gen, arr);
}

/* flexVDI's AuthResult says "Error" in status; the HTTP status says why (429 with
 * Retry-After while a user or address is throttled, docs/flexvdi.md). */
static void authenticated(struct http_req *r, const struct core_login_result *res)
{
    char cookie[160];
    if (!res->ok) {
        http_reply_json(r, http_status_of(res->err.code),
                        json_pack("{s:s, s:s}", "status", "Error", "message", res->err.msg));
        return;
    }
    snprintf(cookie, sizeof cookie, "session=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200",
             res->session);
    http_add_header(r, "Set-Cookie", cookie);
    http_reply_json(r, 200, json_pack("{s:s, s:s}", "status", "OK", "message", res->session));
}

static void authenticate(struct http_req *r)
{
    struct st_err e;
    const char *user, *pass;
    json_t *body = http_json(r);

    if (!json_is_object(body)) {
        st_fail_field(&e, ST_INVALID, "body", "body must be a JSON object {username, password}");
        http_reply_error(r, &e);
        return;
    }
    if (http_json_string(body, "username", 1, 64, &user, &e) ||
        http_json_string(body, "password", 1, 1024, &pass, &e)) {
        http_reply_error(r, &e);
        return;
    }
    api_login(r, user, pass, authenticated);
}

static void logout(struct http_req *r)
{
    const char *session = http_cookie(r, "session");
    struct st_err e;
    if (session && *session)
        core_session_end(http_st(r), session, &e); /* an API token in the cookie stays valid */
    http_add_header(r, "Set-Cookie", "session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    http_reply_json(r, 200, json_pack("{s:s, s:s}", "status", "OK", "message", "logged out"));
}

/* ---- tasks ---- */

/* flexVDI documents task_type only as "0: unknown, 1: guest_action, ..."; the rest of
 * its numbering is not public and clients read task_type_str (since 3.1). These codes
 * are stable and start at 101, clear of any number a flexVDI client may already know. */
static const struct {
    const char *name;
    int code;
} task_codes[] = {
    {"istorage_create", 101}, {"istorage_modify", 102}, {"istorage_delete", 103},
    {"volume_create", 104},   {"volume_delete", 105},   {"evolume_create", 106},
    {"evolume_delete", 107},  {"image_create", 108},    {"image_copy", 109},
    {"image_release", 110},   {"image_delete", 111},    {"guest_clone", 112},
    {"clone_delete", 113},
};
#define N_TASK_CODES (sizeof task_codes / sizeof *task_codes)

static int task_code(const char *type)
{
    for (size_t i = 0; i < N_TASK_CODES; i++)
        if (strcmp(task_codes[i].name, type) == 0)
            return task_codes[i].code;
    return 0;
}

/* flexVDI's "2016-02-03 16:57:42", in UTC; "" for a time that has not come yet. */
static void flexvdi_time(int64_t t, char out[20])
{
    struct tm tm;
    time_t tt = (time_t)t;
    out[0] = '\0';
    if (t > 0 && gmtime_r(&tt, &tm))
        strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

/* flexVDI has no queued state and no revoked result: a queued task is running/pending,
 * a cancelled one an error whose message says it was cancelled. */
static json_t *task_json(const struct core_task_view *v)
{
    char when[20], execution[20];
    const char *state = strcmp(v->state, "completed") == 0 ? "completed" : "running";
    const char *result = strcmp(v->result, "revoked") == 0 ? "error" : v->result;

    flexvdi_time(v->created_at, when);
    flexvdi_time(strcmp(v->state, "completed") == 0 ? v->finished_at : 0, execution);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:i}", "task_id", v->id, "when",
                     when, "execution", execution, "state", state, "result", result, "result_msg",
                     v->result_msg, "task_type", task_code(v->type), "task_type_str", v->type,
                     "progress", v->progress);
}

static void create_task(struct http_req *r)
{
    struct st_err e;
    const char *type;
    int64_t ignored;
    char id[37];
    json_t *body = http_json(r);

    if (!json_is_object(body)) {
        st_fail_field(&e, ST_INVALID, "body", "body must be a JSON object {type, ...}");
        http_reply_error(r, &e);
        return;
    }
    /* "repeat" is reserved and "retries" asks for automatic retries: both are accepted
     * (numbers or strings of digits) and neither repeats a task (docs/flexvdi.md). */
    if (http_json_string(body, "type", 1, 31, &type, &e) ||
        http_json_int(body, "repeat", 0, 0, INT32_MAX, &ignored, &e) < 0 ||
        http_json_int(body, "retries", 0, 0, INT32_MAX, &ignored, &e) < 0 ||
        core_task_submit(http_st(r), type, body, http_principal(r), id, &e)) {
        http_reply_error(r, &e);
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s, s:s}", "status", "OK", "message", id));
}

/* GET /tasks: an object with an array per task type (every type, empty or not);
 * ?format=list: one array, oldest first. */
static void list_tasks(struct http_req *r)
{
    struct core_task_view *v = NULL;
    size_t n = 0;
    struct st_err e;
    const char *format = http_query(r, "format");

    if (format && strcmp(format, "list") != 0) {
        st_fail_field(&e, ST_INVALID, "format", "format must be 'list' (or absent)");
        http_reply_error(r, &e);
        return;
    }
    if (core_task_list(http_st(r), &v, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    json_t *out = format ? json_array() : json_object();
    for (size_t i = 0; !format && i < N_TASK_CODES; i++)
        json_object_set_new(out, task_codes[i].name, json_array());
    for (size_t i = 0; i < n; i++) {
        json_t *arr = format ? out : json_object_get(out, v[i].type);
        if (!arr) /* a type this dialect does not name */
            json_object_set_new(out, v[i].type, arr = json_array());
        json_array_append_new(arr, task_json(&v[i]));
    }
    free(v);
    http_reply_json(r, 200, out);
}

static void get_task(struct http_req *r)
{
    struct core_task_view v;
    struct st_err e;
    if (core_task_get(http_st(r), http_capture(r, 0), &v, &e)) {
        http_reply_error(r, &e);
        return;
    }
    http_reply_json(r, 200, task_json(&v));
}

static const struct http_route routes[] = {
    {"POST", "/authenticate", HTTP_BODY_JSON, ROLE_NONE, authenticate},
    {"GET", "/logout", HTTP_BODY_NONE, ROLE_NONE, logout},
    {"GET", "/imagestorages", HTTP_BODY_NONE, ROLE_READER, list_storages},
    {"GET", "/imagestorages/{id}", HTTP_BODY_NONE, ROLE_READER, get_storage},
    /* the task type decides whether superadmin is needed (core_task_submit) */
    {"POST", "/tasks/create", HTTP_BODY_JSON, ROLE_ADMIN, create_task},
    {"GET", "/tasks", HTTP_BODY_NONE, ROLE_READER, list_tasks},
    {"GET", "/tasks/{id}", HTTP_BODY_NONE, ROLE_READER, get_task},
    {NULL, NULL, 0, 0, NULL},
};

static const char *const prefixes[] = {"/imagestorages", "/tasks",         "/authenticate",
                                       "/logout",        "/notifications", NULL};

const struct http_dialect api_flexvdi = {
    .name = "flexvdi",
    .prefixes = prefixes,
    .routes = routes,
    .error_body = flexvdi_error,
};
