/* zstack.c — the ZStack dialect: sessions, asynchronous api-jobs, the query language,
 * and image-store backup storages, as ZStack's REST server and its SDK speak them.
 *
 * Every call that changes something is a core job whose id is the api-job's id (the
 * client's X-Job-UUID when it sends one): the call answers 202 with the job's location
 * and the SDK polls it. Queries are parsed once here into a neutral struct st_query
 * (ZStack field names mapped to neutral ones per resource) and run by core and db/.
 * The REST server's own refusals (headers, query syntax, paths) are plain text, as
 * ZStack's RestServer sends them; failures of an API are ErrorCodes from ZStack's
 * catalogue. docs/zstack.md lists the choices. */
#include "zstack_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define API ZS_API
#define INV_IMAGE_STORE "org.zstack.header.storage.backup.ImageStoreBackupStorageInventory"
#define INV_SESSION "org.zstack.header.identity.SessionInventory"
#define TYPE_IMAGE_STORE "ImageStoreBackupStorage"
#define INV_CEPH "org.zstack.storage.ceph.backup.CephBackupStorageInventory"

/* ---- replies ---- */

void zs_plain(struct http_req *r, unsigned status, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    http_reply_bytes(r, status, "text/plain; charset=utf-8", buf,
                     (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* ZStack's catalogue (conf/errorCodes/sys.xml, identity.xml) for core's codes. */
static void code_of(enum st_code c, const char **code, const char **desc)
{
    switch (c) {
    case ST_INVALID:
    case ST_TOO_LARGE:
        *code = "SYS.1007", *desc = "One or more API argument is invalid";
        break;
    case ST_NOT_FOUND:
        *code = "SYS.1003", *desc = "A resource can not be found";
        break;
    case ST_UNAUTHORIZED:
        *code = "ID.1001",
        *desc = "The session is invalid, either wrong session id or the session has been expired";
        break;
    case ST_FORBIDDEN:
        *code = "ID.1002", *desc = "The user doesn't have permission to perform the operation";
        break;
    case ST_INTERNAL:
        *code = "SYS.1000", *desc = "An internal error happened in system";
        break;
    default:
        *code = "SYS.1006", *desc = "An operation failed";
    }
}

static json_t *error_code(const char *code, const char *desc, const char *details)
{
    return json_pack("{s:s, s:s, s:s}", "code", code, "description", desc, "details", details);
}

/* An API's failure: 503 {"error": ErrorCode}. */
void zs_fail(struct http_req *r, const struct st_err *e)
{
    const char *code, *desc;
    code_of(e->code, &code, &desc);
    http_reply_json(r, 503, json_pack("{s:o}", "error", error_code(code, desc, e->msg)));
}

/* What the HTTP layer refuses before a handler runs: plain text, as the RestServer. */
json_t *zs_error(const struct st_err *e, unsigned *status)
{
    static const char prefix[] = "no route for ";
    *status = http_status_of(e->code);
    if (e->code == ST_NOT_FOUND && strncmp(e->msg, prefix, sizeof prefix - 1) == 0) {
        const char *path = strchr(e->msg + sizeof prefix - 1, ' ');
        char msg[300];
        snprintf(msg, sizeof msg, "no api mapping to %s", path ? path + 1 : "");
        return json_string(msg);
    }
    if (e->code == ST_INVALID)
        *status = 400;
    return json_string(e->msg);
}

/* ZStack's dates: "Nov 14, 2017 10:20:57 PM" (java.text.DateFormat's default), in UTC. */
static void zs_date(int64_t t, char *out, size_t len)
{
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    int h = tm.tm_hour % 12;
    snprintf(out, len, "%s %d, %d %d:%02d:%02d %s", mon[tm.tm_mon], tm.tm_mday, tm.tm_year + 1900,
             h ? h : 12, tm.tm_min, tm.tm_sec, tm.tm_hour < 12 ? "AM" : "PM");
}

json_t *zs_date_json(int64_t t)
{
    char d[48];
    zs_date(t, d, sizeof d);
    return json_string(d);
}

int zs_is_uuid32(const char *s)
{
    if (!s || strlen(s) != 32)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

int zs_check_uuid(const char *field, const char *uuid, struct st_err *e)
{
    if (!uuid || zs_is_uuid32(uuid))
        return 0;
    return st_fail_field(e, ST_INVALID, field, "%s must be a UUID of 32 hex digits without '-'",
                         field);
}

/* ---- sessions ---- */

/* The session of an API call: 0, or replied (-1). */
int zs_authorize(struct http_req *r, struct st_principal *who)
{
    const char *auth = http_header(r, "Authorization");
    struct st_err e;
    if (!auth) {
        zs_plain(r, 400, "missing header 'Authorization'");
        return -1;
    }
    while (*auth == ' ')
        auth++;
    if (strncmp(auth, "OAuth", 5) != 0) {
        zs_plain(r, 400, "Authorization type must be 'OAuth'");
        return -1;
    }
    auth += 5;
    while (*auth == ' ')
        auth++;
    if (core_authenticate(http_st(r), auth, who, &e)) {
        e.code = ST_UNAUTHORIZED; /* ID.1001 for an unknown or expired session alike */
        zs_fail(r, &e);
        return -1;
    }
    return 0;
}

static void login_reply(struct http_req *r, const struct core_login_result *res)
{
    if (!res->ok) {
        const char *details =
            res->err.code == ST_UNAUTHORIZED ? "wrong account name or password" : res->err.msg;
        http_reply_json(r, 503,
                        json_pack("{s:o}", "error",
                                  error_code("ID.1000", "Unable to authenticate a user", details)));
        return;
    }
    int64_t now = time(NULL);
    json_t *inv = json_pack("{s:s, s:s, s:s, s:o, s:o}", "uuid", res->session, "accountUuid",
                            res->who.owner, "userUuid", res->who.owner, "expiredDate",
                            zs_date_json(now + core_config(http_st(r))->session_ttl_s),
                            "createDate", zs_date_json(now));
    http_reply_json(
        r, 200, json_pack("{s:o, s:{s:s}}", "inventory", inv, "schema", "inventory", INV_SESSION));
}

static void login(struct http_req *r)
{
    json_t *body = json_object_get(http_json(r), "logInByAccount");
    const char *name, *password;
    struct st_err e;
    if (!json_is_object(body)) {
        zs_no_action(r);
        return;
    }
    if (http_json_string(body, "accountName", 1, 64, &name, &e) ||
        http_json_string(body, "password", 1, 128, &password, &e)) {
        zs_fail(r, &e);
        return;
    }
    api_login_sha512(r, name, password, login_reply);
}

static void logout(struct http_req *r)
{
    struct st_err e;
    /* ZStack answers a logout of an unknown session as a success too. */
    core_session_end(http_st(r), http_capture(r, 0), &e);
    http_reply_json(r, 200, json_object());
}

/* ---- api-jobs ---- */

/* The job id of a call: the client's X-Job-UUID, else a new one. 0, or replied. */
int zs_job_id(struct http_req *r, char id[33])
{
    const char *h = http_header(r, "X-Job-UUID");
    struct core_job j;
    struct st_err e;
    if (h) {
        char low[33];
        size_t len = strlen(h);
        for (size_t i = 0; i < len && i < 32; i++)
            low[i] = (char)(h[i] >= 'A' && h[i] <= 'F' ? h[i] - 'A' + 'a' : h[i]);
        low[len < 32 ? len : 32] = '\0';
        if (len != 32 || !zs_is_uuid32(low)) {
            zs_plain(r, 400, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped");
            return -1;
        }
        if (core_job_get(http_st(r), low, &j, &e) == 0) {
            core_job_free(&j);
            zs_plain(r, 400, "Duplicate job uuid[%s]", h);
            return -1;
        }
        memcpy(id, low, 33);
        return 0;
    }
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        st_fail(&e, ST_INTERNAL, "no randomness for a job id");
        zs_fail(r, &e);
        return -1;
    }
    for (int i = 0; i < 16; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    return 0;
}

void zs_submitted(struct http_req *r, int rc, const char *id, const char *got,
                  const struct st_err *e)
{
    char loc[512];
    const char *host = http_header(r, "Host");
    if (rc) {
        if (e->code == ST_EXISTS && strcmp(e->field, "uuid") != 0 && !e->field[0])
            zs_plain(r, 400, "Duplicate job uuid[%s]", id);
        else
            zs_fail(r, e);
        return;
    }
    snprintf(loc, sizeof loc, "http://%.256s" API "/api-jobs/%s", host ? host : "127.0.0.1", got);
    http_reply_json(r, 202,
                    json_pack("{s:s, s:I}", "location", loc, "apiTimeout",
                              (json_int_t)core_config(http_st(r))->api_sync_timeout * 1000));
}

/* Queue op as the api-job and answer 202 with its location. */
void zs_submit(struct http_req *r, const struct st_principal *who, enum core_op op,
               const struct core_op_params *p)
{
    char id[33], got[37];
    struct st_err e;
    if (zs_job_id(r, id))
        return;
    int rc = core_job_submit_as(http_st(r), op, p, who, id, got, &e);
    zs_submitted(r, rc, id, got, &e);
}

void zs_submit_checked(struct http_req *r, const struct st_principal *who, enum core_op op,
                       const struct core_op_params *p, int rc, const struct st_err *e)
{
    if (rc)
        zs_fail(r, e);
    else
        zs_submit(r, who, op, p);
}

const char *zs_bs_schema(const struct core_backup *b)
{
    return strcmp(b->type, TYPE_CEPH) == 0 ? INV_CEPH : INV_IMAGE_STORE;
}

json_t *zs_bs_inventory(struct stowage *st, const struct core_backup *b)
{
    json_t *zones = json_array(), *inv;
    for (size_t i = 0; zones && i < b->n_zones; i++)
        json_array_append_new(zones, json_string(b->zones[i]));
    inv = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:o, s:o, s:o}",
                    "uuid", b->uuid, "name", b->name, "url", b->url, "hostname", b->hostname,
                    "username", b->username, "sshPort", (json_int_t)b->ssh_port, "totalCapacity",
                    (json_int_t)b->total, "availableCapacity", (json_int_t)b->available, "type",
                    b->type, "state", b->state, "status", b->status, "createDate",
                    zs_date_json(b->created_at), "lastOpDate", zs_date_json(b->last_op_at),
                    "attachedZoneUuids", zones);
    if (inv && b->description[0]) /* ZStack's null description is omitted */
        json_object_set_new(inv, "description", json_string(b->description));
    if (inv && strcmp(b->type, TYPE_CEPH) == 0)
        zs_ceph_fields(st, b, inv);
    return inv;
}

static void job_result(struct http_req *r, const struct core_job *j)
{
    const char *bs = json_string_value(json_object_get(j->outcome, "backup_storage"));
    struct core_backup b;
    struct st_err e;
    if (json_object_get(j->outcome, "zone")) {
        zs_zone_result(r, json_string_value(json_object_get(j->outcome, "zone")));
        return;
    }
    if (json_object_get(j->outcome, "backup_image")) {
        zs_image_result(r, j->outcome);
        return;
    }
    if (!bs) {
        http_reply_json(r, 200, json_object());
        return;
    }
    if (core_backup_get(http_st(r), bs, &b, &e)) {
        zs_fail(r, &e);
        return;
    }
    http_reply_json(r, 200,
                    json_pack("{s:o, s:{s:s}}", "inventory", zs_bs_inventory(http_st(r), &b),
                              "schema", "inventory", zs_bs_schema(&b)));
    free(b.zones);
}

static void api_job(struct http_req *r)
{
    struct core_job j;
    struct st_err e;
    const char *id = http_capture(r, 0);
    if (core_job_get(http_st(r), id, &j, &e)) {
        zs_plain(r, 404, "the job has been expired");
        return;
    }
    int64_t expiry = core_config(http_st(r))->api_job_expiry_s;
    if (strcmp(j.state, "completed") == 0 && j.finished_at + expiry < (int64_t)time(NULL)) {
        zs_plain(r, 404, "the job has been expired");
    } else if (strcmp(j.state, "completed") != 0) {
        http_reply_json(r, 202, json_object());
    } else if (strcmp(j.result, "success") == 0) {
        job_result(r, &j);
    } else {
        st_fail(&e, ST_CONFLICT, "%s", j.error);
        zs_fail(r, &e);
    }
    core_job_free(&j);
}

/* ---- queries ---- */

static const struct zs_field bs_fields[] = {
    {"uuid", "uuid"},
    {"name", "name"},
    {"description", "description"},
    {"url", "url"},
    {"hostname", "hostname"},
    {"username", "username"},
    {"sshPort", "ssh_port"},
    {"totalCapacity", "total"},
    {"availableCapacity", "available"},
    {"type", "type"},
    {"state", "state"},
    {"status", "status"},
    {"createDate", "created_at"},
    {"lastOpDate", "last_op_at"},
    {"fsid", "fsid"}, /* a Ceph backup storage's */
    {"poolName", "pool"},
    {NULL, NULL},
};

static const char *neutral_of(const struct zs_field *f, const char *zs)
{
    for (; f->zs; f++)
        if (strcmp(f->zs, zs) == 0)
            return f->neutral;
    return NULL;
}

/* Operators in ZStack's matching order: one contained in another comes after it. */
static const struct {
    const char *text;
    enum st_qop op;
} qops[] = {
    {"!=", ST_Q_NE},
    {">=", ST_Q_GE},
    {"<=", ST_Q_LE},
    {"!?=", ST_Q_NOT_IN},
    {"!~=", ST_Q_NOT_LIKE},
    {"~=", ST_Q_LIKE},
    {"?=", ST_Q_IN},
    {"=", ST_Q_EQ},
    {">", ST_Q_GT},
    {"<", ST_Q_LT},
    {"is null", ST_Q_IS_NULL},
    {"not null", ST_Q_NOT_NULL},
};
#define N_QOPS (sizeof qops / sizeof *qops)
#define OPS_LIST "[!=, >=, <=, !?=, !~=, ~=, ?=, =, >, <, is null, not null]"

static void refuse(struct zs_query *z, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct zs_query *z, const char *fmt, ...)
{
    if (z->bad[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(z->bad, sizeof z->bad, fmt, ap);
    va_end(ap);
}

static int integer(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end)
        return -1;
    *out = v;
    return 0;
}

static void trim_copy(char *out, size_t len, const char *s, size_t n)
{
    while (n && *s == ' ')
        s++, n--;
    while (n && s[n - 1] == ' ')
        n--;
    snprintf(out, len, "%.*s", (int)n, s);
}

static void add_cond(struct zs_query *z, const char *cond)
{
    size_t i = 0;
    const char *at = NULL;
    for (; i < N_QOPS; i++)
        if ((at = strstr(cond, qops[i].text)))
            break;
    if (i == N_QOPS) {
        refuse(z,
               "Invalid query parameter. The '%.200s' in the parameter[q] doesn't contain any "
               "query operator. Valid query operators are " OPS_LIST,
               cond);
        return;
    }
    if (z->q.n_conds == ST_QUERY_MAX_CONDS) {
        refuse(z, "Invalid query parameter. More than %d conditions", ST_QUERY_MAX_CONDS);
        return;
    }
    size_t k = z->q.n_conds;
    trim_copy(z->names[k], sizeof z->names[k], cond, (size_t)(at - cond));
    const char *neutral = neutral_of(z->allow, z->names[k]);
    if (!neutral) {
        refuse(z,
               "Invalid query parameter. The field[%.64s] in the parameter[q] is not a "
               "queryable field; valid fields are those of the inventory",
               z->names[k]);
        return;
    }
    struct st_cond *c = &z->q.conds[k];
    c->field = neutral;
    c->op = qops[i].op;
    if (c->op != ST_Q_IS_NULL && c->op != ST_Q_NOT_NULL) {
        /* ZStack keeps the value untrimmed: a space is valid in some conditions. */
        if (!(z->values[k] = strdup(at + strlen(qops[i].text)))) {
            refuse(z, "out of memory");
            return;
        }
        c->value = z->values[k];
    }
    z->q.n_conds++;
}

static void query_arg(void *ud, const char *k, const char *v)
{
    struct zs_query *z = ud;
    if (!v)
        v = "";
    if (strcmp(k, "limit") == 0) {
        if (integer(v, &z->q.limit))
            refuse(z, "Invalid query parameter. 'limit' must be an integer");
    } else if (strcmp(k, "start") == 0) {
        if (integer(v, &z->q.start))
            refuse(z, "Invalid query parameter. 'start' must be an integer");
    } else if (strcmp(k, "count") == 0) {
        z->count = strcasecmp(v, "true") == 0;
    } else if (strcmp(k, "replyWithCount") == 0) {
        z->with_count = strcasecmp(v, "true") == 0;
    } else if (strcmp(k, "sort") == 0) {
        z->q.sort_desc = v[0] == '-';
        trim_copy(z->sort, sizeof z->sort, v + (v[0] == '+' || v[0] == '-'),
                  strlen(v + (v[0] == '+' || v[0] == '-')));
        if (!(z->q.sort = neutral_of(z->allow, z->sort)))
            refuse(z,
                   "Invalid query parameter. The field[%.64s] in the parameter[sort] is not "
                   "a queryable field",
                   z->sort);
    } else if (strcmp(k, "q") == 0) {
        add_cond(z, v);
    } else if (strcmp(k, "fields") == 0) {
        free(z->fields);
        z->fields = strdup(v);
    }
    /* groupBy and unknown parameters are ignored, as the RestServer logs and ignores them */
}

void zs_query_free(struct zs_query *z)
{
    for (size_t i = 0; i < ST_QUERY_MAX_CONDS; i++)
        free(z->values[i]);
    free(z->fields);
}

/* Fields an inventory shows that queries cannot filter by. */
static int shown_only(const char *name)
{
    static const char *const names[] = {"attachedZoneUuids",     "mons",
                                        "poolAvailableCapacity", "poolUsedCapacity",
                                        "poolReplicatedSize",    "poolDiskUtilization",
                                        "poolSecurityPolicy"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* A field of this resource's inventory that queries cannot filter by (z->extra; without
 * it, those of the backup storages' inventories). */
static int is_extra(const struct zs_query *z, const char *name)
{
    if (!z->extra)
        return shown_only(name);
    for (const char *const *x = z->extra; *x; x++)
        if (strcmp(*x, name) == 0)
            return 1;
    return 0;
}

/* Keep only the asked fields of each inventory; 0, or -1 naming an unknown one in bad. */
static int pick_fields(struct zs_query *z, json_t *invs)
{
    size_t i;
    json_t *inv;
    if (!z->fields)
        return 0;
    char *list = strdup(z->fields), *save = NULL;
    json_t *keep = json_object();
    if (!list || !keep) {
        free(list);
        json_decref(keep);
        return -1;
    }
    for (char *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        char name[64];
        trim_copy(name, sizeof name, f, strlen(f));
        if (!neutral_of(z->allow, name) && !is_extra(z, name)) {
            refuse(z,
                   "Invalid query parameter. The field[%.64s] in the parameter[fields] is "
                   "not a field of the inventory",
                   name);
            free(list);
            json_decref(keep);
            return -1;
        }
        json_object_set_new(keep, name, json_true());
    }
    free(list);
    json_array_foreach(invs, i, inv)
    {
        const char *key;
        void *tmp;
        json_t *v;
        json_object_foreach_safe(inv, tmp, key, v)
        {
            if (!json_object_get(keep, key))
                json_object_del(inv, key);
        }
    }
    json_decref(keep);
    return 0;
}

int zs_query_begin(struct http_req *r, struct zs_query *z, const struct zs_field *allow,
                   const char *const *extra, const char *uuid)
{
    struct st_principal who;
    memset(z, 0, sizeof *z);
    if (zs_authorize(r, &who))
        return -1;
    z->allow = allow;
    z->extra = extra;
    z->q.limit = 1000;
    if (!uuid)
        http_query_each(r, query_arg, z);
    else
        z->q.conds[z->q.n_conds++] = (struct st_cond){"uuid", ST_Q_EQ, uuid};
    if (z->bad[0]) {
        zs_plain(r, 400, "%s", z->bad);
        zs_query_free(z);
        return -1;
    }
    return 0;
}

void zs_query_failed(struct http_req *r, const struct st_err *e)
{
    if (e->code == ST_INVALID)
        zs_plain(r, 400, "Invalid query parameter. %s", e->msg);
    else
        zs_fail(r, e);
}

void zs_schema_add(json_t *schema, size_t i, const char *inv_class)
{
    char key[48];
    snprintf(key, sizeof key, "inventories[%zu]", i);
    json_object_set_new(schema, key, json_string(inv_class));
}

void zs_query_reply(struct http_req *r, struct zs_query *z, json_t *invs, json_t *schema,
                    int64_t total)
{
    if (z->count) {
        json_decref(invs);
        json_decref(schema);
        http_reply_json(r, 200, json_pack("{s:I}", "total", (json_int_t)total));
        return;
    }
    if (pick_fields(z, invs)) {
        json_decref(invs);
        json_decref(schema);
        zs_plain(r, 400, "%s", z->bad);
        return;
    }
    json_t *reply = json_pack("{s:o, s:o}", "inventories", invs, "schema", schema);
    if (z->with_count)
        json_object_set_new(reply, "total", json_integer(total));
    http_reply_json(r, 200, reply);
}

/* GET a backup storage list: type (NULL: every kind) and uuid (NULL: a query). */
void zs_query_bs(struct http_req *r, const char *type, const char *uuid)
{
    struct zs_query z;
    struct core_backup *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    struct st_err e;

    if (zs_query_begin(r, &z, bs_fields, NULL, uuid))
        return;
    if (type && z.q.n_conds < ST_QUERY_MAX_CONDS)
        z.q.conds[z.q.n_conds++] = (struct st_cond){"type", ST_Q_EQ, type};
    if (core_backup_query(http_st(r), &z.q, z.count ? NULL : &v, &n, &total, &e)) {
        zs_query_failed(r, &e);
    } else {
        json_t *invs = json_array(), *schema = json_object();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(invs, zs_bs_inventory(http_st(r), &v[i]));
            zs_schema_add(schema, i, zs_bs_schema(&v[i]));
        }
        zs_query_reply(r, &z, invs, schema, total);
    }
    core_backups_free(v, n);
    zs_query_free(&z);
}

static void query_image_stores(struct http_req *r)
{
    zs_query_bs(r, TYPE_IMAGE_STORE, NULL);
}

static void get_image_store(struct http_req *r)
{
    zs_query_bs(r, TYPE_IMAGE_STORE, http_capture(r, 0));
}

static void query_all_bs(struct http_req *r)
{
    zs_query_bs(r, NULL, NULL);
}

static void get_bs(struct http_req *r)
{
    zs_query_bs(r, NULL, http_capture(r, 0));
}

/* A list parameter of a GET: repeated, or comma-separated, or both. */
struct uuid_list {
    const char *key;
    char *vals[ST_QUERY_MAX_CONDS];
    size_t n;
    int bad;
};

static void list_arg(void *ud, const char *k, const char *v)
{
    struct uuid_list *l = ud;
    char *copy, *save = NULL;
    if (strcmp(k, l->key) != 0 || !v || !(copy = strdup(v)))
        return;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (l->n == ST_QUERY_MAX_CONDS || !zs_is_uuid32(t))
            l->bad = 1;
        else if (!(l->vals[l->n] = strdup(t)))
            l->bad = 1;
        else
            l->n++;
    }
    free(copy);
}

static void list_free(struct uuid_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->vals[i]);
}

/* GET /backup-storage/capacities?zoneUuids=…&backupStorageUuids=…: the room of those
 * named (none named: of every backup storage, as all=true). */
static void capacities(struct http_req *r)
{
    struct st_principal who;
    struct uuid_list zones = {.key = "zoneUuids"}, bs = {.key = "backupStorageUuids"};
    uint64_t tot = 0, avail = 0;
    struct st_err e;
    if (zs_authorize(r, &who))
        return;
    http_query_each(r, list_arg, &zones);
    http_query_each(r, list_arg, &bs);
    if (zones.bad || bs.bad) {
        st_fail_field(&e, ST_INVALID, zones.bad ? "zoneUuids" : "backupStorageUuids",
                      "'%s' must be UUIDs of 32 hex digits without '-' (at most %d)",
                      zones.bad ? "zoneUuids" : "backupStorageUuids", ST_QUERY_MAX_CONDS);
        zs_fail(r, &e);
    } else if (core_backup_capacity(http_st(r), (const char *const *)zones.vals, zones.n,
                                    (const char *const *)bs.vals, bs.n, &tot, &avail, &e)) {
        zs_fail(r, &e);
    } else {
        http_reply_json(r, 200,
                        json_pack("{s:I, s:I}", "totalCapacity", (json_int_t)tot,
                                  "availableCapacity", (json_int_t)avail));
    }
    list_free(&zones);
    list_free(&bs);
}

/* ---- calls that change something ---- */

void zs_no_action(struct http_req *r)
{
    zs_plain(r, 400, "the body doesn't contain action mapping to the URL[%s]", http_path(r));
}

/* The "params" (or an action's) object of a body: replied (NULL) when it is not one. */
json_t *zs_body_part(struct http_req *r, const char *key)
{
    json_t *v = json_object_get(http_json(r), key);
    if (!json_is_object(v)) {
        zs_no_action(r);
        return NULL;
    }
    return v;
}

/* Read the strings and the port of a backup storage's params into p. */
static int bs_params(json_t *b, struct core_op_params *p, struct st_err *e)
{
    int64_t port = 0;
    if (http_json_string(b, "name", 0, 255, &p->name, e) ||
        http_json_string(b, "description", 0, 2048, &p->description, e) ||
        http_json_string(b, "hostname", 0, 255, &p->hostname, e) ||
        http_json_string(b, "username", 0, 255, &p->username, e))
        return -1;
    int rc = http_json_int(b, "sshPort", 0, 1, 65535, &port, e);
    if (rc < 0)
        return -1;
    if (rc == 0)
        p->port = port;
    return 0;
}

/* A field the body must hold (its read made it NULL when absent). */
static int required(const char *value, const char *field, struct st_err *e)
{
    return value ? 0 : st_fail_field(e, ST_INVALID, field, "'%s' is required", field);
}

static void add_image_store(struct http_req *r)
{
    struct st_principal who;
    struct core_op_params p = {0};
    struct st_err e;
    json_t *b;
    if (zs_authorize(r, &who) || !(b = zs_body_part(r, "params")))
        return;
    int rc = bs_params(b, &p, &e) || http_json_string(b, "url", 1, 4095, &p.url, &e) ||
             http_json_string(b, "resourceUuid", 0, 64, &p.uuid, &e) ||
             required(p.name, "name", &e) || required(p.hostname, "hostname", &e) ||
             zs_check_uuid("resourceUuid", p.uuid, &e);
    zs_submit_checked(r, &who, CORE_OP_BACKUP_CREATE, &p, rc, &e);
}

static void image_store_action(struct http_req *r)
{
    struct st_principal who;
    struct core_op_params p = {0};
    struct st_err e;
    json_t *body = http_json(r), *b;
    if (zs_authorize(r, &who))
        return;
    p.backup_storage = http_capture(r, 0);
    b = json_object_get(body, "updateImageStoreBackupStorage");
    if (json_is_object(b))
        zs_submit_checked(r, &who, CORE_OP_BACKUP_UPDATE, &p, bs_params(b, &p, &e), &e);
    else if (!b && json_is_object(json_object_get(body, "reconnectImageStoreBackupStorage")))
        zs_submit(r, &who, CORE_OP_BACKUP_RECONNECT, &p);
    else
        zs_no_action(r);
}

static void bs_action(struct http_req *r)
{
    struct st_principal who;
    struct core_op_params p = {0};
    struct st_err e;
    json_t *b;
    if (zs_authorize(r, &who))
        return;
    p.backup_storage = http_capture(r, 0);
    if (json_is_object(json_object_get(http_json(r), "reconnectBackupStorage"))) {
        zs_submit(r, &who, CORE_OP_BACKUP_RECONNECT, &p);
        return;
    }
    if (!(b = zs_body_part(r, "changeBackupStorageState")))
        return;
    int rc = http_json_string(b, "stateEvent", 1, 16, &p.state, &e);
    zs_submit_checked(r, &who, CORE_OP_BACKUP_STATE, &p, rc, &e);
}

static void delete_bs(struct http_req *r)
{
    struct st_principal who;
    struct core_op_params p = {0};
    const char *mode = http_query(r, "deleteMode");
    if (zs_authorize(r, &who))
        return;
    p.backup_storage = http_capture(r, 0);
    p.force = mode && strcmp(mode, "Enforcing") == 0 ? CORE_TRUE : CORE_UNSET;
    zs_submit(r, &who, CORE_OP_BACKUP_DELETE, &p);
}

/* ---- the dialect ---- */

static const char *const prefixes[] = {"/zstack", NULL};

static const struct http_route routes[] = {
    {"PUT", API "/accounts/login", HTTP_BODY_JSON, ROLE_NONE, login},
    {"DELETE", API "/accounts/sessions/{uuid}", HTTP_BODY_NONE, ROLE_NONE, logout},
    {"GET", API "/api-jobs/{uuid}", HTTP_BODY_NONE, ROLE_NONE, api_job},
    {"GET", API "/backup-storage/image-store", HTTP_BODY_NONE, ROLE_NONE, query_image_stores},
    {"POST", API "/backup-storage/image-store", HTTP_BODY_JSON, ROLE_NONE, add_image_store},
    {"GET", API "/backup-storage/image-store/{uuid}", HTTP_BODY_NONE, ROLE_NONE, get_image_store},
    {"PUT", API "/backup-storage/image-store/{uuid}/actions", HTTP_BODY_JSON, ROLE_NONE,
     image_store_action},
    {"GET", API "/backup-storage/capacities", HTTP_BODY_NONE, ROLE_NONE, capacities},
    {"GET", API "/backup-storage", HTTP_BODY_NONE, ROLE_NONE, query_all_bs},
    {"GET", API "/backup-storage/{uuid}", HTTP_BODY_NONE, ROLE_NONE, get_bs},
    {"PUT", API "/backup-storage/{uuid}/actions", HTTP_BODY_JSON, ROLE_NONE, bs_action},
    {"DELETE", API "/backup-storage/{uuid}", HTTP_BODY_NONE, ROLE_NONE, delete_bs},
    {"GET", API "/zones", HTTP_BODY_NONE, ROLE_NONE, zs_query_zones},
    {"POST", API "/zones", HTTP_BODY_JSON, ROLE_NONE, zs_create_zone},
    {"GET", API "/zones/{uuid}", HTTP_BODY_NONE, ROLE_NONE, zs_get_zone},
    {"DELETE", API "/zones/{uuid}", HTTP_BODY_NONE, ROLE_NONE, zs_delete_zone},
    {"PUT", API "/zones/{uuid}/actions", HTTP_BODY_JSON, ROLE_NONE, zs_zone_action},
    {"POST", API "/zones/{uuid}/backup-storage/{uuid}", HTTP_BODY_JSON, ROLE_NONE, zs_attach_bs},
    {"DELETE", API "/zones/{uuid}/backup-storage/{uuid}", HTTP_BODY_NONE, ROLE_NONE, zs_detach_bs},
    {NULL, NULL, 0, 0, NULL},
};

const struct http_dialect api_zstack = {
    .name = "zstack",
    .prefixes = prefixes,
    .routes = routes,
    .error_body = zs_error,
};
