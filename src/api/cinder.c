/* cinder.c — the OpenStack Cinder dialect: version discovery, manageable volumes, adopting
 * them (manage), and the volumes that result (show, list, unmanage, delete).
 *
 * A Cinder volume is an image: id = uuid, name = name, size = GiB rounded up from the
 * virtual size, project = the image's owner. A Cinder host is
 * "{hostname}@{image_storage_id}#{volume_id}" (the pool is a stowage volume). Manage is
 * core's image.adopt, whose job id is the new image's uuid: the volume is "creating"
 * while that job runs, then "available" (or "error"). Unmanage is image.unmanage, delete
 * image.delete. Errors use Cinder's faults ({"badRequest": {"code", "message"}}) with
 * Cinder's own messages where Cinder has one; docs/cinder.md lists the choices. */
#include "api_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_MINOR 0
#define MAX_MINOR 71
#define MANAGEABLE_MINOR 8      /* manageable_volumes appeared in 3.8 */
#define CLUSTER_MINOR 17        /* from 3.17 a cluster may stand for the host of a list */
#define MANAGE_CLUSTER_MINOR 16 /* and from 3.16 for the host of a manage */
#define DESCRIPTION_MAX 128     /* what the catalogue keeps of a description */
#define MAX_LIMIT 1000          /* Cinder's osapi_max_limit */
#define GIB (1024ull * 1024 * 1024)

/* ---- errors ---- */

static const char *fault_of(unsigned status)
{
    switch (status) {
    case 400:
        return "badRequest";
    case 403:
        return "forbidden";
    case 404:
        return "itemNotFound";
    case 405:
        return "HTTPMethodNotAllowed";
    case 406:
        return "notAcceptable";
    case 409:
        return "conflictingRequest";
    case 413:
        return "overLimit";
    case 415:
        return "badMediaType";
    case 503:
        return "serviceUnavailable";
    default:
        return status >= 500 ? "computeFault" : "badRequest";
    }
}

static json_t *cinder_error(const struct st_err *e, unsigned *status)
{
    *status = http_status_of(e->code);
    if (e->code == ST_IN_USE || e->code == ST_RANGE || e->code == ST_PRECONDITION)
        *status = 400; /* Cinder refuses a volume with dependents as an invalid request */
    if (e->code == ST_NO_SPACE)
        *status = 413;
    if (*status == 401) /* what keystonemiddleware answers */
        return json_pack("{s:{s:i, s:s, s:s}}", "error", "code", 401, "title", "Unauthorized",
                         "message", "The request you have made requires authentication.");
    return json_pack("{s:{s:i, s:s}}", fault_of(*status), "code", (int)*status, "message", e->msg);
}

/* Answer one error worded here. */
#define fail(r, code, ...)                                                                         \
    do {                                                                                           \
        struct st_err fail_e_;                                                                     \
        st_fail(&fail_e_, code, __VA_ARGS__);                                                      \
        http_reply_error(r, &fail_e_);                                                             \
    } while (0)

/* ---- microversions ---- */

static int not_acceptable(struct http_req *r, const char *v)
{
    char msg[160];
    snprintf(msg, sizeof msg,
             "Version %.20s is not supported by the API. Minimum is 3.0 and maximum is 3.71.", v);
    http_reply_json(r, 406,
                    json_pack("{s:{s:i, s:s}}", "notAcceptable", "code", 406, "message", msg));
    return -1;
}

/* Reads "OpenStack-API-Version: volume 3.X" (absent: 3.0) and answers the version in the
 * same header with Vary. -1: replied (400 malformed, 406 outside 3.0 ... 3.71). */
static int microversion(struct http_req *r, int *minor)
{
    const char *h = http_header(r, "OpenStack-API-Version");
    char echo[32];
    struct st_err e;

    *minor = MIN_MINOR;
    while (h && *h == ' ')
        h++;
    if (h && strncasecmp(h, "volume ", 7) == 0) {
        const char *v = h + 7;
        char *end;
        while (*v == ' ')
            v++;
        if (strcmp(v, "latest") == 0) {
            *minor = MAX_MINOR;
        } else if (v[0] >= '0' && v[0] <= '9' && strchr(v, '.')) {
            long major = strtol(v, &end, 10);
            long m = *end == '.' && end[1] >= '0' && end[1] <= '9' ? strtol(end + 1, &end, 10) : -1;
            if (m < 0 || *end != '\0') {
                st_fail(&e, ST_INVALID,
                        "API Version String %.20s is of invalid format. Must be of format "
                        "MajorNum.MinorNum.",
                        v);
                http_reply_error(r, &e);
                return -1;
            }
            if (major != 3 || m > MAX_MINOR)
                return not_acceptable(r, v);
            *minor = (int)m;
        } else {
            st_fail(&e, ST_INVALID,
                    "API Version String %.20s is of invalid format. Must be of format "
                    "MajorNum.MinorNum.",
                    v);
            http_reply_error(r, &e);
            return -1;
        }
    }
    snprintf(echo, sizeof echo, "volume 3.%d", *minor);
    http_add_header(r, "OpenStack-API-Version", echo);
    http_add_header(r, "Vary", "OpenStack-API-Version");
    return 0;
}

static int at_least(struct http_req *r, int minor, int need)
{
    struct st_err e;
    if (minor >= need)
        return 0;
    st_fail(&e, ST_NOT_FOUND,
            "API version API Version Request Major: 3, Minor: %d is not supported on this "
            "method.",
            minor);
    http_reply_error(r, &e);
    return -1;
}

/* ---- version discovery ---- */

