-- 014: snapshots of clones (Danube Cloud's /vm/{guest}/snapshot/), each a frozen copy
-- of its clone's file on the clone's volume ("clones/<clone>@<name>.<fmt>"), gone with
-- its clone; and the image servers a superadmin added at run time (beside the config's).
CREATE TABLE snapshot (
    clone_id   TEXT NOT NULL REFERENCES clone(clone_id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    path       TEXT NOT NULL,
    format     TEXT NOT NULL,
    size       INTEGER NOT NULL DEFAULT 0,
    note       TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (clone_id, name)
);

CREATE TABLE imagestore (
    name       TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
