/* imagestore.c — the IMGAPI servers of the config (imagestores: name + URL) and the list
 * of images each one served when last refreshed (GET URL/images through fetch.c's
 * guard), kept in memory. An import from one is an image.import of URL/images/{uuid}. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX (16u << 20)
#define LIST_TIMEOUT_MS 30000

struct cached {
    json_t *images; /* the last list (an array of manifests), NULL before a refresh */
    int64_t refreshed_at;
    char error[256]; /* why the last refresh failed, "" when it did not */
};

struct core_imagestores {
    pthread_mutex_t mu;
    struct cached *v; /* one per cfg.imagestores, made on first use */
    size_t n;
};

int core_imagestores_new(struct stowage *st)
{
    if (!(st->imagestores = calloc(1, sizeof *st->imagestores)))
        return -1;
    pthread_mutex_init(&st->imagestores->mu, NULL);
    return 0;
}

void core_imagestores_free(struct stowage *st)
{
    struct core_imagestores *s = st->imagestores;
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        json_decref(s->v[i].images);
    free(s->v);
    pthread_mutex_destroy(&s->mu);
    free(s);
    st->imagestores = NULL;
}

static int index_of(struct stowage *st, const char *name, struct st_err *e)
{
    for (size_t i = 0; name && i < st->cfg.n_imagestores; i++)
        if (strcmp(st->cfg.imagestores[i].name, name) == 0)
            return (int)i;
    return st_fail(e, ST_NOT_FOUND, "image server '%.64s' not found", name ? name : "");
}

/* Caller holds mu. */
static struct cached *slot(struct stowage *st, int i)
{
    struct core_imagestores *s = st->imagestores;
    if (!s->v && !(s->v = calloc(st->cfg.n_imagestores + 1, sizeof *s->v)))
        return NULL;
    s->n = st->cfg.n_imagestores;
    return &s->v[i];
}

static void fill(struct stowage *st, int i, struct core_imagestore *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", st->cfg.imagestores[i].name);
    snprintf(out->url, sizeof out->url, "%s", st->cfg.imagestores[i].url);
    pthread_mutex_lock(&st->imagestores->mu);
    struct cached *c = slot(st, i);
    if (c) {
        out->images = c->images ? json_deep_copy(c->images) : NULL;
        out->refreshed_at = c->refreshed_at;
        snprintf(out->error, sizeof out->error, "%s", c->error);
    }
    pthread_mutex_unlock(&st->imagestores->mu);
}

int core_imagestore_list(struct stowage *st, struct core_imagestore **out, size_t *n,
                         struct st_err *e)
{
    size_t cnt = st->cfg.n_imagestores;
    if (!(*out = calloc(cnt ? cnt : 1, sizeof **out)))
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (size_t i = 0; i < cnt; i++)
        fill(st, (int)i, &(*out)[i]);
    *n = cnt;
    return 0;
}

int core_imagestore_get(struct stowage *st, const char *name, struct core_imagestore *out,
                        struct st_err *e)
{
    int i = index_of(st, name, e);
    if (i < 0)
        return -1;
    fill(st, i, out);
    return 0;
}

void core_imagestore_free(struct core_imagestore *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        json_decref(v[i].images);
}

int core_imagestore_refresh(struct stowage *st, const char *name, size_t *count, struct st_err *e)
{
    char url[1100], *text = NULL;
    size_t len = 0;
    json_error_t je;
    json_t *list = NULL;
    int i = index_of(st, name, e);

    if (i < 0)
        return -1;
    snprintf(url, sizeof url, "%s/images", st->cfg.imagestores[i].url);
    int rc = core_fetch_small(st, url, LIST_MAX, LIST_TIMEOUT_MS, &text, &len, e);
    if (rc == 0)
        list = json_loadb(text, len, 0, &je); /* not inside json_is_array: a macro */
    if (rc == 0 && !json_is_array(list))
        rc = st_fail(e, ST_UNAVAILABLE, "%s did not answer a JSON array", url);
    free(text);
    pthread_mutex_lock(&st->imagestores->mu);
    struct cached *c = slot(st, i);
    if (c && rc == 0) {
        json_decref(c->images);
        c->images = list;
        list = NULL;
        c->refreshed_at = core_now_ms() / 1000;
        c->error[0] = '\0';
        *count = json_array_size(c->images);
    } else if (c) {
        snprintf(c->error, sizeof c->error, "%s", e->msg);
    }
    pthread_mutex_unlock(&st->imagestores->mu);
    json_decref(list);
    return c ? rc : st_fail(e, ST_INTERNAL, "out of memory");
}
