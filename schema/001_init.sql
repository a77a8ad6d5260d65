-- 001: image storages, hosts, volumes, disks, images, clones, tokens, users.
CREATE TABLE image_storage (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE host (
    image_storage_id TEXT NOT NULL REFERENCES image_storage(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    PRIMARY KEY (image_storage_id, name)
);

CREATE TABLE volume (
    id                TEXT PRIMARY KEY,
    image_storage_id  TEXT NOT NULL REFERENCES image_storage(id),
    kind              TEXT NOT NULL CHECK (kind IN ('local', 'external', 'gluster')),
    mount_point       TEXT NOT NULL DEFAULT '',
    require_mount     INTEGER NOT NULL DEFAULT 0,
    primary_disk_id   TEXT NOT NULL DEFAULT '',
    secondary_disk_id TEXT NOT NULL DEFAULT '',
    gluster_server    TEXT NOT NULL DEFAULT '',
    gluster_name      TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'unknown'
                      CHECK (status IN ('unknown', 'ok', 'degraded', 'broken')),
    status_msg        TEXT NOT NULL DEFAULT '',
    probed_at         INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL
);
CREATE INDEX volume_storage ON volume(image_storage_id);

CREATE TABLE disk (
    physical_disk_id TEXT PRIMARY KEY,
    vendor           TEXT NOT NULL DEFAULT '',
    product_number   TEXT NOT NULL DEFAULT '',
    host_device      TEXT NOT NULL DEFAULT '',
    volume_id        TEXT REFERENCES volume(id) ON DELETE SET NULL
);

CREATE TABLE image (
    uuid            TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    volume_id       TEXT NOT NULL REFERENCES volume(id),
    format          TEXT NOT NULL DEFAULT 'raw',
    virtual_size    INTEGER NOT NULL DEFAULT 0,
    actual_size     INTEGER NOT NULL DEFAULT 0,
    size_mb         INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'saving', 'active', 'error', 'deleted')),
    checksum_sha256 TEXT NOT NULL DEFAULT '',
    owner           TEXT NOT NULL DEFAULT '',
    access          INTEGER NOT NULL DEFAULT 3,
    alias           TEXT NOT NULL DEFAULT '',
    version         TEXT NOT NULL DEFAULT '1.0',
    description     TEXT NOT NULL DEFAULT '',
    ostype          INTEGER NOT NULL DEFAULT 0,
    tags            TEXT NOT NULL DEFAULT '[]',
    guest_id        TEXT NOT NULL DEFAULT '',
    parent_uuid     TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    generation      INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX image_live_name ON image(name) WHERE status != 'deleted';
CREATE INDEX image_volume ON image(volume_id);

CREATE TABLE clone (
    clone_id   TEXT PRIMARY KEY,
    image_uuid TEXT NOT NULL REFERENCES image(uuid),
    guest_id   TEXT NOT NULL,
    volume_id  TEXT NOT NULL REFERENCES volume(id),
    path       TEXT NOT NULL,
    format     TEXT NOT NULL DEFAULT 'qcow2',
    created_at INTEGER NOT NULL
);
CREATE INDEX clone_image ON clone(image_uuid);
CREATE INDEX clone_volume ON clone(volume_id);

CREATE TABLE token (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('superadmin', 'admin', 'reader')),
    owner      TEXT NOT NULL,
    kind       TEXT NOT NULL DEFAULT 'token' CHECK (kind IN ('token', 'session')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE user (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('superadmin', 'admin', 'reader')),
    created_at    INTEGER NOT NULL
);
