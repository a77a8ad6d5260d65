-- rebuilds tables
-- 005: a volume's kind-specific fields become its backend's own parameters (one JSON
-- object per volume, which that backend parses), and the list of kinds leaves the
-- schema: it lives in the backend registry only. SQLite cannot drop a CHECK in place,
-- so the table is rebuilt (foreign-key enforcement is off while this runs, as SQLite's
-- procedure for changing a table's constraints says; the rows are copied unchanged).
CREATE TABLE volume_new (
    id                TEXT PRIMARY KEY,
    image_storage_id  TEXT NOT NULL REFERENCES image_storage(id),
    kind              TEXT NOT NULL,
    params            TEXT NOT NULL DEFAULT '{}',
    primary_disk_id   TEXT NOT NULL DEFAULT '',
    secondary_disk_id TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'unknown'
                      CHECK (status IN ('unknown', 'ok', 'degraded', 'broken')),
    status_msg        TEXT NOT NULL DEFAULT '',
    probed_at         INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL
);
INSERT INTO volume_new (id, image_storage_id, kind, params, primary_disk_id, secondary_disk_id,
                        status, status_msg, probed_at, created_at)
SELECT id, image_storage_id, kind,
       CASE WHEN gluster_name != '' THEN
            json_object('server', gluster_server, 'volume', gluster_name)
       ELSE json_object('mount_point', mount_point,
                        'require_mount', json(CASE require_mount WHEN 0 THEN 'false' ELSE 'true' END),
                        'root_dev', root_dev, 'root_ino', root_ino)
       END,
       primary_disk_id, secondary_disk_id, status, status_msg, probed_at, created_at
FROM volume;
DROP TABLE volume;
ALTER TABLE volume_new RENAME TO volume;
CREATE INDEX volume_storage ON volume(image_storage_id);
