-- 008: backup storages (ZStack's image stores, later Ceph), the zones they are attached
-- to, and the image backups on them. A backup storage's place is a backend volume: kind
-- and params are what the backend registry opens (as a volume's kind and params_json).
CREATE TABLE backup_storage (
    uuid        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    type        TEXT NOT NULL CHECK (type IN ('ImageStoreBackupStorage', 'Ceph')),
    url         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    params_json TEXT NOT NULL DEFAULT '{}',
    hostname    TEXT NOT NULL DEFAULT '',
    username    TEXT NOT NULL DEFAULT '',
    ssh_port    INTEGER NOT NULL DEFAULT 22,
    state       TEXT NOT NULL DEFAULT 'Enabled' CHECK (state IN ('Enabled', 'Disabled')),
    status      TEXT NOT NULL DEFAULT 'Connecting'
                CHECK (status IN ('Connecting', 'Connected', 'Disconnected')),
    status_msg  TEXT NOT NULL DEFAULT '',
    total       INTEGER NOT NULL DEFAULT 0,
    available   INTEGER NOT NULL DEFAULT 0,
    fsid        TEXT NOT NULL DEFAULT '',
    pool        TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    last_op_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX backup_storage_url ON backup_storage(url);
CREATE TABLE ceph_mon (
    uuid      TEXT PRIMARY KEY,
    bs_uuid   TEXT NOT NULL REFERENCES backup_storage(uuid) ON DELETE CASCADE,
    hostname  TEXT NOT NULL,
    mon_addr  TEXT NOT NULL DEFAULT '',
    mon_port  INTEGER NOT NULL DEFAULT 6789,
    ssh_port  INTEGER NOT NULL DEFAULT 22,
    status    TEXT NOT NULL DEFAULT 'Connecting'
);
CREATE TABLE zone_attachment (
    bs_uuid   TEXT NOT NULL REFERENCES backup_storage(uuid) ON DELETE CASCADE,
    zone_uuid TEXT NOT NULL,
    PRIMARY KEY (bs_uuid, zone_uuid)
);
CREATE TABLE image_backup (
    image_uuid   TEXT NOT NULL,
    bs_uuid      TEXT NOT NULL REFERENCES backup_storage(uuid),
    install_path TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'Downloading'
                 CHECK (status IN ('Downloading', 'Ready', 'Deleted')),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (image_uuid, bs_uuid)
);
CREATE INDEX image_backup_bs ON image_backup(bs_uuid);
-- The lowercase hex SHA-512 of a user's password, key-derived like the password itself,
-- for clients that send that digest instead of the password (ZStack's logInByAccount).
ALTER TABLE "user" ADD COLUMN digest_hash TEXT NOT NULL DEFAULT '';
