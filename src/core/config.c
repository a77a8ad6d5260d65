/* config.c — defaults, the JSON config file, and validation of the result.
 *
 * Relative paths in the file are taken relative to the current directory at
 * start (so `make run` can say "./var"); cfg_finish makes them absolute. */
#include "stowage/config.h"

#include "stowage/backend.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
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
    c->header_timeout = 10;
    c->min_body_rate = 1024;
    c->body_rate_window = 10;
    c->readahead_memory = 64ULL << 20;
    c->login_workers = 2;
    c->login_queue = 64;
    c->login_free_failures = 3;
    c->login_lockout_failures = 10;
    c->login_lockout_s = 300;
    c->probe_ttl_ms = 5000;
    c->gluster_timeout_ms = 10000;
    c->staging_expiry_s = 24 * 3600;
    c->api_sync_timeout = 3600;
    c->session_ttl_s = 12 * 3600;
    c->api_job_expiry_s = 86400;
    c->backup_probe_interval_s = 60; /* ZStack's backupStorage.ping.interval */
    c->import_timeout_s = 6 * 3600;
    c->log_requests = 1;
    /* sendfile in 4 MiB steps beats reads with read-ahead (bench/REPORT.md) */
    c->sendfile = 1;
}

static void free_storages(struct st_config *c)
{
    for (size_t i = 0; i < c->n_storages; i++) {
        struct cfg_storage *s = &c->storages[i];
        for (size_t k = 0; k < s->n_volumes; k++) {
            json_decref(s->volumes[k].params);
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
    free(c->ceph_keyring);
    free_mount_roots(c);
    free(c->import_allow);
    for (size_t i = 0; i < c->n_imagestores; i++)
        free(c->imagestores[i].url);
    free(c->imagestores);
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
        } else if (strcmp(k, "header_timeout") == 0) {
            if (get_uint(v, k, 86400, &u, e))
                return -1;
            c->header_timeout = (unsigned)u;
        } else if (strcmp(k, "min_body_rate") == 0) {
            if (get_uint(v, k, 1u << 30, &u, e))
                return -1;
            c->min_body_rate = (unsigned)u;
        } else if (strcmp(k, "body_rate_window") == 0) {
            if (get_uint(v, k, 3600, &u, e))
                return -1;
            c->body_rate_window = (unsigned)u;
        } else if (strcmp(k, "readahead_memory") == 0) {
            if (get_uint(v, k, 1ULL << 40, &u, e))
                return -1;
            c->readahead_memory = u;
        } else {
            return st_fail_field(e, ST_INVALID, k, "unknown key limits.%s", k);
        }
    }
    return 0;
}

static int load_login(struct st_config *c, json_t *o, struct st_err *e)
{
    static const struct {
        const char *key;
        uint64_t max;
        size_t off;
    } keys[] = {
        {"workers", 64, offsetof(struct st_config, login_workers)},
        {"queue", 65536, offsetof(struct st_config, login_queue)},
        {"free_failures", 1000, offsetof(struct st_config, login_free_failures)},
        {"lockout_failures", 1000, offsetof(struct st_config, login_lockout_failures)},
        {"lockout_s", 7 * 86400, offsetof(struct st_config, login_lockout_s)},
    };
    const char *k;
    json_t *v;
    uint64_t u;

    if (!json_is_object(o))
        return st_fail_field(e, ST_INVALID, "login", "login must be an object");
    json_object_foreach(o, k, v)
    {
        size_t i = 0;
        while (i < sizeof keys / sizeof *keys && strcmp(k, keys[i].key) != 0)
            i++;
        if (i == sizeof keys / sizeof *keys)
            return st_fail_field(e, ST_INVALID, k, "unknown key login.%s", k);
        if (get_uint(v, k, keys[i].max, &u, e))
            return -1;
        *(unsigned *)((char *)c + keys[i].off) = (unsigned)u;
    }
    return 0;
}

/* A volume: its id, its kind (the backend registry's), and the rest as its backend's
 * parameters, which that backend checks (and makes absolute where they are paths). */
