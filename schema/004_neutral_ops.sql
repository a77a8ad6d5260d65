-- 004: jobs name core's neutral operations and fields; dialects translate their own
-- (flexVDI's task types and field names live in src/api/flexvdi.c now). Stored rows are
-- renamed so that queued jobs run and finished ones read the same after an upgrade.
-- Params of a row are rewritten only where the old field is present.
UPDATE task SET type = CASE type
    WHEN 'istorage_create' THEN 'storage.create'
    WHEN 'istorage_modify' THEN 'storage.modify'
    WHEN 'istorage_delete' THEN 'storage.delete'
    WHEN 'volume_create' THEN 'volume.create'
    WHEN 'volume_delete' THEN 'volume.delete'
    WHEN 'evolume_create' THEN 'external.create'
    WHEN 'evolume_delete' THEN 'external.delete'
    WHEN 'image_create' THEN 'image.create'
    WHEN 'image_copy' THEN 'image.copy'
    WHEN 'image_release' THEN 'image.release'
    WHEN 'image_delete' THEN 'image.delete'
    WHEN 'guest_clone' THEN 'clone.create'
    WHEN 'clone_delete' THEN 'clone.delete'
    ELSE type END;

-- Fields: one statement per old key, for the rows that have it.
UPDATE task SET params_json = json_set(json_remove(params_json, '$.image_id'), '$.image',
    json_extract(params_json, '$.image_id')) WHERE type = 'clone.create' AND json_type(params_json, '$.image_id') IS NOT NULL;
UPDATE task SET params_json = json_set(json_remove(params_json, '$.image_id'), '$.name',
    json_extract(params_json, '$.image_id')) WHERE json_type(params_json, '$.image_id') IS NOT NULL;
UPDATE task SET params_json = json_set(json_remove(params_json, '$.image_storage_id'), '$.storage',
    json_extract(params_json, '$.image_storage_id')) WHERE json_type(params_json, '$.image_storage_id') IS NOT NULL;
UPDATE task SET params_json = json_set(json_remove(params_json, '$.volume_id'), '$.volume',
    json_extract(params_json, '$.volume_id')) WHERE json_type(params_json, '$.volume_id') IS NOT NULL;
UPDATE task SET params_json = json_set(json_remove(params_json, '$.primary_disk_id'), '$.disk',
    json_extract(params_json, '$.primary_disk_id')) WHERE json_type(params_json, '$.primary_disk_id') IS NOT NULL;
UPDATE task SET params_json = json_set(json_remove(params_json, '$.secondary_disk_id'), '$.mirror_disk',
    json_extract(params_json, '$.secondary_disk_id')) WHERE json_type(params_json, '$.secondary_disk_id') IS NOT NULL;
UPDATE task SET params_json = json_set(json_remove(params_json, '$.source_image_id'), '$.source',
    json_extract(params_json, '$.source_image_id')) WHERE json_type(params_json, '$.source_image_id') IS NOT NULL;
UPDATE task SET params_json = json_set(json_remove(params_json, '$.source_volume_id'), '$.source_volume',
    json_extract(params_json, '$.source_volume_id')) WHERE json_type(params_json, '$.source_volume_id') IS NOT NULL;
UPDATE task SET params_json = json_set(json_remove(params_json, '$.guest_id'), '$.guest',
    json_extract(params_json, '$.guest_id')) WHERE json_type(params_json, '$.guest_id') IS NOT NULL;
UPDATE task SET params_json = json_set(json_remove(params_json, '$.clone_id'), '$.clone',
    json_extract(params_json, '$.clone_id')) WHERE json_type(params_json, '$.clone_id') IS NOT NULL;
-- Sizes were MiB; they are bytes.
UPDATE task SET params_json = json_set(json_remove(params_json, '$.size_mb'), '$.size',
    json_extract(params_json, '$.size_mb') * 1048576) WHERE json_type(params_json, '$.size_mb') IS NOT NULL;
