/* flexvdi.c — the flexVDI manager dialect: /authenticate, /logout, /imagestorages, /tasks.
 *
 * Errors use flexVDI's ErrorMessage {"status":"error","message":…}; the HTTP
 * status follows the code (400, 401, 403, 404, 409, 413, 500, 503, 507 …),
 * documented in docs/flexvdi.md. Sizes are KB (space) and MB (images). Every
 * write is a task: POST /tasks/create answers the task id at once. */
#include "api_internal.h"

#include <stddef.h>
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

static json_t *image_json(const struct core_image *im, const char *storage_id)
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
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o}", "volume_id", v->id,
                          "primary_disk_id", v->primary_disk_id, "secondary_disk_id",
                          v->secondary_disk_id, "status", v->status, "status_msg", v->status_msg,
                          "total_space", (json_int_t)v->total_kb, "free_space",
                          (json_int_t)v->free_kb, "images", images, "clones", clones);
    /* What the backend says of the volume: a mount point, a Gluster volume's bricks... */
    if (j && v->details)
        json_object_update_missing(j, v->details);
    return j;
}

/* The one table of storage kinds this dialect knows: which section lists a volume, and
 * which of its backend's details flexVDI shows there. */
static const struct {
    const char *kind;
    const char *section;
    int details;
} sections[] = {
    {"local", "volumes", 0},
    {"external", "external_volumes", 1},
    {"gluster", "gluster_volumes", 1},
    /* no RBD section in flexVDI: an external volume, with ceph_pool and ceph_fsid */
    {"rbd", "external_volumes", 1},
};

