/* err.c — filling struct st_err. */
#include "stowage/err.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const code_names[ST_CODE_COUNT] = {
    [ST_OK] = "ok",
    [ST_INVALID] = "invalid",
    [ST_UNAUTHORIZED] = "unauthorized",
    [ST_FORBIDDEN] = "forbidden",
    [ST_NOT_FOUND] = "not_found",
    [ST_METHOD] = "method_not_allowed",
    [ST_EXISTS] = "exists",
    [ST_CONFLICT] = "conflict",
    [ST_IN_USE] = "in_use",
    [ST_PRECONDITION] = "precondition_failed",
    [ST_TOO_LARGE] = "too_large",
    [ST_UNSUPPORTED_MEDIA] = "unsupported_media_type",
    [ST_RANGE] = "range_not_satisfiable",
    [ST_HEADER_TOO_LARGE] = "header_too_large",
    [ST_UNAVAILABLE] = "unavailable",
    [ST_NO_SPACE] = "no_space",
    [ST_INTERNAL] = "internal",
    [ST_TIMEOUT] = "request_timeout",
    [ST_TOO_MANY] = "too_many_requests",
};

const char *st_code_name(enum st_code code)
{
    if ((unsigned)code >= ST_CODE_COUNT)
        return "internal";
    return code_names[code];
}

void st_clear(struct st_err *e)
{
    if (!e)
        return;
    e->code = ST_OK;
    e->field[0] = '\0';
    e->msg[0] = '\0';
}

/* The length of the valid UTF-8 character at s, or 0. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, cp = s[0] & 0x07u;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* the terminating NUL stops here too */
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void st_utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = utf8_len(p);
        if (n)
            p += n;
        else
            *p++ = '?';
    }
}

__attribute__((format(printf, 4, 0))) static int vfail(struct st_err *e, enum st_code code,
                                                        const char *field, const char *fmt,
                                                        va_list ap)
{
    if (!e)
        return -1;
    e->code = code;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    st_utf8_clean(e->field);
    st_utf8_clean(e->msg);
    return -1;
}

int st_fail(struct st_err *e, enum st_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(e, code, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

int st_fail_field(struct st_err *e, enum st_code code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(e, code, field, fmt, ap);
    va_end(ap);
    return -1;
}

enum st_code st_code_of_errno(int errnum)
{
    switch (errnum < 0 ? -errnum : errnum) {
    case ENOSPC:
    case EDQUOT:
        return ST_NO_SPACE;
    case ENOTCONN:
    case EIO:
    case EROFS:
    case ETIMEDOUT:
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ESTALE:
    case ENODEV:
    case EAGAIN:
        return ST_UNAVAILABLE;
    case ENOENT:
        return ST_NOT_FOUND;
    case EEXIST:
        return ST_EXISTS;
    case ENOTEMPTY:
    case EBUSY:
    case ETXTBSY:
        return ST_IN_USE;
    case ELOOP: /* a symlink on the path: refused by design */
    case EXDEV: /* the path leaves the volume root */
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
        return ST_INVALID;
    case EACCES:
    case EPERM:
        return ST_FORBIDDEN;
    case EFBIG:
        return ST_TOO_LARGE;
    default:
        return ST_INTERNAL;
    }
}

int st_fail_errno(struct st_err *e, int errnum, const char *fmt, ...)
{
    char ctx[192];
    va_list ap;

    if (errnum < 0)
        errnum = -errnum;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    return st_fail(e, st_code_of_errno(errnum), "%s: %s", ctx, strerror(errnum));
}
