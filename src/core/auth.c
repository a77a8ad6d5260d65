/* auth.c — tokens, users and sessions.
 *
 * A token is "stw_" + 64 hex digits of random; only its SHA-256 is stored.
 * Passwords are stored as PBKDF2-HMAC-SHA256 with a per-user salt. Sessions
 * (flexVDI cookie, esdc/ZStack logins) are tokens of kind "session" that expire.
 *
 * Every request authenticates, so a token found in the catalogue is kept for a second in
 * a small table (by its hash) and the hot path asks no database. A revocation here moves
 * the table's generation before it returns, so no request after it is let in by an old
 * entry; a token deleted from outside the daemon is refused within AUTH_CACHE_MS. The
 * token's own expiry is checked on every use. */
#include "core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define KDF_ITERATIONS 100000
#define KDF_SALT 16
#define KDF_LEN 32

static const char *const role_names[] = {"none", "reader", "admin", "superadmin"};

const char *core_role_name(enum st_role r)
{
    return (unsigned)r < sizeof role_names / sizeof *role_names ? role_names[r] : "none";
}

int core_role_parse(const char *s, enum st_role *out)
{
    for (int i = ROLE_READER; i <= ROLE_SUPERADMIN; i++) {
        if (s && strcmp(s, role_names[i]) == 0) {
            *out = (enum st_role)i;
            return 0;
        }
    }
    return -1;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *in, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = in[2 * i + k];
            v <<= 4;
            if (ch >= '0' && ch <= '9')
                v |= (unsigned)(ch - '0');
            else if (ch >= 'a' && ch <= 'f')
                v |= (unsigned)(ch - 'a' + 10);
            else
                return -1;
        }
        out[i] = (unsigned char)v;
    }
    return in[2 * n] == '\0' || in[2 * n] == '$' ? 0 : -1;
}

static int token_hash(const char *token, char out[65])
{
    unsigned char d[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), d) < 0)
        return -1;
    hex(d, sizeof d, out);
    return 0;
}

#define AUTH_CACHE_MS 1000

static struct core_auth_slot *auth_slot(struct stowage *st, const char h[65])
{
    return &st->auth_cache[strtoul((char[3]){h[0], h[1], 0}, NULL, 16) % AUTH_CACHE_SLOTS];
}

/* 1 and *out filled when a live entry holds h; *gen is the generation to file a fresh
 * answer under. */
static int auth_cached(struct stowage *st, const char h[65], int64_t now, struct st_principal *out,
                       uint64_t *gen)
{
    struct core_auth_slot *s = auth_slot(st, h);
    int hit;
    pthread_mutex_lock(&st->auth_mu);
    *gen = st->auth_gen;
    hit = s->gen == st->auth_gen && s->until_ms > core_now_ms() && strcmp(s->hash, h) == 0 &&
          (s->expires_at == 0 || s->expires_at > now);
    if (hit)
        *out = s->who;
    pthread_mutex_unlock(&st->auth_mu);
    return hit;
}

static void auth_remember(struct stowage *st, const char h[65], const struct st_principal *who,
                          int64_t expires_at, uint64_t gen)
{
    struct core_auth_slot *s = auth_slot(st, h);
    pthread_mutex_lock(&st->auth_mu);
    if (gen == st->auth_gen) { /* no revocation since the catalogue was read */
        snprintf(s->hash, sizeof s->hash, "%s", h);
        s->who = *who;
        s->expires_at = expires_at;
        s->until_ms = core_now_ms() + AUTH_CACHE_MS;
        s->gen = gen;
    }
    pthread_mutex_unlock(&st->auth_mu);
}

static void auth_forget_all(struct stowage *st)
{
    pthread_mutex_lock(&st->auth_mu);
    st->auth_gen++;
    pthread_mutex_unlock(&st->auth_mu);
}

int core_authenticate(struct stowage *st, const char *token, struct st_principal *out,
                      struct st_err *e)
{
    char h[65];
    struct db_token t;
    size_t len = token ? strlen(token) : 0;
    int64_t now = (int64_t)time(NULL);
    uint64_t gen;