static json_t *version_doc(struct http_req *r)
{
    char href[320];
    const char *host = http_header(r, "Host");
    snprintf(href, sizeof href, "http://%.256s/v3/", host ? host : "127.0.0.1");
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s}], s:[{s:s, s:s}]}", "id", "v3.0",
                     "status", "CURRENT", "min_version", "3.0", "version", "3.71", "updated",
                     "2023-08-31T00:00:00Z", "links", "href", href, "rel", "self", "media-types",
                     "base", "application/json", "type",
                     "application/vnd.openstack.volume+json;version=3");
}

static void versions(struct http_req *r)
{
    http_reply_json(r, 300, json_pack("{s:[o]}", "versions", version_doc(r)));
}

static void version_v3(struct http_req *r)
{
    int minor;
    if (microversion(r, &minor))
        return;
    http_reply_json(r, 200, json_pack("{s:[o]}", "versions", version_doc(r)));
}

/* ---- hosts ---- */

/* The volumes a host string names: "{hostname}@{storage}[#{volume}]". */
struct hostref {
    char storage[CORE_ID];
    char (*vols)[CORE_ID];
    size_t n;
};

static int parse_host(struct http_req *r, const char *host, struct hostref *h, struct st_err *e)
{
    struct stowage *st = http_st(r);
    const char *hn = core_hostname(st), *at = strchr(host, '@');
    const char *hash = at ? strchr(at, '#') : NULL;
    size_t hl = strlen(hn);
    char volume[CORE_ID] = "";

    memset(h, 0, sizeof *h);
    if (!at || (size_t)(at - host) != hl || strncmp(host, hn, hl) != 0)
        goto unknown;
    size_t sl = hash ? (size_t)(hash - at - 1) : strlen(at + 1);
    if (sl == 0 || sl >= CORE_ID)
        goto unknown;
    memcpy(h->storage, at + 1, sl);
    h->storage[sl] = '\0';
    if (hash && snprintf(volume, sizeof volume, "%s", hash + 1) >= (int)sizeof volume)
        goto unknown;
    if (!core_valid_id(h->storage) || (hash && !core_valid_id(volume)))
        goto unknown;
    if (core_volume_ids(st, h->storage, &h->vols, &h->n, e)) {
        if (e->code != ST_NOT_FOUND)
            return -1;
        goto unknown;
    }
    if (hash) {
        size_t k = 0;
        while (k < h->n && strcmp(h->vols[k], volume) != 0)
            k++;
        if (k == h->n) {
            free(h->vols);
            h->vols = NULL;
            goto unknown;
        }
        snprintf(h->vols[0], CORE_ID, "%s", volume);
        h->n = 1;
    }
    return 0;
unknown:
    /* What Cinder's manage answers for a host without a service (a ServiceUnavailable,
     * which Cinder makes a 400); lists say the same here (docs/cinder.md). */
    return st_fail(e, ST_INVALID, "Host '%.200s' not found", host);
}

static void host_of(struct stowage *st, const char *storage, const char *volume, char *out,
                    size_t len)
{
    snprintf(out, len, "%s@%s#%s", core_hostname(st), storage, volume);
}

/* ---- manageable volumes ---- */

struct entry {
    struct core_unmanaged u;
    char volume[CORE_ID];
    uint64_t gib;
};

struct sorting {
    int key[8]; /* 0 reference, 1 size */
    int desc[8];
    int n;
};

static int compare(const struct entry *a, const struct entry *b, const struct sorting *s)
{
    for (int i = 0; i < s->n; i++) {
        int c = s->key[i] ? (a->gib > b->gib) - (a->gib < b->gib) : strcmp(a->u.name, b->u.name);
        if (c)
            return s->desc[i] ? -c : c;
    }
    return 0;
}

/* An insertion-stable merge sort keeps equal entries in name order. */
static void sort_entries(struct entry *v, size_t n, const struct sorting *s, struct entry *tmp)
{
    if (n < 2)
        return;
    size_t m = n / 2;
    sort_entries(v, m, s, tmp);
    sort_entries(v + m, n - m, s, tmp);
    size_t i = 0, j = m, k = 0;
    while (i < m && j < n)
        tmp[k++] = compare(&v[j], &v[i], s) < 0 ? v[j++] : v[i++];
    while (i < m)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

/* Cinder's sort=key[:dir][,key[:dir]...] (sort_key/sort_dir the deprecated form). */
static int parse_sort(struct http_req *r, struct sorting *s, struct st_err *e)
{
    const char *sort = http_query(r, "sort"), *key = http_query(r, "sort_key");
    const char *dir = http_query(r, "sort_dir");
    char buf[256], bad_keys[256] = "", bad_dirs[256] = "";

    s->n = 0;
    if (sort && (key || dir))
        return st_fail(e, ST_INVALID,
                       "The 'sort_key' and 'sort_dir' parameters are deprecated "
                       "and cannot be used with the 'sort' parameter.%s",
                       "");
    if (sort)
        snprintf(buf, sizeof buf, "%s", sort);
    else
        snprintf(buf, sizeof buf, "%s:%s", key ? key : "reference", dir ? dir : "desc");
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        const char *d = colon ? colon + 1 : "desc";
        if (colon)
            *colon = '\0';
        while (*tok == ' ')
            tok++;
        while (*d == ' ')
            d++;
        int k = strcmp(tok, "reference") == 0 ? 0 : strcmp(tok, "size") == 0 ? 1 : -1;
        int desc = strcmp(d, "desc") == 0 ? 1 : strcmp(d, "asc") == 0 ? 0 : -1;
        if (k < 0)
            snprintf(bad_keys + strlen(bad_keys), sizeof bad_keys - strlen(bad_keys), "%s%s",
                     bad_keys[0] ? ", " : "", tok);
        if (desc < 0)
            snprintf(bad_dirs + strlen(bad_dirs), sizeof bad_dirs - strlen(bad_dirs), "%s%s",
                     bad_dirs[0] ? ", " : "", d);
        if (k >= 0 && desc >= 0 && s->n < 8) {
            s->key[s->n] = k;
            s->desc[s->n++] = desc;
        }
    }
    if (bad_keys[0])
        return st_fail(e, ST_INVALID, "Invalid sort keys passed: %s", bad_keys);
    if (bad_dirs[0])
        return st_fail(e, ST_INVALID, "Invalid sort dirs passed: %s", bad_dirs);
    return 0;
}

