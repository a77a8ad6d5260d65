/* config.c — defaults, the JSON config file, and validation of the result.
 *
 * Relative paths in the file are taken relative to the current directory at
 * start (so `make run` can say "./var"); cfg_finish makes them absolute. */
#include "stowage/config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cfg_defaults(struct st_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->port = 8080;
    c->threads = 0;
    c->workers = 2;
    c->max_body = 1 << 20;
    c->max_header = 16 << 10;
    c->conn_timeout = 30;
    c->per_ip = 64;
    c->max_connections = 1024;
    c->max_image_size = 1ULL << 40;
    c->probe_ttl_ms = 5000;
    c->gluster_timeout_ms = 10000;
    c->staging_expiry_s = 24 * 3600;
    c->log_requests = 1;
    /* reads with read-ahead beat MHD's 128 KiB sendfile steps (docs/configuration.md) */
    c->sendfile = 0;
}

static void free_storages(struct st_config *c)
{
    for (size_t i = 0; i < c->n_storages; i++) {
        struct cfg_storage *s = &c->storages[i];
        for (size_t k = 0; k < s->n_volumes; k++) {
            free(s->volumes[k].mount_point);
            free(s->volumes[k].gluster_server);
            free(s->volumes[k].gluster_volume);
        }
        free(s->volumes);
        free(s->name);
        free(s->description);
    }
    free(c->storages);
    c->storages = NULL;
    c->n_storages = 0;
}

static void free_mount_roots(struct st_config *c)
{
    for (size_t i = 0; i < c->n_mount_roots; i++)
        free(c->mount_roots[i]);
    free(c->mount_roots);
    c->mount_roots = NULL;
    c->n_mount_roots = 0;
}

void cfg_free(struct st_config *c)
{
    free(c->state_dir);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->gluster_cli);
    free_mount_roots(c);
    free_storages(c);
    memset(c, 0, sizeof *c);
}

static int set_str(char **dst, const char *v, struct st_err *e)
{
    char *p = strdup(v);
    if (!p)
        return st_fail(e, ST_INTERNAL, "out of memory");
    free(*dst);
    *dst = p;
    return 0;
}

int cfg_set_listen(struct st_config *c, const char *hostport, struct st_err *e)
{
    const char *colon = strrchr(hostport, ':');
    char *end = NULL;
    size_t hlen;

    if (!colon || colon == hostport)
        return st_fail_field(e, ST_INVALID, "listen", "listen must be HOST:PORT, got '%s'",
                             hostport);
    hlen = (size_t)(colon - hostport);
    if (hlen >= sizeof c->listen_host)
        return st_fail_field(e, ST_INVALID, "listen", "listen host too long");
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || !*(colon + 1) || *end || port > 65535)
        return st_fail_field(e, ST_INVALID, "listen", "bad port in '%s'", hostport);
    memcpy(c->listen_host, hostport, hlen);
    c->listen_host[hlen] = '\0';
    if (strcmp(c->listen_host, "localhost") == 0)
        snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->port = (uint16_t)port;
    return 0;
}

int cfg_set_state_dir(struct st_config *c, const char *dir, struct st_err *e)
{
    if (!*dir)
        return st_fail_field(e, ST_INVALID, "state_dir", "state_dir is empty");
    return set_str(&c->state_dir, dir, e);
}

/* Strict readers: a wrong type is an error naming the key. */
static int get_uint(json_t *v, const char *key, uint64_t max, uint64_t *out, struct st_err *e)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return st_fail_field(e, ST_INVALID, key, "%s must be an integer in 0..%llu", key,
                             (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_string(json_t *v, const char *key, const char **out, struct st_err *e)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= PATH_MAX ||
        strlen(json_string_value(v)) != json_string_length(v))
        return st_fail_field(e, ST_INVALID, key, "%s must be a non-empty string", key);
    *out = json_string_value(v);
    return 0;
}

static int get_id(json_t *v, const char *key, char *out, struct st_err *e)
{
    const char *s;
    if (get_string(v, key, &s, e))
        return -1;
    if (strlen(s) > CFG_ID_MAX)
        return st_fail_field(e, ST_INVALID, key, "%s is longer than %d", key, CFG_ID_MAX);
    for (const char *p = s; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 ((*p == '.' || *p == '_' || *p == '-') && p != s);
        if (!ok)
            return st_fail_field(e, ST_INVALID, key,
                                 "%s '%s' must match [A-Za-z0-9][A-Za-z0-9._-]*", key, s);
    }
    snprintf(out, CFG_ID_MAX + 1, "%s", s);
    return 0;
}

