/* query.h — a parsed query over one kind of catalogue row: conditions AND-ed, a window,
 * an order. Dialects fill it with neutral field names, core passes it down, and db/
 * turns it into an SQL WHERE with bound parameters over the resource's own allow-list
 * of fields (a field outside it is ST_INVALID naming it). */
#ifndef STOWAGE_QUERY_H
#define STOWAGE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#define ST_QUERY_MAX_CONDS 32

enum st_qop {
    ST_Q_EQ,
    ST_Q_NE,
    ST_Q_GT,
    ST_Q_GE,
    ST_Q_LT,
    ST_Q_LE,
    ST_Q_IN,       /* value: a comma-separated list */
    ST_Q_NOT_IN,   /* value: a comma-separated list */
    ST_Q_LIKE,     /* value: an SQL LIKE pattern, % and _ */
    ST_Q_NOT_LIKE, /* value: an SQL LIKE pattern */
    ST_Q_IS_NULL,  /* no value: empty text, or 0 */
    ST_Q_NOT_NULL, /* no value */
};

struct st_cond {
    const char *field; /* a neutral field name of the resource */
    enum st_qop op;
    const char *value; /* NULL for IS_NULL / NOT_NULL */
};

struct st_query {
    struct st_cond conds[ST_QUERY_MAX_CONDS];
    size_t n_conds;
    int64_t limit;    /* rows at most; < 0: no limit */
    int64_t start;    /* rows skipped */
    const char *sort; /* a field, or NULL: the resource's own order */
    int sort_desc;    /* descending */
};

#endif