static int parse_int(const char *s, long long *out)
{
    char *end;
    while (s && *s == ' ')
        s++;
    if (!s || !*s)
        return -1;
    *out = strtoll(s, &end, 10);
    while (*end == ' ')
        end++;
    return *end ? -1 : 0;
}

struct paging {
    long long limit, offset;
    char marker[256]; /* a source-name, "" for none */
};

static int parse_paging(struct http_req *r, struct paging *p, struct st_err *e)
{
    const char *limit = http_query(r, "limit"), *offset = http_query(r, "offset");
    const char *marker = http_query(r, "marker");

    p->limit = MAX_LIMIT;
    p->offset = 0;
    p->marker[0] = '\0';
    if (limit && parse_int(limit, &p->limit))
        return st_fail(e, ST_INVALID, "limit param must be an integer%s", "");
    if (p->limit < 0)
        return st_fail(e, ST_INVALID, "limit param must be positive%s", "");
    if (p->limit > MAX_LIMIT)
        p->limit = MAX_LIMIT;
    if (offset && parse_int(offset, &p->offset))
        return st_fail(e, ST_INVALID, "offset must be an integer%s", "");
    if (p->offset < 0)
        return st_fail(e, ST_INVALID, "offset must be >= 0%s", "");
    if (p->offset > 2147483647)
        return st_fail(e, ST_INVALID, "offset must be <= 2147483647%s", "");
    if (marker && *marker) {
        json_t *j = json_loads(marker, JSON_DECODE_ANY, NULL);
        const char *sn = json_string_value(json_object_get(j, "source-name"));
        if (!json_is_object(j) || !sn || json_object_size(j) != 1 || strlen(sn) >= 256) {
            json_decref(j);
            return st_fail(e, ST_INVALID,
                           "Invalid input received: marker %.200s can not be analysed, please "
                           "use json like format",
                           marker);
        }
        snprintf(p->marker, sizeof p->marker, "%s", sn);
        json_decref(j);
    }
    return 0;
}

/* The gen of the host's volumes' objects: new when any of them changed. */
static int volumes_gen(struct http_req *r, const struct hostref *h, uint64_t *gen, struct st_err *e)
{
    *gen = 0;
    for (size_t i = 0; i < h->n; i++) {
        uint64_t g;
        if (core_unmanaged_gen(http_st(r), h->vols[i], &g, e))
            return -1;
        if (g > *gen)
            *gen = g;
    }
    return 0;
}

/* Every object of the host's volumes; *gen is new when any of them changed. */
static int gather(struct http_req *r, const struct hostref *h, struct entry **out, size_t *n,
                  uint64_t *gen, struct st_err *e)
{
    struct entry *v = NULL;
    size_t cnt = 0;
    *out = NULL;
    *n = 0;
    *gen = 0;
    for (size_t i = 0; i < h->n; i++) {
        struct core_unmanaged *us;
        size_t nu;
        uint64_t g;
        if (core_unmanaged_list(http_st(r), h->vols[i], &us, &nu, &g, e)) {
            free(v);
            return -1;
        }
        struct entry *grown = realloc(v, (cnt + nu + 1) * sizeof *v);
        if (!grown) {
            free(us);
            free(v);
            return st_fail(e, ST_INTERNAL, "out of memory");
        }
        v = grown;
        if (g > *gen)
            *gen = g;
        for (size_t k = 0; k < nu; k++, cnt++) {
            v[cnt].u = us[k];
            snprintf(v[cnt].volume, sizeof v[cnt].volume, "%s", h->vols[i]);
            v[cnt].gib = (us[k].virtual_size + GIB - 1) / GIB;
        }
        free(us);
    }
    *out = v;
    *n = cnt;
    return 0;
}

static json_t *entry_json(const struct entry *x, int detail)
{
    json_t *j = json_pack("{s:{s:s}, s:I, s:b}", "reference", "source-name", x->u.name, "size",
                          (json_int_t)x->gib, "safe_to_manage", x->u.safe);
    if (!detail || !j)
        return j;
    json_object_set_new(j, "reason_not_safe", x->u.safe ? json_null() : json_string(x->u.reason));
    json_object_set_new(j, "cinder_id",
                        x->u.managed_uuid[0] ? json_string(x->u.managed_uuid) : json_null());
    json_t *extra =
        json_pack("{s:s, s:I, s:I}", "volume", x->volume, "virtual_size",
                  (json_int_t)x->u.virtual_size, "actual_size", (json_int_t)x->u.actual_size);
    if (x->u.format[0])
        json_object_set_new(extra, "format", json_string(x->u.format));
    json_object_set_new(j, "extra_info", extra);
    return j;
}

/* host xor cluster (from 3.17; before it, host is required). */
static int host_param(struct http_req *r, int minor, const char **host, struct st_err *e)
{
    const char *cluster = minor >= CLUSTER_MINOR ? http_query(r, "cluster") : NULL;
    *host = http_query(r, "host");
    int has_host = *host && **host, has_cluster = cluster && *cluster;
    if (has_host == has_cluster)
        return st_fail(e, ST_INVALID, "Invalid input received: %s",
                       minor >= CLUSTER_MINOR ? "One and only one of cluster and host must be set."
                                              : "Host field is missing.");
    if (has_cluster) /* stowage runs no clusters of its own */
        return st_fail(e, ST_INVALID, "Cluster '%.200s' not found", cluster);
    return 0;
}