static int load_limits(struct st_config *c, json_t *o, struct st_err *e)
{
    const char *k;
    json_t *v;
    uint64_t u = 0;

    if (!json_is_object(o))
        return st_fail_field(e, ST_INVALID, "limits", "limits must be an object");
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "max_body") == 0) {
            if (get_uint(v, k, 1ULL << 30, &u, e))
                return -1;
            c->max_body = (size_t)u;
        } else if (strcmp(k, "max_header") == 0) {
            if (get_uint(v, k, 1 << 20, &u, e))
                return -1;
            c->max_header = (size_t)u;
        } else if (strcmp(k, "connection_timeout") == 0) {
            if (get_uint(v, k, 86400, &u, e))
                return -1;
            c->conn_timeout = (unsigned)u;
        } else if (strcmp(k, "per_ip_connections") == 0) {
            if (get_uint(v, k, 65535, &u, e))
                return -1;
            c->per_ip = (unsigned)u;
        } else if (strcmp(k, "max_connections") == 0) {
            if (get_uint(v, k, 65535, &u, e))
                return -1;
            c->max_connections = (unsigned)u;
        } else if (strcmp(k, "max_image_size") == 0) {
            if (get_uint(v, k, UINT64_MAX >> 1, &u, e))
                return -1;
            c->max_image_size = u;
        } else {
            return st_fail_field(e, ST_INVALID, k, "unknown key limits.%s", k);
        }
    }
    return 0;
}

static int load_volume(struct cfg_volume *vol, json_t *o, struct st_err *e)
{
    const char *k, *s;
    json_t *v;

    if (!json_is_object(o))
        return st_fail_field(e, ST_INVALID, "volumes", "each volume must be an object");
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "id") == 0) {
            if (get_id(v, "volume id", vol->id, e))
                return -1;
        } else if (strcmp(k, "kind") == 0) {
            if (get_string(v, k, &s, e))
                return -1;
            if (strcmp(s, "local") && strcmp(s, "external") && strcmp(s, "gluster"))
                return st_fail_field(e, ST_INVALID, k,
                                     "volume kind must be local, external or gluster");
            snprintf(vol->kind, sizeof vol->kind, "%s", s);
        } else if (strcmp(k, "mount_point") == 0) {
            if (get_string(v, k, &s, e) || set_str(&vol->mount_point, s, e))
                return -1;
        } else if (strcmp(k, "server") == 0) {
            if (get_string(v, k, &s, e) || set_str(&vol->gluster_server, s, e))
                return -1;
        } else if (strcmp(k, "volume") == 0) {
            if (get_string(v, k, &s, e) || set_str(&vol->gluster_volume, s, e))
                return -1;
        } else {
            return st_fail_field(e, ST_INVALID, k, "unknown volume key '%s'", k);
        }
    }
    if (!vol->id[0] || !vol->kind[0])
        return st_fail_field(e, ST_INVALID, "volumes", "a volume needs an id and a kind");
    if (strcmp(vol->kind, "gluster") == 0 ? !(vol->gluster_server && vol->gluster_volume)
                                          : !vol->mount_point)
        return st_fail_field(e, ST_INVALID, "volumes",
                             "volume '%s': gluster needs server and volume, others mount_point",
                             vol->id);
    return 0;
}

static int load_storage(struct cfg_storage *s, json_t *o, struct st_err *e)
{
    const char *k, *str;
    json_t *v;

    if (!json_is_object(o))
        return st_fail_field(e, ST_INVALID, "storages", "each storage must be an object");
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "id") == 0) {
            if (get_id(v, "storage id", s->id, e))
                return -1;
        } else if (strcmp(k, "name") == 0) {
            if (get_string(v, k, &str, e) || set_str(&s->name, str, e))
                return -1;
        } else if (strcmp(k, "description") == 0) {
            if (!json_is_string(v))
                return st_fail_field(e, ST_INVALID, k, "description must be a string");
            if (set_str(&s->description, json_string_value(v), e))
                return -1;
        } else if (strcmp(k, "volumes") == 0) {
            if (!json_is_array(v))
                return st_fail_field(e, ST_INVALID, k, "volumes must be an array");
            s->volumes = calloc(json_array_size(v) + 1, sizeof *s->volumes);
            if (!s->volumes)
                return st_fail(e, ST_INTERNAL, "out of memory");
            for (size_t i = 0; i < json_array_size(v); i++) {
                s->n_volumes++;
                if (load_volume(&s->volumes[i], json_array_get(v, i), e))
                    return -1;
            }
        } else {
            return st_fail_field(e, ST_INVALID, k, "unknown storage key '%s'", k);
        }
    }
    if (!s->id[0])
        return st_fail_field(e, ST_INVALID, "storages", "a storage needs an id");
    return 0;
}

