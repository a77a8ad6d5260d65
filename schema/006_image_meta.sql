-- 006: what a catalogue entry says of an image beyond its bytes, as Danube Cloud's
-- image object has it: whether a guest's disk may be resized and whether it is
-- deployed, and whether the image is bound to its image storage (esdc's dc_bound).
-- alias, version, description, ostype, tags and access have been columns since 001
-- (an empty alias reads as the image's name).
ALTER TABLE image ADD COLUMN resize INTEGER NOT NULL DEFAULT 0;
ALTER TABLE image ADD COLUMN deploy INTEGER NOT NULL DEFAULT 0;
ALTER TABLE image ADD COLUMN dc_bound INTEGER NOT NULL DEFAULT 1;
