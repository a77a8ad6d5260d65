/* native.c — stowage's own /v1/: health and Prometheus metrics. */
#include "api_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *native_error(const struct st_err *e, unsigned *status)
{
    *status = http_status_of(e->code);
    return json_pack("{s:{s:s, s:s, s:s}}", "error", "code", st_code_name(e->code), "message",
                     e->msg, "field", e->field);
}

static void health(struct http_req *r)
{
    struct stowage *st = http_st(r);
    struct core_volume_stat *vs = NULL;
    size_t n = 0;
    int degraded = 0;
    json_t *vols = json_object();

    if (core_volume_stats(st, &vs, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            json_object_set_new(vols, vs[i].id, json_string(vs[i].status));
            if (strcmp(vs[i].status, "degraded") == 0 || strcmp(vs[i].status, "broken") == 0)
                degraded = 1;
        }
        free(vs);
    }
    struct st_err e;
    int db_ok = core_health_catalogue(st, &e) == 0;
    if (!db_ok)
        degraded = 1;
    json_t *j =
        json_pack("{s:s, s:s, s:{s:s, s:o}}", "status", degraded ? "degraded" : "ok", "version",
                  STOWAGE_VERSION, "checks", "database", db_ok ? "ok" : "error", "volumes", vols);
    http_reply_json(r, db_ok ? 200 : 503, j);
}

static void metrics(struct http_req *r)
{
    struct stowage *st = http_st(r);
    char *buf = NULL;
    size_t len = 0, cap = 0, n = 0;
    struct core_volume_stat *vs = NULL;
    int rc = http_metrics_render(http_server_of(r), &buf, &len, &cap);

    if (rc == 0)
        rc = core_volume_stats(st, &vs, &n);
    rc |= http_buf_printf(&buf, &len, &cap,
                          "# HELP stowage_volume_free_bytes Free bytes on each volume.\n"
                          "# TYPE stowage_volume_free_bytes gauge\n");
    for (size_t i = 0; i < n; i++)
        rc |= http_buf_printf(&buf, &len, &cap,
                              "stowage_volume_free_bytes{volume=\"%s\",kind=\"%s\"} %llu\n",
                              vs[i].id, vs[i].kind, (unsigned long long)vs[i].free_bytes);
    rc |= http_buf_printf(&buf, &len, &cap,
                          "# HELP stowage_volume_total_bytes Size of each volume.\n"
                          "# TYPE stowage_volume_total_bytes gauge\n");
    for (size_t i = 0; i < n; i++)
        rc |= http_buf_printf(&buf, &len, &cap,
                              "stowage_volume_total_bytes{volume=\"%s\",kind=\"%s\"} %llu\n",
                              vs[i].id, vs[i].kind, (unsigned long long)vs[i].total_bytes);
    rc |= http_buf_printf(&buf, &len, &cap,
                          "# HELP stowage_volume_ok 1 when the volume's status is ok.\n"
                          "# TYPE stowage_volume_ok gauge\n");
    for (size_t i = 0; i < n; i++)
        rc |=
            http_buf_printf(&buf, &len, &cap, "stowage_volume_ok{volume=\"%s\",status=\"%s\"} %d\n",
                            vs[i].id, vs[i].status, strcmp(vs[i].status, "ok") == 0);
    rc |= http_buf_printf(&buf, &len, &cap,
                          "# HELP stowage_probe_duration_seconds Duration of the last probe.\n"
                          "# TYPE stowage_probe_duration_seconds gauge\n");
    for (size_t i = 0; i < n; i++)
        rc |= http_buf_printf(&buf, &len, &cap,
                              "stowage_probe_duration_seconds{volume=\"%s\",kind=\"%s\"} %.6f\n",
                              vs[i].id, vs[i].kind, (double)vs[i].probe_us / 1e6);
    free(vs);
    struct core_fetch_stats fs;
    core_fetch_stats(st, &fs);
    rc |= http_buf_printf(&buf, &len, &cap,
                          "# HELP stowage_fetch_sockets_total Sockets URL imports opened.\n"
                          "# TYPE stowage_fetch_sockets_total counter\n"
                          "stowage_fetch_sockets_total %llu\n"
                          "# HELP stowage_fetch_refused_total URL hops the address guard refused "
                          "before connecting.\n"
                          "# TYPE stowage_fetch_refused_total counter\n"
                          "stowage_fetch_refused_total %llu\n",
                          (unsigned long long)fs.sockets, (unsigned long long)fs.refused);
    struct core_commit_stats cs;
    core_commit_stats(st, &cs);
    rc |= http_buf_printf(&buf, &len, &cap,
                          "# HELP stowage_catalogue_commits_total Group commits of the catalogue "
                          "(one durable COMMIT each).\n"
                          "# TYPE stowage_catalogue_commits_total counter\n"
                          "stowage_catalogue_commits_total %llu\n"
                          "# HELP stowage_catalogue_commit_members_total Writes those commits "
                          "carried.\n"
                          "# TYPE stowage_catalogue_commit_members_total counter\n"
                          "stowage_catalogue_commit_members_total %llu\n"
                          "# HELP stowage_create_publishes_total Batches of one-request creates "
                          "whose files were made durable and renamed together.\n"
                          "# TYPE stowage_create_publishes_total counter\n"
                          "stowage_create_publishes_total %llu\n"
                          "# HELP stowage_create_published_total Creates those batches "
                          "carried.\n"
                          "# TYPE stowage_create_published_total counter\n"
                          "stowage_create_published_total %llu\n",
                          (unsigned long long)cs.commits, (unsigned long long)cs.members,
                          (unsigned long long)cs.publishes, (unsigned long long)cs.published);
    rc |= http_buf_printf(&buf, &len, &cap,
                          "# HELP stowage_readahead_bytes Bytes of read-ahead blocks downloads "
                          "hold now (at most readahead_memory).\n"
                          "# TYPE stowage_readahead_bytes gauge\n"
                          "stowage_readahead_bytes %llu\n",
                          (unsigned long long)core_readahead_bytes(st));
    if (rc) {
        struct st_err e;
        st_fail(&e, ST_INTERNAL, "out of memory rendering metrics");
        http_reply_error(r, &e);
    } else {
        http_reply_bytes(r, 200, "text/plain; version=0.0.4", buf, len);
    }
    free(buf);
}

