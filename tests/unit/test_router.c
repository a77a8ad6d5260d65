/* test_router.c — route matching: captures, trailing slashes, 404, 405 with Allow, path tricks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stowage/api.h"
#include "stowage/http.h"

static void h(struct http_req *r)
{
    (void)r;
}

static const struct http_route alpha_routes[] = {
    {"GET", "/imagestorages", HTTP_BODY_NONE, ROLE_READER, h},
    {"GET", "/imagestorages/{id}", HTTP_BODY_NONE, ROLE_READER, h},
    {"DELETE", "/imagestorages/{id}", HTTP_BODY_NONE, ROLE_ADMIN, h},
    {"PUT", "/image/{name}/file/", HTTP_BODY_STREAM, ROLE_ADMIN, h},
    {"GET", "/v3/{project}/volumes/{id}", HTTP_BODY_NONE, ROLE_READER, h},
    {"GET", "/", HTTP_BODY_NONE, ROLE_NONE, h},
    {NULL, NULL, 0, 0, NULL},
};
static const char *const alpha_prefixes[] = {"/imagestorages", "/image", NULL};
static const struct http_dialect alpha = {"alpha", alpha_prefixes, alpha_routes, NULL};

static const struct http_route beta_routes[] = {
    {"GET", "/v1/health", HTTP_BODY_NONE, ROLE_NONE, h},
    {NULL, NULL, 0, 0, NULL},
};
static const char *const beta_prefixes[] = {"/v1", NULL};
static const struct http_dialect beta = {"beta", beta_prefixes, beta_routes, NULL};

static const struct http_dialect *const dialects[] = {&alpha, &beta, NULL};

struct match {
    int idx;
    const char *caps[HTTP_MAX_CAPTURES];
    int n;
    const struct http_dialect *d;
    char allow[128];
    char buf[512];
};

static void match(struct http_router *rt, const char *method, const char *path, struct match *m)
{
    memset(m, 0, sizeof *m);
    m->idx = http_router_match(rt, method, path, m->buf, sizeof m->buf, m->caps, &m->n, &m->d,
                               m->allow, sizeof m->allow);
}

static void test_router_captures_one_segment_per_placeholder(void **state)
{
    struct http_router *rt;
    struct match m;
    (void)state;
    assert_int_equal(http_router_new(&rt, dialects), 0);
    match(rt, "GET", "/v3/proj1/volumes/abc-123", &m);
    assert_true(m.idx >= 0);
    assert_string_equal(http_router_route(rt, m.idx)->pattern, "/v3/{project}/volumes/{id}");
    assert_int_equal(m.n, 2);
    assert_string_equal(m.caps[0], "proj1");
    assert_string_equal(m.caps[1], "abc-123");
    assert_ptr_equal(m.d, &alpha);
    http_router_free(rt);
}

static void test_router_trailing_slash_is_optional(void **state)
{
    struct http_router *rt;
    struct match m;
    (void)state;
    assert_int_equal(http_router_new(&rt, dialects), 0);
    match(rt, "PUT", "/image/win10/file", &m);
    assert_true(m.idx >= 0);
    assert_string_equal(m.caps[0], "win10");
    match(rt, "GET", "/imagestorages/default/", &m);
    assert_true(m.idx >= 0);
    assert_string_equal(m.caps[0], "default");
    match(rt, "GET", "/", &m);
    assert_true(m.idx >= 0);
    assert_string_equal(http_router_route(rt, m.idx)->pattern, "/");
    http_router_free(rt);
}

static void test_router_unknown_path_is_404_owned_by_prefix(void **state)
{
    struct http_router *rt;
    struct match m;
    (void)state;
    assert_int_equal(http_router_new(&rt, dialects), 0);
    match(rt, "GET", "/imagestorages/a/b/c", &m);
    assert_int_equal(m.idx, -ST_NOT_FOUND);
    assert_ptr_equal(m.d, &alpha);
    match(rt, "GET", "/v1/nothing", &m);
    assert_int_equal(m.idx, -ST_NOT_FOUND);
    assert_ptr_equal(m.d, &beta);
    match(rt, "GET", "/nowhere", &m);
    assert_int_equal(m.idx, -ST_NOT_FOUND);
    assert_ptr_equal(m.d, &beta); /* the last dialect answers unknown paths */
    http_router_free(rt);
}

static void test_router_wrong_method_is_405_with_allow(void **state)
{
    struct http_router *rt;
    struct match m;
    (void)state;
    assert_int_equal(http_router_new(&rt, dialects), 0);
    match(rt, "POST", "/imagestorages/x", &m);
    assert_int_equal(m.idx, -ST_METHOD);
    assert_string_equal(m.allow, "GET, DELETE");
    assert_ptr_equal(m.d, &alpha);
    http_router_free(rt);
}

static void test_router_refuses_dot_segments_and_empty_segments(void **state)
{
    struct http_router *rt;
    struct match m;
    (void)state;
    assert_int_equal(http_router_new(&rt, dialects), 0);
    match(rt, "GET", "/imagestorages/..", &m);
    assert_int_equal(m.idx, -ST_NOT_FOUND);
    match(rt, "PUT", "/image/../file/", &m);
    assert_int_equal(m.idx, -ST_NOT_FOUND);
    match(rt, "GET", "/imagestorages//x", &m);
    assert_int_equal(m.idx, -ST_NOT_FOUND);
    match(rt, "GET", "/imagestorages/.", &m);
    assert_int_equal(m.idx, -ST_NOT_FOUND);
    http_router_free(rt);
}

static void test_router_path_longer_than_buffer_is_404(void **state)
{
    struct http_router *rt;
    struct match m;
    char longpath[1024];
    (void)state;
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(http_router_new(&rt, dialects), 0);
    match(rt, "GET", longpath, &m);
    assert_int_equal(m.idx, -ST_NOT_FOUND);
    http_router_free(rt);
}

static void test_router_serves_every_daemon_route_without_ambiguity(void **state)
{
    /* Every real route must match itself (with placeholders filled) and nothing earlier. */
    struct http_router *rt;
    (void)state;
    assert_int_equal(http_router_new(&rt, api_dialects), 0);
    for (size_t i = 0; i < http_router_count(rt); i++) {
        const struct http_route *r = http_router_route(rt, (int)i);
        char path[256], buf[512], allow[128];
        const char *caps[HTTP_MAX_CAPTURES];
        const struct http_dialect *d;
        int n;
        size_t o = 0;
        for (const char *p = r->pattern; *p && o < sizeof path - 2;) {
            if (*p == '{') {
                const char *end = strchr(p, '}');
                assert_non_null(end);
                o += (size_t)snprintf(path + o, sizeof path - o, "x1");
                p = end + 1;
            } else {
                path[o++] = *p++;
            }
        }
        path[o] = '\0';
        int idx = http_router_match(rt, r->method, path, buf, sizeof buf, caps, &n, &d, allow,
                                    sizeof allow);
        assert_int_equal(idx, (int)i);
    }
    http_router_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_captures_one_segment_per_placeholder),
        cmocka_unit_test(test_router_trailing_slash_is_optional),
        cmocka_unit_test(test_router_unknown_path_is_404_owned_by_prefix),
        cmocka_unit_test(test_router_wrong_method_is_405_with_allow),
        cmocka_unit_test(test_router_refuses_dot_segments_and_empty_segments),
        cmocka_unit_test(test_router_path_longer_than_buffer_is_404),
        cmocka_unit_test(test_router_serves_every_daemon_route_without_ambiguity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