    if (len == 0 || len > 256)
        return st_fail(e, ST_UNAUTHORIZED, "missing or malformed credentials");
    if (token_hash(token, h))
        return st_fail(e, ST_INTERNAL, "hash failed");
    if (auth_cached(st, h, now, out, &gen))
        return 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_token_find(c, h, now, &t, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    memset(out, 0, sizeof *out);
    if (core_role_parse(t.role, &out->role))
        return st_fail(e, ST_INTERNAL, "token has unknown role '%s'", t.role);
    snprintf(out->owner, sizeof out->owner, "%s", t.owner);
    out->is_session = strcmp(t.kind, "session") == 0;
    auth_remember(st, h, out, t.expires_at, gen);
    return 0;
}

int core_token_create(struct stowage *st, enum st_role role, const char *owner, int session,
                      int64_t ttl_s, char *out, size_t outlen, struct st_err *e)
{
    unsigned char rnd[32];
    char h[65];
    struct db_token t = {0};
    uuid_t u;

    if (outlen < 4 + 64 + 1 || role < ROLE_READER || role > ROLE_SUPERADMIN)
        return st_fail(e, ST_INTERNAL, "bad token request");
    if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof rnd) < 0)
        return st_fail(e, ST_INTERNAL, "no randomness");
    memcpy(out, "stw_", 4);
    hex(rnd, sizeof rnd, out + 4);
    if (token_hash(out, h))
        return st_fail(e, ST_INTERNAL, "hash failed");
    uuid_generate_random(u);
    uuid_unparse_lower(u, t.id);
    snprintf(t.role, sizeof t.role, "%s", core_role_name(role));
    snprintf(t.owner, sizeof t.owner, "%s", owner ? owner : "");
    snprintf(t.kind, sizeof t.kind, "%s", session ? "session" : "token");
    t.expires_at = ttl_s > 0 ? (int64_t)time(NULL) + ttl_s : 0;

    struct db_conn *c = db_acquire(st->db);
    int rc = db_token_insert(c, &t, h, e);
    db_release(st->db, c);
    return rc;
}

int core_token_revoke(struct stowage *st, const char *token, struct st_err *e)
{
    char h[65];
    if (!token || token_hash(token, h))
        return st_fail(e, ST_INVALID, "no token");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_token_delete(c, h, e);
    db_release(st->db, c);
    auth_forget_all(st); /* after the delete: a lookup racing it files under the old gen */
    return rc;
}

int core_session_end(struct stowage *st, const char *token, struct st_err *e)
{
    struct st_principal who;
    if (core_authenticate(st, token, &who, e))
        return -1;
    if (!who.is_session)
        return st_fail(e, ST_INVALID, "not a session: logout ends sessions only");
    return core_token_revoke(st, token, e);
}

static int kdf(const char *password, const unsigned char *salt, unsigned iter,
               unsigned char out[KDF_LEN])
{
    gnutls_datum_t key = {(unsigned char *)password, (unsigned)strlen(password)};
    gnutls_datum_t s = {(unsigned char *)salt, KDF_SALT};
    return gnutls_pbkdf2(GNUTLS_MAC_SHA256, &key, &s, iter, out, KDF_LEN) < 0 ? -1 : 0;
}

int core_user_add(struct stowage *st, const char *name, const char *password, enum st_role role,
                  struct st_err *e)
{
    unsigned char salt[KDF_SALT], dk[KDF_LEN];
    char shex[2 * KDF_SALT + 1], dhex[2 * KDF_LEN + 1], stored[160];

    if (!core_valid_id(name))
        return st_fail_field(e, ST_INVALID, "username",
                             "user names match [A-Za-z0-9][A-Za-z0-9._-]{0,63}");
    if (!password || strlen(password) < 8 || strlen(password) > 1024)
        return st_fail_field(e, ST_INVALID, "password", "passwords are 8 to 1024 bytes");
    if (gnutls_rnd(GNUTLS_RND_RANDOM, salt, sizeof salt) < 0 ||
        kdf(password, salt, KDF_ITERATIONS, dk))
        return st_fail(e, ST_INTERNAL, "key derivation failed");
    hex(salt, sizeof salt, shex);
    hex(dk, sizeof dk, dhex);
    snprintf(stored, sizeof stored, "pbkdf2-sha256$%d$%s$%s", KDF_ITERATIONS, shex, dhex);
    /* And the same of its SHA-512 hex, for clients that send only that (ZStack). */
    unsigned char md[64];
    char mdhex[129], digest[160];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA512, password, strlen(password), md) < 0)
        return st_fail(e, ST_INTERNAL, "digest failed");
    hex(md, sizeof md, mdhex);
    if (gnutls_rnd(GNUTLS_RND_RANDOM, salt, sizeof salt) < 0 ||
        kdf(mdhex, salt, KDF_ITERATIONS, dk))
        return st_fail(e, ST_INTERNAL, "key derivation failed");
    explicit_bzero(mdhex, sizeof mdhex);
    hex(salt, sizeof salt, shex);
    hex(dk, sizeof dk, dhex);
    snprintf(digest, sizeof digest, "pbkdf2-sha256$%d$%s$%s", KDF_ITERATIONS, shex, dhex);

    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0)
        rc = db_user_upsert(c, name, stored, core_role_name(role), e);
    if (rc == 0)
        rc = db_user_set_digest(c, name, digest, e);
    return core_txn_end(st, c, rc, e);
}

