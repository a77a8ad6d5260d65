/* fetch.c — core's HTTP client (libcurl) for URL imports, with the SSRF guard.
 *
 * A URL a client gives makes this daemon connect somewhere: to a metadata service
 * (169.254.169.254), to a neighbour on the private network, to itself. So every hop is
 * checked before any connection: only http and https; the host is resolved here and
 * each address judged (loopback, private, shared, link-local, multicast, unspecified and
 * reserved addresses are refused unless the config's import_allow lists them); the one
 * address judged is pinned with CURLOPT_RESOLVE, so curl cannot resolve again to another;
 * the socket curl opens is checked once more (CURLOPT_OPENSOCKETFUNCTION) and counted.
 * Redirects are followed here, by hand, each one a new hop with the same checks; proxies
 * from the environment are never used (a proxy would connect for us, unchecked). The
 * whole fetch, redirects included, has one deadline and a byte limit. */
#include "core_internal.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_HOPS 5

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- which addresses a URL may reach ---- */

static int in_net(const unsigned char *a, const unsigned char *net, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, full) != 0)
        return 0;
    return rest == 0 || ((a[full] ^ net[full]) & (0xff << (8 - rest))) == 0;
}

/* Why a v4 address is not a public one, or NULL. */
static const char *v4_class(const unsigned char *a)
{
    static const struct {
        unsigned char net[4];
        unsigned bits;
        const char *what;
    } nets[] = {
        {{0, 0, 0, 0}, 8, "unspecified"},     {{127, 0, 0, 0}, 8, "loopback"},
        {{10, 0, 0, 0}, 8, "private"},        {{172, 16, 0, 0}, 12, "private"},
        {{192, 168, 0, 0}, 16, "private"},    {{100, 64, 0, 0}, 10, "private (shared)"},
        {{169, 254, 0, 0}, 16, "link-local"}, {{224, 0, 0, 0}, 4, "multicast"},
        {{240, 0, 0, 0}, 4, "reserved"},      {{192, 0, 0, 0}, 24, "reserved"},
        {{198, 18, 0, 0}, 15, "reserved"},
    };
    for (size_t i = 0; i < sizeof nets / sizeof *nets; i++)
        if (in_net(a, nets[i].net, nets[i].bits))
            return nets[i].what;
    return NULL;
}

static const char *v6_class(const unsigned char *a)
{
    static const unsigned char zero[16] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, zero, 15) == 0)
        return a[15] == 0 ? "unspecified" : a[15] == 1 ? "loopback" : "reserved";
    if (memcmp(a, mapped, 12) == 0)
        return v4_class(a + 12);
    if (a[0] == 0xff)
        return "multicast";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return "link-local";
    if ((a[0] & 0xfe) == 0xfc)
        return "private";
    return NULL;
}

static int listed(const struct st_config *cfg, int family, const unsigned char *a)
{
    for (size_t i = 0; i < cfg->n_import_allow; i++) {
        const struct cfg_cidr *c = &cfg->import_allow[i];
        if (c->family == family && in_net(a, c->addr, c->prefix))
            return 1;
    }
    return 0;
}

/* 0 when the address may be reached; else -1 with why ("address 10.0.0.1 is private …"). */
static int judge(const struct st_config *cfg, const struct sockaddr *sa, char *why, size_t len)
{
    char text[INET6_ADDRSTRLEN] = "?";
    const unsigned char *a;
    const char *what;
    int family = sa->sa_family;

    if (family == AF_INET) {
        a = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        what = v4_class(a);
    } else if (family == AF_INET6) {
        a = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        what = v6_class(a);
    } else {
        snprintf(why, len, "address family %d is not IP", family);
        return -1;
    }
    if (!what || listed(cfg, family, a))
        return 0;
    /* a v4-mapped v6 address is allowed by its v4 entry too */
    if (family == AF_INET6 && a[10] == 0xff && a[11] == 0xff && listed(cfg, AF_INET, a + 12))
        return 0;
    inet_ntop(family, a, text, sizeof text);
    snprintf(why, len, "address %s is %s and import_allow does not list it", text, what);
    return -1;
}