static int load_volume(struct cfg_volume *vol, json_t *o, struct st_err *e)
{
    const char *k, *s;
    json_t *v;
    char kinds[128];

    if (!json_is_object(o))
        return st_fail_field(e, ST_INVALID, "volumes", "each volume must be an object");
    if (!(vol->params = json_object()))
        return st_fail(e, ST_INTERNAL, "out of memory");
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "id") == 0) {
            if (get_id(v, "volume id", vol->id, e))
                return -1;
        } else if (strcmp(k, "kind") == 0) {
            if (get_string(v, k, &s, e))
                return -1;
            if (!be_kind(s)) {
                be_kind_names(kinds, sizeof kinds);
                return st_fail_field(e, ST_INVALID, k, "volume kind must be %s", kinds);
            }
            snprintf(vol->kind, sizeof vol->kind, "%s", s);
        } else if (json_object_set(vol->params, k, v)) {
            return st_fail(e, ST_INTERNAL, "out of memory");
        }
    }
    if (!vol->id[0] || !vol->kind[0])
        return st_fail_field(e, ST_INVALID, "volumes", "a volume needs an id and a kind");
    const struct backend_ops *ops = be_kind_ops(vol->kind, e);
    if (!ops) {
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e->msg);
        return st_fail_field(e, ST_UNAVAILABLE, "volumes", "volume '%s': %s", vol->id, why);
    }
    if (ops->parse(vol->params, e)) {
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e->msg);
        return st_fail_field(e, ST_INVALID, "volumes", "volume '%s': '%s' %s", vol->id, e->field,
                             why);
    }
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

int cfg_parse_cidr(const char *s, struct cfg_cidr *out)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    char *end;

    memset(out, 0, sizeof *out);
    if (hl == 0 || hl >= sizeof host)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (inet_pton(AF_INET, host, out->addr) == 1)
        out->family = AF_INET, out->prefix = 32;
    else if (inet_pton(AF_INET6, host, out->addr) == 1)
        out->family = AF_INET6, out->prefix = 128;
    else
        return -1;
    if (slash) {
        unsigned long bits = strtoul(slash + 1, &end, 10);
        if (!slash[1] || *end || bits > out->prefix)
            return -1;
        out->prefix = (unsigned)bits;
    }
    return 0;
}

static int load_import_allow(struct st_config *c, json_t *arr, struct st_err *e)
{
    const char *s;
    if (!json_is_array(arr))
        return st_fail_field(e, ST_INVALID, "import_allow", "import_allow must be an array");
    free(c->import_allow);
    c->n_import_allow = 0;
    if (!(c->import_allow = calloc(json_array_size(arr) + 1, sizeof *c->import_allow)))
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (get_string(json_array_get(arr, i), "import_allow", &s, e))
            return -1;
        if (cfg_parse_cidr(s, &c->import_allow[i]))
            return st_fail_field(e, ST_INVALID, "import_allow",
                                 "import_allow: '%.64s' is not an address or ADDRESS/BITS", s);
        c->n_import_allow++;
    }
    return 0;
}

