-- 012: ZStack's Ceph backup storages. A Ceph backup storage is a backup_storage row of
-- type Ceph whose place is an RBD pool (kind rbd; its fsid and pool in the row's columns),
-- with its mons (ceph_mon, from 008) and what the pool said of itself at the last look.
ALTER TABLE ceph_mon ADD COLUMN username TEXT NOT NULL DEFAULT '';
ALTER TABLE ceph_mon ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ceph_mon ADD COLUMN last_op_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ceph_mon_bs ON ceph_mon(bs_uuid);
CREATE TABLE ceph_pool_stat (
    bs_uuid      TEXT PRIMARY KEY REFERENCES backup_storage(uuid) ON DELETE CASCADE,
    used         INTEGER NOT NULL DEFAULT 0, -- bytes stored (ceph df: stored)
    avail        INTEGER NOT NULL DEFAULT 0, -- bytes that can still be stored (max_avail)
    replicas     INTEGER NOT NULL DEFAULT 0, -- the pool's size
    util_ppm     INTEGER NOT NULL DEFAULT 0, -- data share of the raw space, parts per million
    policy       TEXT NOT NULL DEFAULT 'Copy' CHECK (policy IN ('Copy', 'ErasureCode')),
    pool_created INTEGER NOT NULL DEFAULT 0  -- 1: stowage made the pool (bak-t-<uuid>)
);
CREATE INDEX backup_storage_fsid ON backup_storage(fsid);