static int load_storages(struct st_config *c, json_t *arr, struct st_err *e)
{
    if (!json_is_array(arr))
        return st_fail_field(e, ST_INVALID, "storages", "storages must be an array");
    free_storages(c);
    c->storages = calloc(json_array_size(arr) + 1, sizeof *c->storages);
    if (!c->storages)
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        c->n_storages++;
        if (load_storage(&c->storages[i], json_array_get(arr, i), e))
            return -1;
    }
    return 0;
}

static int load_tls(struct st_config *c, json_t *o, struct st_err *e)
{
    const char *k, *s;
    json_t *v;
    if (!json_is_object(o))
        return st_fail_field(e, ST_INVALID, "tls", "tls must be an object");
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "cert") == 0) {
            if (get_string(v, k, &s, e) || set_str(&c->tls_cert, s, e))
                return -1;
        } else if (strcmp(k, "key") == 0) {
            if (get_string(v, k, &s, e) || set_str(&c->tls_key, s, e))
                return -1;
        } else {
            return st_fail_field(e, ST_INVALID, k, "unknown key tls.%s", k);
        }
    }
    return 0;
}

static int load_mount_roots(struct st_config *c, json_t *arr, struct st_err *e)
{
    const char *s;
    if (!json_is_array(arr))
        return st_fail_field(e, ST_INVALID, "mount_roots", "mount_roots must be an array");
    /* A later source replaces the list, as it does the storages (and n counts this one). */
    free_mount_roots(c);
    c->mount_roots = calloc(json_array_size(arr) + 1, sizeof *c->mount_roots);
    if (!c->mount_roots)
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (get_string(json_array_get(arr, i), "mount_roots", &s, e))
            return -1;
        if (!(c->mount_roots[i] = strdup(s)))
            return st_fail(e, ST_INTERNAL, "out of memory");
        c->n_mount_roots++;
    }
    return 0;
}

static int load_object(struct st_config *c, json_t *root, struct st_err *e)
{
    const char *k, *s;
    json_t *v;
    uint64_t u = 0;

    if (!json_is_object(root))
        return st_fail(e, ST_INVALID, "config must be a JSON object");
    json_object_foreach(root, k, v)
    {
        if (strcmp(k, "listen") == 0) {
            if (get_string(v, k, &s, e) || cfg_set_listen(c, s, e))
                return -1;
        } else if (strcmp(k, "state_dir") == 0) {
            if (get_string(v, k, &s, e) || cfg_set_state_dir(c, s, e))
                return -1;
        } else if (strcmp(k, "threads") == 0) {
            if (get_uint(v, k, 256, &u, e))
                return -1;
            c->threads = (unsigned)u;
        } else if (strcmp(k, "workers") == 0) {
            if (get_uint(v, k, 256, &u, e))
                return -1;
            c->workers = (unsigned)u;
        } else if (strcmp(k, "probe_ttl_ms") == 0) {
            if (get_uint(v, k, 3600 * 1000, &u, e))
                return -1;
            c->probe_ttl_ms = (unsigned)u;
        } else if (strcmp(k, "staging_expiry_s") == 0) {
            if (get_uint(v, k, 365 * 86400, &u, e))
                return -1;
            c->staging_expiry_s = (unsigned)u;
        } else if (strcmp(k, "gluster_cli") == 0) {
            if (get_string(v, k, &s, e) || set_str(&c->gluster_cli, s, e))
                return -1;
        } else if (strcmp(k, "gluster_timeout_ms") == 0) {
            if (get_uint(v, k, 600 * 1000, &u, e))
                return -1;
            c->gluster_timeout_ms = (unsigned)u;
        } else if (strcmp(k, "clone_mode") == 0) {
            if (get_string(v, k, &s, e))
                return -1;
            if (strcmp(s, "qcow2") && strcmp(s, "reflink"))
                return st_fail_field(e, ST_INVALID, k, "clone_mode must be qcow2 or reflink");
            c->clone_reflink = strcmp(s, "reflink") == 0;
        } else if (strcmp(k, "sendfile") == 0) {
            if (!json_is_boolean(v))
                return st_fail_field(e, ST_INVALID, k, "sendfile must be true or false");
            c->sendfile = json_is_true(v);
        } else if (strcmp(k, "log_requests") == 0) {
            if (!json_is_boolean(v))
                return st_fail_field(e, ST_INVALID, k, "log_requests must be true or false");
            c->log_requests = json_is_true(v);
        } else if (strcmp(k, "limits") == 0) {
            if (load_limits(c, v, e))
                return -1;
        } else if (strcmp(k, "tls") == 0) {
            if (load_tls(c, v, e))
                return -1;
        } else if (strcmp(k, "mount_roots") == 0) {
            if (load_mount_roots(c, v, e))
                return -1;
        } else if (strcmp(k, "storages") == 0) {
            if (load_storages(c, v, e))
                return -1;
        } else {
            return st_fail_field(e, ST_INVALID, k, "unknown config key '%s'", k);
        }
    }
    return 0;
}

