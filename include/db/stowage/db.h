/* db.h — the catalogue: image storages, volumes, images, clones, tasks, tokens.
 *
 * Behind it is one database engine, a driver in src/db/ (the embedded default keeps one
 * file under the state dir, never on network storage, durable at every commit, foreign
 * keys enforced). A small pool of connections, each with its own prepared statements;
 * every state change is one write transaction, locked from its start. SQL lives in
 * src/db/ only. */
#ifndef STOWAGE_DB_H
#define STOWAGE_DB_H

#include <stddef.h>
#include <stdint.h>

#include "stowage/err.h"
#include "stowage/query.h"

struct db;
struct db_conn;

struct db_migration {
    int version;
    const char *name;
    const char *sql;
};
/* The default driver's migrations, generated from schema/NNN_*.sql. */
extern const struct db_migration db_migrations[];

int db_open(struct db **out, const char *path, unsigned pool_size, struct st_err *e);
void db_close(struct db *db);
int db_schema_version(struct db *db);

/* Borrow a connection (blocks while all are busy); give it back. */
struct db_conn *db_acquire(struct db *db);
void db_release(struct db *db, struct db_conn *c);

/* A write transaction: no other writer commits until it ends. */
int db_begin(struct db_conn *c, struct st_err *e);
int db_commit(struct db_conn *c, struct st_err *e);
void db_rollback(struct db_conn *c);

/* ---- group commit ----
 * Concurrent writers share one transaction and one durable COMMIT (one fsync of the log)
 * instead of paying one each. db_group queues a member; the first waiter leads: it takes
 * every member queued so far and runs them in one write transaction, each member's fn in
 * its own savepoint, then commits. Members that queue meanwhile form the next batch. A
 * member whose fn fails is rolled back to its savepoint alone and gets its own error; a
 * failed BEGIN or COMMIT (or a failure that rolls the whole transaction back) fails every
 * member of the batch with that cause. db_group returns only after the COMMIT returned: a
 * 0 is durable. fn runs on the leader's thread with the batch's connection: it uses c
 * alone (no db_acquire, db_begin, db_commit) and does not block on anything but c. */
typedef int (*db_member_fn)(struct db_conn *c, void *ud, struct st_err *e);
int db_group(struct db *db, db_member_fn fn, void *ud, struct st_err *e);
/* n changes of one caller as members of one batch (the rows of creates whose files were
 * published together): fn with each of uds; rcs[i], errs[i] each one's verdict. */
void db_group_all(struct db *db, db_member_fn fn, void *const *uds, size_t n, int *rcs,
                  struct st_err *errs);
/* Batches committed and the members they carried, since db_open. */
void db_group_counts(struct db *db, uint64_t *commits, uint64_t *members);

/* ---- rows ---- */

#define DB_ID 65 /* client-chosen ids: 64 chars + NUL */
#define DB_PATH 4096

struct db_storage {
    char id[DB_ID];
    char name[129];
    char description[257];
    int64_t created_at;
};

struct db_volume {
    char id[DB_ID];
    char storage_id[DB_ID];
    char kind[16];
    /* the backend's own parameters (a JSON object): a mount point, a Gluster server and
     * volume, the identity of a directory recorded when it was registered, ... */
    char params[DB_PATH + 512];
    char primary_disk_id[96];
    char secondary_disk_id[96];
    char status[16];
    char status_msg[256];
    int64_t created_at;
};

struct db_image {
    char uuid[37];
    char name[DB_ID];
    char volume_id[DB_ID];
    char format[16];
    uint64_t virtual_size;
    uint64_t actual_size;
    char status[16]; /* queued saving active error deleted */
    char sha256[65];
    char owner[DB_ID];
    char guest_id[DB_ID];
    char parent_uuid[37];
    int64_t created_at;
    int64_t updated_at;
    int64_t generation;
    struct db_image_meta {
        char alias[33];
        char version[17];
        char description[129];
        char tags[1024]; /* a JSON array of strings */
        int ostype;
        int access; /* 1 public, 3 private, 4 deleted */
        int resize, deploy, dc_bound;
    } meta;
    char storage_id[DB_ID]; /* the volume's image storage (lists only) */
};