/* Constant-time check of password against "pbkdf2-sha256$iter$salt$hash". */
static int password_matches(const char *stored, const char *password)
{
    unsigned char salt[KDF_SALT], want[KDF_LEN], got[KDF_LEN];
    unsigned iter;
    char shex[2 * KDF_SALT + 1], dhex[2 * KDF_LEN + 1];

    if (sscanf(stored, "pbkdf2-sha256$%u$%32[0-9a-f]$%64[0-9a-f]", &iter, shex, dhex) != 3 ||
        iter < 1000 || iter > 10000000 || unhex(shex, salt, KDF_SALT) ||
        unhex(dhex, want, KDF_LEN) || kdf(password, salt, iter, got))
        return 0;
    return gnutls_memcmp(want, got, KDF_LEN) == 0;
}

int core_login(struct stowage *st, const char *name, const char *password, char *session,
               size_t session_len, struct st_principal *who, struct st_err *e)
{
    return core_login_as(st, name, password, 0, session, session_len, who, e);
}

int core_login_as(struct stowage *st, const char *name, const char *password, int sha512_hex,
                  char *session, size_t session_len, struct st_principal *who, struct st_err *e)
{
    /* Same work for unknown users, so timing does not tell which names exist. */
    static const char dummy[] = "pbkdf2-sha256$100000$00000000000000000000000000000000$"
                                "0000000000000000000000000000000000000000000000000000000000000000";
    char stored[160] = "", role_s[16] = "";
    struct st_err ignore;
    enum st_role role;

    if (!name || !password || strlen(password) > 1024)
        return st_fail(e, ST_UNAUTHORIZED, "unknown user or wrong password");
    struct db_conn *c = db_acquire(st->db);
    int found = db_user_get(c, name, stored, sizeof stored, role_s, sizeof role_s, &ignore) == 0;
    if (found && sha512_hex)
        found = db_user_get_digest(c, name, stored, sizeof stored, &ignore) == 0 && stored[0];
    db_release(st->db, c);
    if (!password_matches(found ? stored : dummy, password) || !found ||
        core_role_parse(role_s, &role))
        return st_fail(e, ST_UNAUTHORIZED, "unknown user or wrong password");
    if (core_token_create(st, role, name, 1, st->cfg.session_ttl_s, session, session_len, e))
        return -1;
    if (who) {
        memset(who, 0, sizeof *who);
        who->role = role;
        snprintf(who->owner, sizeof who->owner, "%s", name);
        who->is_session = 1;
    }
    return 0;
}

/* Write the token to STATE_DIR/admin.token atomically, mode 0600. */
static int write_token_file(const char *dir, const char *token, struct st_err *e)
{
    char path[4200], tmp[4210];
    snprintf(path, sizeof path, "%s/admin.token", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return st_fail_errno(e, errno, "create %s", tmp);
    size_t len = strlen(token);
    int ok = write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok || rename(tmp, path)) {
        if (ok)
            saved = errno;
        unlink(tmp);
        return st_fail_errno(e, saved, "write %s", path);
    }
    return 0;
}

int core_auth_bootstrap(struct stowage *st, struct st_err *e)
{
    int64_t n = 0;
    char token[80];

    struct db_conn *c = db_acquire(st->db);
    int rc = db_token_count(c, "superadmin", &n, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    if (n > 0)
        return 0;
    if (core_token_create(st, ROLE_SUPERADMIN, "admin", 0, 0, token, sizeof token, e) ||
        write_token_file(st->cfg.state_dir, token, e))
        return -1;
    printf("stowaged: first start: superadmin token (also in %s/admin.token):\n%s\n",
           st->cfg.state_dir, token);
    fflush(stdout);
    return 0;
}