int cfg_load_string(struct st_config *c, const char *text, struct st_err *e)
{
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return st_fail(e, ST_INVALID, "config: line %d: %s", je.line, je.text);
    int rc = load_object(c, root, e);
    json_decref(root);
    return rc;
}

int cfg_load_file(struct st_config *c, const char *path, struct st_err *e)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return st_fail(e, ST_INVALID, "%s:%d: %s", path, je.line, je.text);
    int rc = load_object(c, root, e);
    json_decref(root);
    if (rc && e) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        snprintf(e->msg, sizeof e->msg, "%s: %s", path, msg);
    }
    return rc;
}

static int absolutize(char **path, struct st_err *e)
{
    char cwd[PATH_MAX], buf[PATH_MAX * 2];
    if (!*path || (*path)[0] == '/')
        return 0;
    if (!getcwd(cwd, sizeof cwd))
        return st_fail_errno(e, errno, "getcwd");
    const char *rel = (*path)[0] == '.' && (*path)[1] == '/' ? *path + 2 : *path;
    if ((size_t)snprintf(buf, sizeof buf, "%s/%s", cwd, rel) >= PATH_MAX)
        return st_fail(e, ST_INVALID, "path too long: %s", *path);
    return set_str(path, buf, e);
}

int cfg_finish(struct st_config *c, struct st_err *e)
{
    if (!c->state_dir && set_str(&c->state_dir, "./var", e))
        return -1;
    if (!c->gluster_cli && set_str(&c->gluster_cli, "gluster", e))
        return -1;
    if (absolutize(&c->state_dir, e) || absolutize(&c->tls_cert, e) || absolutize(&c->tls_key, e))
        return -1;
    for (size_t i = 0; i < c->n_mount_roots; i++)
        if (absolutize(&c->mount_roots[i], e))
            return -1;
    for (size_t i = 0; i < c->n_storages; i++)
        for (size_t k = 0; k < c->storages[i].n_volumes; k++)
            if (absolutize(&c->storages[i].volumes[k].mount_point, e))
                return -1;
    if (!!c->tls_cert != !!c->tls_key)
        return st_fail_field(e, ST_INVALID, "tls", "tls needs both cert and key");
    if (c->max_body < 1024)
        return st_fail_field(e, ST_INVALID, "max_body", "limits.max_body must be >= 1024");
    if (c->max_header < 1024)
        return st_fail_field(e, ST_INVALID, "max_header", "limits.max_header must be >= 1024");
    if (c->per_ip == 0 || c->max_connections == 0)
        return st_fail_field(e, ST_INVALID, "limits", "connection limits must be > 0");
    if (c->probe_ttl_ms < 100)
        return st_fail_field(e, ST_INVALID, "probe_ttl_ms", "probe_ttl_ms must be >= 100");
    if (c->workers == 0)
        c->workers = 1;
    return 0;
}
