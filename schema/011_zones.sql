-- 011: ZStack's zones: named groups that backup storages are attached to
-- (zone_attachment, 008). A zone holds no storage of its own.
CREATE TABLE zone (
    uuid        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL DEFAULT 'Enabled' CHECK (state IN ('Enabled', 'Disabled')),
    created_at  INTEGER NOT NULL,
    last_op_at  INTEGER NOT NULL
);
CREATE INDEX zone_attachment_zone ON zone_attachment(zone_uuid);
