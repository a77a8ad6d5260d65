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

int http_reply_cached(struct http_req *r, const char *key, uint64_t gen)
{
    struct http_cache *c = cache_of(r->srv);
    struct body *b = NULL;
    if (!c || strlen(key) >= CACHE_KEY)
        return 0;
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
    if (!b)
        return 0;
    http_reply_shared(r, 200, "application/json", b->data, b->len, body_unref, b);
    return 1;
}

void http_reply_json_cached(struct http_req *r, const char *key, uint64_t gen, json_t *j)
{
    struct http_cache *c = cache_of(r->srv);
    size_t len = j ? json_dumpb(j, NULL, 0, JSON_COMPACT) : 0;
    struct body *b = len && strlen(key) < CACHE_KEY ? malloc(sizeof *b + len) : NULL;

    if (!c || !b || json_dumpb(j, b->data, len, JSON_COMPACT) != len) {
        free(b);
        http_reply_json(r, 200, j);
        return;
    }
    json_decref(j);
    b->len = len;
    atomic_init(&b->refs, 2); /* the slot's and this reply's */

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
    http_reply_shared(r, 200, "application/json", b->data, b->len, body_unref, b);
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
