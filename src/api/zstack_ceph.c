/* zstack_ceph.c — ZStack's Ceph backup storages: AddCephBackupStorage, their queries,
 * and the Ceph fields of their inventories (CephBackupStorageInventory).
 *
 * A mon URL is read as ZStack's MonUri reads it ("user:password@host[:sshPort]/?monPort=N",
 * the last '@' ends the user part, only monPort may be asked). stowage does not ssh: the
 * user and the password are the cephx user and its key (percent-encoded); an empty
 * password means the config's ceph_keyring holds the key. The key goes to core once and
 * is never shown: CephBackupStorageMonInventory's sshPassword is left out. */
#include "zstack_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API "/zstack/v1"
#define MON_URL_FORMAT "sshUsername:sshPassword@hostname:[sshPort]/?[monPort=]"
#define MAX_MONS 16

/* ---- mon URLs ---- */

struct mon_url {
    char user[128];
    char key[256];
    char host[256];
    int64_t ssh_port, mon_port;
};

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode n bytes of s into out ('+' stays '+': a key is base64). */
static int decode(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int a = i + 2 < n ? hexval(s[i + 1]) : -1, b = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (a < 0 || b < 0 || (c = a * 16 + b) == 0)
                return -1;
            i += 2;
        }
        if (o + 1 >= len)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

static int number(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The URL as a message names it: the password (a cephx key) masked. */
static const char *shown(const char *url, char *out, size_t len)
{
    const char *at = strrchr(url, '@'), *colon = at ? memchr(url, ':', (size_t)(at - url)) : NULL;
    if (!colon || colon + 1 == at)
        return url;
    snprintf(out, len, "%.*s:***%.400s", (int)(colon - url > 128 ? 128 : colon - url), url, at);
    return out;
}

static int bad(struct st_err *e, const char *url, const char *what)
{
    char masked[600];
    return st_fail_field(e, ST_INVALID, "monUrls",
                         "invalid monUrl[%.512s], %s. A valid monUrl is in format of %s",
                         shown(url, masked, sizeof masked), what, MON_URL_FORMAT);
}

/* The query after '?': only monPort, an integer. */
static int mon_query(const char *url, const char *q, int64_t *mon_port, struct st_err *e)
{
    while (q && *q) {
        const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        size_t klen = (size_t)((eq ? eq : end) - q);
        char masked[600];
        if (klen && !(klen == 7 && strncmp(q, "monPort", 7) == 0))
            return st_fail_field(
                e, ST_INVALID, "monUrls", "invalid monUrl[%.512s], unknown parameter[%.*s]",
                shown(url, masked, sizeof masked), (int)(klen > 64 ? 64 : klen), q);
        if (klen && (!eq || number(eq + 1, (size_t)(end - eq - 1), mon_port) || *mon_port < 1 ||
                     *mon_port > 65535))
            return bad(e, url, "the monPort is not a port number");
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

static int host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0)
        return 0;
    return strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-:") == n;
}

/* MonUri: the last '@' ends "user:password"; then host[:sshPort][/path][?query]. */
static int parse_mon_url(const char *url, struct mon_url *m, struct st_err *e)
{
    const char *at = strrchr(url, '@'), *colon;
    memset(m, 0, sizeof *m);
    m->ssh_port = 22;
    m->mon_port = 6789;
    if (!at || !(colon = memchr(url, ':', (size_t)(at - url))))
        return bad(e, url, "the sshUsername:sshPassword part is invalid");
    char masked[600];
    if (colon == url)
        return st_fail_field(e, ST_INVALID, "monUrls",
                             "invalid monUrl[%.512s]. SSH username and password must be separated "
                             "by ':' and cannot be empty. A valid monUrl format is %s",
                             shown(url, masked, sizeof masked), MON_URL_FORMAT);
    if (decode(url, (size_t)(colon - url), m->user, sizeof m->user) ||
        decode(colon + 1, (size_t)(at - colon - 1), m->key, sizeof m->key))
        return bad(e, url, "the sshUsername:sshPassword part is not percent-encoded right");

    const char *rest = at + 1, *hend, *p;
    if (*rest == '[') { /* an IPv6 literal */
        const char *close = strchr(rest, ']');
        if (!close)
            return bad(e, url, "hostname cannot be null");
        snprintf(m->host, sizeof m->host, "%.*s", (int)(close - rest - 1), rest + 1);
        hend = close + 1;
    } else {
        hend = rest + strcspn(rest, ":/?#");
        snprintf(m->host, sizeof m->host, "%.*s", (int)(hend - rest), rest);
    }
    if (!host_ok(m->host) || (rest[0] != '[' && strchr(m->host, ':')))
        return bad(e, url, "hostname cannot be null");
    p = hend;
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/?#");
        if (n && number(p + 1, n, &m->ssh_port))
            return bad(e, url, "the ssh port is not a number");
        if (n && (m->ssh_port < 1 || m->ssh_port > 65535))
            return bad(e, url, "the ssh port is greater than 65535 or smaller than 1");
        p += 1 + n;
    }
    if (*p == '/')
        p += strcspn(p, "?#");
    if (*p == '#' || (*p && *p != '?'))
        return bad(e, url, "the part after the hostname is invalid");
    return *p == '?' ? mon_query(url, p + 1, &m->mon_port, e) : 0;
}