static void list_manageable(struct http_req *r, int minor, int detail)
{
    struct st_err e;
    struct sorting s;
    struct paging p;
    struct hostref h;
    struct entry *v = NULL, *tmp = NULL;
    size_t n = 0;
    const char *host;
    char key[640];
    uint64_t gen;

    if (host_param(r, minor, &host, &e) || parse_paging(r, &p, &e) || parse_sort(r, &s, &e)) {
        http_reply_error(r, &e);
        return;
    }
    if (parse_host(r, host, &h, &e) || volumes_gen(r, &h, &gen, &e)) {
        free(h.vols);
        http_reply_error(r, &e);
        return;
    }
    /* The same question of the same objects: the reply rendered last time. A volume that
     * joins the host comes with a new gen; one that leaves changes the count. */
    snprintf(key, sizeof key, "cinder:mv:%d:%zu:%s:%zu:%d", detail, strlen(host), host, h.n, s.n);
    for (int i = 0; i < s.n; i++)
        snprintf(key + strlen(key), sizeof key - strlen(key), ":%d%d", s.key[i], s.desc[i]);
    snprintf(key + strlen(key), sizeof key - strlen(key), ":%lld:%lld:%s", p.limit, p.offset,
             p.marker);
    if (http_reply_cached(r, key, gen)) {
        free(h.vols);
        return;
    }
    /* The gen the entries come with (newer than the one looked up if they changed since) */
    int rc = gather(r, &h, &v, &n, &gen, &e);
    free(h.vols);
    if (rc) {
        http_reply_error(r, &e);
        return;
    }
    if (n && !(tmp = malloc(n * sizeof *tmp))) {
        free(v);
        fail(r, ST_INTERNAL, "out of memory%s", "");
        return;
    }
    sort_entries(v, n, &s, tmp);
    free(tmp);
    size_t start = 0;
    if (p.marker[0]) {
        while (start < n && strcmp(v[start].u.name, p.marker) != 0)
            start++;
        if (start == n) {
            free(v);
            st_fail(&e, ST_INVALID,
                    "Invalid input received: marker not found: {'source-name': "
                    "'%.200s'}",
                    p.marker);
            http_reply_error(r, &e);
            return;
        }
        start++;
    }
    json_t *arr = json_array();
    for (size_t i = start + (size_t)p.offset, k = 0; i < n && k < (size_t)p.limit; i++, k++)
        json_array_append_new(arr, entry_json(&v[i], detail));
    free(v);
    http_reply_json_cached(r, key, gen, json_pack("{s:o}", "manageable-volumes", arr));
}

static void manageable_index(struct http_req *r)
{
    int minor;
    if (microversion(r, &minor) || at_least(r, minor, MANAGEABLE_MINOR))
        return;
    list_manageable(r, minor, 0);
}

static void manageable_detail(struct http_req *r)
{
    int minor;
    if (microversion(r, &minor) || at_least(r, minor, MANAGEABLE_MINOR))
        return;
    list_manageable(r, minor, 1);
}

static void legacy_index(struct http_req *r)
{
    int minor;
    if (microversion(r, &minor) == 0)
        list_manageable(r, minor, 0);
}

static void legacy_detail(struct http_req *r)
{
    int minor;
    if (microversion(r, &minor) == 0)
        list_manageable(r, minor, 1);
}

/* Clones are the only children of images, and they are managed already: nothing on a
 * volume is a snapshot waiting to be adopted (docs/cinder.md). */
static void manageable_snapshots(struct http_req *r)
{
    int minor;
    struct st_err e;
    struct hostref h;
    const char *host;
    if (microversion(r, &minor) || at_least(r, minor, MANAGEABLE_MINOR))
        return;
    if (host_param(r, minor, &host, &e) || parse_host(r, host, &h, &e)) {
        http_reply_error(r, &e);
        return;
    }
    free(h.vols);
    http_reply_json(r, 200, json_pack("{s:[]}", "manageable-snapshots"));
}

/* ---- volumes ---- */

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000000", &tm);
}

struct vol {
    char id[37], name[CORE_ID], status[16], owner[CORE_ID];
    char storage[CORE_ID], volume[CORE_ID];
    char description[DESCRIPTION_MAX + 1];
    json_t *props; /* what manage kept: metadata, bootable, volume_type, availability_zone */
    uint64_t gib;
    int64_t created_at, updated_at;
};

static const char *prop_str(const struct vol *v, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(v->props, key));
    return s && *s ? s : dflt;
}

