/* login.c — the HTTP side of a password login, for every dialect's login route.
 *
 * The check runs on core's login threads (core_login_submit) while the connection is
 * suspended, so a burst of password guesses costs the HTTP threads nothing. The
 * dialect gets the outcome in its reply function, which words it in its envelope. */
#include "api_internal.h"

#include <stdio.h>
#include <stdlib.h>

struct api_login {
    api_login_reply_fn reply;
    struct core_login_result res;
    unsigned retry_after;
};

static void login_cleanup(struct http_req *r, int finished)
{
    (void)finished;
    free(http_ctx(r));
}

static const struct http_stream_ops login_ops = {NULL, NULL, login_cleanup};

static void login_answer(struct http_req *r)
{
    struct api_login *l = http_ctx(r);
    char s[16];
    if (l->retry_after) {
        snprintf(s, sizeof s, "%u", l->retry_after);
        http_add_header(r, "Retry-After", s);
    }
    l->reply(r, &l->res);
}

/* On a login thread: the request is suspended and stays alive until it is continued. */
static void login_done(void *ud, const struct core_login_result *res)
{
    struct http_req *r = ud;
    struct api_login *l = http_ctx(r);
    l->res = *res;
    http_continue(r, login_answer);
}

static void login(struct http_req *r, const char *user, const char *password, int sha512_hex,
                  api_login_reply_fn reply)
{
    char addr[64];
    struct api_login *l = calloc(1, sizeof *l);
    if (!l) {
        struct core_login_result res = {0};
        st_fail(&res.err, ST_INTERNAL, "out of memory");
        reply(r, &res);
        return;
    }
    l->reply = reply;
    http_set_ctx(r, l, &login_ops);
    http_client_addr(r, addr, sizeof addr);
    /* Suspended first: the answer may come back before the submission returns. */
    http_defer(r);
    int rc = sha512_hex ? core_login_submit_sha512(http_st(r), user, password, addr, login_done, r,
                                                   &l->retry_after, &l->res.err)
                        : core_login_submit(http_st(r), user, password, addr, login_done, r,
                                            &l->retry_after, &l->res.err);
    if (rc)
        http_continue(r, login_answer);
}

void api_login(struct http_req *r, const char *user, const char *password, api_login_reply_fn reply)
{
    login(r, user, password, 0, reply);
}

void api_login_sha512(struct http_req *r, const char *user, const char *sha512_hex,
                      api_login_reply_fn reply)
{
    login(r, user, sha512_hex, 1, reply);
}
