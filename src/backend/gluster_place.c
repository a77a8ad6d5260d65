/* gluster_place.c — a Gluster volume's parameters, its place, and what glusterd says of it.
 *
 * Parameters: {"server": "host", "volume": "name", "path": "/dir"} (path defaults to
 * the volume's root). Two stowage volumes are the same place when they name one server,
 * one Gluster volume and one path; one is inside another when its path is below. Brick
 * liveness, type and configuration come from the gluster CLI (gfapi does not expose
 * them): a volume with some bricks down is degraded and says which, with all down it
 * is broken. */
#include "file.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stowage/path.h"
#include "stowage/probe.h"

static const char *param(const json_t *params, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(params, key));
    return s && *s ? s : dflt;
}

int be_gluster_parse(json_t *params, struct st_err *e)
{
    const char *k;
    json_t *v;

    json_object_foreach(params, k, v)
    {
        if (strcmp(k, "server") && strcmp(k, "volume") && strcmp(k, "path"))
            return st_fail_field(e, ST_INVALID, k, "is not a parameter of this kind");
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 255)
            return st_fail_field(e, ST_INVALID, k, "must be a string of 1 to 255 bytes");
    }
    if (!param(params, "server", NULL) || !param(params, "volume", NULL))
        return st_fail_field(e, ST_INVALID, "server", "needs server and volume");
    const char *path = param(params, "path", "/");
    if (path[0] != '/' || strstr(path, "/../") || strstr(path, "/./"))
        return st_fail_field(e, ST_INVALID, "path", "must be absolute in the volume");
    return 0;
}

int be_gluster_prepare(json_t *params, int formatted, const struct be_env *env, struct st_err *e)
{
    return 0;
}

int be_gluster_same_place(const json_t *a, const json_t *b, enum be_place *out, struct st_err *e)
{
    const char *pa = param(a, "path", "/"), *pb = param(b, "path", "/");

    *out = BE_PLACE_APART;
    if (strcasecmp(param(a, "server", ""), param(b, "server", "")) ||
        strcmp(param(a, "volume", ""), param(b, "volume", "")))
        return 0;
    int ab = st_path_under(pa, pb), ba = st_path_under(pb, pa);
    *out = ab && ba ? BE_PLACE_SAME
           : ab     ? BE_PLACE_INSIDE
           : ba     ? BE_PLACE_CONTAINS
                    : BE_PLACE_APART;
    return 0;
}

void be_gluster_describe_place(const json_t *params, char *out, size_t len)
{
    const char *path = param(params, "path", "/");
    snprintf(out, len, "gluster volume %s%s on %s", param(params, "volume", ""),
             strcmp(path, "/") ? path : "", param(params, "server", ""));
}

/* A Gluster volume is found by its name on its server: the session is that place. */
int be_gluster_own_place(struct be_volume *v, const char *name, json_t *params, int *changed,
                         char *why, size_t len)
{
    *changed = 0;
    return 0;
}

static json_t *details(const json_t *params, const struct probe_gluster *g, int known)
{
    json_t *bricks = json_array();
    for (size_t i = 0; known && i < g->n_bricks; i++)
        json_array_append_new(bricks, json_string(g->bricks[i].name));
    return json_pack("{s:o, s:s, s:s, s:s, s:s, s:s}", "bricks", bricks, "type",
                     known ? g->type : "", "configuration", known ? g->configuration : "",
                     "transport", known ? g->transport : "", "gvolume_name",
                     param(params, "volume", ""), "gluster_server", param(params, "server", ""));
}

void be_gluster_check(const struct be_params *p, struct be_check *out)
{
    const char *name = param(p->params, "volume", "");
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e;

    if (!g) {
        be_check_set(out, "broken", "out of memory");
        return;
    }
    int known = probe_gluster(p->env->gluster_cli, param(p->params, "server", NULL), name,
                              p->env->gluster_timeout_ms, g, &e) == 0;
    out->details = details(p->params, g, known);
    if (!known)
        be_check_set(out, "broken", "gluster volume %s: %s", name, e.msg);
    else if (!g->started)
        be_check_set(out, "broken", "gluster volume %s is not started", name);
    else if (g->bricks_online == 0)
        be_check_set(out, "broken", "all %zu bricks of %s are down", g->n_bricks, name);
    else if (g->bricks_online > 0 && (size_t)g->bricks_online < g->n_bricks) {
        /* Name the bricks that are down: that is what an operator acts on. */
        size_t off = (size_t)snprintf(out->msg, sizeof out->msg, "brick down:");
        for (size_t i = 0; i < g->n_bricks && off < sizeof out->msg; i++)
            if (g->bricks[i].online == 0)
                off += (size_t)snprintf(out->msg + off, sizeof out->msg - off, " %s",
                                        g->bricks[i].name);
        snprintf(out->status, sizeof out->status, "degraded");
    } else
        be_check_set(out, "ok", "%s", "");
    free(g);
}