static json_t *storage_json(const struct core_storage_view *v)
{
    json_t *hosts = json_array(), *disks = json_array();
    json_t *j = json_pack("{s:o, s:[], s:[], s:[], s:o}", "hosts", hosts, "volumes",
                          "external_volumes", "gluster_volumes", "disks", disks);
    for (size_t i = 0; i < v->n_hosts; i++)
        json_array_append_new(hosts, json_string(v->hosts[i]));
    for (size_t i = 0; i < v->n_volumes; i++) {
        struct core_volume_view vv = v->volumes[i];
        size_t k = 0;
        while (k < sizeof sections / sizeof *sections && strcmp(sections[k].kind, vv.kind))
            k++;
        if (k == sizeof sections / sizeof *sections)
            k = 0; /* a kind flexVDI has no section for is listed as a plain volume */
        if (!sections[k].details)
            vv.details = NULL;
        json_array_append_new(json_object_get(j, sections[k].section), volume_json(&vv, v->id));
    }
    for (size_t i = 0; i < v->n_disks; i++) {
        const struct core_disk *d = &v->disks[i];
        json_array_append_new(disks,
                              json_pack("{s:s, s:s, s:s, s:s, s:s}", "physical_disk_id", d->id,
                                        "product_number", d->model, "vendor", d->vendor,
                                        "host_device", d->host_device, "volume_id", d->volume_id));
    }
    return j;
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
    char(*ids)[CORE_ID] = NULL;
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

/* How flexVDI sends a field. What its value must be (an id, an absolute path...) is
 * core's to check; its messages name core's fields, which own_names() turns back into
 * flexVDI's. */
enum fv_kind {
    FV_STR, /* a string */
    FV_MB,  /* whole MB: a number or a string of digits ("size_mb": "1") */
};

struct fv_field {
    const char *name; /* flexVDI's field */
    enum fv_kind kind;
    size_t slot;         /* where it goes in struct core_op_params */
    const char *neutral; /* core's name of that param */
};

#define P(member) offsetof(struct core_op_params, member), #member
#define FV_MAX_FIELDS 5

/* flexVDI's task types, the operation each one is, and their fields. flexVDI documents
 * task_type only as "0: unknown, 1: guest_action, ..."; the rest of its numbering is not
 * public and clients read task_type_str (since 3.1). These codes are stable and start
 * at 101, clear of any number a flexVDI client may already know. */
static const struct fv_type {
    const char *name;
    int code;
    enum core_op op;
    struct fv_field fields[FV_MAX_FIELDS];
} fv_types[] = {
    {"istorage_create",
     101,
     CORE_OP_STORAGE_CREATE,
     {{"image_storage_id", FV_STR, P(storage)},
      {"name", FV_STR, P(name)},
      {"description", FV_STR, P(description)}}},
    {"istorage_modify",
     102,
     CORE_OP_STORAGE_MODIFY,
     {{"image_storage_id", FV_STR, P(storage)},
      {"name", FV_STR, P(name)},
      {"description", FV_STR, P(description)}}},
    {"istorage_delete", 103, CORE_OP_STORAGE_DELETE, {{"image_storage_id", FV_STR, P(storage)}}},
    {"volume_create",
     104,
     CORE_OP_VOLUME_CREATE,
     {{"image_storage_id", FV_STR, P(storage)},
      {"volume_id", FV_STR, P(volume)},
      {"primary_disk_id", FV_STR, P(disk)},
      {"secondary_disk_id", FV_STR, P(mirror_disk)}}},
    {"volume_delete",
     105,
     CORE_OP_VOLUME_DELETE,
     {{"volume_id", FV_STR, P(volume)}, {"image_storage_id", FV_STR, P(storage)}}},
    {"evolume_create",
     106,
     CORE_OP_EXTERNAL_CREATE,
     {{"image_storage_id", FV_STR, P(storage)},
      {"volume_id", FV_STR, P(volume)},
      {"mount_point", FV_STR, P(mount_point)}}},
    {"evolume_delete",
     107,
     CORE_OP_EXTERNAL_DELETE,
     {{"volume_id", FV_STR, P(volume)}, {"image_storage_id", FV_STR, P(storage)}}},
    {"image_create",
     108,
     CORE_OP_IMAGE_CREATE,
     {{"image_id", FV_STR, P(name)},
      {"volume_id", FV_STR, P(volume)},
      {"image_storage_id", FV_STR, P(storage)},
      {"size_mb", FV_MB, P(size)},
      {"format", FV_STR, P(format)}}},
    {"image_copy",
     109,
     CORE_OP_IMAGE_COPY,
     {{"image_id", FV_STR, P(name)},
      {"volume_id", FV_STR, P(volume)},
      {"image_storage_id", FV_STR, P(storage)},
      {"source_image_id", FV_STR, P(source)},
      {"source_volume_id", FV_STR, P(source_volume)}}},
    {"image_release",
     110,
     CORE_OP_IMAGE_RELEASE,
     {{"image_id", FV_STR, P(name)},
      {"image_storage_id", FV_STR, P(storage)},
      {"volume_id", FV_STR, P(volume)}}},
    {"image_delete",
     111,
     CORE_OP_IMAGE_DELETE,
     {{"image_id", FV_STR, P(name)},
      {"image_storage_id", FV_STR, P(storage)},
      {"volume_id", FV_STR, P(volume)}}},
    {"guest_clone",
     112,
     CORE_OP_CLONE_CREATE,
     {{"image_id", FV_STR, P(image)},
      {"guest_id", FV_STR, P(guest)},
      {"clone_id", FV_STR, P(clone)}}},
    {"clone_delete", 113, CORE_OP_CLONE_DELETE, {{"clone_id", FV_STR, P(clone)}}},
};
#define N_FV_TYPES (sizeof fv_types / sizeof *fv_types)

static const struct fv_type *fv_type_named(const char *name)
{
    for (size_t i = 0; i < N_FV_TYPES; i++)
        if (strcmp(fv_types[i].name, name) == 0)
            return &fv_types[i];
    return NULL;
}

static const struct fv_type *fv_type_of_op(const char *op)
{
    for (size_t i = 0; i < N_FV_TYPES; i++)
        if (strcmp(core_op_name(fv_types[i].op), op) == 0)
            return &fv_types[i];
    return NULL;
}

#define MIB (1024u * 1024u)

/* flexVDI sends numbers as strings ("size_mb": "1"): take both, digits only. */
static int get_mb(struct stowage *st, const char *name, json_t *v, uint64_t *bytes,
                  struct st_err *e)
{
    uint64_t max_mb = core_config(st)->max_image_size / MIB;
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
    if ((uint64_t)n > max_mb)
        return st_fail_field(e, ST_TOO_LARGE, name, "'%s' is over the limit of %llu MB", name,
                             (unsigned long long)max_mb);
    *bytes = (uint64_t)n * MIB;
    return 0;
}

/* flexVDI's fields of one task into core's typed params (strings borrowed from body). */
static int parse_params(struct stowage *st, const struct fv_type *ft, json_t *body,
                        struct core_op_params *p, struct st_err *e)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < FV_MAX_FIELDS && ft->fields[i].name; i++) {
        const struct fv_field *f = &ft->fields[i];
        json_t *v = json_object_get(body, f->name);
        char *slot = (char *)p + f->slot;

        if (!v || json_is_null(v))
            continue; /* core says which ones it needs */
        if (f->kind == FV_MB) {
            if (get_mb(st, f->name, v, (uint64_t *)(void *)slot, e))
                return -1;
            continue;
        }
        if (!json_is_string(v))
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must be a string", f->name);
        if (strlen(json_string_value(v)) != json_string_length(v))
            return st_fail_field(e, ST_INVALID, f->name, "'%s' contains a NUL byte", f->name);
        *(const char **)(void *)slot = json_string_value(v);
    }
    return 0;
}