/* POST /v1/tokens {"role", "owner"}: a superadmin mints tokens for portals and scripts. */
static void create_token(struct http_req *r)
{
    struct st_err e;
    const char *role_s, *owner;
    enum st_role role;
    char token[96];
    json_t *body = http_json(r);

    if (!json_is_object(body)) {
        st_fail_field(&e, ST_INVALID, "body", "body must be a JSON object {role, owner}");
        http_reply_error(r, &e);
        return;
    }
    if (http_json_string(body, "role", 1, 16, &role_s, &e) ||
        http_json_string(body, "owner", 0, 64, &owner, &e)) {
        http_reply_error(r, &e);
        return;
    }
    if (core_role_parse(role_s, &role)) {
        st_fail_field(&e, ST_INVALID, "role", "role must be reader, admin or superadmin");
        http_reply_error(r, &e);
        return;
    }
    if (owner && !core_valid_id(owner)) {
        st_fail_field(&e, ST_INVALID, "owner", "owner must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}");
        http_reply_error(r, &e);
        return;
    }
    if (!owner)
        owner = http_principal(r)->owner;
    if (core_token_create(http_st(r), role, owner, 0, 0, token, sizeof token, &e)) {
        http_reply_error(r, &e);
        return;
    }
    http_reply_json(
        r, 201,
        json_pack("{s:s, s:s, s:s}", "token", token, "role", core_role_name(role), "owner", owner));
}

static void put_file(struct http_req *r)
{
    /* ?name= creates the image with the client's uuid when it does not exist yet. */
    api_data_put(r, http_query(r, "name"), http_capture(r, 0));
}
static void get_file(struct http_req *r)
{
    api_data_get(r, NULL, http_capture(r, 0));
}

static void get_image(struct http_req *r)
{
    struct core_image im;
    struct st_err e;
    if (core_image_get(http_st(r), http_capture(r, 0), &im, &e) ||
        strcmp(im.status, "deleted") == 0) {
        st_fail(&e, ST_NOT_FOUND, "image '%.64s' not found", http_capture(r, 0));
        http_reply_error(r, &e);
        return;
    }
    http_reply_json(r, 200, api_image_json(&im));
}

static const struct http_route routes[] = {
    {"GET", "/v1/images/{uuid}", HTTP_BODY_NONE, ROLE_READER, get_image},
    {"PUT", "/v1/images/{uuid}/file", HTTP_BODY_STREAM, ROLE_ADMIN, put_file},
    {"GET", "/v1/images/{uuid}/file", HTTP_BODY_NONE, ROLE_READER, get_file},
    {"POST", "/v1/tokens", HTTP_BODY_JSON, ROLE_SUPERADMIN, create_token},
    {"GET", "/v1/health", HTTP_BODY_NONE, ROLE_NONE, health},
    {"GET", "/v1/metrics", HTTP_BODY_NONE, ROLE_READER, metrics},
    {NULL, NULL, 0, 0, NULL},
};

static const char *const prefixes[] = {"/v1", NULL};

const struct http_dialect api_native = {
    .name = "native",
    .prefixes = prefixes,
    .routes = routes,
    .error_body = native_error,
};
