/* esdc_snapshot.c — Danube Cloud's /vm/{guest}/snapshot/: a guest's disks are its clones
 * (disk_id 1 the oldest), a snapshot freezes one (core's snapshot.create), and
 * /vm/{guest}/snapshot/{snap}/image/{name}/ makes a new image of it (snapshot.image).
 *
 * Words and statuses are esdc-ce's (api/vm/snapshot/, api/image/base/views.py
 * image_snapshot): 404 VM not found / Snapshot not found, 406 Snapshot (Image) already
 * exists, 412 Invalid disk_id, 417 VM snapshot status is not OK, 423 Node is not
 * operational, 428 Image server is not available. */
#include "esdc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* esdc's SnapshotSerializer.name: ^[A-Za-z0-9][A-Za-z0-9._-]*$, at most 24. */
#define SNAP_NAME_MAX 24

struct target {
    struct core_clone *clones; /* the guest's, oldest first */
    size_t n;
    int disk_id; /* 1..n; 0: every disk (lists only) */
};

static void target_free(struct target *t)
{
    free(t->clones);
}

/* disk_id from the query (GET) or the body, default 1 (or all, for lists). */
static int parse_disk_id(struct http_req *r, int all_ok, int *out)
{
    json_t *v = json_object_get(http_json(r), "disk_id");
    const char *q = http_query(r, "disk_id");
    char *end = NULL;
    long long n = 0;

    if (q) {
        n = strtoll(q, &end, 10);
        if (end == q || *end)
            return -1;
    } else if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        n = strtoll(s, &end, 10);
        if (end == s || *end)
            return -1;
    } else if (v && !json_is_null(v)) {
        return -1;
    } else {
        *out = all_ok ? 0 : 1;
        return 0;
    }
    if (n < 1 || n > 1000)
        return -1;
    *out = (int)n;
    return 0;
}

/* The guest and its disk, or the answer (404 VM not found, 412 Invalid disk_id). */
static int target(struct http_req *r, int all_ok, struct target *t)
{
    struct st_err e;
    memset(t, 0, sizeof *t);
    if (core_guest_clones(http_st(r), http_capture(r, 0), &t->clones, &t->n, &e)) {
        if (e.code == ST_NOT_FOUND)
            esdc_reply_detail(r, 404, "VM not found");
        else
            http_reply_error(r, &e);
        return -1;
    }
    if (parse_disk_id(r, all_ok, &t->disk_id) || (size_t)t->disk_id > t->n) {
        esdc_reply_detail(r, 412, "Invalid disk_id");
        target_free(t);
        return -1;
    }
    return 0;
}

static const struct core_clone *disk(const struct target *t)
{
    return &t->clones[t->disk_id - 1];
}

static json_t *snapshot_json(const struct core_snapshot *s, int disk_id)
{
    char created[24], id[CORE_ID * 2 + 2];
    esdc_iso_time(s->created_at, created);
    snprintf(id, sizeof id, "%s@%s", s->clone_id, s->name);
    return json_pack("{s:s, s:s, s:n, s:s, s:i, s:s, s:i, s:s, s:i, s:I, s:s}", "hostname",
                     s->guest_id, "vm_uuid", s->guest_id, "define", "name", s->name, "disk_id",
                     disk_id, "note", s->note, "type", 2, "created", created, "status", s->status,
                     "size", (json_int_t)s->size, "id", id);
}

/* GET /vm/{guest}/snapshot/ [?disk_id=N&full=true]: the names (or objects), oldest first. */
void esdc_snapshot_list(struct http_req *r)
{
    struct target t;
    struct st_err e;
    int full = esdc_query_bool(r, "full") || esdc_query_bool(r, "extended");

    if (target(r, 1, &t))
        return;
    json_t *arr = json_array();
    for (size_t d = 0; d < t.n; d++) {
        struct core_snapshot *v = NULL;
        size_t n = 0;
        if (t.disk_id && (size_t)t.disk_id != d + 1)
            continue;
        if (core_snapshot_list(http_st(r), t.clones[d].clone_id, &v, &n, &e)) {
            json_decref(arr);
            target_free(&t);
            http_reply_error(r, &e);
            return;
        }
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr,
                                  full ? snapshot_json(&v[i], (int)d + 1) : json_string(v[i].name));
        free(v);
    }
    target_free(&t);
    esdc_reply_success(r, arr);
}

/* The snapshot named in the path on the request's disk; 404 Snapshot not found. */
static int find(struct http_req *r, const struct target *t, struct core_snapshot *s)
{
    struct st_err e;
    if (core_snapshot_get(http_st(r), disk(t)->clone_id, http_capture(r, 1), s, &e) == 0)
        return 0;
    if (e.code == ST_NOT_FOUND)
        esdc_reply_detail(r, 404, "Snapshot not found");
    else
        http_reply_error(r, &e);
    return -1;
}

void esdc_snapshot_get(struct http_req *r)
{
    struct target t;
    struct core_snapshot s;
    if (target(r, 0, &t))
        return;
    if (find(r, &t, &s) == 0)
        esdc_reply_success(r, snapshot_json(&s, t.disk_id));
    target_free(&t);
}

