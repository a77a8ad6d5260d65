-- 010: images kept on backup storages (ZStack's ImageVO). An image is its metadata and
-- the checksum of its bytes; each copy on a backup storage is a row of image_backup
-- (008), 'Downloading' while it is being written and 'Ready' once its bytes are
-- published. sha256 is the copy's SHA-256 (ZStack's md5Sum field shows it).
CREATE TABLE backup_image (
    uuid          TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    url           TEXT NOT NULL,
    media_type    TEXT NOT NULL DEFAULT 'RootVolumeTemplate',
    guest_os_type TEXT NOT NULL DEFAULT '',
    platform      TEXT NOT NULL DEFAULT 'Linux',
    format        TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT 'Enabled' CHECK (state IN ('Enabled', 'Disabled')),
    status        TEXT NOT NULL DEFAULT 'Downloading' CHECK (status IN ('Downloading', 'Ready')),
    size          INTEGER NOT NULL DEFAULT 0,
    actual_size   INTEGER NOT NULL DEFAULT 0,
    sha256        TEXT NOT NULL DEFAULT '',
    system        INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    last_op_at    INTEGER NOT NULL
);
-- LIKE is case-insensitive: a NOCASE index serves name~=prefix% (the LIKE optimization).
CREATE INDEX backup_image_name ON backup_image(name COLLATE NOCASE);
ALTER TABLE image_backup ADD COLUMN last_op_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX image_backup_image ON image_backup(image_uuid);
