/* router.c — method + path pattern → route.
 *
 * Patterns are split into segments once; "{name}" matches exactly one
 * non-empty segment. A trailing slash is optional on both sides, so esdc's
 * "/image/x/" and "/image/x" reach the same route. Decoded paths that
 * contain "." or ".." segments never match anything. */
#include "stowage/http.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 12

struct compiled {
    const struct http_route *route;
    const struct http_dialect *dialect;
    int n;
    struct {
        const char *lit; /* NULL for a capture */
        size_t len;
    } seg[MAX_SEGS];
};

struct http_router {
    struct compiled *routes;
    size_t n;
    const struct http_dialect *const *dialects;
};

static const struct http_dialect *owner_of(const struct http_router *rt, const char *path);

/* Split path in place into segments; returns the count, or -1 when too many. */
static int split(char *path, char **segs)
{
    int n = 0;
    char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        if (n == MAX_SEGS)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
        if (*p == '/')
            return -1; /* empty segment "a//b" */
    }
    return n;
}

static int compile(struct compiled *c, const struct http_route *r, const struct http_dialect *d)
{
    const char *p = r->pattern;
    c->route = r;
    c->dialect = d;
    c->n = 0;
    while (*p == '/')
        p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (c->n == MAX_SEGS)
            return -1;
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}')
            c->seg[c->n].lit = NULL;
        else
            c->seg[c->n].lit = p;
        c->seg[c->n].len = len;
        c->n++;
        p += len;
        while (*p == '/')
            p++;
    }
    return 0;
}

int http_router_new(struct http_router **out, const struct http_dialect *const *dialects)
{
    size_t total = 0;
    for (size_t d = 0; dialects[d]; d++)
        for (const struct http_route *r = dialects[d]->routes; r->method; r++)
            total++;
    struct http_router *rt = calloc(1, sizeof *rt);
    if (!rt || !(rt->routes = calloc(total ? total : 1, sizeof *rt->routes))) {
        free(rt);
        return -1;
    }
    rt->dialects = dialects;
    for (size_t d = 0; dialects[d]; d++) {
        for (const struct http_route *r = dialects[d]->routes; r->method; r++) {
            if (compile(&rt->routes[rt->n], r, dialects[d])) {
                http_router_free(rt);
                return -1;
            }
            rt->n++;
        }
    }
    *out = rt;
    return 0;
}

void http_router_free(struct http_router *rt)
{
    if (!rt)
        return;
    free(rt->routes);
    free(rt);
}

const struct http_route *http_router_route(const struct http_router *rt, int idx)
{
    return idx >= 0 && (size_t)idx < rt->n ? rt->routes[idx].route : NULL;
}

const struct http_dialect *http_router_fallback(const struct http_router *rt)
{
    return owner_of(rt, "");
}

size_t http_router_count(const struct http_router *rt)
{
    return rt->n;
}

static int seg_match(const struct compiled *c, char **segs, int n)
{
    if (c->n != n)
        return 0;
    for (int i = 0; i < n; i++) {
        if (!c->seg[i].lit)
            continue;
        if (strlen(segs[i]) != c->seg[i].len || memcmp(segs[i], c->seg[i].lit, c->seg[i].len))
            return 0;
    }
    return 1;
}

/* The dialect owning a path by longest prefix, else the last one (native). */
static const struct http_dialect *owner_of(const struct http_router *rt, const char *path)
{
    const struct http_dialect *best = NULL;
    size_t best_len = 0;
    size_t d = 0;
    for (; rt->dialects[d]; d++) {
        for (const char *const *p = rt->dialects[d]->prefixes; p && *p; p++) {
            size_t l = strlen(*p);
            if (l > best_len && strncmp(path, *p, l) == 0 &&
                (path[l] == '\0' || path[l] == '/' || (*p)[l - 1] == '/')) {
                best = rt->dialects[d];
                best_len = l;
            }
        }
    }
    return best ? best : (d ? rt->dialects[d - 1] : NULL);
}

int http_router_match(const struct http_router *rt, const char *method, const char *path, char *buf,
                      size_t buflen, const char **captures, int *n_captures,
                      const struct http_dialect **dialect, char *allow, size_t allow_len)
{
    char *segs[MAX_SEGS];
    size_t plen = strlen(path);
    int n, path_matched = 0;
    size_t allow_off = 0;

    *n_captures = 0;
    *dialect = owner_of(rt, path);
    if (allow_len)
        allow[0] = '\0';
    if (plen + 1 > buflen)
        return -ST_NOT_FOUND;
    memcpy(buf, path, plen + 1);
    if ((n = split(buf, segs)) < 0)
        return -ST_NOT_FOUND;
    for (int i = 0; i < n; i++)
        if (strcmp(segs[i], ".") == 0 || strcmp(segs[i], "..") == 0)
            return -ST_NOT_FOUND;

    for (size_t i = 0; i < rt->n; i++) {
        const struct compiled *c = &rt->routes[i];
        if (!seg_match(c, segs, n))
            continue;
        if (strcmp(c->route->method, method) != 0) {
            if (!path_matched)
                *dialect = c->dialect;
            path_matched = 1;
            if (allow_len && !strstr(allow, c->route->method)) {
                int w = snprintf(allow + allow_off, allow_len - allow_off, "%s%s",
                                 allow_off ? ", " : "", c->route->method);
                if (w > 0 && (size_t)w < allow_len - allow_off)
                    allow_off += (size_t)w;
            }
            continue;
        }
        int k = 0;
        for (int s = 0; s < n && k < HTTP_MAX_CAPTURES; s++)
            if (!c->seg[s].lit)
                captures[k++] = segs[s];
        *n_captures = k;
        *dialect = c->dialect;
        return (int)i;
    }
    return path_matched ? -ST_METHOD : -ST_NOT_FOUND;
}