/* ---- one hop ---- */

struct hop {
    struct stowage *st;
    struct core_fetch *f;
    CURL *h;
    char refused[200]; /* why the socket callback refused, "" if it did not */
    int to_sink;       /* the answer is 2xx: its body goes to the sink */
    struct st_err sink_err;
    int sink_failed, too_large;
};

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct hop *hp = ud;
    if (purpose != CURLSOCKTYPE_IPCXN ||
        judge(&hp->st->cfg, &addr->addr, hp->refused, sizeof hp->refused))
        return CURL_SOCKET_BAD;
    atomic_fetch_add(&hp->st->fetch_sockets, 1);
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
    struct hop *hp = ud;
    struct core_fetch *f = hp->f;
    size_t len = size * n;
    long code = 0;

    if (!hp->to_sink) {
        curl_easy_getinfo(hp->h, CURLINFO_RESPONSE_CODE, &code);
        if (code < 200 || code > 299)
            return len; /* a redirect's or an error's body is not the resource */
        hp->to_sink = 1;
    }
    if (f->received + len > f->max_bytes) {
        hp->too_large = 1;
        return 0;
    }
    f->received += len;
    if (f->sink(f->ud, buf, len, &hp->sink_err)) {
        hp->sink_failed = 1;
        return 0;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct hop *hp = ud;
    return hp->f->cancel && atomic_load(hp->f->cancel) ? 1 : 0;
}

/* Parse url, refuse what is not http(s), resolve its host and judge the addresses; the
 * chosen one is pinned in *pin (curl_slist owned by the caller). */