struct db_clone {
    char clone_id[DB_ID];
    char image_uuid[37];
    char image_name[DB_ID]; /* joined from image, for the dialects that name images */
    char guest_id[DB_ID];
    char volume_id[DB_ID];
    char path[512];
    char format[16];
    int64_t created_at;
};

/* A clone's frozen copy (snapshot.c); volume, guest and image come from its clone. */
struct db_snapshot {
    char clone_id[DB_ID];
    char name[DB_ID];
    char path[512]; /* "clones/<clone>@<name>.<fmt>" */
    char format[16];
    uint64_t size; /* bytes of the file */
    char note[129];
    int64_t created_at;
    char volume_id[DB_ID];
    char guest_id[DB_ID];
    char image_uuid[37];
};

/* An image server a superadmin added (the config's are not rows). */
struct db_imagestore {
    char name[DB_ID];
    char url[1024];
    int64_t created_at;
};

struct db_disk {
    char id[96];
    char vendor[64];
    char product_number[96];
    char host_device[64];
    char volume_id[DB_ID];
};

struct db_token {
    char id[37];
    char role[16];
    char owner[DB_ID];
    char kind[16];      /* "token" or "session" */
    int64_t expires_at; /* 0: never */
};

/* ---- image storages, hosts, volumes ---- */
int db_storage_insert(struct db_conn *c, const struct db_storage *s, struct st_err *e);
int db_storage_get(struct db_conn *c, const char *id, struct db_storage *out, struct st_err *e);
int db_storage_list(struct db_conn *c, struct db_storage **out, size_t *n, struct st_err *e);
int db_storage_update(struct db_conn *c, const struct db_storage *s, struct st_err *e);
int db_storage_delete(struct db_conn *c, const char *id, struct st_err *e);
int db_host_add(struct db_conn *c, const char *storage_id, const char *host, struct st_err *e);
int db_host_list(struct db_conn *c, const char *storage_id, char (**out)[256], size_t *n,
                 struct st_err *e);

int db_volume_insert(struct db_conn *c, const struct db_volume *v, struct st_err *e);
int db_volume_get(struct db_conn *c, const char *id, struct db_volume *out, struct st_err *e);
/* storage_id NULL: all volumes */
int db_volume_list(struct db_conn *c, const char *storage_id, struct db_volume **out, size_t *n,
                   struct st_err *e);
int db_volume_set_status(struct db_conn *c, const char *id, const char *status, const char *msg,
                         struct st_err *e);
int db_volume_set_disks(struct db_conn *c, const char *id, const char *primary,
                        const char *secondary, struct st_err *e);
/* Replace a volume's backend parameters (a backend recorded more of its place). */
int db_volume_set_params(struct db_conn *c, const char *id, const char *params_json,
                         struct st_err *e);

/* ---- disks (a record of what the probes saw) ---- */
int db_disk_replace_all(struct db_conn *c, const struct db_disk *d, size_t n, struct st_err *e);

/* ---- images and clones ---- */
int db_image_list_volume(struct db_conn *c, const char *volume_id, struct db_image **out, size_t *n,
                         struct st_err *e);
int db_clone_list_volume(struct db_conn *c, const char *volume_id, struct db_clone **out, size_t *n,
                         struct st_err *e);
int db_image_insert(struct db_conn *c, const struct db_image *im, struct st_err *e);
/* Every live (not deleted) image of the catalogue with its storage id, by name. */
int db_image_list_live(struct db_conn *c, struct db_image **out, size_t *n, struct st_err *e);
/* Replace an image's metadata (and bump generation); ST_NOT_FOUND when no row changed. */
int db_image_set_meta(struct db_conn *c, const char *uuid, const struct db_image_meta *m,
                      struct st_err *e);
/* The live image other than except_uuid with this alias (case-insensitive) and version:
 * 1 and its name in name (DB_ID bytes), 0 none. */
int db_image_alias_taken(struct db_conn *c, const char *alias, const char *version,
                         const char *except_uuid, char *name, struct st_err *e);
