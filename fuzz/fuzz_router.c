/* fuzz_router.c — libFuzzer harness for the request target, the route table and the
 * header checks of the HTTP layer.
 *
 * The input is a request head as lines: a method, a request target, then "Name: value"
 * headers. The target is split at '?' and %-decoded the way libmicrohttpd hands it to
 * the server (MHD_http_unescape), then matched by http_router_match over the real
 * tables of every dialect (api_dialects). An independent reference matcher, written
 * from router.c's header comment, must agree on the route, the captures, the 405 Allow
 * list and the dialect that answers; captures must lie inside the caller's buffer, be
 * non-empty single segments, never more than HTTP_MAX_CAPTURES; a matched route has
 * the given method. A second pass builds a path from a route the first byte picks,
 * filling its captures with the target's segments, and that route (or an earlier one
 * of the same method and shape) must match.
 *
 * The headers go through the server's own checks: server.c is included for its static
 * functions (the header scan, the request-id filter, the Authorization scheme parser,
 * the JSON media type test), and data.c's Content-Range and digest parsers run on them
 * with http_header answered from the input. Not reached: libmicrohttpd's own parsing of
 * the request line, headers and query string (http_query is a lookup into it). */

/* server.c's http_header asks libmicrohttpd; data.c's parsers get ours instead. */
#define http_header server_http_header
#include "../src/http/server.c"
#undef http_header

#include <stdint.h>

#include "../src/api/api_internal.h"

#define MAX_HEADERS 64
#define REF_MAX_SEGS 12 /* router.c's MAX_SEGS: more segments never match */
#define MAX_ROUTES 256

static struct {
    const char *name, *value;
} headers[MAX_HEADERS];
static size_t n_headers;

const char *http_header(struct http_req *r, const char *name);
const char *http_header(struct http_req *r, const char *name)
{
    (void)r;
    for (size_t i = 0; i < n_headers; i++)
        if (strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    return NULL;
}

static void fail(const char *why, const char *method, const char *path)
{
    fprintf(stderr, "fuzz_router: invariant broken: %s (method '%s', path '%s')\n", why,
            method ? method : "", path ? path : "");
    abort();
}

/* ---- the reference matcher ---- */

struct tok {
    const char *p;
    size_t len;
};

/* Segments of s: leading slashes skipped, one trailing slash optional; -1 for an empty
 * segment or too many. */
static int ref_split(const char *s, struct tok *t)
{
    int n = 0;
    while (*s == '/')
        s++;
    if (!*s)
        return 0;
    for (const char *p = s;;) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (!q && len == 0)
            break; /* the trailing slash */
        if (len == 0 || n == REF_MAX_SEGS)
            return -1;
        t[n].p = p;
        t[n].len = len;
        n++;
        if (!q)
            break;
        p = q + 1;
    }
    return n;
}

static int is_capture(const struct tok *t)
{
    return t->len >= 2 && t->p[0] == '{' && t->p[t->len - 1] == '}';
}

static int is_dot(const struct tok *t)
{
    return (t->len == 1 && t->p[0] == '.') || (t->len == 2 && !memcmp(t->p, "..", 2));
}

static struct ref_route {
    const struct http_route *route;
    const struct http_dialect *dialect;
    struct tok seg[REF_MAX_SEGS];
    int n, n_captures;
} routes[MAX_ROUTES];
static size_t n_routes;
static struct http_router *rt;

static int tok_eq(const struct tok *a, const struct tok *b)
{
    return a->len == b->len && !memcmp(a->p, b->p, a->len);
}