static json_t *volume_json(struct http_req *r, const struct vol *v, int minor)
{
    char created[32], updated[32], host[400], self[400], bookmark[400];
    const char *h = http_header(r, "Host");
    const char *project = http_capture(r, 0);

    iso_time(v->created_at, created);
    iso_time(v->updated_at ? v->updated_at : v->created_at, updated);
    if (v->storage[0])
        host_of(http_st(r), v->storage, v->volume, host, sizeof host);
    snprintf(self, sizeof self, "http://%.200s/v3/%s/volumes/%s", h ? h : "127.0.0.1", project,
             v->id);
    snprintf(bookmark, sizeof bookmark, "http://%.200s/%s/volumes/%s", h ? h : "127.0.0.1", project,
             v->id);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:[], s:n, s:s, s:n, s:n, s:{}, s:[{s:s, s:s}, {s:s, "
        "s:s}], s:s, s:s, s:b, s:n, s:n, s:b, s:s, s:n, s:n}",
        "id", v->id, "name", v->name, "status", v->status, "size", (json_int_t)v->gib,
        "availability_zone", prop_str(v, "availability_zone", "nova"), "created_at", created,
        "updated_at", updated, "attachments", "description", "volume_type",
        prop_str(v, "volume_type", "__DEFAULT__"), "snapshot_id", "source_volid", "metadata",
        "links", "rel", "self", "href", self, "rel", "bookmark", "href", bookmark, "user_id",
        v->owner, "bootable",
        json_is_true(json_object_get(v->props, "bootable")) ? "true" : "false", "encrypted", 0,
        "replication_status", "consistencygroup_id", "multiattach", 0,
        "os-vol-tenant-attr:tenant_id", v->owner, "os-vol-mig-status-attr:migstat",
        "os-vol-mig-status-attr:name_id");
    if (!j)
        return NULL;
    if (v->description[0])
        json_object_set_new(j, "description", json_string(v->description));
    json_t *meta = json_object_get(v->props, "metadata");
    if (json_is_object(meta))
        json_object_set(j, "metadata", meta);
    json_object_set_new(j, "os-vol-host-attr:host",
                        v->storage[0] ? json_string(host) : json_null());
    if (minor >= 13)
        json_object_set_new(j, "group_id", json_null());
    if (minor >= 21)
        json_object_set_new(j, "provider_id", json_null());
    if (minor >= 48) {
        json_object_set_new(j, "service_uuid", json_null());
        json_object_set_new(j, "shared_targets", json_false());
    }
    if (minor >= 61)
        json_object_set_new(j, "cluster_name", json_null());
    if (minor >= 63)
        json_object_set_new(j, "volume_type_id", json_null());
    if (minor >= 65)
        json_object_set_new(j, "consumes_quota", json_true());
    return j;
}

/* The properties manage kept with the image (NULL when none could be read). */
static json_t *props_of(struct http_req *r, const char *uuid)
{
    char text[4097];
    struct st_err e;
    if (core_image_properties(http_st(r), uuid, text, sizeof text, &e))
        return NULL;
    return json_loads(text, 0, NULL);
}

static void vol_free(struct vol *v)
{
    json_decref(v->props);
    v->props = NULL;
}

static void vol_from_image(struct http_req *r, const struct core_image *im, const char *storage,
                           struct vol *v)
{
    memset(v, 0, sizeof *v);
    snprintf(v->description, sizeof v->description, "%s", im->description);
    v->props = props_of(r, im->uuid);
    snprintf(v->id, sizeof v->id, "%s", im->uuid);
    snprintf(v->name, sizeof v->name, "%s", im->name);
    snprintf(v->status, sizeof v->status, "%s",
             strcmp(im->status, "active") == 0  ? "available"
             : strcmp(im->status, "error") == 0 ? "error"
                                                : "creating");
    snprintf(v->owner, sizeof v->owner, "%s", im->owner);
    snprintf(v->storage, sizeof v->storage, "%s", storage);
    snprintf(v->volume, sizeof v->volume, "%s", im->volume_id);
    v->gib = (im->virtual_size + GIB - 1) / GIB;
    v->created_at = im->created_at;
    v->updated_at = im->updated_at;
}

/* Every active image of the project, with its storage (fn gets each). */
static int each_image(struct http_req *r,
                      void (*fn)(void *ud, const struct core_image *im, const char *storage),
                      void *ud, struct st_err *e)
{
    struct stowage *st = http_st(r);
    char(*ids)[CORE_ID] = NULL;
    size_t n = 0;
    const char *project = http_capture(r, 0);

    if (core_storage_ids(st, &ids, &n, e))
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct core_storage_view sv;
        if (core_storage_view(st, ids[i], &sv, e))
            continue; /* deleted between the list and the view */
        for (size_t k = 0; k < sv.n_volumes; k++)
            for (size_t m = 0; m < sv.volumes[k].n_images; m++)
                if (strcmp(sv.volumes[k].images[m].owner, project) == 0)
                    fn(ud, &sv.volumes[k].images[m], ids[i]);
        core_storage_view_free(&sv);
    }
    free(ids);
    return 0;
}

/* The storage holding a volume ("" when none does any more). */
static void storage_of(struct http_req *r, const char *volume, char out[CORE_ID])
{
    struct stowage *st = http_st(r);
    char(*ids)[CORE_ID] = NULL;
    size_t n = 0;
    struct st_err e;

    out[0] = '\0';
    if (core_storage_ids(st, &ids, &n, &e))
        return;
    for (size_t i = 0; i < n && !out[0]; i++) {
        char(*vols)[CORE_ID] = NULL;
        size_t nv = 0;
        if (core_volume_ids(st, ids[i], &vols, &nv, &e))
            continue;
        for (size_t k = 0; k < nv; k++)
            if (strcmp(vols[k], volume) == 0)
                snprintf(out, CORE_ID, "%s", ids[i]);
        free(vols);
    }
    free(ids);
}

/* The project's volume by id: an image (a 'saving' one is being adopted), or an adoption
 * whose job has not made its row yet (or failed before). */