/* The clones of an image (by uuid). */
int db_clone_list_image(struct db_conn *c, const char *uuid, struct db_clone **out, size_t *n,
                        struct st_err *e);
/* One image by uuid (any status) / the live one by name. ST_NOT_FOUND otherwise. */
int db_image_get(struct db_conn *c, const char *uuid, struct db_image *out, struct st_err *e);
int db_image_by_name(struct db_conn *c, const char *name, struct db_image *out, struct st_err *e);
/* Every row on a volume whatever its status (recovery). */
int db_image_list_volume_all(struct db_conn *c, const char *volume_id, struct db_image **out,
                             size_t *n, struct st_err *e);
/* Record what the bytes are (the row stays as it is: the commit protocol sets status apart). */
int db_image_set_data(struct db_conn *c, const char *uuid, const char *format,
                      uint64_t virtual_size, uint64_t actual_size, const char *sha256,
                      struct st_err *e);
/* Change status (and bump generation); ST_NOT_FOUND when no row changed. */
int db_image_set_status(struct db_conn *c, const char *uuid, const char *status, struct st_err *e);
int db_image_set_guest(struct db_conn *c, const char *uuid, const char *guest_id, struct st_err *e);
/* Touch updated_at (a resumable upload that made progress). */
int db_image_touch(struct db_conn *c, const char *uuid, struct st_err *e);
int db_image_delete_row(struct db_conn *c, const char *uuid, struct st_err *e);
/* The name an adopted image's file had on its volume ('' when stowage made it). */
int db_image_set_origin(struct db_conn *c, const char *uuid, const char *origin, struct st_err *e);
int db_image_get_origin(struct db_conn *c, const char *uuid, char *out, size_t len,
                        struct st_err *e);
/* What adopting a file records beside its row: the name it had, a description and the
 * dialects' properties (JSON text of an object). */
int db_image_set_adopted(struct db_conn *c, const char *uuid, const char *origin,
                         const char *description, const char *properties, struct st_err *e);
int db_image_get_properties(struct db_conn *c, const char *uuid, char *out, size_t len,
                            struct st_err *e);
/* An image whose file is being moved back out to the root under the name to
 * (image.unmanage; it becomes the row's origin): set before the move, so that restart
 * recovery finds the rows whose release a crash cut short. to NULL or "": not releasing. */
int db_image_set_releasing(struct db_conn *c, const char *uuid, const char *to, struct st_err *e);
struct db_release {
    char uuid[37];
    char origin[256];
};
int db_image_list_releasing(struct db_conn *c, const char *volume_id, struct db_release **out,
                            size_t *n, struct st_err *e);
/* An image's SHA-1 (hex, '' until computed). */
int db_image_set_sha1(struct db_conn *c, const char *uuid, const char *sha1, struct st_err *e);
int db_image_get_sha1(struct db_conn *c, const char *uuid, char *out, size_t len, struct st_err *e);
/* What an unfinished upload is: the inode of the staging file it created (0: none) and
 * the whole length a client declared (UINT64_MAX: not said). */
int db_image_set_upload(struct db_conn *c, const char *uuid, uint64_t staging_ino, uint64_t total,
                        struct st_err *e);
int db_image_get_upload(struct db_conn *c, const char *uuid, uint64_t *staging_ino, uint64_t *total,
                        struct st_err *e);
/* Live images and clones on a volume (volume_delete refuses while any). */
int db_volume_usage(struct db_conn *c, const char *volume_id, int64_t *images, int64_t *clones,
                    struct st_err *e);

int db_clone_insert(struct db_conn *c, const struct db_clone *cl, struct st_err *e);
int db_clone_get(struct db_conn *c, const char *clone_id, struct db_clone *out, struct st_err *e);
int db_clone_delete(struct db_conn *c, const char *clone_id, struct st_err *e);
/* The clones of a guest, oldest first (its disks: disk_id 1 is the first). */
int db_clone_list_guest(struct db_conn *c, const char *guest_id, struct db_clone **out, size_t *n,
                        struct st_err *e);
