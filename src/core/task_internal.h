/* task_internal.h — what task.c, ops.c and manage.c share: the table of operations
 * (who may run each, which fields it takes) and the context a body runs in. */
#ifndef STOWAGE_TASK_INTERNAL_H
#define STOWAGE_TASK_INTERNAL_H

#include "core_internal.h"

/* What a task body gets: its validated params, a progress sink with the cancel flag,
 * and room for what it reports. */
struct core_task_ctx {
    struct stowage *st;
    const char *id;
    const char *owner;
    json_t *params; /* only the type's fields, each of the right type */
    const struct core_progress *progress;
    json_t *result; /* what a success made, in neutral fields (the task owns it) */
    int recorded;   /* the body committed its success row itself (core_task_record_success) */
};

enum core_task_field_kind {
    TF_ID,     /* core_valid_id */
    TF_DISK,   /* core_valid_disk_id */
    TF_NAME,   /* free text up to 128 bytes */
    TF_TEXT,   /* free text up to 256 bytes */
    TF_PATH,   /* an absolute path */
    TF_SIZE,   /* bytes, 1 up to max_image_size */
    TF_FORMAT, /* "raw" or "qcow2" */
    TF_SAFE,   /* text up to max bytes without any of <>%$&;'" (Danube Cloud's SafeCharField) */
    TF_TAGS,   /* JSON text of an array of strings (1 to 64 bytes each) */
    TF_ACCESS, /* an int: 1 public, 3 private, 4 deleted (0: absent) */
    TF_BOOL,   /* an enum core_tri */
    TF_GEN,    /* an int64 generation, >= 1 (0: absent) */
    TF_OBJECT, /* a name in a volume's root: one path component, up to 255 bytes */
    TF_PLACE,  /* a place's URL: 1 to DB_PATH - 1 bytes (its kind's form is checked later) */
    TF_URL,    /* an http:// or https:// URL, up to 1024 bytes */
    TF_LIST,   /* JSON text of a non-empty array of objects (the body checks their members) */
    TF_PROPS,  /* JSON text of an object, up to 4096 bytes (kept, never interpreted) */
};

/* A field of struct core_op_params: where it is, its neutral name (the key in the stored
 * params), what it must be. */
struct core_task_field {
    size_t offset;
    const char *name;
    enum core_task_field_kind kind;
    int required;
    unsigned max; /* TF_SAFE: the longest value in bytes */
};

#define CORE_TASK_MAX_FIELDS 16

struct core_task_type {
    const char *name;
    enum st_role role;
    int cancellable; /* the body checks the cancel flag while it runs */
    struct core_task_field fields[CORE_TASK_MAX_FIELDS];
    int (*run)(struct core_task_ctx *t, struct st_err *e);
    /* For a row the last process left running: had the body's effect committed when it
     * died? 1 yes (t->result says what), 0 no, -1 cannot tell yet (a volume's restart
     * recovery has still to settle it). NULL: never. */
    int (*recover)(struct core_task_ctx *t, int64_t started_at);
    /* Checks of the state (beyond the fields: the object exists, a value is free) that
     * refuse the job before it is queued, so a client hears at once what the body would
     * fail on; the body checks again. NULL: none. */
    int (*precheck)(struct stowage *st, const json_t *params, struct st_err *e);
};

/* The operation called name (a stored job's op), or NULL. */
const struct core_task_type *core_task_type(const char *name);
/* Check the submitter's role and the params of an operation; *clean gets a new object
 * holding only its fields, by neutral name. ST_INVALID names the field, ST_FORBIDDEN
 * says which role the operation needs. */
int core_task_check(const struct st_config *cfg, enum core_op op, const struct core_op_params *p,
                    enum st_role role, json_t **clean, struct st_err *e);
/* A physical_disk_id: [A-Za-z0-9._-], 1 to 95 bytes. */
int core_valid_disk_id(const char *s);

/* Params of a body ("" / 0 when absent). */
const char *core_task_str(const struct core_task_ctx *t, const char *key);
int64_t core_task_int(const struct core_task_ctx *t, const char *key);
int core_task_cancelled(const struct core_task_ctx *t);
/* Write the task's success (t->result) on c, inside the caller's transaction:
 * the body's last write and the task's result commit together. The body sets
 * t->recorded once that transaction has committed. */
int core_task_record_success(struct core_task_ctx *t, struct db_conn *c, struct st_err *e);