static int find_volume(struct http_req *r, const char *id, struct vol *v, struct st_err *e)
{
    struct core_image im;
    struct core_job job;
    char storage[CORE_ID];

    if (strlen(id) != 36)
        return st_fail(e, ST_NOT_FOUND, "Volume %.64s could not be found.", id);
    if (core_image_get(http_st(r), id, &im, e) == 0) {
        if (strcmp(im.owner, http_capture(r, 0)) != 0 || strcmp(im.status, "deleted") == 0)
            return st_fail(e, ST_NOT_FOUND, "Volume %.64s could not be found.", id);
        storage_of(r, im.volume_id, storage);
        vol_from_image(r, &im, storage, v);
        return 0;
    }
    if (core_job_get(http_st(r), id, &job, e) == 0) {
        int adopting = strcmp(job.op, "image.adopt") == 0 && strcmp(job.result, "success") != 0;
        if (adopting) {
            memset(v, 0, sizeof *v);
            snprintf(v->id, sizeof v->id, "%s", id);
            snprintf(v->name, sizeof v->name, "%s", id);
            snprintf(v->status, sizeof v->status, "%s",
                     strcmp(job.state, "completed") == 0 ? "error" : "creating");
            snprintf(v->owner, sizeof v->owner, "%s", http_capture(r, 0));
            v->created_at = v->updated_at = job.created_at;
        }
        core_job_free(&job);
        if (adopting)
            return 0;
    }
    return st_fail(e, ST_NOT_FOUND, "Volume %.64s could not be found.", id);
}

static void show_volume(struct http_req *r)
{
    int minor;
    struct vol v;
    struct st_err e;
    if (microversion(r, &minor))
        return;
    if (find_volume(r, http_capture(r, 1), &v, &e)) {
        http_reply_error(r, &e);
        return;
    }
    http_reply_json(r, 200, json_pack("{s:o}", "volume", volume_json(r, &v, minor)));
    vol_free(&v);
}

struct listing {
    struct http_req *r;
    json_t *arr;
    int minor, detail;
};

static void list_one(void *ud, const struct core_image *im, const char *storage)
{
    struct listing *l = ud;
    struct vol v;
    vol_from_image(l->r, im, storage, &v);
    json_t *j = volume_json(l->r, &v, l->minor);
    vol_free(&v);
    if (!l->detail && j) {
        json_t *brief = json_pack("{s:O, s:O, s:O}", "id", json_object_get(j, "id"), "name",
                                  json_object_get(j, "name"), "links", json_object_get(j, "links"));
        json_decref(j);
        j = brief;
    }
    json_array_append_new(l->arr, j);
}

static void list_volumes_as(struct http_req *r, int detail)
{
    struct listing l = {r, json_array(), 0, detail};
    struct st_err e;
    if (microversion(r, &l.minor))
        goto out;
    if (each_image(r, list_one, &l, &e)) {
        http_reply_error(r, &e);
        goto out;
    }
    http_reply_json(r, 200, json_pack("{s:O}", "volumes", l.arr));
out:
    json_decref(l.arr);
}

static void list_volumes(struct http_req *r)
{
    list_volumes_as(r, 0);
}

static void list_volumes_detail(struct http_req *r)
{
    list_volumes_as(r, 1);
}

/* ---- manage (adopt) ---- */

static int opt_string(json_t *obj, const char *key, size_t max, const char **out, struct st_err *e)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return st_fail_field(e, ST_INVALID, key,
                             "Invalid input for field/attribute %s. Value: must be a string.", key);
    if (json_string_length(v) > max)
        return st_fail_field(e, ST_INVALID, key,
                             "Invalid input for field/attribute %s. Value: is too long.", key);
    *out = json_string_value(v);
    return 0;
}

/* Which of the host's volumes holds object (each is asked for that one name only). */
static int locate(struct http_req *r, const struct hostref *h, const char *object,
                  const char *reftext, struct entry *out, struct st_err *e)
{
    size_t hits = 0;
    for (size_t i = 0; i < h->n; i++) {
        struct core_unmanaged u;
        if (core_unmanaged_get(http_st(r), h->vols[i], object, &u, e)) {
            if (e->code == ST_NOT_FOUND)
                continue;
            return -1;
        }
        if (!hits++) {
            out->u = u;
            snprintf(out->volume, sizeof out->volume, "%s", h->vols[i]);
            out->gib = (u.virtual_size + GIB - 1) / GIB;
        }
    }
    if (hits == 1)
        return 0;
    return st_fail(e, ST_INVALID,
                   "Manage existing volume failed due to invalid backend reference %.300s: %s",
                   reftext,
                   hits ? "it is on several volumes of this host; name one as host#volume"
                        : "no such object outside the catalogue");
}