/* Snapshots (snapshot.c): ST_EXISTS for a name the clone has, ST_NOT_FOUND. A list filters by
 * clone and by volume ("" : any). */
int db_snapshot_insert(struct db_conn *c, const struct db_snapshot *s, struct st_err *e);
int db_snapshot_get(struct db_conn *c, const char *clone_id, const char *name,
                    struct db_snapshot *out, struct st_err *e);
int db_snapshot_list(struct db_conn *c, const char *clone_id, const char *volume_id,
                     struct db_snapshot **out, size_t *n, struct st_err *e);
int db_snapshot_delete(struct db_conn *c, const char *clone_id, const char *name, struct st_err *e);
/* Image servers added at run time: ST_EXISTS, ST_NOT_FOUND. */
int db_imagestore_list(struct db_conn *c, struct db_imagestore **out, size_t *n, struct st_err *e);
int db_imagestore_insert(struct db_conn *c, const char *name, const char *url, struct st_err *e);
int db_imagestore_delete(struct db_conn *c, const char *name, struct st_err *e);
/* How many clones use an image; names up to the first few in `names` (comma list). */
int db_clone_count_image(struct db_conn *c, const char *uuid, int64_t *n, char *names,
                         size_t names_len, struct st_err *e);

/* ---- auth ---- */
int db_token_insert(struct db_conn *c, const struct db_token *t, const char *hash_hex,
                    struct st_err *e);
/* ST_NOT_FOUND when no live token has that hash. */
int db_token_find(struct db_conn *c, const char *hash_hex, int64_t now, struct db_token *out,
                  struct st_err *e);
int db_token_delete(struct db_conn *c, const char *hash_hex, struct st_err *e);
int db_token_count(struct db_conn *c, const char *role, int64_t *n, struct st_err *e);
int db_user_upsert(struct db_conn *c, const char *name, const char *password_hash, const char *role,
                   struct st_err *e);
int db_user_get(struct db_conn *c, const char *name, char *password_hash, size_t hash_len,
                char *role, size_t role_len, struct st_err *e);

/* ---- tasks (src/db/task.c) ---- */

struct db_task {
    char id[37];
    char type[32];
    char state[16];  /* queued running completed */
    char result[16]; /* pending success error revoked */
    int progress;    /* 0..100 */
    char result_msg[512];
    char result_json[2048]; /* what a success made (neutral fields), "{}" when nothing */
    char owner[DB_ID];
    int64_t created_at; /* unix seconds */
    int64_t started_at;
    int64_t finished_at;
};

/* A new row, queued — or running since t->started_at when t->state is "running" (a task
 * handed straight to an idle worker); params_json is the validated params. */
int db_task_insert(struct db_conn *c, const struct db_task *t, const char *params_json,
                   struct st_err *e);
int db_task_get(struct db_conn *c, const char *id, struct db_task *out, struct st_err *e);
/* Every row, oldest first. */
int db_task_list(struct db_conn *c, struct db_task **out, size_t *n, struct st_err *e);
/* Take the oldest queued row and mark it running; *params_json is malloc'd.
 * ST_NOT_FOUND when nothing is queued. */
int db_task_claim(struct db_conn *c, int64_t now, struct db_task *out, char **params_json,
                  struct st_err *e);
/* The validated params of a task, *params_json malloc'd. */
int db_task_params(struct db_conn *c, const char *id, char **params_json, struct st_err *e);
int db_task_set_progress(struct db_conn *c, const char *id, int progress, struct st_err *e);
/* running -> completed with result (progress 100 on success). */
int db_task_finish(struct db_conn *c, const char *id, const char *result, const char *msg,
                   const char *result_json, int64_t now, struct st_err *e);
/* queued -> completed/revoked; *changed is 0 when the row was not queued. */
int db_task_revoke_queued(struct db_conn *c, const char *id, const char *msg, int64_t now,
                          int *changed, struct st_err *e);
/* Forget completed rows finished before `before`. */
int db_task_prune(struct db_conn *c, int64_t before, struct st_err *e);
/* The volume tasks: drop a volume row with the rows of images deleted from it. */
int db_volume_drop(struct db_conn *c, const char *id, struct st_err *e);

