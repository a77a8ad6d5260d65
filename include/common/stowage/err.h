/* err.h — the one error type every layer returns (common/: shared ground).
 *
 * Core and backends fill a struct st_err; each API dialect maps the code to its own
 * HTTP status and envelope in one table, so no handler formats an error by hand. */
#ifndef STOWAGE_ERR_H
#define STOWAGE_ERR_H

#include <stdarg.h>

enum st_code {
    ST_OK = 0,
    ST_INVALID,           /* bad input: malformed JSON, wrong type, bad name (400) */
    ST_UNAUTHORIZED,      /* no or unknown credentials (401) */
    ST_FORBIDDEN,         /* authenticated but the role does not allow it (403) */
    ST_NOT_FOUND,         /* no such object or route (404) */
    ST_METHOD,            /* route exists, method does not (405) */
    ST_EXISTS,            /* an object with that id/name already exists (409) */
    ST_CONFLICT,          /* state does not allow it: data already active, busy (409) */
    ST_IN_USE,            /* referenced by something else: clones, images on a volume (409) */
    ST_PRECONDITION,      /* If-Match / generation mismatch (412) */
    ST_TOO_LARGE,         /* body or image over a configured limit (413) */
    ST_UNSUPPORTED_MEDIA, /* wrong Content-Type on a JSON route (415) */
    ST_RANGE,             /* unsatisfiable Range / Content-Range (416) */
    ST_HEADER_TOO_LARGE,  /* request headers over the limit (431) */
    ST_UNAVAILABLE,       /* storage or backend unreachable, brick down (503) */
    ST_NO_SPACE,          /* volume full (507) */
    ST_INTERNAL,          /* a bug or an unexpected system error (500) */
    ST_TIMEOUT,           /* the client was too slow sending its request (408) */
    ST_TOO_MANY,          /* throttled: too many attempts, try again later (429) */
    ST_CODE_COUNT
};

/* field and msg end up in JSON envelopes, so they are always UTF-8: st_fail* replace
 * what is not (a client's bytes, a character cut by the size limit) with '?'. */
struct st_err {
    enum st_code code;
    char field[64]; /* the offending input field, when there is one */
    char msg[256];
};

/* Fill e (if not NULL) and return -1, so callers can write `return st_fail(e, ...)`. */
int st_fail(struct st_err *e, enum st_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like st_fail, naming the input field that is wrong. */
int st_fail_field(struct st_err *e, enum st_code code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Fill e from an errno value with a context prefix; picks NO_SPACE/UNAVAILABLE/... by errno. */
int st_fail_errno(struct st_err *e, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The one errno → code map every layer uses (sign ignored): ENOSPC → ST_NO_SPACE,
 * ENOTCONN/EIO/EROFS/ENODEV/EAGAIN → ST_UNAVAILABLE, ENOENT → ST_NOT_FOUND, ELOOP/EXDEV
 * (a path that would leave a volume) → ST_INVALID, ... */
enum st_code st_code_of_errno(int errnum);
void st_clear(struct st_err *e);
/* Replace in place each byte of s that does not begin a valid UTF-8 character (as
 * jansson checks it: no overlong forms, surrogates or code points past U+10FFFF) with '?'. */
void st_utf8_clean(char *s);
const char *st_code_name(enum st_code code);

#endif