/* ---- AddCephBackupStorage ---- */

static void add_ceph(struct http_req *r)
{
    struct st_principal who;
    struct core_ceph_add rq = {0};
    struct core_ceph_mon_req mons[MAX_MONS];
    struct mon_url *urls = NULL;
    char id[33], got[37];
    struct st_err e;
    json_t *b, *list;

    if (zs_authorize(r, &who) || !(b = zs_body_part(r, "params")))
        return;
    if (http_json_string(b, "name", 1, 255, &rq.name, &e) ||
        http_json_string(b, "description", 0, 2048, &rq.description, &e) ||
        http_json_string(b, "url", 0, 2048, &rq.url, &e) ||
        http_json_string(b, "poolName", 0, 255, &rq.pool, &e) ||
        http_json_string(b, "resourceUuid", 0, 64, &rq.uuid, &e) ||
        zs_check_uuid("resourceUuid", rq.uuid, &e))
        goto fail;
    list = json_object_get(b, "monUrls");
    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > MAX_MONS) {
        st_fail_field(&e, ST_INVALID, "monUrls", "monUrls must be a list of 1 to %d mon URLs",
                      MAX_MONS);
        goto fail;
    }
    if (!(urls = calloc(json_array_size(list), sizeof *urls))) {
        st_fail(&e, ST_INTERNAL, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *u = json_string_value(json_array_get(list, i));
        if (!u) {
            st_fail_field(&e, ST_INVALID, "monUrls", "monUrls must be strings");
            goto fail;
        }
        if (parse_mon_url(u, &urls[i], &e))
            goto fail;
        mons[i] = (struct core_ceph_mon_req){urls[i].host, urls[i].mon_port, urls[i].ssh_port,
                                             urls[i].user, urls[i].key};
    }
    rq.mons = mons;
    rq.n_mons = json_array_size(list);
    if (zs_job_id(r, id))
        goto out;
    int rc = core_backup_ceph_submit(http_st(r), &rq, &who, id, got, &e);
    zs_submitted(r, rc, id, got, &e);
    goto out;
fail:
    zs_fail(r, &e);
out:
    if (urls)
        memset(urls, 0, json_array_size(json_object_get(b, "monUrls")) * sizeof *urls);
    free(urls);
}

/* ---- inventories ---- */

static json_t *mon_inventory(const char *bs, const struct core_ceph_mon *m)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:o, s:o}", "monUuid", m->uuid,
                     "backupStorageUuid", bs, "hostname", m->hostname, "monAddr", m->mon_addr,
                     "monPort", (json_int_t)m->mon_port, "sshPort", (json_int_t)m->ssh_port,
                     "sshUsername", m->username, "status", m->status, "createDate",
                     zs_date_json(m->created_at), "lastOpDate", zs_date_json(m->last_op_at));
}

void zs_ceph_fields(struct stowage *st, const struct core_backup *b, json_t *inv)
{
    struct core_ceph_view v;
    struct st_err e;
    /* A Ceph backup storage has no host of its own: its mons have. */
    json_object_del(inv, "hostname");
    json_object_del(inv, "username");
    json_object_del(inv, "sshPort");
    if (core_backup_ceph(st, b->uuid, &v, &e))
        return;
    json_t *mons = json_array();
    for (size_t i = 0; mons && i < v.n_mons; i++)
        json_array_append_new(mons, mon_inventory(b->uuid, &v.mons[i]));
    json_object_set_new(inv, "mons", mons ? mons : json_array());
    json_object_set_new(inv, "fsid", json_string(v.fsid));
    json_object_set_new(inv, "poolName", json_string(v.pool));
    json_object_set_new(inv, "poolAvailableCapacity", json_integer((json_int_t)v.pool_avail));
    json_object_set_new(inv, "poolUsedCapacity", json_integer((json_int_t)v.pool_used));
    json_object_set_new(inv, "poolReplicatedSize", json_integer((json_int_t)v.replicas));
    /* ZStack rounds it to 3 places (format(1 / replicatedSize, 3)). */
    json_object_set_new(inv, "poolDiskUtilization",
                        json_real((double)(int64_t)(v.utilization * 1000 + 0.5) / 1000));
    json_object_set_new(inv, "poolSecurityPolicy", json_string(v.policy));
    core_ceph_view_free(&v);
}

static void query_ceph(struct http_req *r)
{
    zs_query_bs(r, TYPE_CEPH, NULL);
}

static void get_ceph(struct http_req *r)
{
    zs_query_bs(r, TYPE_CEPH, http_capture(r, 0));
}

static const char *const prefixes[] = {API "/backup-storage/ceph", NULL};

static const struct http_route routes[] = {
    {"GET", API "/backup-storage/ceph", HTTP_BODY_NONE, ROLE_NONE, query_ceph},
    {"POST", API "/backup-storage/ceph", HTTP_BODY_JSON, ROLE_NONE, add_ceph},
    {"GET", API "/backup-storage/ceph/{uuid}", HTTP_BODY_NONE, ROLE_NONE, get_ceph},
    {NULL, NULL, 0, 0, NULL},
};

const struct http_dialect api_zstack_ceph = {
    .name = "zstack",
    .prefixes = prefixes,
    .routes = routes,
    .error_body = zs_error,
};