/* ---- backup storages (backup.c) ---- */

struct db_backup_storage {
    char uuid[DB_ID];
    char name[129];
    char description[257];
    char type[32]; /* ImageStoreBackupStorage, Ceph */
    char url[DB_PATH];
    char kind[16];              /* the backend registry kind of its place */
    char params[DB_PATH + 512]; /* the backend's parameters of its place (JSON) */
    char hostname[256];
    char username[DB_ID];
    int64_t ssh_port;
    char state[16];  /* Enabled Disabled */
    char status[16]; /* Connecting Connected Disconnected */
    char status_msg[256];
    int64_t total;     /* bytes */
    int64_t available; /* bytes */
    int64_t created_at;
    int64_t last_op_at;
};

int db_bs_insert(struct db_conn *c, const struct db_backup_storage *b, struct st_err *e);
int db_bs_get(struct db_conn *c, const char *uuid, struct db_backup_storage *out, struct st_err *e);
/* Every column but uuid, type, kind, created_at from b. */
int db_bs_update(struct db_conn *c, const struct db_backup_storage *b, struct st_err *e);
/* What a look found: status, status_msg, total, available (the rest stays). */
int db_bs_set_status(struct db_conn *c, const struct db_backup_storage *b, struct st_err *e);
int db_bs_delete(struct db_conn *c, const char *uuid, struct st_err *e);
/* The rows q selects (neutral fields: uuid name description type url hostname username
 * ssh_port state status total available created_at last_op_at), in q's window, and how
 * many match it in all (*total, before the window). out may be NULL: the count alone. */
int db_bs_query(struct db_conn *c, const struct st_query *q, struct db_backup_storage **out,
                size_t *n, int64_t *total, struct st_err *e);
/* Image backups on the backup storage that are not deleted. */
int db_bs_backup_count(struct db_conn *c, const char *uuid, int64_t *n, struct st_err *e);
int db_bs_zones(struct db_conn *c, const char *uuid, char (**out)[DB_ID], size_t *n,
                struct st_err *e);

/* ---- Ceph backup storages (backup_ceph.c) ---- */

struct db_ceph_mon {
    char uuid[DB_ID];
    char bs_uuid[DB_ID];
    char hostname[256];
    char mon_addr[256];
    int64_t mon_port;
    int64_t ssh_port;
    char username[DB_ID]; /* the cephx user */
    char status[16];      /* Connecting Connected Disconnected */
    int64_t created_at;
    int64_t last_op_at;
};

struct db_ceph {
    char fsid[64];
    char pool[256];
    int64_t used, avail, replicas, util_ppm;
    char policy[16]; /* Copy ErasureCode */
    int pool_created;
};

/* The Ceph part of a backup storage whose row is already written in c's transaction:
 * its fsid and pool (columns of the row), the pool's statistics and the mons. */
int db_ceph_insert(struct db_conn *c, const char *bs_uuid, const struct db_ceph *ceph,
                   const struct db_ceph_mon *mons, size_t n, struct st_err *e);
/* The pool's statistics and the mons' statuses and addresses after a look. */
int db_ceph_update(struct db_conn *c, const char *bs_uuid, const struct db_ceph *ceph,
                   const struct db_ceph_mon *mons, size_t n, struct st_err *e);
/* ST_NOT_FOUND when the backup storage has no Ceph part. */
int db_ceph_get(struct db_conn *c, const char *bs_uuid, struct db_ceph *out, struct st_err *e);
int db_ceph_mons(struct db_conn *c, const char *bs_uuid, struct db_ceph_mon **out, size_t *n,
                 struct st_err *e);
/* The backup storage of type Ceph on cluster fsid: 1 with its uuid and name, 0 none. */
int db_ceph_by_fsid(struct db_conn *c, const char *fsid, char uuid[DB_ID], char name[129],
                    struct st_err *e);