/* Core's message about one of its params, in flexVDI's name of that field. */
static void own_names(const struct fv_type *ft, struct st_err *e)
{
    char quoted[72], msg[sizeof e->msg];
    for (int i = 0; e->field[0] && i < FV_MAX_FIELDS && ft->fields[i].name; i++) {
        const struct fv_field *f = &ft->fields[i];
        if (strcmp(e->field, f->neutral) != 0)
            continue;
        int n = snprintf(quoted, sizeof quoted, "'%s'", f->neutral);
        if (strncmp(e->msg, quoted, (size_t)n) == 0) {
            snprintf(msg, sizeof msg, "'%s'%s", f->name, e->msg + n);
            snprintf(e->msg, sizeof e->msg, "%s", msg);
        }
        snprintf(e->field, sizeof e->field, "%s", f->name);
        return;
    }
}

/* A task's type, the submitter's right to it, and its fields as core's params. */
static int task_params(struct stowage *st, const char *type, json_t *body, enum st_role role,
                       const struct fv_type **ft, struct core_op_params *p, struct st_err *e)
{
    if (!type || !(*ft = fv_type_named(type)))
        return st_fail_field(e, ST_INVALID, "type", "unknown task type '%.40s'", type ? type : "");
    enum st_role need = core_op_role((*ft)->op);
    if (role < need)
        return st_fail(e, ST_FORBIDDEN, "role %s may not run %s (needs %s)", core_role_name(role),
                       (*ft)->name, core_role_name(need));
    return parse_params(st, *ft, body, p, e);
}

/* flexVDI's "2016-02-03 16:57:42", in UTC; "" for a time that has not come yet. */
static void flexvdi_time(int64_t t, char out[20])
{
    struct tm tm;
    time_t tt = (time_t)t;
    /* Past the year 9999 the text does not fit, and strftime leaves out unterminated. */
    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm))
        out[0] = '\0';
}

