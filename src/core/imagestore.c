/* imagestore.c — the IMGAPI servers of the config (imagestores: name + URL) and those a
 * superadmin added (rows of the catalogue's imagestore table), and the list of images
 * each one served when last refreshed (GET URL/images through fetch.c's guard), kept in
 * memory. An import from one is an image.import of URL/images/{uuid}. */
#include "core_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX (16u << 20)
#define LIST_TIMEOUT_MS 30000

struct entry {
    char name[DB_ID];
    char url[1024];
    int from_config;
    json_t *images; /* the last list (an array of manifests), NULL before a refresh */
    int64_t refreshed_at;
    char error[256]; /* why the last refresh failed, "" when it did not */
};

/* The config's servers, then the catalogue's, read once; mu guards all. */
struct core_imagestores {
    pthread_mutex_t mu;
    struct entry *v;
    size_t n, cap;
    int loaded;
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

/* Caller holds mu. */
static struct entry *append(struct core_imagestores *s, const char *name, const char *url,
                            int from_config)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct entry *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return NULL;
        s->v = v;
        s->cap = cap;
    }
    struct entry *x = &s->v[s->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    snprintf(x->url, sizeof x->url, "%s", url);
    x->from_config = from_config;
    return x;
}

/* Caller holds mu. */
static int load(struct stowage *st, struct st_err *e)
{
    struct core_imagestores *s = st->imagestores;
    struct db_imagestore *rows = NULL;
    size_t n = 0;
    if (s->loaded)
        return 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_imagestore_list(c, &rows, &n, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    for (size_t i = 0; i < st->cfg.n_imagestores && rc == 0; i++)
        if (!append(s, st->cfg.imagestores[i].name, st->cfg.imagestores[i].url, 1))
            rc = st_fail(e, ST_INTERNAL, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!append(s, rows[i].name, rows[i].url, 0))
            rc = st_fail(e, ST_INTERNAL, "out of memory");
    free(rows);
    if (rc) {
        s->n = 0;
        return -1;
    }
    s->loaded = 1;
    return 0;
}

/* Caller holds mu and has loaded. */
static struct entry *find(struct stowage *st, const char *name)
{
    struct core_imagestores *s = st->imagestores;
    for (size_t i = 0; name && i < s->n; i++)
        if (strcmp(s->v[i].name, name) == 0)
            return &s->v[i];
    return NULL;
}

static int not_found(const char *name, struct st_err *e)
{
    return st_fail(e, ST_NOT_FOUND, "image server '%.64s' not found", name ? name : "");
}

/* Caller holds mu. */
static void fill(const struct entry *x, struct core_imagestore *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", x->name);
    snprintf(out->url, sizeof out->url, "%s", x->url);
    out->images = x->images ? json_deep_copy(x->images) : NULL;
    out->refreshed_at = x->refreshed_at;
    snprintf(out->error, sizeof out->error, "%s", x->error);
}

int core_imagestore_list(struct stowage *st, struct core_imagestore **out, size_t *n,
                         struct st_err *e)
{
    struct core_imagestores *s = st->imagestores;
    int rc = -1;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    if (load(st, e) == 0) {
        if (!(*out = calloc(s->n ? s->n : 1, sizeof **out))) {
            st_fail(e, ST_INTERNAL, "out of memory");
        } else {
            for (size_t i = 0; i < s->n; i++)
                fill(&s->v[i], &(*out)[i]);
            *n = s->n;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int core_imagestore_get(struct stowage *st, const char *name, struct core_imagestore *out,
                        struct st_err *e)
{
    struct core_imagestores *s = st->imagestores;
    int rc = -1;
    pthread_mutex_lock(&s->mu);
    if (load(st, e) == 0) {
        struct entry *x = find(st, name);
        if (x) {
            fill(x, out);
            rc = 0;
        } else {
            not_found(name, e);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int core_imagestore_from_config(struct stowage *st, const char *name)
{
    for (size_t i = 0; name && i < st->cfg.n_imagestores; i++)
        if (strcmp(st->cfg.imagestores[i].name, name) == 0)
            return 1;
    return 0;
}

void core_imagestore_free(struct core_imagestore *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        json_decref(v[i].images);
}

int core_imagestore_refresh(struct stowage *st, const char *name, size_t *count, struct st_err *e)
{
    struct core_imagestores *s = st->imagestores;
    char url[1100], *text = NULL;
    size_t len = 0;
    json_error_t je;
    json_t *list = NULL;
    struct core_imagestore one;

    if (core_imagestore_get(st, name, &one, e))
        return -1;
    snprintf(url, sizeof url, "%s/images", one.url);
    core_imagestore_free(&one, 1);
    int rc = core_fetch_small(st, url, LIST_MAX, LIST_TIMEOUT_MS, &text, &len, e);
    if (rc == 0)
        list = json_loadb(text, len, 0, &je); /* not inside json_is_array: a macro */
    if (rc == 0 && !json_is_array(list))
        rc = st_fail(e, ST_UNAVAILABLE, "%s did not answer a JSON array", url);
    free(text);
    pthread_mutex_lock(&s->mu);
    struct entry *x = find(st, name); /* removed meanwhile: nothing to keep */
    if (!x && rc == 0)
        rc = not_found(name, e);
    if (x && rc == 0) {
        json_decref(x->images);
        x->images = list;
        list = NULL;
        x->refreshed_at = core_now_ms() / 1000;
        x->error[0] = '\0';
        *count = json_array_size(x->images);
    } else if (x) {
        snprintf(x->error, sizeof x->error, "%s", e->msg);
    }
    pthread_mutex_unlock(&s->mu);
    json_decref(list);
    return rc;
}

/* ---- imagestore.add, imagestore.remove ---- */

int core_imagestore_precheck_add(struct stowage *st, const json_t *params, struct st_err *e)
{
    struct core_imagestore one;
    const char *name = json_string_value(json_object_get(params, "name"));
    if (core_imagestore_get(st, name, &one, e) == 0) {
        core_imagestore_free(&one, 1);
        return st_fail_field(e, ST_EXISTS, "name", "image server '%s' already exists", name);
    }
    return e->code == ST_NOT_FOUND ? 0 : -1;
}

int core_imagestore_precheck_remove(struct stowage *st, const json_t *params, struct st_err *e)
{
    struct core_imagestore one;
    const char *name = json_string_value(json_object_get(params, "name"));
    if (core_imagestore_get(st, name, &one, e))
        return -1;
    core_imagestore_free(&one, 1);
    if (core_imagestore_from_config(st, name))
        return st_fail(e, ST_FORBIDDEN, "image server '%s' comes from the config: change it there",
                       name);
    return 0;
}

int core_imagestore_add(struct stowage *st, const char *name, const char *url, struct st_err *e)
{
    struct core_imagestores *s = st->imagestores;
    int rc = -1;
    size_t ulen = strlen(url);
    while (ulen && url[ulen - 1] == '/')
        ulen--; /* "URL/images" is asked for */
    char clean[1024];
    snprintf(clean, sizeof clean, "%.*s", (int)ulen, url);
    pthread_mutex_lock(&s->mu);
    if (load(st, e) == 0) {
        if (find(st, name)) {
            st_fail_field(e, ST_EXISTS, "name", "image server '%s' already exists", name);
        } else {
            struct db_conn *c = db_acquire(st->db);
            rc = db_imagestore_insert(c, name, clean, e);
            db_release(st->db, c);
            if (rc == 0 && !append(s, name, clean, 0)) {
                s->loaded = 0; /* read again from the catalogue next time */
                for (size_t i = 0; i < s->n; i++)
                    json_decref(s->v[i].images);
                s->n = 0;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0)
        core_bump(st);
    return rc;
}

int core_imagestore_remove(struct stowage *st, const char *name, struct st_err *e)
{
    struct core_imagestores *s = st->imagestores;
    int rc = -1;
    pthread_mutex_lock(&s->mu);
    struct entry *x = load(st, e) == 0 ? find(st, name) : NULL;
    if (!x) {
        if (s->loaded)
            not_found(name, e);
    } else if (x->from_config) {
        st_fail(e, ST_FORBIDDEN, "image server '%s' comes from the config: change it there", name);
    } else {
        struct db_conn *c = db_acquire(st->db);
        rc = db_imagestore_delete(c, name, e);
        db_release(st->db, c);
        if (rc == 0) {
            json_decref(x->images);
            size_t i = (size_t)(x - s->v);
            memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
            s->n--;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0)
        core_bump(st);
    return rc;
}