/* ZStack's zones (zone.c): named groups that backup storages are attached to. */
struct db_zone {
    char uuid[DB_ID];
    char name[129];
    char description[257];
    char state[16]; /* Enabled Disabled */
    int64_t created_at;
    int64_t last_op_at;
};

int db_zone_insert(struct db_conn *c, const struct db_zone *z, struct st_err *e);
int db_zone_get(struct db_conn *c, const char *uuid, struct db_zone *out, struct st_err *e);
/* name, description, state, last_op_at from z. */
int db_zone_update(struct db_conn *c, const struct db_zone *z, struct st_err *e);
/* The zone and its attachments. */
int db_zone_delete(struct db_conn *c, const char *uuid, struct st_err *e);
/* The rows q selects (neutral fields: uuid name description state created_at last_op_at),
 * as db_bs_query. */
int db_zone_query(struct db_conn *c, const struct st_query *q, struct db_zone **out, size_t *n,
                  int64_t *total, struct st_err *e);
/* ST_EXISTS when already attached; detach: ST_NOT_FOUND when it was not. */
int db_zone_attach(struct db_conn *c, const char *zone, const char *bs, struct st_err *e);
int db_zone_detach(struct db_conn *c, const char *zone, const char *bs, struct st_err *e);
/* The backup storages attached to a zone (*out malloc'd). */
int db_zone_backup_storages(struct db_conn *c, const char *zone, char (**out)[DB_ID], size_t *n,
                            struct st_err *e);

/* ---- images on backup storages (backup_image.c) ---- */

struct db_backup_image {
    char uuid[DB_ID];
    char name[129];
    char description[257];
    char url[1025];      /* where its bytes came from */
    char media_type[32]; /* RootVolumeTemplate DataVolumeTemplate ISO */
    char guest_os_type[65];
    char platform[32];
    char format[16];
    char state[16];  /* Enabled Disabled */
    char status[16]; /* Downloading Ready */
    int64_t size;    /* virtual bytes */
    int64_t actual_size;
    char sha256[65];
    int system;
    int64_t created_at;
    int64_t last_op_at;
};

struct db_image_backup {
    char image_uuid[DB_ID];
    char bs_uuid[DB_ID];
    char install_path[128]; /* on the backup storage's place: "images/<uuid>.<fmt>" */
    char status[16];        /* Downloading Ready */
    int64_t created_at;
    int64_t last_op_at;
};

int db_bimage_insert(struct db_conn *c, const struct db_backup_image *b, struct st_err *e);
int db_bimage_get(struct db_conn *c, const char *uuid, struct db_backup_image *out,
                  struct st_err *e);
/* The image and all its copies Ready, with what its bytes are (format, sizes, sha256) and
 * where they are on each place. */
int db_bimage_ready(struct db_conn *c, const struct db_backup_image *b, const char *install_path,
                    struct st_err *e);
/* The image's row and the rows of all its copies. */
int db_bimage_delete(struct db_conn *c, const char *uuid, struct st_err *e);
/* As db_bs_query, over the neutral fields uuid name description url media_type
 * guest_os_type platform format state status size actual_size sha256 system created_at
 * last_op_at. */
int db_bimage_query(struct db_conn *c, const struct st_query *q, struct db_backup_image **out,
                    size_t *n, int64_t *total, struct st_err *e);
int db_ibackup_insert(struct db_conn *c, const struct db_image_backup *r, struct st_err *e);
int db_ibackup_list(struct db_conn *c, const char *image_uuid, struct db_image_backup **out,
                    size_t *n, struct st_err *e);
int db_ibackup_delete(struct db_conn *c, const char *image_uuid, const char *bs_uuid,
                      struct st_err *e);
/* The images with a copy on the backup storage. */
int db_ibackup_images_on(struct db_conn *c, const char *bs_uuid, char (**out)[DB_ID], size_t *n,
                         struct st_err *e);

/* A user's key-derived SHA-512 digest of its password ("" when none was recorded). */
int db_user_set_digest(struct db_conn *c, const char *name, const char *digest_hash,
                       struct st_err *e);
int db_user_get_digest(struct db_conn *c, const char *name, char *out, size_t len,
                       struct st_err *e);

#endif