static const char *field(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Bytes as whole MB, rounded up, without overflowing near INT64_MAX. */
static long long mb_up(json_int_t bytes)
{
    return (long long)(bytes / MIB + (bytes % MIB > 0));
}

/* What a successful task says, from what its operation made. */
static void success_msg(const struct core_job *j, char *out, size_t len)
{
    const json_t *o = j->outcome;
    int op = core_op_by_name(j->op);
    size_t n = 0;

    out[0] = '\0';
    switch (op) {
    case CORE_OP_STORAGE_CREATE:
        n = (size_t)snprintf(out, len, "image storage '%s' created", field(o, "storage"));
        if (*field(o, "host"))
            n += (size_t)snprintf(out + n, n < len ? len - n : 0, " on host %s", field(o, "host"));
        break;
    case CORE_OP_STORAGE_MODIFY:
        n = (size_t)snprintf(out, len, "image storage '%s' modified", field(o, "storage"));
        break;
    case CORE_OP_STORAGE_DELETE:
        n = (size_t)snprintf(out, len, "image storage '%s' deleted", field(o, "storage"));
        break;
    case CORE_OP_VOLUME_CREATE:
        n = (size_t)snprintf(out, len, "volume '%s' created", field(o, "volume"));
        if (*field(o, "device"))
            n += (size_t)snprintf(out + n, n < len ? len - n : 0, ": XFS on %s, mounted at %s",
                                  field(o, "device"), field(o, "mount_point"));
        break;
    case CORE_OP_EXTERNAL_CREATE:
        n = (size_t)snprintf(out, len, "external volume '%s' registered at %s%s",
                             field(o, "volume"), field(o, "mount_point"),
                             json_is_true(json_object_get(o, "require_mount"))
                                 ? " (a mount point: it must stay mounted)"
                                 : "");
        break;
    case CORE_OP_VOLUME_DELETE:
    case CORE_OP_EXTERNAL_DELETE:
        n = (size_t)snprintf(out, len, "volume '%s' deleted", field(o, "volume"));
        if (*field(o, "device"))
            n += (size_t)snprintf(out + n, n < len ? len - n : 0,
                                  "; %s keeps its %s filesystem (wipe it to reuse the disk)",
                                  field(o, "device"), field(o, "filesystem"));
        break;
    case CORE_OP_IMAGE_CREATE:
        n = (size_t)snprintf(out, len, "image '%s' created on volume '%s' (%lld MB, %s)",
                             field(o, "name"), field(o, "volume"),
                             mb_up(json_integer_value(json_object_get(o, "size"))),
                             field(o, "format"));
        break;
    case CORE_OP_IMAGE_COPY:
        n = (size_t)snprintf(out, len, "image '%s' copied from '%s' to volume '%s'",
                             field(o, "name"), field(o, "source"), field(o, "volume"));
        break;
    case CORE_OP_IMAGE_RELEASE:
        n = (size_t)snprintf(out, len, "image '%s' released", field(o, "name"));
        break;
    case CORE_OP_IMAGE_DELETE:
        n = (size_t)snprintf(out, len, "image '%s' deleted", field(o, "name"));
        if (*field(o, "volume"))
            n += (size_t)snprintf(out + n, n < len ? len - n : 0, " from volume '%s'",
                                  field(o, "volume"));
        break;
    case CORE_OP_CLONE_CREATE:
        n = (size_t)snprintf(out, len, "clone '%s' of image '%s' created for guest '%s'",
                             field(o, "clone"), field(o, "image"), field(o, "guest"));
        break;
    case CORE_OP_CLONE_DELETE:
        n = (size_t)snprintf(out, len, "clone '%s' deleted", field(o, "clone"));
        break;
    default:
        break;
    }
    if (json_is_true(json_object_get(o, "before_restart")) && n < len)
        snprintf(out + n, len - n, " (done before a restart)");
}

/* Core's messages name operations neutrally ("use external.delete"): say flexVDI's names. */
static void error_msg(const char *msg, char *out, size_t len)
{
    size_t n = 0;
    while (*msg && n + 1 < len) {
        const struct fv_type *hit = NULL;
        size_t hit_len = 0;
        for (size_t i = 0; i < N_FV_TYPES && !hit; i++) {
            const char *op = core_op_name(fv_types[i].op);
            size_t l = strlen(op);
            if (strncmp(msg, op, l) == 0)
                hit = &fv_types[i], hit_len = l;
        }
        if (hit) {
            n += (size_t)snprintf(out + n, len - n, "%s", hit->name);
            msg += hit_len;
        } else {
            out[n++] = *msg++;
        }
    }
    out[n < len ? n : len - 1] = '\0';
}

/* flexVDI has no queued state and no revoked result: a queued task is running/pending,
 * a cancelled one an error whose message says it was cancelled. */
static json_t *task_json(const struct core_job *v)
{
    char when[20], execution[20], msg[768];
    const struct fv_type *ft = fv_type_of_op(v->op);
    const char *state = strcmp(v->state, "completed") == 0 ? "completed" : "running";
    const char *result = strcmp(v->result, "revoked") == 0 ? "error" : v->result;

    flexvdi_time(v->created_at, when);
    flexvdi_time(strcmp(v->state, "completed") == 0 ? v->finished_at : 0, execution);
    if (strcmp(v->result, "success") != 0)
        error_msg(v->error, msg, sizeof msg);
    else if (v->legacy_msg[0])
        snprintf(msg, sizeof msg, "%s", v->legacy_msg);
    else
        success_msg(v, msg, sizeof msg);
    st_utf8_clean(msg); /* cut to its size, a message may end inside a character */
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:i}", "task_id", v->id, "when",
                     when, "execution", execution, "state", state, "result", result, "result_msg",
                     msg, "task_type", ft ? ft->code : 0, "task_type_str", ft ? ft->name : v->op,
                     "progress", v->progress);
}