static int ref_path_matches(const struct ref_route *r, const struct tok *segs, int n)
{
    if (r->n != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (!is_capture(&r->seg[i]) && !tok_eq(&r->seg[i], &segs[i]))
            return 0;
    return 1;
}

/* The dialect owning a path: the longest prefix P with path == P or path under "P/",
 * else the last dialect (dialects.c: it answers unknown paths). */
static const struct http_dialect *ref_owner(const char *path)
{
    const struct http_dialect *best = NULL, *last = NULL;
    size_t best_len = 0;
    for (size_t d = 0; api_dialects[d]; d++) {
        last = api_dialects[d];
        for (const char *const *p = last->prefixes; p && *p; p++) {
            size_t l = strlen(*p);
            if (l > best_len && strncmp(path, *p, l) == 0 && (path[l] == '\0' || path[l] == '/')) {
                best = last;
                best_len = l;
            }
        }
    }
    return best ? best : last;
}

struct expect {
    int idx;
    const struct http_dialect *dialect;
    struct tok caps[REF_MAX_SEGS];
    int n_caps;
    char allow[128];
};

static void ref_match(const char *method, const char *path, size_t buflen, struct expect *x)
{
    struct tok segs[REF_MAX_SEGS];
    int n, path_matched = 0;

    memset(x, 0, sizeof *x);
    x->idx = -ST_NOT_FOUND;
    x->dialect = ref_owner(path);
    if (strlen(path) + 1 > buflen || (n = ref_split(path, segs)) < 0)
        return;
    for (int i = 0; i < n; i++)
        if (is_dot(&segs[i]))
            return;
    for (size_t i = 0; i < n_routes; i++) {
        const struct ref_route *r = &routes[i];
        if (!ref_path_matches(r, segs, n))
            continue;
        if (strcmp(r->route->method, method) != 0) {
            if (!path_matched)
                x->dialect = r->dialect;
            path_matched = 1;
            /* each method once, in table order */
            size_t l = strlen(r->route->method), off = strlen(x->allow);
            int seen = 0;
            for (const char *a = x->allow; *a; a += strcspn(a, ",") + (a[strcspn(a, ",")] ? 2 : 0))
                if (strcspn(a, ",") == l && !memcmp(a, r->route->method, l))
                    seen = 1;
            if (!seen)
                snprintf(x->allow + off, sizeof x->allow - off, "%s%s", off ? ", " : "",
                         r->route->method);
            continue;
        }
        x->idx = (int)i;
        x->dialect = r->dialect;
        for (int s = 0; s < n; s++)
            if (is_capture(&r->seg[s]))
                x->caps[x->n_caps++] = segs[s];
        return;
    }
    if (path_matched)
        x->idx = -ST_METHOD;
}

/* ---- checking the router against it ---- */

/* The answering dialect's envelope for the router's 404 / 405, worded as on_headers
 * words it: JSON (a string for plain text), with the status of the code. */
static void check_envelope(const struct http_dialect *d, int idx, const char *method,
                           const char *path)
{
    struct st_err e;
    unsigned status = 0;
    if (idx >= 0)
        return;
    if (idx == -ST_METHOD)
        st_fail(&e, ST_METHOD, "method %s not allowed on %s", method, path);
    else
        st_fail(&e, ST_NOT_FOUND, "no route for %s %s", method, path);
    json_t *j = d->error_body(&e, &status);
    if (!j || status != (idx == -ST_METHOD ? 405u : 404u))
        fail("the envelope of a 404 / 405 is not JSON of that status", method, path);
    json_decref(j);
}

/* Returns the route index. */
static int check_match(const char *method, const char *path, size_t buflen, size_t allow_len)
{
    char *buf = malloc(buflen), *allow = malloc(allow_len);
    const char *caps[HTTP_MAX_CAPTURES];
    int n_caps = -1;
    const struct http_dialect *d = NULL;
    struct expect x;

    if (!buf || !allow)
        abort();
    int idx = http_router_match(rt, method, path, buf, buflen, caps, &n_caps, &d, allow, allow_len);
    ref_match(method, path, buflen, &x);
    if (idx != x.idx)
        fail("the route differs from the reference matcher's", method, path);
    if (d != x.dialect)
        fail("the answering dialect differs from the reference matcher's", method, path);
    if (!memchr(allow, '\0', allow_len))
        fail("Allow is not terminated inside its buffer", method, path);
    if (idx >= 0) {
        const struct http_route *r = http_router_route(rt, idx);
        if (r != routes[idx].route || strcmp(r->method, method) != 0)
            fail("matched a route of another method", method, path);
        if (n_caps != x.n_caps || n_caps > HTTP_MAX_CAPTURES)
            fail("wrong number of captures", method, path);
        for (int i = 0; i < n_caps; i++) {
            if (caps[i] < buf || caps[i] >= buf + buflen)
                fail("a capture points outside the buffer", method, path);
            size_t l = strnlen(caps[i], (size_t)(buf + buflen - caps[i]));
            if (caps[i] + l >= buf + buflen)
                fail("a capture is not terminated inside the buffer", method, path);
            if (l == 0 || memchr(caps[i], '/', l) || l != x.caps[i].len ||
                memcmp(caps[i], x.caps[i].p, l))
                fail("a capture differs from the path's segment", method, path);
        }
    } else {
        if (n_caps != 0)
            fail("captures without a route", method, path);
        if (idx != -ST_NOT_FOUND && idx != -ST_METHOD)
            fail("neither a route, 404 nor 405", method, path);
        if (idx == -ST_METHOD && allow_len >= sizeof x.allow && strcmp(allow, x.allow))
            fail("Allow differs from the methods of the path's routes", method, path);
        if (idx == -ST_METHOD && !allow[0] && allow_len > 3)
            fail("405 with an empty Allow", method, path);
    }
    check_envelope(d, idx, method, path);
    free(buf);
    free(allow);
    return idx;
}

/* The route picked by pick, its captures filled with segs (cycled; "x" when none). */
static void check_generated(uint8_t pick, const char *method_hint, const char *path)
{
    struct tok segs[REF_MAX_SEGS];
    const struct ref_route *r = &routes[pick % n_routes];
    int n = ref_split(path, segs);
    char built[4096];
    size_t off = 0;
    int dots = 0, k = 0;

    (void)method_hint;
    for (int i = 0; i < r->n; i++) {
        struct tok t = r->seg[i];
        if (is_capture(&t)) {
            if (n > 0)
                t = segs[k++ % n];
            else
                t = (struct tok){"x", 1};
            dots |= is_dot(&t);
        }
        if (off + t.len + 2 >= sizeof built)
            return;
        built[off++] = '/';
        memcpy(built + off, t.p, t.len);
        off += t.len;
    }
    if (off == 0 || (pick & 0x80))
        built[off++] = '/';
    built[off] = '\0';

    int idx = check_match(r->route->method, built, sizeof((struct http_req *)0)->pathbuf, 128);
    if (dots || off + 1 > sizeof((struct http_req *)0)->pathbuf)
        return;
    if (idx < 0 || (size_t)idx > (size_t)(r - routes) ||
        strcmp(routes[idx].route->method, r->route->method) || routes[idx].n != r->n)
        fail("a path built from a route does not reach it", r->route->method, built);
}

/* ---- header checks ---- */

static void check_headers(void)
{
    struct header_scan h = {0};
    size_t bytes = 0;
    int n_cl = 0;

    for (size_t i = 0; i < n_headers; i++) {
        scan_header(&h, MHD_HEADER_KIND, headers[i].name, strlen(headers[i].name),
                    headers[i].value, strlen(headers[i].value));
        bytes += strlen(headers[i].name) + strlen(headers[i].value) + 4;
        n_cl += strcasecmp(headers[i].name, "Content-Length") == 0;
    }
    if (h.bytes != bytes || h.n_content_length != n_cl)
        fail("the header scan miscounts", NULL, NULL);
    if (rid_ok(h.client_rid)) {
        size_t l = strlen(h.client_rid);
        char rid[sizeof((struct http_req *)0)->rid];
        if (l == 0 || l >= 64 || (size_t)snprintf(rid, sizeof rid, "%s", h.client_rid) != l)
            fail("an accepted request id has a bad length", NULL, h.client_rid);
        for (const char *c = h.client_rid; *c; c++)
            if (*c <= ' ' || *c > '~' || *c == '"' || *c == '\\')
                fail("an accepted request id is not printable", NULL, h.client_rid);
    }

    for (size_t i = 0; i < n_headers; i++) {
        const char *v = headers[i].value;
        size_t vl = strlen(v);

        const char *tok = bearer(v);
        if (tok && (tok < v || tok > v + vl || *tok == ' ' ||
                    (strncasecmp(v, "Bearer ", 7) && strncasecmp(v, "Token ", 6) &&
                     strncasecmp(v, "OAuth ", 6))))
            fail("the Authorization scheme parser is wrong", NULL, v);

        int want_json = strncasecmp(v, "application/json", 16) == 0 &&
                        (v[16] == '\0' || v[16] == ';' || v[16] == ' ');
        if (is_json_type(v) != want_json)
            fail("the JSON media type test is wrong", NULL, v);

        uint64_t a = 0, b = 0, total = 0, a2 = 0, b2 = 0, total2 = 0;
        if (api_parse_content_range(v, &a, &b, &total) == 0) {
            char again[96];
            if (strncasecmp(v, "bytes ", 6) || a > b || (total != UINT64_MAX && b >= total))
                fail("an accepted Content-Range is inconsistent", NULL, v);
            if (total == UINT64_MAX)
                snprintf(again, sizeof again, "bytes %llu-%llu/*", (unsigned long long)a,
                         (unsigned long long)b);
            else
                snprintf(again, sizeof again, "bytes %llu-%llu/%llu", (unsigned long long)a,
                         (unsigned long long)b, (unsigned long long)total);
            if (api_parse_content_range(again, &a2, &b2, &total2) || a != a2 || b != b2 ||
                total != total2)
                fail("a Content-Range does not read back", NULL, v);
        }
    }

    struct http_req req = {0};
    char sha[65];
    memset(sha, 'Z', sizeof sha);
    int ret = api_expected_sha256(&req, sha);
    if (ret < -1 || ret > 1 || (ret == 0 && http_header(&req, "X-Checksum-Sha256")))
        fail("the expected digest parser answers out of range", NULL, NULL);
    if (ret == 1) {
        if (sha[64] != '\0' || strspn(sha, "0123456789abcdef") != 64)
            fail("an accepted digest is not 64 lower-case hex digits", NULL, sha);
    }
}

/* ---- the input ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (http_router_new(&rt, api_dialects))
        fail("the real route tables do not compile", NULL, NULL);
    for (size_t d = 0; api_dialects[d]; d++) {
        for (const struct http_route *r = api_dialects[d]->routes; r->method; r++) {
            struct ref_route *x = &routes[n_routes++];
            if (n_routes == MAX_ROUTES)
                abort();
            x->route = r;
            x->dialect = api_dialects[d];
            x->n = ref_split(r->pattern, x->seg);
            if (x->n < 0)
                fail("a route pattern has an empty segment or too many", r->method, r->pattern);
            for (int i = 0; i < x->n; i++)
                x->n_captures += is_capture(&x->seg[i]);
            if (x->n_captures > HTTP_MAX_CAPTURES)
                fail("a route has more captures than HTTP_MAX_CAPTURES", r->method, r->pattern);
        }
    }
    if (n_routes != http_router_count(rt))
        fail("the router lost routes", NULL, NULL);
    return 0;
}

static char *next_line(char **p)
{
    char *s = *p, *nl;
    if (!s)
        return NULL;
    if ((nl = strchr(s, '\n'))) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = NULL;
    }
    size_t l = strlen(s);
    if (l && s[l - 1] == '\r')
        s[l - 1] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    char *p = text;
    char *method = next_line(&p);
    char *target = next_line(&p);
    if (!method || !target) {
        free(text);
        return 0;
    }
    n_headers = 0;
    for (char *line; (line = next_line(&p)) && n_headers < MAX_HEADERS;) {
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");
        headers[n_headers].name = line;
        headers[n_headers].value = v;
        n_headers++;
    }

    /* What libmicrohttpd hands the access handler: the path before '?', %-decoded. */
    char *q = strchr(target, '?');
    if (q)
        *q = '\0';
    MHD_http_unescape(target);
    const char *match_method = strcmp(method, "HEAD") == 0 ? "GET" : method;
    size_t plen = strlen(target);
    size_t small_allow = 1 + (size ? data[0] % 16 : 0);

    check_match(match_method, target, sizeof((struct http_req *)0)->pathbuf, 128);
    check_match(match_method, target, plen + 1, small_allow);
    if (plen)
        check_match(match_method, target, plen, 128);
    check_generated(size ? data[0] : 0, match_method, target);
    check_headers();

    free(text);
    return 0;
}