/* Cinder's boolean words (parameter_types.boolean). */
static int parse_bool(json_t *v, int *out)
{
    static const char *const yes[] = {"True", "TRUE", "true", "1", "ON", "On", "on",
                                      "YES",  "Yes",  "yes",  "y", "t",  NULL};
    static const char *const no[] = {"False", "FALSE", "false", "0", "OFF", "Off", "off",
                                     "NO",    "No",    "no",    "n", "f",   NULL};
    if (!v || json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    const char *s = json_string_value(v);
    for (int i = 0; s && yes[i]; i++)
        if (strcmp(s, yes[i]) == 0)
            return *out = 1, 0;
    for (int i = 0; s && no[i]; i++)
        if (strcmp(s, no[i]) == 0)
            return *out = 0, 0;
    return -1;
}

/* A metadata key as Cinder's schema has it: 1 to 255 of [a-zA-Z0-9-_:. /]. */
static int metadata_key_ok(const char *k)
{
    size_t n = strlen(k);
    return n >= 1 && n <= 255 &&
           k[strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:. /")] ==
               '\0';
}

/* What manage keeps beside the image and `cinder show` prints: metadata, bootable,
 * volume_type and availability_zone, checked as Cinder's request schema checks them. */
static int kept_properties(json_t *vol, json_t **out, struct st_err *e)
{
    const char *type, *zone, *key;
    json_t *meta = json_object_get(vol, "metadata"), *value;
    int bootable;

    *out = NULL;
    if (opt_string(vol, "volume_type", 255, &type, e) ||
        opt_string(vol, "availability_zone", 255, &zone, e))
        return -1;
    if (parse_bool(json_object_get(vol, "bootable"), &bootable))
        return st_fail_field(e, ST_INVALID, "bootable",
                             "Invalid input for field/attribute bootable. Value: must be a "
                             "boolean or one of true, false, yes, no, on, off, 1, 0, t, f, y, n.");
    if (meta && !json_is_null(meta)) {
        if (!json_is_object(meta))
            return st_fail_field(e, ST_INVALID, "metadata",
                                 "Invalid input for field/attribute metadata. Value: must be an "
                                 "object.");
        json_object_foreach(meta, key, value)
        {
            if (!metadata_key_ok(key) || !json_is_string(value) ||
                json_string_length(value) > 255 ||
                strlen(json_string_value(value)) != json_string_length(value))
                return st_fail_field(e, ST_INVALID, "metadata",
                                     "Invalid input for field/attribute metadata. Value: keys "
                                     "are 1 to 255 of [a-zA-Z0-9-_:. /], values strings of up "
                                     "to 255.");
        }
    }
    if (!(*out = json_object()))
        return st_fail(e, ST_INTERNAL, "out of memory");
    json_object_set_new(*out, "bootable", json_boolean(bootable));
    if (json_is_object(meta) && json_object_size(meta))
        json_object_set(*out, "metadata", meta);
    if (type && *type)
        json_object_set_new(*out, "volume_type", json_string(type));
    if (zone && *zone)
        json_object_set_new(*out, "availability_zone", json_string(zone));
    return 0;
}

/* The host (or cluster, from 3.16) a manage names; -1 with e set otherwise. */
static int manage_host(json_t *vol, int minor, const char **host, struct st_err *e)
{
    const char *cluster;
    if (opt_string(vol, "host", 255, host, e) || opt_string(vol, "cluster", 255, &cluster, e))
        return -1;
    if (minor < MANAGE_CLUSTER_MINOR)
        cluster = NULL;
    int has_host = *host && **host, has_cluster = cluster && *cluster;
    if (has_host == has_cluster)
        return st_fail(e, ST_INVALID, "Invalid input received: %s",
                       minor >= MANAGE_CLUSTER_MINOR
                           ? "One and only one of cluster and host must be set."
                           : "Host field is missing.");
    if (has_cluster) /* stowage runs no clusters of its own */
        return st_fail(e, ST_INVALID, "Cluster '%.200s' not found", cluster);
    return 0;
}

/* The object a reference names ({"source-name": NAME}, nothing else), and the reference
 * as Cinder prints a dict in its messages. */
static const char *ref_object(json_t *ref, char *text, size_t len)
{
    const char *object = json_string_value(json_object_get(ref, "source-name"));
    if (object && json_object_size(ref) == 1) {
        snprintf(text, len, "{'source-name': '%.280s'}", object);
        return object;
    }
    char *dumped = json_dumps(ref, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(text, len, "%s", dumped ? dumped : "{}");
    free(dumped);
    return NULL;
}

static void manage(struct http_req *r)
{
    struct st_err e;
    struct hostref h = {0};
    struct entry found;
    const char *host, *name, *description, *object;
    char reftext[320], id[37], *props_text = NULL;
    int minor;
    json_t *body = http_json(r), *vol = json_object_get(body, "volume"), *props = NULL;

    if (microversion(r, &minor))
        return;
    if (!json_is_object(vol)) {
        fail(r, ST_INVALID, "Invalid input for field/attribute volume. Value: %s",
             "'volume' is a required property");
        return;
    }
    json_t *ref = json_object_get(vol, "ref");
    if (!json_is_object(ref)) {
        fail(r, ST_INVALID, "Invalid input for field/attribute ref. Value: %s",
             "'ref' is a required property (an object)");
        return;
    }
    if (opt_string(vol, "name", 255, &name, &e) ||
        opt_string(vol, "description", DESCRIPTION_MAX, &description, &e) ||
        kept_properties(vol, &props, &e) || manage_host(vol, minor, &host, &e))
        goto fail;
    if (!(object = ref_object(ref, reftext, sizeof reftext))) {
        st_fail(&e, ST_INVALID,
                "Manage existing volume failed due to invalid backend reference %s: the "
                "reference must be {\"source-name\": NAME}",
                reftext);
        goto fail;
    }
    if (parse_host(r, host, &h, &e))
        goto fail;
    int rc = locate(r, &h, object, reftext, &found, &e);
    free(h.vols);
    if (rc)
        goto fail;
    if (found.u.managed_uuid[0]) {
        st_fail(&e, ST_INVALID,
                "Manage existing volume failed due to invalid backend reference %s: already "
                "managed",
                reftext);
        goto fail;
    }
    struct core_op_params p = {0};
    p.object = object;
    p.volume = found.volume;
    p.name = name && *name ? name : NULL;
    p.owner = http_capture(r, 0);
    p.description = description && *description ? description : NULL;
    p.properties = props_text = json_dumps(props, JSON_COMPACT | JSON_SORT_KEYS);
    if (core_job_submit(http_st(r), CORE_OP_IMAGE_ADOPT, &p, http_principal(r), id, &e)) {
        if (strcmp(e.field, "object") == 0) {
            char why[sizeof e.msg];
            snprintf(why, sizeof why, "%s", e.msg);
            st_fail(&e, ST_INVALID,
                    "Manage existing volume failed due to invalid backend reference %.300s: %.400s",
                    reftext, why);
        }
        goto fail;
    }
    struct vol v = {0};
    snprintf(v.id, sizeof v.id, "%s", id);
    snprintf(v.name, sizeof v.name, "%s", p.name ? p.name : id);
    snprintf(v.status, sizeof v.status, "creating");
    snprintf(v.owner, sizeof v.owner, "%s", p.owner);
    snprintf(v.storage, sizeof v.storage, "%s", h.storage);
    snprintf(v.volume, sizeof v.volume, "%s", found.volume);
    snprintf(v.description, sizeof v.description, "%s", p.description ? p.description : "");
    v.props = props;
    v.gib = found.gib;
    v.created_at = v.updated_at = time(NULL);
    http_reply_json(r, 202, json_pack("{s:o}", "volume", volume_json(r, &v, minor)));
    goto out;
fail:
    http_reply_error(r, &e);
out:
    free(props_text);
    json_decref(props);
}

/* ---- unmanage and delete ---- */

/* Cinder's refusal of a volume it may not unmanage or delete: longer than an st_err
 * holds, so it is answered here. */
static const char invalid_volume[] =
    "Invalid volume: Volume status must be available or error or error_restoring or "
    "error_extending or error_managing and must not be migrating, attached, belong to a "
    "group, have snapshots, awaiting a transfer, or be disassociated from snapshots after "
    "volume transfer.";

/* The project's volume of the URL, available and without clones (a clone depends on it as
 * a snapshot would); -1 when it replied. */
static int own_active(struct http_req *r, struct vol *v)
{
    struct st_err e;
    int64_t clones = 0;
    if (find_volume(r, http_capture(r, 1), v, &e)) {
        http_reply_error(r, &e);
        return -1;
    }
    vol_free(v); /* only its identity is needed */
    if (strcmp(v->status, "available") == 0 &&
        core_image_clone_count(http_st(r), v->id, &clones, &e)) {
        http_reply_error(r, &e);
        return -1;
    }
    if (strcmp(v->status, "available") != 0 || clones > 0) {
        http_reply_json(
            r, 400,
            json_pack("{s:{s:i, s:s}}", "badRequest", "code", 400, "message", invalid_volume));
        return -1;
    }
    return 0;
}

static void submit_on(struct http_req *r, enum core_op op, const struct vol *v)
{
    struct core_op_params p = {0};
    struct st_err e;
    char id[37];
    p.name = v->name;
    p.volume = v->volume;
    if (core_job_submit(http_st(r), op, &p, http_principal(r), id, &e)) {
        http_reply_error(r, &e);
        return;
    }
    http_reply_bytes(r, 202, "application/json", "", 0);
}

static void volume_action(struct http_req *r)
{
    int minor;
    struct vol v;
    json_t *body = http_json(r);
    const char *action = NULL;
    json_t *value;

    if (microversion(r, &minor))
        return;
    if (!json_is_object(body) || json_object_size(body) != 1) {
        fail(r, ST_INVALID, "Malformed request body%s", "");
        return;
    }
    json_object_foreach(body, action, value) break;
    (void)value;
    if (strcmp(action, "os-unmanage") != 0) {
        fail(r, ST_INVALID, "There is no such action: %.64s", action);
        return;
    }
    if (own_active(r, &v))
        return;
    submit_on(r, CORE_OP_IMAGE_UNMANAGE, &v);
}

static void delete_volume(struct http_req *r)
{
    int minor;
    struct vol v;
    if (microversion(r, &minor))
        return;
    if (own_active(r, &v))
        return;
    submit_on(r, CORE_OP_IMAGE_DELETE, &v);
}

static const struct http_route routes[] = {
    {"GET", "/", HTTP_BODY_NONE, ROLE_NONE, versions},
    {"GET", "/v3", HTTP_BODY_NONE, ROLE_NONE, version_v3},
    {"GET", "/v3/{project}/manageable_volumes", HTTP_BODY_NONE, ROLE_ADMIN, manageable_index},
    {"GET", "/v3/{project}/manageable_volumes/detail", HTTP_BODY_NONE, ROLE_ADMIN,
     manageable_detail},
    {"POST", "/v3/{project}/manageable_volumes", HTTP_BODY_JSON, ROLE_ADMIN, manage},
    {"GET", "/v3/{project}/os-volume-manage", HTTP_BODY_NONE, ROLE_ADMIN, legacy_index},
    {"GET", "/v3/{project}/os-volume-manage/detail", HTTP_BODY_NONE, ROLE_ADMIN, legacy_detail},
    {"POST", "/v3/{project}/os-volume-manage", HTTP_BODY_JSON, ROLE_ADMIN, manage},
    {"GET", "/v3/{project}/manageable_snapshots", HTTP_BODY_NONE, ROLE_ADMIN, manageable_snapshots},
    {"GET", "/v3/{project}/manageable_snapshots/detail", HTTP_BODY_NONE, ROLE_ADMIN,
     manageable_snapshots},
    {"GET", "/v3/{project}/volumes", HTTP_BODY_NONE, ROLE_READER, list_volumes},
    {"GET", "/v3/{project}/volumes/detail", HTTP_BODY_NONE, ROLE_READER, list_volumes_detail},
    {"GET", "/v3/{project}/volumes/{id}", HTTP_BODY_NONE, ROLE_READER, show_volume},
    {"DELETE", "/v3/{project}/volumes/{id}", HTTP_BODY_NONE, ROLE_ADMIN, delete_volume},
    {"POST", "/v3/{project}/volumes/{id}/action", HTTP_BODY_JSON, ROLE_ADMIN, volume_action},
    {NULL, NULL, 0, 0, NULL},
};

static const char *const prefixes[] = {"/v3", NULL};

const struct http_dialect api_cinder = {
    .name = "cinder",
    .prefixes = prefixes,
    .routes = routes,
    .error_body = cinder_error,
};