/* [{"name": "erigo", "url": "https://images.example.org"}] */
static int load_imagestores(struct st_config *c, json_t *arr, struct st_err *e)
{
    const char *k;
    json_t *o, *v;
    if (!json_is_array(arr))
        return st_fail_field(e, ST_INVALID, "imagestores", "imagestores must be an array");
    if (!(c->imagestores = calloc(json_array_size(arr) + 1, sizeof *c->imagestores)))
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        struct cfg_imagestore *is = &c->imagestores[i];
        const char *name = NULL, *url = NULL;
        o = json_array_get(arr, i);
        if (!json_is_object(o))
            return st_fail_field(e, ST_INVALID, "imagestores", "imagestores[] are objects");
        json_object_foreach(o, k, v)
        {
            if (strcmp(k, "name") == 0 && json_is_string(v))
                name = json_string_value(v);
            else if (strcmp(k, "url") == 0 && json_is_string(v))
                url = json_string_value(v);
            else
                return st_fail_field(e, ST_INVALID, "imagestores",
                                     "imagestores[]: '%s' is not a string key of name, url", k);
        }
        if (!name || strlen(name) > CFG_ID_MAX || !url ||
            (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
            return st_fail_field(e, ST_INVALID, "imagestores",
                                 "imagestores[] need a name (up to 64) and an http(s) url");
        for (size_t k2 = 0; k2 < i; k2++)
            if (strcmp(c->imagestores[k2].name, name) == 0)
                return st_fail_field(e, ST_INVALID, "imagestores",
                                     "imagestores: '%s' is listed twice", name);
        snprintf(is->name, sizeof is->name, "%s", name);
        if (set_str(&is->url, url, e))
            return -1;
        size_t ul = strlen(is->url);
        while (ul > 8 && is->url[ul - 1] == '/')
            is->url[--ul] = '\0';
        c->n_imagestores++;
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
        } else if (strcmp(k, "api_sync_timeout") == 0) {
            if (get_uint(v, k, 7 * 86400, &u, e))
                return -1;
            c->api_sync_timeout = (unsigned)u;
        } else if (strcmp(k, "session_ttl_s") == 0) {
            if (get_uint(v, k, 365 * 86400, &u, e))
                return -1;
            c->session_ttl_s = (unsigned)u ? (unsigned)u : 1;
        } else if (strcmp(k, "api_job_expiry_s") == 0) {
            if (get_uint(v, k, 365 * 86400, &u, e))
                return -1;
            c->api_job_expiry_s = (unsigned)u;
        } else if (strcmp(k, "backup_probe_interval_s") == 0) {
            if (get_uint(v, k, 86400, &u, e))
                return -1;
            c->backup_probe_interval_s = u ? (unsigned)u : 1;
        } else if (strcmp(k, "import_timeout_s") == 0) {
            if (get_uint(v, k, 7 * 86400, &u, e))
                return -1;
            c->import_timeout_s = u ? (unsigned)u : 1;
        } else if (strcmp(k, "import_allow") == 0) {
            if (load_import_allow(c, v, e))
                return -1;
        } else if (strcmp(k, "imagestores") == 0) {
            if (c->imagestores)
                return st_fail_field(e, ST_INVALID, k, "imagestores given twice");
            if (load_imagestores(c, v, e))
                return -1;
        } else if (strcmp(k, "staging_expiry_s") == 0) {
            if (get_uint(v, k, 365 * 86400, &u, e))
                return -1;
            c->staging_expiry_s = (unsigned)u;
        } else if (strcmp(k, "gluster_cli") == 0) {
            if (get_string(v, k, &s, e) || set_str(&c->gluster_cli, s, e))
                return -1;
        } else if (strcmp(k, "ceph_keyring") == 0) {
            if (get_string(v, k, &s, e) || set_str(&c->ceph_keyring, s, e))
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
        } else if (strcmp(k, "login") == 0) {
            if (load_login(c, v, e))
                return -1;
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
    if (absolutize(&c->state_dir, e) || absolutize(&c->tls_cert, e) || absolutize(&c->tls_key, e) ||
        absolutize(&c->ceph_keyring, e))
        return -1;
    for (size_t i = 0; i < c->n_mount_roots; i++)
        if (absolutize(&c->mount_roots[i], e))
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
    if (c->header_timeout == 0 || c->body_rate_window == 0)
        return st_fail_field(e, ST_INVALID, "limits",
                             "limits.header_timeout and limits.body_rate_window must be > 0");
    if (c->login_workers == 0 || c->login_queue == 0)
        return st_fail_field(e, ST_INVALID, "login", "login.workers and login.queue must be > 0");
    if (c->login_lockout_failures <= c->login_free_failures)
        return st_fail_field(e, ST_INVALID, "login",
                             "login.lockout_failures must be above login.free_failures");
    return 0;
}
