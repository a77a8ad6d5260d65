/* xml.c — the bounds-checked element scanner behind the gluster CLI parsers (see xml.h). */
#include "xml.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum tag_kind { TAG_OPEN, TAG_CLOSE, TAG_EMPTY, TAG_OTHER };

struct tag {
    enum tag_kind kind;
    const char *name; /* points into the buffer */
    size_t name_len;
    const char *after; /* first byte after '>' */
};

static int is_name_end(char c)
{
    return c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse the markup starting at p ('<'). Quoted attribute values may hold '>' or '/'. */
static int parse_tag(const char *p, const char *end, struct tag *t)
{
    const char *q = p + 1;
    char quote = 0;

    t->kind = TAG_OPEN;
    if (q < end && (*q == '?' || *q == '!'))
        t->kind = TAG_OTHER;
    else if (q < end && *q == '/')
        t->kind = TAG_CLOSE, q++;
    t->name = q;
    while (q < end && !is_name_end(*q))
        q++;
    t->name_len = (size_t)(q - t->name);
    for (; q < end; q++) {
        if (quote) {
            if (*q == quote)
                quote = 0;
        } else if (*q == '"' || *q == '\'') {
            quote = *q;
        } else if (*q == '>') {
            if (t->kind == TAG_OPEN && q[-1] == '/')
                t->kind = TAG_EMPTY;
            t->after = q + 1;
            return 0;
        }
    }
    return -EINVAL;
}

static int tag_is(const struct tag *t, const char *name, size_t len)
{
    return t->name_len == len && memcmp(t->name, name, len) == 0;
}

/* From body, find the end tag that closes an element named tag; *close = its '<'. */
static int find_close(const char *body, const char *end, const char *tag, size_t len,
                      const char **close, const char **after)
{
    const char *p = body;
    int depth = 1;
    struct tag t;

    while ((p = memchr(p, '<', (size_t)(end - p))) != NULL) {
        if (parse_tag(p, end, &t) < 0)
            return -EINVAL;
        if (tag_is(&t, tag, len) && t.kind == TAG_OPEN)
            depth++;
        else if (tag_is(&t, tag, len) && t.kind == TAG_CLOSE && --depth == 0) {
            *close = p;
            *after = t.after;
            return 0;
        }
        p = t.after;
    }
    return -EINVAL;
}

int probe_xml_next(const char **pos, const char *end, const char *tag, struct probe_xml_el *el)
{
    size_t len = strlen(tag);
    const char *p = *pos;
    const char *close, *after;
    struct tag t;

    while (p < end && (p = memchr(p, '<', (size_t)(end - p))) != NULL) {
        if (parse_tag(p, end, &t) < 0)
            return -EINVAL;
        if (t.kind == TAG_EMPTY && tag_is(&t, tag, len)) {
            el->body = el->end = t.after;
            *pos = t.after;
            return 0;
        }
        if (t.kind != TAG_OPEN) {
            p = t.after;
            continue;
        }
        /* Only siblings count: a <name> inside <brick> is not the volume's <name>. */
        if (find_close(t.after, end, t.name, t.name_len, &close, &after) < 0)
            return -EINVAL;
        if (tag_is(&t, tag, len)) {
            el->body = t.after;
            el->end = close;
            *pos = after;
            return 0;
        }
        p = after;
    }
    return -ENOENT;
}

int probe_xml_child(const struct probe_xml_el *parent, const char *tag, struct probe_xml_el *el)
{
    const char *pos = parent->body;

    return probe_xml_next(&pos, parent->end, tag, el);
}

/* Append one code point as UTF-8. */
static int put_utf8(unsigned long cp, char *out, size_t outlen, size_t *n)
{
    char b[4];
    size_t k, i;

    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -EINVAL;
    if (cp < 0x80)
        b[0] = (char)cp, k = 1;
    else if (cp < 0x800)
        b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), k = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
        b[2] = (char)(0x80 | (cp & 0x3F)), k = 3;
    else
        b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), k = 4;
    if (*n + k >= outlen)
        return -ERANGE;
    for (i = 0; i < k; i++)
        out[(*n)++] = b[i];
    return 0;
}

/* Decode the entity at p ('&'); *next = first byte after ';'. */
static int decode_entity(const char *p, const char *end, char *out, size_t outlen, size_t *n,
                         const char **next)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''},
    };
    const char *semi = memchr(p, ';', (size_t)(end - p));
    size_t len, i;
    char num[16], *stop;
    unsigned long cp;

    if (!semi || semi - p > 12)
        return -EINVAL;
    *next = semi + 1;
    len = (size_t)(semi - p - 1);
    for (i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strlen(named[i].name) == len && memcmp(p + 1, named[i].name, len) == 0)
            return put_utf8((unsigned char)named[i].c, out, outlen, n);
    if (len < 2 || p[1] != '#')
        return -EINVAL;
    memcpy(num, p + 2, len - 1);
    num[len - 1] = '\0';
    errno = 0;
    cp = (num[0] == 'x') ? strtoul(num + 1, &stop, 16) : strtoul(num, &stop, 10);
    if (errno || *stop || stop == num || (num[0] == 'x' && stop == num + 1))
        return -EINVAL;
    return put_utf8(cp, out, outlen, n);
}

int probe_xml_text(const struct probe_xml_el *el, char *out, size_t outlen)
{
    const char *p = el->body;
    size_t n = 0;
    int depth = 0, rc;
    struct tag t;

    if (outlen == 0)
        return -ERANGE;
    while (p < el->end) {
        if (*p == '<') {
            if (parse_tag(p, el->end, &t) < 0)
                return -EINVAL;
            depth += (t.kind == TAG_OPEN) - (t.kind == TAG_CLOSE);
            p = t.after;
        } else if (depth > 0) {
            p++;
        } else if (*p == '&') {
            if ((rc = decode_entity(p, el->end, out, outlen, &n, &p)) < 0)
                return rc;
        } else {
            if (n + 1 >= outlen)
                return -ERANGE;
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return 0;
}

int probe_xml_child_text(const struct probe_xml_el *parent, const char *tag, char *out,
                         size_t outlen)
{
    struct probe_xml_el el;
    int rc = probe_xml_child(parent, tag, &el);

    return rc < 0 ? rc : probe_xml_text(&el, out, outlen);
}

int probe_xml_child_int(const struct probe_xml_el *parent, const char *tag, long *out)
{
    char buf[32], *stop;
    int rc = probe_xml_child_text(parent, tag, buf, sizeof buf);

    if (rc == -ERANGE)
        return -EINVAL;
    if (rc < 0)
        return rc;
    errno = 0;
    *out = strtol(buf, &stop, 10);
    if (errno || stop == buf || *stop)
        return -EINVAL;
    return 0;
}