/* ---- image storage and volume bodies (manage.c) ---- */
int core_manage_istorage_create(struct core_task_ctx *t, struct st_err *e);
int core_manage_istorage_modify(struct core_task_ctx *t, struct st_err *e);
int core_manage_istorage_delete(struct core_task_ctx *t, struct st_err *e);
int core_manage_volume_create(struct core_task_ctx *t, struct st_err *e);
int core_manage_volume_delete(struct core_task_ctx *t, struct st_err *e);
int core_manage_evolume_create(struct core_task_ctx *t, struct st_err *e);
int core_manage_evolume_delete(struct core_task_ctx *t, struct st_err *e);
int core_manage_istorage_create_done(struct core_task_ctx *t, int64_t started_at);
int core_manage_istorage_modify_done(struct core_task_ctx *t, int64_t started_at);
int core_manage_istorage_delete_done(struct core_task_ctx *t, int64_t started_at);
int core_manage_volume_create_done(struct core_task_ctx *t, int64_t started_at);
int core_manage_volume_delete_done(struct core_task_ctx *t, int64_t started_at);
int core_manage_evolume_create_done(struct core_task_ctx *t, int64_t started_at);
/* The storage exists and no volume has this id yet. */
int core_manage_check_new_volume(struct stowage *st, const char *storage_id, const char *volume_id,
                                 struct st_err *e);
/* Insert the row and start probing it; on failure nothing of it is left. Refuses a
 * place another volume is, holds or lies in (core_volume_check_place). */
int core_manage_register_volume(struct stowage *st, const struct db_volume *v, struct st_err *e);
/* The same refusal, said early (before a disk is formatted). */
int core_manage_check_place(struct stowage *st, const struct db_volume *v, struct st_err *e);

/* ---- image servers (imagestore.c) ---- */
int core_imagestore_precheck_add(struct stowage *st, const json_t *params, struct st_err *e);
int core_imagestore_precheck_remove(struct stowage *st, const json_t *params, struct st_err *e);

/* ---- backup storage bodies (backup.c) ---- */
int core_backup_create(struct core_task_ctx *t, struct st_err *e);
int core_backup_update(struct core_task_ctx *t, struct st_err *e);
int core_backup_reconnect(struct core_task_ctx *t, struct st_err *e);
int core_backup_state(struct core_task_ctx *t, struct st_err *e);
int core_backup_delete(struct core_task_ctx *t, struct st_err *e);
int core_backup_precheck_create(struct stowage *st, const json_t *params, struct st_err *e);
int core_backup_precheck_state(struct stowage *st, const json_t *params, struct st_err *e);
int core_backup_precheck_delete(struct stowage *st, const json_t *params, struct st_err *e);
/* The new backup storage's uuid: the params' uuid, else 32 new hex digits. */
void core_backup_uuid(const struct core_task_ctx *t, char out[CORE_ID]);
/* 32 new random hex digits, as ZStack names its resources. */
void core_uuid32(char out[CORE_ID]);
/* ---- Ceph backup storages (backup_ceph.c) ---- */
int core_backup_ceph_create(struct core_task_ctx *t, struct st_err *e);
int core_backup_ceph_precheck(struct stowage *st, const json_t *params, struct st_err *e);
int core_backup_ceph_done(struct core_task_ctx *t, int64_t started_at);
/* After a reconnect's look at a Ceph backup storage's pool: contact its mons again and
 * record the pool's statistics (b's capacities become the pool's). Nothing for others. */
void core_backup_ceph_refresh(struct stowage *st, struct db_backup_storage *b);
/* A deleted backup storage's key, if it had one. */
void core_backup_ceph_forget(struct stowage *st, const char *uuid);

/* ---- zone bodies (zone.c) ---- */
int core_zone_create(struct core_task_ctx *t, struct st_err *e);
int core_zone_update(struct core_task_ctx *t, struct st_err *e);
int core_zone_delete(struct core_task_ctx *t, struct st_err *e);
int core_zone_attach(struct core_task_ctx *t, struct st_err *e);
int core_zone_detach(struct core_task_ctx *t, struct st_err *e);
int core_zone_precheck_create(struct stowage *st, const json_t *params, struct st_err *e);
int core_zone_precheck_update(struct stowage *st, const json_t *params, struct st_err *e);
int core_zone_precheck_delete(struct stowage *st, const json_t *params, struct st_err *e);
int core_zone_precheck_attach(struct stowage *st, const json_t *params, struct st_err *e);
int core_zone_precheck_detach(struct stowage *st, const json_t *params, struct st_err *e);

/* ---- images on backup storages (backup_image.c) ---- */
int core_bimage_add(struct core_task_ctx *t, struct st_err *e);
int core_bimage_delete(struct core_task_ctx *t, struct st_err *e);
int core_bimage_restore(struct core_task_ctx *t, struct st_err *e);
int core_bimage_add_done(struct core_task_ctx *t, int64_t started_at);
int core_bimage_precheck_add(struct stowage *st, const json_t *params, struct st_err *e);
int core_bimage_precheck_delete(struct stowage *st, const json_t *params, struct st_err *e);
int core_bimage_precheck_restore(struct stowage *st, const json_t *params, struct st_err *e);
/* Before a backup storage goes: remove the copies on it (their rows too) where its place
 * can be reached; an image goes with its last copy. */
int core_bimage_drop_bs(struct stowage *st, const char *bs_uuid, struct st_err *e);

#endif