/* 423 while the disk's volume cannot be reached (esdc: the node is not operational). */
static int node_ok(struct http_req *r, const char *volume_id)
{
    struct core_volume_stat *v = NULL;
    size_t n = 0;
    int ok = 1;
    if (core_volume_stats(http_st(r), &v, &n) == 0)
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i].id, volume_id) == 0)
                ok = strcmp(v[i].status, "broken") != 0;
    free(v);
    if (!ok)
        esdc_reply_detail(r, 423, "Node is not operational");
    return ok;
}

/* POST /vm/{guest}/snapshot/{snap}/ {disk_id, note}: core's snapshot.create. */
void esdc_snapshot_post(struct http_req *r)
{
    struct target t;
    struct core_snapshot s;
    struct st_err e;
    struct core_op_params p = {0};
    json_t *body = http_json(r), *note = json_object_get(body, "note");
    const char *name = http_capture(r, 1);

    if (body && !json_is_object(body)) {
        esdc_reply_detail(r, 400, "Invalid data");
        return;
    }
    if (target(r, 0, &t))
        return;
    if (!esdc_name_ok(r, name, SNAP_NAME_MAX))
        goto out;
    if (note && !json_is_null(note) &&
        (!json_is_string(note) || strlen(json_string_value(note)) != json_string_length(note))) {
        esdc_fail_field(r, "note", "Enter a valid value.");
        goto out;
    }
    if (core_snapshot_get(http_st(r), disk(&t)->clone_id, name, &s, &e) == 0) {
        esdc_reply_detail(r, 406, "Snapshot already exists");
        goto out;
    }
    if (!node_ok(r, disk(&t)->volume_id))
        goto out;
    p.clone = disk(&t)->clone_id;
    p.snapshot = name;
    p.description = json_string_value(note);
    esdc_submit(r, CORE_OP_SNAPSHOT_CREATE, &p, body, "Snapshot");
out:
    target_free(&t);
}

/* DELETE /vm/{guest}/snapshot/{snap}/ {disk_id}: core's snapshot.delete. */
void esdc_snapshot_delete(struct http_req *r)
{
    struct target t;
    struct core_snapshot s;
    struct core_op_params p = {0};

    if (target(r, 0, &t))
        return;
    if (find(r, &t, &s) == 0) {
        if (s.status == 2) {
            esdc_reply_detail(r, 417, "VM snapshot status is not OK");
        } else {
            p.clone = disk(&t)->clone_id;
            p.snapshot = s.name;
            esdc_submit(r, CORE_OP_SNAPSHOT_DELETE, &p, http_json(r), "Snapshot");
        }
    }
    target_free(&t);
}

/* 428 when the image storage named (dc) has no volume that can take the image. */
static int image_server_ok(struct http_req *r, const char *dc)
{
    struct core_storage_view v;
    struct st_err e;
    int ok = 0;
    if (core_storage_view(http_st(r), dc, &v, &e)) {
        esdc_reply_detail(r, 404, "Datacenter not found");
        return 0;
    }
    for (size_t i = 0; i < v.n_volumes && !ok; i++)
        ok = strcmp(v.volumes[i].status, "broken") != 0;
    core_storage_view_free(&v);
    if (!ok)
        esdc_reply_detail(r, 428, "Image server is not available");
    return ok;
}

/* POST /vm/{guest}/snapshot/{snap}/image/{name}/ {disk_id, alias, access, owner, desc,
 * version, resize, deploy, dc, volume}: core's snapshot.image. */
void esdc_snapshot_image(struct http_req *r)
{
    struct target t;
    struct core_snapshot s;
    struct core_image im;
    struct core_op_params p = {0};
    struct st_err e;
    char *tags = NULL;
    json_t *body = http_json(r), *errors = NULL;
    const char *name = http_capture(r, 2);

    if (body && !json_is_object(body)) {
        esdc_reply_detail(r, 400, "Invalid data");
        return;
    }
    if (target(r, 0, &t))
        return;
    if (find(r, &t, &s))
        goto out;
    if (!esdc_name_ok(r, name, ESDC_IMAGE_NAME_MAX))
        goto out;
    if (core_image_find(http_st(r), name, &im, &e) == 0) {
        esdc_reply_detail(r, 406, "Image already exists");
        goto out;
    }
    if (s.status != 1) {
        esdc_reply_detail(r, 417, "VM snapshot status is not OK");
        goto out;
    }
    errors = json_object();
    esdc_image_fields(body, &p, &tags, errors);
    const char *keys[] = {"owner", "dc", "volume"};
    const char *vals[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(body, keys[i]);
        if (v && !json_is_null(v) && (!json_is_string(v) || !core_valid_id(json_string_value(v))))
            json_object_set_new(errors, keys[i], json_pack("[s]", "Enter a valid value."));
        else
            vals[i] = json_string_value(v);
    }
    if (json_object_size(errors)) {
        esdc_reply_failure(r, errors);
        errors = NULL;
        goto out;
    }
    if (!node_ok(r, disk(&t)->volume_id) || (vals[1] && !image_server_ok(r, vals[1])))
        goto out;
    p.clone = disk(&t)->clone_id;
    p.snapshot = s.name;
    p.name = name;
    p.owner = vals[0];
    p.storage = vals[1];
    p.volume = vals[2];
    esdc_submit(r, CORE_OP_SNAPSHOT_IMAGE, &p, body, "Image");
out:
    json_decref(errors);
    free(tags);
    target_free(&t);
}
