/* query.c — one parsed query (struct st_query) as SQL: an allow-list of fields per
 * resource, conditions as bound parameters, never a value spliced into the text. Every
 * queryable resource's table file uses this, so each operator means the same everywhere. */
#include "db_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_qfield *field_of(const struct db_qfield *allow, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(allow[i].name, name) == 0)
            return &allow[i];
    return NULL;
}

static int append(struct db_where *w, struct st_err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int append(struct db_where *w, struct st_err *e, const char *fmt, ...)
{
    size_t len = strlen(w->sql);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->sql + len, sizeof w->sql - len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof w->sql - len)
        return st_fail(e, ST_INVALID, "the query is too long");
    return 0;
}

/* One value as the next placeholder; its text is a copy in w->vals at off. */
static int bind_value(struct db_where *w, const struct db_qfield *f, const char *v,
                      struct st_err *e)
{
    if (w->n_binds >= DB_WHERE_MAX_BINDS)
        return st_fail(e, ST_INVALID, "the query has more than %d values", DB_WHERE_MAX_BINDS);
    if (f->integer) {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' must be compared with an integer",
                                 f->name);
        w->binds[w->n_binds].text = NULL;
        w->binds[w->n_binds].integer = x;
    } else {
        w->binds[w->n_binds].text = v;
    }
    w->n_binds++;
    return append(w, e, "?%d", w->n_binds);
}

static int cond_sql(struct db_where *w, const struct db_qfield *f, const struct st_cond *c,
                    char *copy, struct st_err *e)
{
    static const char *const cmp[] = {[ST_Q_EQ] = "=",  [ST_Q_NE] = "<>", [ST_Q_GT] = ">",
                                      [ST_Q_GE] = ">=", [ST_Q_LT] = "<",  [ST_Q_LE] = "<="};
    const char *col = f->column, *empty = f->integer ? "0" : "''";

    switch (c->op) {
    case ST_Q_IS_NULL:
        return append(w, e, "(%s IS NULL OR %s = %s)", col, col, empty);
    case ST_Q_NOT_NULL:
        return append(w, e, "(%s IS NOT NULL AND %s <> %s)", col, col, empty);
    case ST_Q_LIKE:
    case ST_Q_NOT_LIKE:
        if (f->integer)
            return st_fail_field(e, ST_INVALID, f->name, "'%s' is a number: it cannot be LIKE",
                                 f->name);
        if (append(w, e, "%s %sLIKE ", col, c->op == ST_Q_NOT_LIKE ? "NOT " : ""))
            return -1;
        return bind_value(w, f, copy, e);
    case ST_Q_IN:
    case ST_Q_NOT_IN: {
        if (append(w, e, "%s %sIN (", col, c->op == ST_Q_NOT_IN ? "NOT " : ""))
            return -1;
        char *item = copy;
        for (int i = 0;; i++) {
            char *comma = strchr(item, ',');
            if (comma)
                *comma = '\0';
            if ((i && append(w, e, ", ")) || bind_value(w, f, item, e))
                return -1;
            if (!comma)
                break;
            item = comma + 1;
        }
        return append(w, e, ")");
    }
    default:
        if ((unsigned)c->op > ST_Q_LE)
            return st_fail(e, ST_INVALID, "unknown query operator");
        if (append(w, e, "%s %s ", col, cmp[c->op]))
            return -1;
        return bind_value(w, f, copy, e);
    }
}

int db_where_build(const struct db_qfield *allow, size_t n_allow, const struct st_query *q,
                   struct db_where *w, char *order, size_t order_len, struct st_err *e)
{
    size_t total = 0, off = 0;

    memset(w, 0, sizeof *w);
    order[0] = '\0';
    for (size_t i = 0; i < q->n_conds; i++)
        total += (q->conds[i].value ? strlen(q->conds[i].value) : 0) + 1;
    if (!(w->vals = malloc(total + 1)))
        return st_fail(e, ST_INTERNAL, "out of memory");
    for (size_t i = 0; i < q->n_conds; i++) {
        const struct st_cond *c = &q->conds[i];
        const struct db_qfield *f = field_of(allow, n_allow, c->field);
        if (!f)
            return st_fail_field(e, ST_INVALID, c->field ? c->field : "", "unknown field '%.64s'",
                                 c->field ? c->field : "");
        char *copy = w->vals + off;
        size_t len = c->value ? strlen(c->value) : 0;
        memcpy(copy, c->value ? c->value : "", len + 1);
        off += len + 1;
        if (append(w, e, "%s", i ? " AND " : " WHERE ") || cond_sql(w, f, c, copy, e))
            return -1;
    }
    if (q->sort) {
        const struct db_qfield *f = field_of(allow, n_allow, q->sort);
        if (!f)
            return st_fail_field(e, ST_INVALID, q->sort, "unknown field '%.64s'", q->sort);
        snprintf(order, order_len, " ORDER BY %s %s", f->column, q->sort_desc ? "DESC" : "ASC");
    }
    return 0;
}

void db_where_bind(struct db_query *s, const struct db_where *w)
{
    for (int i = 0; i < w->n_binds; i++) {
        if (w->binds[i].text)
            db_bind_text(s, i + 1, w->binds[i].text);
        else
            db_bind_int64(s, i + 1, w->binds[i].integer);
    }
}

void db_where_free(struct db_where *w)
{
    free(w->vals);
    w->vals = NULL;
}

struct db_query *db_stmt_dynamic(struct db_conn *c, const char *sql, struct st_err *e)
{
    struct db_query *q = c->drv->prepare(c->h, sql, 0);
    if (!q)
        db_fail(c, e, "prepare");
    return q;
}

void db_stmt_free(struct db_query *q)
{
    if (q)
        q->drv->finalize(q);
}

static int count_rows(struct db_conn *c, const struct db_table *t, const struct db_where *w,
                      int64_t *total, struct st_err *e)
{
    char sql[4300], what[64];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s%s", t->name, w->sql);
    snprintf(what, sizeof what, "count %s", t->what);
    struct db_query *q = db_stmt_dynamic(c, sql, e);
    if (!q)
        return -1;
    db_where_bind(q, w);
    enum db_step rc = db_step(q);
    if (rc == DB_ROW)
        *total = db_col_int64(q, 0);
    else
        db_fail(c, e, what);
    db_stmt_free(q);
    return rc == DB_ROW ? 0 : -1;
}

int db_table_query(struct db_conn *c, const struct db_table *t, const struct st_query *sq,
                   void *out, size_t *n, int64_t *total, struct st_err *e)
{
    struct db_where w;
    char order[160], sql[4800], what[64];
    int rc = -1;

    if (db_where_build(t->fields, t->n_fields, sq, &w, order, sizeof order, e))
        goto out;
    if (total && count_rows(c, t, &w, total, e))
        goto out;
    if (!out) {
        rc = 0;
        goto out;
    }
    snprintf(sql, sizeof sql, "SELECT %s FROM %s%s%s, rowid LIMIT %lld OFFSET %lld", t->cols,
             t->name, w.sql, order[0] ? order : t->order,
             (long long)(sq->limit < 0 ? -1 : sq->limit),
             (long long)(sq->start > 0 ? sq->start : 0));
    struct db_query *q = db_stmt_dynamic(c, sql, e);
    if (!q)
        goto out;
    db_where_bind(q, &w);
    snprintf(what, sizeof what, "query %s", t->what);
    rc = db_collect(c, q, t->elem, t->read, out, n, what, e);
    db_stmt_free(q);
out:
    db_where_free(&w);
    return rc;
}