static int check_url(struct stowage *st, const char *url, struct curl_slist **pin, struct st_err *e)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, why[200] = "";
    struct addrinfo hints = {0}, *res = NULL;
    int rc = -1;

    if (!u)
        return st_fail(e, ST_INTERNAL, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        st_fail_field(e, ST_INVALID, "url", "not a valid URL");
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        st_fail_field(e, ST_INVALID, "url", "scheme %.16s is not http or https", scheme);
        goto out;
    }
    char name[256];
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
        snprintf(name, sizeof name, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(name, sizeof name, "%s", host);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(name, NULL, &hints, &res);
    if (g != 0) {
        st_fail(e, ST_UNAVAILABLE, "cannot resolve %.200s: %s", name, gai_strerror(g));
        goto out;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char one[200], text[INET6_ADDRSTRLEN + 2], entry[512];
        if (judge(&st->cfg, ai->ai_addr, one, sizeof one)) {
            if (!why[0])
                snprintf(why, sizeof why, "%s", one);
            continue;
        }
        const void *a =
            ai->ai_family == AF_INET
                ? (const void *)&((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr
                : (const void *)&((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
        char plain[INET6_ADDRSTRLEN];
        inet_ntop(ai->ai_family, a, plain, sizeof plain);
        snprintf(text, sizeof text, ai->ai_family == AF_INET6 ? "[%s]" : "%s", plain);
        snprintf(entry, sizeof entry, "%s:%s:%s", host, port, text);
        if (!(*pin = curl_slist_append(NULL, entry))) {
            st_fail(e, ST_INTERNAL, "out of memory");
            goto out;
        }
        rc = 0;
        goto out;
    }
    atomic_fetch_add(&st->fetch_refused, 1);
    st_fail_field(e, ST_FORBIDDEN, "url", "%s", why[0] ? why : "no address");
out:
    if (res)
        freeaddrinfo(res);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* One request: 0 with *code (and *next, malloc'd, for a redirect), or -1. */
static int one_hop(struct stowage *st, struct core_fetch *f, const char *url, int64_t deadline_ms,
                   long *code, char **next, struct st_err *e)
{
    struct hop hp = {.st = st, .f = f};
    struct curl_slist *pin = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    int rc = -1;

    *next = NULL;
    if (check_url(st, url, &pin, e))
        return -1;
    int64_t left = deadline_ms - core_now_ms();
    if (left <= 0) {
        curl_slist_free_all(pin);
        return st_fail(e, ST_UNAVAILABLE, "timed out");
    }
    if (!(hp.h = curl_easy_init())) {
        curl_slist_free_all(pin);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    CURL *h = hp.h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_RESOLVE, pin);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &hp);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &hp);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &hp);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(f->max_bytes - f->received));
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "stowage");

    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code);
    if (hp.refused[0]) {
        atomic_fetch_add(&st->fetch_refused, 1);
        st_fail_field(e, ST_FORBIDDEN, "url", "%s", hp.refused);
    } else if (hp.sink_failed) {
        *e = hp.sink_err;
    } else if (hp.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
        st_fail(e, ST_TOO_LARGE, "response is larger than %llu bytes",
                (unsigned long long)f->max_bytes);
    } else if (cc == CURLE_ABORTED_BY_CALLBACK) {
        st_fail(e, ST_CONFLICT, "cancelled");
    } else if (cc != CURLE_OK) {
        st_fail(e, ST_UNAVAILABLE, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
    } else if (*code >= 300 && *code < 400) {
        char *loc = NULL;
        curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
        if (!loc)
            st_fail(e, ST_UNAVAILABLE, "HTTP %ld without a Location", *code);
        else if (!(*next = strdup(loc)))
            st_fail(e, ST_INTERNAL, "out of memory");
        else
            rc = 0;
    } else if (*code < 200 || *code > 299) {
        st_fail(e, *code == 404 ? ST_NOT_FOUND : ST_UNAVAILABLE, "HTTP %ld", *code);
    } else {
        rc = 0;
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(pin);
    return rc;
}

int core_fetch_run(struct stowage *st, struct core_fetch *f, struct st_err *e)
{
    char *url = strdup(f->url), *next = NULL;
    int64_t deadline =
        core_now_ms() +
        (int64_t)(f->timeout_ms ? f->timeout_ms : st->cfg.import_timeout_s * 1000ull);
    long code = 0;
    int rc = -1;

    pthread_once(&curl_once, curl_setup);
    f->received = 0;
    if (!url)
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (int hop = 0; hop <= MAX_HOPS; hop++) {
        if (one_hop(st, f, url, deadline, &code, &next, e))
            goto out;
        if (!next) {
            rc = 0;
            goto out;
        }
        free(url);
        url = next;
        next = NULL;
    }
    st_fail(e, ST_UNAVAILABLE, "more than %d redirects", MAX_HOPS);
out:
    free(url);
    return rc;
}

struct small {
    char *buf;
    size_t len, cap;
};

static int to_small(void *ud, const void *buf, size_t len, struct st_err *e)
{
    struct small *s = ud;
    if (s->len + len + 1 > s->cap) {
        size_t cap = (s->len + len + 1) * 2;
        char *p = realloc(s->buf, cap);
        if (!p)
            return st_fail(e, ST_INTERNAL, "out of memory");
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, buf, len);
    s->len += len;
    s->buf[s->len] = '\0';
    return 0;
}

int core_fetch_small(struct stowage *st, const char *url, size_t max, unsigned timeout_ms,
                     char **out, size_t *len, struct st_err *e)
{
    struct small s = {0};
    struct core_fetch f = {
        .url = url, .max_bytes = max, .timeout_ms = timeout_ms, .sink = to_small, .ud = &s};
    *out = NULL;
    *len = 0;
    if (core_fetch_run(st, &f, e) || (!s.buf && to_small(&s, "", 0, e))) {
        free(s.buf);
        return -1;
    }
    *out = s.buf;
    *len = s.len;
    return 0;
}

void core_fetch_stats(struct stowage *st, struct core_fetch_stats *out)
{
    out->sockets = atomic_load(&st->fetch_sockets);
    out->refused = atomic_load(&st->fetch_refused);
}
