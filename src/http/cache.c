/* cache.c — rendered GET replies kept per catalogue generation.
 *
 * A handful of slots, each holding one reference-counted body. A request that
 * hits takes a reference and hands the bytes to MHD without copying; the
 * reference drops when MHD has sent them, so replacing a slot never frees
 * bytes still on the wire. */
#include "http_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS 32
#define CACHE_KEY 640 /* a dialect's whole question: a Cinder host and marker are 255 each */

struct body {
    atomic_int refs;
    size_t len;
    char data[];
};

struct slot {
    char key[CACHE_KEY];
    uint64_t gen;
    uint64_t used; /* for eviction: least recently used goes */
    struct body *b;
};

struct http_cache {
    pthread_mutex_t mu;
    uint64_t tick;
    struct slot slots[CACHE_SLOTS];
};

/* The cache hangs off the server. */
static struct http_cache *cache_of(struct http_server *s);

static void body_unref(void *p)
{
    struct body *b = p;
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

/* A reference to the body kept for key at gen, or NULL. */
static struct body *lookup(struct http_cache *c, const char *key, uint64_t gen)
{
    struct body *b = NULL;
    if (!c || strlen(key) >= CACHE_KEY)
        return NULL;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        struct slot *s = &c->slots[i];
        if (s->b && s->gen == gen && strcmp(s->key, key) == 0) {
            b = s->b;
            atomic_fetch_add(&b->refs, 1);
            s->used = ++c->tick;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return b;
}

/* j's compact text kept for key at gen; returns a reference to it (NULL: not kept). */
static struct body *store(struct http_cache *c, const char *key, uint64_t gen, const json_t *j)
{
    size_t len = j ? json_dumpb(j, NULL, 0, JSON_COMPACT) : 0;
    struct body *b = c && len && strlen(key) < CACHE_KEY ? malloc(sizeof *b + len) : NULL;

    if (!b || json_dumpb(j, b->data, len, JSON_COMPACT) != len) {
        free(b);
        return NULL;
    }
    b->len = len;
    atomic_init(&b->refs, 2); /* the slot's and the caller's */

    pthread_mutex_lock(&c->mu);
    struct slot *victim = &c->slots[0];
    for (int i = 0; i < CACHE_SLOTS; i++) {
        struct slot *s = &c->slots[i];
        if (strcmp(s->key, key) == 0) {
            victim = s;
            break;
        }
        if (s->used < victim->used)
            victim = s;
    }
    struct body *old = victim->b;
    snprintf(victim->key, sizeof victim->key, "%s", key);
    victim->gen = gen;
    victim->b = b;
    victim->used = ++c->tick;
    pthread_mutex_unlock(&c->mu);
    body_unref(old);
    return b;
}

int http_reply_cached(struct http_req *r, const char *key, uint64_t gen)
{
    struct body *b = lookup(cache_of(r->srv), key, gen);
    if (!b)
        return 0;
    http_reply_shared(r, 200, "application/json", b->data, b->len, body_unref, b);
    return 1;
}

void http_reply_json_cached(struct http_req *r, const char *key, uint64_t gen, json_t *j)
{
    struct body *b = store(cache_of(r->srv), key, gen, j);
    if (!b) {
        http_reply_json(r, 200, j);
        return;
    }
    json_decref(j);
    http_reply_shared(r, 200, "application/json", b->data, b->len, body_unref, b);
}

/* head + b + tail as one new body (b's reference is given back). */
static void reply_within(struct http_req *r, struct body *b, const char *head, const char *tail)
{
    size_t hl = strlen(head), tl = strlen(tail), len = hl + b->len + tl;
    char *buf = malloc(len);
    if (buf) {
        memcpy(buf, head, hl);
        memcpy(buf + hl, b->data, b->len);
        memcpy(buf + hl + b->len, tail, tl);
    }
    body_unref(b);
    if (!buf) {
        struct st_err e;
        st_fail(&e, ST_INTERNAL, "out of memory");
        http_reply_error(r, &e);
        return;
    }
    http_reply_shared(r, 200, "application/json", buf, len, free, buf);
}

int http_reply_cached_within(struct http_req *r, const char *key, uint64_t gen, const char *head,
                             const char *tail)
{
    struct body *b = lookup(cache_of(r->srv), key, gen);
    if (!b)
        return 0;
    reply_within(r, b, head, tail);
    return 1;
}

void http_reply_json_cached_within(struct http_req *r, const char *key, uint64_t gen, json_t *j,
                                   const char *head, const char *tail)
{
    struct body *b = store(cache_of(r->srv), key, gen, j);
    if (b) {
        json_decref(j);
        reply_within(r, b, head, tail);
        return;
    }
    /* not kept (empty, too long a key): render it once here */
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    struct body *once = text ? malloc(sizeof *once + strlen(text)) : NULL;
    if (once) {
        once->len = strlen(text);
        memcpy(once->data, text, once->len);
        atomic_init(&once->refs, 1);
    }
    free(text);
    if (!once) {
        struct st_err e;
        st_fail(&e, ST_INTERNAL, "out of memory");
        http_reply_error(r, &e);
        return;
    }
    reply_within(r, once, head, tail);
}

static struct http_cache *cache_of(struct http_server *s)
{
    return s->cache;
}

int http_cache_init(struct http_server *s)
{
    s->cache = calloc(1, sizeof *s->cache);
    if (!s->cache)
        return -1;
    pthread_mutex_init(&s->cache->mu, NULL);
    return 0;
}

void http_cache_free(struct http_server *s)
{
    if (!s->cache)
        return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        body_unref(s->cache->slots[i].b);
    pthread_mutex_destroy(&s->cache->mu);
    free(s->cache);
    s->cache = NULL;
}
