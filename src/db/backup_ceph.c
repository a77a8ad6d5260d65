/* backup_ceph.c — the Ceph part of a backup storage: its cluster's fsid and pool (columns
 * of backup_storage), the pool's statistics at the last look (ceph_pool_stat) and its
 * mons (ceph_mon). Rows go away with their backup storage (ON DELETE CASCADE). */
#include "db_internal.h"

#include <stdio.h>
#include <string.h>

#define MON_COLS                                                                                   \
    "uuid, bs_uuid, hostname, mon_addr, mon_port, ssh_port, username, status, created_at, "        \
    "last_op_at"

static int put_mon(struct db_conn *c, const struct db_ceph_mon *m, struct st_err *e)
{
    static const char sql[] =
        "INSERT INTO ceph_mon (" MON_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, m->uuid);
    db_bind_text(q, 2, m->bs_uuid);
    db_bind_text(q, 3, m->hostname);
    db_bind_text(q, 4, m->mon_addr);
    db_bind_int64(q, 5, m->mon_port);
    db_bind_int64(q, 6, m->ssh_port);
    db_bind_text(q, 7, m->username);
    db_bind_text(q, 8, m->status);
    db_bind_int64(q, 9, m->created_at);
    db_bind_int64(q, 10, m->last_op_at);
    return db_exec_stmt(c, q, e, "insert ceph mon");
}

static int put_stats(struct db_conn *c, const char *bs_uuid, const struct db_ceph *ceph,
                     struct st_err *e)
{
    static const char sql[] =
        "INSERT INTO ceph_pool_stat (bs_uuid, used, avail, replicas, util_ppm, policy, "
        "pool_created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (bs_uuid) DO UPDATE SET "
        "used = ?2, avail = ?3, replicas = ?4, util_ppm = ?5, policy = ?6";
    static const char cols[] = "UPDATE backup_storage SET fsid = ?2, pool = ?3 WHERE uuid = ?1";
    struct db_query *q = db_stmt(c, sql, e);
    if (!q)
        return -1;
    db_bind_text(q, 1, bs_uuid);
    db_bind_int64(q, 2, ceph->used);
    db_bind_int64(q, 3, ceph->avail);
    db_bind_int64(q, 4, ceph->replicas);
    db_bind_int64(q, 5, ceph->util_ppm);
    db_bind_text(q, 6, ceph->policy);
    db_bind_int64(q, 7, ceph->pool_created);
    if (db_exec_stmt(c, q, e, "record ceph pool statistics") || !(q = db_stmt(c, cols, e)))
        return -1;
    db_bind_text(q, 1, bs_uuid);
    db_bind_text(q, 2, ceph->fsid);
    db_bind_text(q, 3, ceph->pool);
    return db_exec_changed(c, q, "record ceph fsid", "backup storage", bs_uuid, e);
}

int db_ceph_insert(struct db_conn *c, const char *bs_uuid, const struct db_ceph *ceph,
                   const struct db_ceph_mon *mons, size_t n, struct st_err *e)
{
    if (put_stats(c, bs_uuid, ceph, e))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (put_mon(c, &mons[i], e))
            return -1;
    return 0;
}

int db_ceph_update(struct db_conn *c, const char *bs_uuid, const struct db_ceph *ceph,
                   const struct db_ceph_mon *mons, size_t n, struct st_err *e)
{
    static const char sql[] = "UPDATE ceph_mon SET mon_addr = ?2, status = ?3, last_op_at = ?4 "
                              "WHERE uuid = ?1";
    if (put_stats(c, bs_uuid, ceph, e))
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct db_query *q = db_stmt(c, sql, e);
        if (!q)
            return -1;
        db_bind_text(q, 1, mons[i].uuid);
        db_bind_text(q, 2, mons[i].mon_addr);
        db_bind_text(q, 3, mons[i].status);
        db_bind_int64(q, 4, mons[i].last_op_at);
        if (db_exec_stmt(c, q, e, "update ceph mon"))
            return -1;
    }
    return 0;
}

static void read_ceph(struct db_query *q, void *item)
{
    struct db_ceph *x = item;
    db_col_text(q, 0, x->fsid, sizeof x->fsid);
    db_col_text(q, 1, x->pool, sizeof x->pool);
    x->used = db_col_int64(q, 2);
    x->avail = db_col_int64(q, 3);
    x->replicas = db_col_int64(q, 4);
    x->util_ppm = db_col_int64(q, 5);
    db_col_text(q, 6, x->policy, sizeof x->policy);
    x->pool_created = (int)db_col_int64(q, 7);
}

int db_ceph_get(struct db_conn *c, const char *bs_uuid, struct db_ceph *out, struct st_err *e)
{
    static const char sql[] =
        "SELECT b.fsid, b.pool, s.used, s.avail, s.replicas, s.util_ppm, s.policy, "
        "s.pool_created FROM backup_storage b JOIN ceph_pool_stat s ON s.bs_uuid = b.uuid "
        "WHERE b.uuid = ?1";
    return db_one_by_text(c, sql, bs_uuid, read_ceph, out, "ceph backup storage", e);
}

static void read_mon(struct db_query *q, void *item)
{
    struct db_ceph_mon *m = item;
    db_col_text(q, 0, m->uuid, sizeof m->uuid);
    db_col_text(q, 1, m->bs_uuid, sizeof m->bs_uuid);
    db_col_text(q, 2, m->hostname, sizeof m->hostname);
    db_col_text(q, 3, m->mon_addr, sizeof m->mon_addr);
    m->mon_port = db_col_int64(q, 4);
    m->ssh_port = db_col_int64(q, 5);
    db_col_text(q, 6, m->username, sizeof m->username);
    db_col_text(q, 7, m->status, sizeof m->status);
    m->created_at = db_col_int64(q, 8);
    m->last_op_at = db_col_int64(q, 9);
}

int db_ceph_mons(struct db_conn *c, const char *bs_uuid, struct db_ceph_mon **out, size_t *n,
                 struct st_err *e)
{
    static const char sql[] =
        "SELECT " MON_COLS " FROM ceph_mon WHERE bs_uuid = ?1 ORDER BY created_at, rowid";
    return db_collect_by_text(c, sql, bs_uuid, sizeof **out, read_mon, out, n, "list ceph mons", e);
}

struct owner {
    char uuid[DB_ID];
    char name[129];
};

static void read_owner(struct db_query *q, void *item)
{
    struct owner *o = item;
    db_col_text(q, 0, o->uuid, sizeof o->uuid);
    db_col_text(q, 1, o->name, sizeof o->name);
}

int db_ceph_by_fsid(struct db_conn *c, const char *fsid, char uuid[DB_ID], char name[129],
                    struct st_err *e)
{
    static const char sql[] =
        "SELECT uuid, name FROM backup_storage WHERE type = 'Ceph' AND fsid = ?1 LIMIT 1";
    struct owner o;
    struct st_err nf;
    if (db_one_by_text(c, sql, fsid, read_owner, &o, "backup storage", &nf)) {
        if (nf.code == ST_NOT_FOUND)
            return 0;
        *e = nf;
        return -1;
    }
    snprintf(uuid, DB_ID, "%s", o.uuid);
    snprintf(name, 129, "%s", o.name);
    return 1;
}
