-- 015: what a dialect records of an image that core keeps without interpreting it, as a
-- JSON object (Cinder's metadata, bootable, volume_type and availability_zone of a
-- managed volume), and the release of an adopted file under way: image.unmanage sets
-- releasing before it moves the file back out and drops the row after, so restart
-- recovery can finish (the file is back under its origin) or undo it (still in images/).
ALTER TABLE image ADD COLUMN properties TEXT NOT NULL DEFAULT '{}';
ALTER TABLE image ADD COLUMN releasing INTEGER NOT NULL DEFAULT 0;
