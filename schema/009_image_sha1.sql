-- 009: an image's SHA-1, the checksum IMGAPI manifests carry (files[0].sha1), computed
-- when an import streams the bytes in or when an IMGAPI client first asks, then kept
-- here; '' until known. The bytes of an active image never change, so it never goes
-- stale.
ALTER TABLE image ADD COLUMN sha1 TEXT NOT NULL DEFAULT '';
