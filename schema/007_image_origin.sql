-- 007: the name an image's file had on its volume before it was adopted into the
-- catalogue (image.adopt), so that releasing it (image.unmanage) gives the file back
-- under that name; '' for images stowage made itself.
ALTER TABLE image ADD COLUMN origin TEXT NOT NULL DEFAULT '';
