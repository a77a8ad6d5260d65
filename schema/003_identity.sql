-- 003: what a volume's directory is, and what an unfinished upload's staging file is.
-- root_dev/root_ino: st_dev and st_ino of a local/external volume's root directory when
-- it was registered (0: not recorded yet); recovery removes nothing in a directory that
-- is not that one. staging_ino: the inode of .staging/<uuid>.upload that the upload
-- created (0: none); a resume accepts only that file. upload_total: the whole length a
-- client declared for the upload (-1: not said yet).
ALTER TABLE volume ADD COLUMN root_dev INTEGER NOT NULL DEFAULT 0;
ALTER TABLE volume ADD COLUMN root_ino INTEGER NOT NULL DEFAULT 0;
ALTER TABLE image ADD COLUMN staging_ino INTEGER NOT NULL DEFAULT 0;
ALTER TABLE image ADD COLUMN upload_total INTEGER NOT NULL DEFAULT -1;