static void create_task(struct http_req *r)
{
    struct st_err e;
    const char *type;
    int64_t ignored;
    char id[37];
    struct core_op_params p;
    const struct fv_type *ft;
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
        http_json_int(body, "retries", 0, 0, INT32_MAX, &ignored, &e) < 0) {
        http_reply_error(r, &e);
        return;
    }
    const struct st_principal *who = http_principal(r);
    if (task_params(http_st(r), type, body, who->role, &ft, &p, &e)) {
        http_reply_error(r, &e);
        return;
    }
    if (core_job_submit(http_st(r), ft->op, &p, who, id, &e)) {
        own_names(ft, &e);
        http_reply_error(r, &e);
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s, s:s}", "status", "OK", "message", id));
}

/* GET /tasks: an object with an array per task type (every type, empty or not);
 * ?format=list: one array, oldest first. */
static void list_tasks(struct http_req *r)
{
    struct core_job *v = NULL;
    size_t n = 0;
    struct st_err e;
    const char *format = http_query(r, "format");

    if (format && strcmp(format, "list") != 0) {
        st_fail_field(&e, ST_INVALID, "format", "format must be 'list' (or absent)");
        http_reply_error(r, &e);
        return;
    }
    if (core_job_list(http_st(r), &v, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    json_t *out = format ? json_array() : json_object();
    for (size_t i = 0; !format && i < N_FV_TYPES; i++)
        json_object_set_new(out, fv_types[i].name, json_array());
    for (size_t i = 0; i < n; i++) {
        json_t *t = task_json(&v[i]);
        const char *type = json_string_value(json_object_get(t, "task_type_str"));
        json_t *arr = format ? out : json_object_get(out, type);
        if (!arr) /* an operation this dialect does not name */
            json_object_set_new(out, type, arr = json_array());
        json_array_append_new(arr, t);
    }
    core_jobs_free(v, n);
    http_reply_json(r, 200, out);
}

static void get_task(struct http_req *r)
{
    struct core_job v;
    struct st_err e;
    if (core_job_get(http_st(r), http_capture(r, 0), &v, &e)) {
        http_reply_error(r, &e);
        return;
    }
    http_reply_json(r, 200, task_json(&v));
    core_job_free(&v);
}

static const struct http_route routes[] = {
    {"POST", "/authenticate", HTTP_BODY_JSON, ROLE_NONE, authenticate},
    {"GET", "/logout", HTTP_BODY_NONE, ROLE_NONE, logout},
    {"GET", "/imagestorages", HTTP_BODY_NONE, ROLE_READER, list_storages},
    {"GET", "/imagestorages/{id}", HTTP_BODY_NONE, ROLE_READER, get_storage},
    /* the task type decides whether superadmin is needed (core_op_role) */
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
