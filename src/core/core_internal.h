/* core_internal.h — core's own rooms: the daemon context, the rows behind the views,
 * live volume state, backend access, claims, and what image.c, clone.c, upload.c and
 * recover.c share (the names of files on a volume and the steps of the commit
 * protocol). Only src/core/ (and its unit tests) include this. */
#ifndef STOWAGE_CORE_INTERNAL_H
#define STOWAGE_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "stowage/backend.h"
#include "stowage/core.h"
#include "stowage/db.h"
#include "stowage/format.h"
#include "stowage/group.h"
#include "stowage/probe.h"

_Static_assert(CORE_ID == DB_ID, "core and catalogue ids have one length");

struct core_volumes;   /* live volume state: prober threads, backend sessions (volume.c) */
struct core_tasks;     /* the job queue and its workers (task.c) */
struct core_logins;    /* password checks and their throttle (login.c) */
struct core_bs_places; /* backup storages' open places and their prober (backup_place.c) */

/* A token recently found in the catalogue (auth.c): its hash, what it grants, until when
 * the entry may be used, and the revocation generation it was read under. */
#define AUTH_CACHE_SLOTS 64
struct core_auth_slot {
    char hash[65];
    struct st_principal who;
    int64_t expires_at; /* the token's own, unix seconds; 0 never */
    int64_t until_ms;
    uint64_t gen;
};

/* The daemon context, passed down explicitly; the only mutable shared state. */
struct stowage {
    struct st_config cfg;
    struct db *db;
    struct core_volumes *vols;
    struct core_tasks *tasks;
    struct core_logins *logins;
    char hostname[256];
    atomic_uint_fast64_t generation; /* core_generation() */
    atomic_int stopping;
    int started;
    /* bytes of download read-ahead buffers held now, at most cfg.readahead_memory */
    atomic_uint_fast64_t readahead_bytes;
    /* names held by one operation at a time, or shared by readers (core_claim) */
    pthread_mutex_t claims_mu;
    struct core_claim *claims;
    struct core_scans *scans; /* cached verdicts on objects outside the catalogue */
    /* tokens found recently; auth_gen moves on every revocation (auth.c) */
    pthread_mutex_t auth_mu;
    uint64_t auth_gen;
    struct core_auth_slot auth_cache[AUTH_CACHE_SLOTS];
    /* URL fetches (fetch.c): sockets opened, hops refused by the address guard */
    atomic_uint_fast64_t fetch_sockets, fetch_refused;
    struct core_imagestores *imagestores; /* cached lists of IMGAPI servers (imagestore.c) */
    struct core_bs_places *bs_places;
    /* one-request creates whose files are published together (core_image_commit_new) */
    struct st_group publishes;
    /* upload finishes, queued for the finisher threads (core_upload_finish_async) */
    pthread_mutex_t finish_mu;
    pthread_cond_t finish_cv;      /* a finish is done, a finisher ended */
    pthread_cond_t finish_work_cv; /* a finish is queued */
    struct finisher *finish_queue, **finish_tail;
    unsigned finishing; /* queued or running */
    unsigned finish_queued, finish_idle, finish_threads;
    int finish_quit;
};

void core_bump(struct stowage *st);
/* Copy the text member f of *src into *dst's (cut at its size): rows into views. */
#define CORE_COPY_TEXT(dst, src, f) snprintf((dst)->f, sizeof(dst)->f, "%s", (src)->f)
/* The end of a write transaction begun on c (db_acquire, db_begin): commit it when rc is 0,
 * else roll it back; c is released. Returns rc, or the commit's failure. */
int core_txn_end(struct stowage *st, struct db_conn *c, int rc, struct st_err *e);
/* core_login, or with password the lowercase hex SHA-512 of it (checked against the
 * user's recorded digest). */
int core_login_as(struct stowage *st, const char *name, const char *password, int sha512_hex,
                  char *session, size_t session_len, struct st_principal *who, struct st_err *e);
int core_logins_start(struct stowage *st, struct st_err *e);
void core_logins_free(struct stowage *st);
/* On first start: create a superadmin token, write STATE_DIR/admin.token (0600), print it. */
int core_auth_bootstrap(struct stowage *st, struct st_err *e);

/* Rows to views. */
void core_image_from_row(const struct db_image *row, struct core_image *out);
void core_clone_from_row(const struct db_clone *row, struct core_clone *out);

/* ---- backup storages' places (backup_place.c, backup.c) ---- */

/* An open place of a backup storage, borrowed for a look or a copy. */
struct core_bs_ref {
    const struct backend_ops *ops;
    struct be_volume *be;
    void *priv; /* the kept place, or NULL: closed at release */
};
/* Open b's place, or borrow its kept session (kinds with keep_session). */
int core_bs_place_acquire(struct stowage *st, const struct db_backup_storage *b,
                          struct core_bs_ref *out, struct st_err *e);
void core_bs_place_release(struct stowage *st, struct core_bs_ref *ref);
/* A deleted backup storage's kept session is closed once nobody borrows it. */
void core_bs_place_forget(struct stowage *st, const char *uuid);
/* The prober: every backup storage looked at each backup_probe_interval_s. */
int core_bs_places_start(struct stowage *st, struct st_err *e);
void core_bs_places_stop(struct stowage *st);
/* Open b's place, prepare its namespaces, check it is reachable and writable, and read
 * its room into b (status Connected and capacities: 0; Disconnected with the reason in
 * status_msg and e: -1). */
int core_backup_look(struct stowage *st, struct db_backup_storage *b, struct st_err *e);

/* ---- storages and volumes (storage.c, volume.c) ---- */

struct core_vol_state {
    char status[16]; /* unknown ok degraded broken */
    char status_msg[256];
    uint64_t total_kb;
    uint64_t free_kb;
    int64_t probed_at_ms;
    uint64_t probe_us; /* duration of the last probe */
    dev_t devno;       /* the block device carrying the volume (its backend's check), or 0 */
    char dev_name[32]; /* its kernel block device name ("loop3", "md0"), "" if none */
    json_t *details;   /* what its backend says of it for views (owned by the state) */
};

/* A disk of the latest probe and the volume it carries ("" when none). */
struct core_disk_view {
    struct probe_disk disk;
    char volume_id[DB_ID];
};

/* Apply the config's initial storages (insert what is missing). */
int core_storage_apply_config(struct stowage *st, struct st_err *e);

/* Live volume state (volume.c). */
int core_volumes_start(struct stowage *st, struct st_err *e);
void core_volumes_stop(struct stowage *st);
/* Start probing a volume that was just added to the catalogue / forget one removed. */
int core_volumes_add(struct stowage *st, const struct db_volume *row, struct st_err *e);
void core_volumes_remove(struct stowage *st, const char *id);
int core_volume_state(struct stowage *st, const char *id, struct core_vol_state *out);
/* The live part of a view: status, space and what the volume's backend says of itself. */
void core_volume_fill_view(struct stowage *st, struct core_volume_view *v);
/* The latest disk probe with each disk's volume, *out malloc'd. */
int core_disks(struct stowage *st, struct core_disk_view **out, size_t *n, struct st_err *e);

/* Hold a key ("image:<uuid>") for one operation at a time: ST_CONFLICT naming what
 * when another holds it. core_claim_shared holds it beside other shared holders (the
 * clones and copies of one image run together; its delete or upload waits for none). */
int core_claim(struct stowage *st, const char *key, const char *what, struct st_err *e);
int core_claim_shared(struct stowage *st, const char *key, const char *what, struct st_err *e);
/* Give back one hold of key (either kind). */
void core_unclaim(struct stowage *st, const char *key);

/* ---- backend access to a volume (volume.c) ---- */

struct core_vol_ref {
    const struct backend_ops *ops;
    struct be_volume *be;
    void *priv; /* the tracked volume; held until core_volume_release */
};
/* Borrow the open backend of a volume for data operations. ST_NOT_FOUND for an
 * unknown volume, ST_UNAVAILABLE while it is broken, not yet open, or not yet
 * recovered after a restart. The volume cannot be removed while borrowed. */
int core_volume_acquire(struct stowage *st, const char *volume_id, struct core_vol_ref *out,
                        struct st_err *e);
void core_volume_release(struct core_vol_ref *ref);

/* ---- progress of long operations (tasks report it; 0..100) ---- */

struct core_progress {
    void (*fn)(void *ud, int percent);
    void *ud;
    atomic_int *cancel; /* set to 1 to ask the operation to stop (may be NULL) */
};

/* ---- images (image.c) ----
 * Crash safety: bytes are written to VOLUME/.staging/, fsynced, renamed into
 * VOLUME/images/<uuid>.<fmt>, the directory is fsynced, and only then does the
 * row turn active. Restart recovery (recover.c) rolls forward or removes
 * whatever a crash left between those steps. */

/* The row of an image by uuid (any status). */
int core_image_row(struct stowage *st, const char *uuid, struct db_image *out, struct st_err *e);
/* The live (not deleted) image with this name. */
int core_image_by_name(struct stowage *st, const char *name, struct db_image *out,
                       struct st_err *e);
/* Relative path of an image's bytes on its volume: "images/<uuid>.<format>". */
void core_image_path(const struct db_image *im, char *out, size_t len);
/* A new empty image: raw (sparse) or qcow2, virtual size in bytes. */
int core_image_create_empty(struct stowage *st, const char *name, const char *volume_id,
                            uint64_t size, const char *format, const char *owner,
                            struct db_image *out, struct st_err *e);
/* Copy an active image (by name) to a new image on a volume: reflink or in-kernel copy
 * when both are on one local filesystem, else a sparse copy through the backends. */
int core_image_copy(struct stowage *st, const char *source_name, const char *new_name,
                    const char *volume_id, const char *owner, const struct core_progress *p,
                    struct db_image *out, struct st_err *e);
/* Copy all of sf into the empty staging file df: reflink or in-kernel copy when both are on
 * one local filesystem, else only the data extents through the backends (holes stay). */
int core_copy_file(const struct core_vol_ref *sv, struct be_file *sf, const struct core_vol_ref *dv,
                   struct be_file *df, const struct core_progress *p, struct st_err *e);
/* Record an image's metadata, refusing (ST_EXISTS, field alias) an alias and version another
 * live image has (alias "" is the image's name). */
int core_image_set_meta_unique(struct stowage *st, const struct db_image *im,
                               const struct db_image_meta *m, struct st_err *e);
/* ST_EXISTS (field alias) when a live image has this alias (case-insensitive) and version. */
int core_alias_free(struct stowage *st, const char *alias, const char *version, struct st_err *e);
/* Delete an image (by name): ST_IN_USE while clones use it. */
int core_image_delete(struct stowage *st, const char *name, struct st_err *e);
/* Change an image's metadata from image.update's checked params (by neutral name):
 * ST_PRECONDITION when "generation" is not the row's, ST_EXISTS (field alias) when
 * another live image has the same alias and version. write 0: check only. */
int core_image_update(struct stowage *st, const char *name, const json_t *params, int write,
                      struct db_image *out, struct st_err *e);
/* Detach an image from its guest (guest_id = ""). */
int core_image_release(struct stowage *st, const char *name, struct st_err *e);
/* The default volume for new images of a storage (NULL: the first storage). */
int core_default_volume(struct stowage *st, const char *storage_id, char *out, size_t len,
                        struct st_err *e);
/* The usable volume of a storage with the most free space (Danube Cloud's dc placement). */
int core_roomiest_volume(struct stowage *st, const char *storage_id, char *out, size_t len,
                         struct st_err *e);

/* ---- objects outside the catalogue (unmanaged.c) ---- */
int core_scans_new(struct stowage *st);
void core_scans_free(struct stowage *st);
/* The object called name in v's root, judged afresh, its writers included. */
int core_unmanaged_check(struct stowage *st, const struct core_vol_ref *v, const char *volume_id,
                         const char *name, struct core_unmanaged *u, struct st_err *e);
/* What image.adopt checks before it is queued: the name is free, the object is there and
 * nothing definite makes it unsafe. */
int core_adopt_check(struct stowage *st, const char *volume_id, const char *object,
                     const char *name, struct st_err *e);
/* Move object (in volume_id's root) into the catalogue as image name with this uuid:
 * checked afresh; one transaction makes the 'saving' row with what the adoption records
 * (origin, description, properties); the backend's publish moves it to
 * images/<uuid>.<fmt>; then the row turns active, in one transaction with also (or NULL). */
struct core_also;
struct core_adoption {
    const char *volume_id, *object, *name, *uuid, *owner;
    const char *description; /* "" for none */
    const char *properties;  /* JSON text of an object, "{}" for none */
    const struct core_also *also;
};
int core_image_adopt(struct stowage *st, const struct core_adoption *a, struct db_image *out,
                     struct st_err *e);
/* What image.unmanage checks before it is queued: the image is active, no clone uses it. */
int core_unmanage_check(struct stowage *st, const char *name, struct st_err *e);
/* Move an image's file back to the root under the name it came with (released gets it),
 * then drop its row (with also, or NULL, in the same transaction). The row is marked
 * releasing before the move, so restart recovery finishes or undoes a release a crash cut
 * short (core_recover_releases). */
int core_image_unmanage(struct stowage *st, const char *name, const struct core_also *also,
                        char *released, size_t len, struct st_err *e);

/* ---- clones (clone.c) ---- */

struct db_conn;

/* A write that commits in one transaction with the row an operation inserts (a task's
 * result beside the clone it made: one fsync, not two); it sees that row as *row. */
struct core_also {
    int (*fn)(struct db_conn *c, const void *row, void *ud, struct st_err *e);
    void *ud;
};

/* A copy-on-write child of an image for a guest, on the image's volume: a qcow2 v3
 * overlay backed by "../images/<uuid>.<fmt>", or a reflink of a raw image when the
 * volume can. clone_id NULL or "": generated ("<image>_<guest>" when free). also
 * (or NULL) commits with the clone's row; if it fails, no clone is left. */
int core_clone_create(struct stowage *st, const char *image_name, const char *guest_id,
                      const char *clone_id, const struct core_also *also, struct db_clone *out,
                      struct st_err *e);
int core_clone_delete(struct stowage *st, const char *clone_id, struct st_err *e);
int core_clone_get(struct stowage *st, const char *clone_id, struct db_clone *out,
                   struct st_err *e);

/* ---- snapshots (snapshot.c): bodies of snapshot.create, snapshot.delete, snapshot.image ---- */
struct core_snapshot_image_req {
    const char *clone_id, *snapshot, *name, *volume_id, *owner;
    struct db_image_meta meta;
};
int core_snapshot_create(struct stowage *st, const char *clone_id, const char *name,
                         const char *note, struct db_snapshot *out, struct st_err *e);
int core_snapshot_delete(struct stowage *st, const char *clone_id, const char *name,
                         struct st_err *e);
/* Before it is queued: the snapshot is there, ok, and its chain can be flattened. */
int core_snapshot_image_check(struct stowage *st, const char *clone_id, const char *name,
                              struct st_err *e);
int core_snapshot_image(struct stowage *st, const struct core_snapshot_image_req *rq,
                        const struct core_progress *p, struct db_image *out, struct st_err *e);
/* Remove the files of a clone's snapshots (their rows went with the clone's). */
void core_snapshot_remove_files(struct stowage *st, const struct core_vol_ref *v,
                                const struct db_snapshot *s, size_t n);

/* ---- restart recovery (recover.c), run once per volume when its backend opens ---- */
int core_recover_volume(struct stowage *st, const char *volume_id, const struct backend_ops *ops,
                        struct be_volume *be, struct st_err *e);
/* 1 when im's release was begun and is not settled yet (recovery will settle it). */
int core_image_releasing(struct stowage *st, const struct db_image *im);
/* Releases (image.unmanage) a crash cut short, settled from where the file is (unmanaged.c);
 * present[i] says rows[i]'s file is in images/, and is set for the rows it drops. */
int core_recover_releases(struct stowage *st, const char *volume_id, const struct backend_ops *ops,
                          struct be_volume *be, const struct db_image *rows, size_t n,
                          char *present, struct st_err *e);
/* Remove resumable uploads untouched for cfg.staging_expiry_s (run now and then). */
int core_expire_uploads(struct stowage *st, const char *volume_id, const struct backend_ops *ops,
                        struct be_volume *be, struct st_err *e);

/* ---- the job queue (task.c) ---- */
int core_tasks_start(struct stowage *st, struct st_err *e);
void core_tasks_stop(struct stowage *st);

/* ---- the commit protocol (image.c, clone.c, upload.c, recover.c) ---- */

/* Staging names say who owns the bytes: an ".upload" survives a restart (a client
 * may resume it), a ".task" never does. */
#define STAGING_DIR ".staging"
#define UPLOAD_SUFFIX ".upload"
#define TASK_SUFFIX ".task"

#define COPY_CHUNK (4u << 20)

/* A big data buffer (an upload's, a copy's) starts on a page, so that a backend may hand
 * it to the device as it is: posix.c writes a whole aligned buffer with O_DIRECT. size is
 * a multiple of a page. */
static inline void *core_page_alloc(size_t size)
{
    return aligned_alloc(4096, size);
}

/* ".staging/<id><suffix>" */
void core_staging_path(const char *id, const char *suffix, char *out, size_t len);
/* Insert a 'saving' row for name on volume_id, with the client's uuid or a new one (NULL). */
int core_image_reserve(struct stowage *st, const char *name, const char *uuid,
                       const char *volume_id, const char *owner, struct db_image *out,
                       struct st_err *e);
/* The same on c, inside the caller's transaction. */
int core_image_reserve_in(struct db_conn *c, const char *name, const char *uuid,
                          const char *volume_id, const char *owner, struct db_image *out,
                          struct st_err *e);
/* The row reserve would insert, checked (name, uuid) but not written: a create whose
 * bytes all come at once writes its row only at the end (core_image_commit_new). */
int core_image_prepare(const char *name, const char *uuid, const char *volume_id, const char *owner,
                       struct db_image *out, struct st_err *e);
/* Forget a row that never held committed bytes. */
void core_image_discard(struct stowage *st, const char *uuid);
/* The end of every write: fsync f, record what the bytes are in the row, rename the
 * staging file to its final name (never replacing), fsync the directory, then mark the
 * row active. On failure the staging file is removed; the row is left to the caller. */
int core_image_commit(struct stowage *st, const struct core_vol_ref *v, struct be_file *f,
                      const char *staging, struct db_image *im, struct st_err *e);
/* The same for an image that has no row yet (core_image_prepare): fsync f, rename, fsync
 * the directory, then insert the row active in one group commit (db_group) — the only
 * catalogue change of the create. A crash before that commit leaves a file without a row,
 * which recovery removes. On failure nothing stays: neither the file (staged or renamed)
 * nor a row; a name taken meanwhile is ST_EXISTS. */
int core_image_commit_new(struct stowage *st, const struct core_vol_ref *v, struct be_file *f,
                          const char *staging, struct db_image *im, struct st_err *e);
/* core_image_commit_new without a thread waiting for it: the create joins a batch that a
 * server of st->publishes leads, which calls done(ud, rc, e) when it is over (e valid during
 * the call); the leader of the batch after it waits a little for client's next create
 * (NULL: unknown). 1 when that cannot be (the backend publishes each file alone, no server,
 * no memory): nothing was done, call core_image_commit_new. */
typedef void (*core_commit_fn)(void *ud, int rc, const struct st_err *e);
int core_image_commit_new_async(struct stowage *st, const struct core_vol_ref *v, struct be_file *f,
                                const char *staging, struct db_image *im, const void *client,
                                core_commit_fn done, void *ud);
/* The steps of st->publishes: a batch of core_image_commit_new's files published at once,
 * then their rows committed in one group commit. */
void core_publish_batch(void *ctx, struct st_group_member *batch, size_t n);
void core_publish_rows(void *ctx, struct st_group_member *batch, size_t n);
/* How long the leader of a batch of creates waits, at most, for as many as its last batch
 * had: a few hundred microseconds are what clients answered together take to come back. */
#define PUBLISH_WINDOW_NS 1000000L
/* Threads that lead the batches of creates submitted with no thread of their own waiting
 * (core_image_commit_new_async): two, so that one batch's rows commit while the next
 * one's files are published. */
#define PUBLISH_SERVERS 2
/* Inspect a file on a volume through its backend. */
int core_inspect(const struct core_vol_ref *v, struct be_file *f, const char *declared,
                 uint64_t max_virtual_size, int allow_backing, struct fmt_info *out,
                 struct st_err *e);
/* core_inspect with the daemon's size cap and no backing file, and what it refuses (not
 * fmt_accepted) refused with core_refusal's error. */
int core_inspect_accepted(struct stowage *st, const struct core_vol_ref *v, struct be_file *f,
                          const char *declared, struct fmt_info *out, struct st_err *e);
/* Map a refusal to an st_err: virtual size over the cap is ST_TOO_LARGE, the rest ST_INVALID. */
int core_refusal(const struct fmt_info *info, struct st_err *e);
/* Write all of buf at off (looping over short writes). */
int core_pwrite_all(const struct core_vol_ref *v, struct be_file *f, const void *buf, size_t len,
                    uint64_t off, struct st_err *e);
/* Create a staging file (O_EXCL), replacing a crashed try's leftover of that name. */
int core_open_staging(const struct core_vol_ref *v, const char *path, struct be_file **f,
                      struct st_err *e);
/* A staged child of clones/ (what: "clone", "snapshot") made durable under final: flush,
 * publish; on failure the staging object goes, unless it was moved (its file then has no
 * row, and recovery removes it). */
int core_publish_clone_file(const struct core_vol_ref *v, struct be_file *f, const char *staging,
                            const char *final, const char *what, struct st_err *e);
/* The size of an open file. */
int core_file_size(const struct core_vol_ref *v, struct be_file *f, uint64_t *size,
                   struct st_err *e);

/* ---- fetching URLs (fetch.c): core's HTTP client, behind the address guard ---- */

/* One fetch: every byte of a 2xx answer goes to sink (a non-zero return stops it with
 * sink's e). A redirect is followed (up to 5), each hop checked afresh. */
struct core_fetch {
    const char *url;
    uint64_t max_bytes;  /* more: ST_TOO_LARGE */
    unsigned timeout_ms; /* the whole fetch; 0: cfg.import_timeout_s */
    int (*sink)(void *ud, const void *buf, size_t len, struct st_err *e);
    void *ud;
    atomic_int *cancel; /* set: the fetch stops (ST_CONFLICT "cancelled") */
    uint64_t received;  /* out: bytes given to sink */
};
/* 0, or -1: ST_INVALID (not an http(s) URL), ST_FORBIDDEN (the guard refused an address,
 * before connecting to it), ST_TOO_LARGE, ST_NOT_FOUND (HTTP 404), ST_UNAVAILABLE (could
 * not connect, timed out, another HTTP status), ST_CONFLICT (cancelled), or sink's. */
int core_fetch_run(struct stowage *st, struct core_fetch *f, struct st_err *e);
/* A small document in memory (NUL-terminated, *out malloc'd). */
int core_fetch_small(struct stowage *st, const char *url, size_t max, unsigned timeout_ms,
                     char **out, size_t *len, struct st_err *e);

/* ---- imports (import.c) ---- */

/* What an IMGAPI manifest says (files[0] for the file). */
struct core_manifest {
    char uuid[37];
    char name[DB_ID];
    char version[17];
    char description[129];
    int ostype;
    char sha1[41];
    uint64_t size;        /* bytes of the file as served (compressed) */
    char compression[16]; /* none gzip bzip2 xz */
};
/* Fetch and check a manifest (at most 8192 bytes, JSON, one file, a uuid not in the
 * catalogue); refusals name field manifest_url in Danube Cloud's words. */
int core_manifest_fetch(struct stowage *st, const char *url, struct core_manifest *m,
                        struct st_err *e);
struct core_import_req {
    const char *name, *volume_id, *owner;
    const char *file_url;
    const struct core_manifest *manifest;
    struct db_image_meta meta; /* what the new row says of the image */
};
/* The manifest's file into a new image (rq->manifest->uuid) on the volume; on any failure
 * (p->cancel included) nothing of it stays. */
int core_image_import(struct stowage *st, const struct core_import_req *rq,
                      const struct core_progress *p, struct db_image *out, struct st_err *e);

/* The cached lists of image servers (imagestore.c). */
int core_imagestores_new(struct stowage *st);
/* GET URL/images of the image server called name, through the guard; *count images. */
int core_imagestore_refresh(struct stowage *st, const char *name, size_t *count, struct st_err *e);
void core_imagestores_free(struct stowage *st);
/* imagestore.add / imagestore.remove: a row of the catalogue, never one of the config's. */
int core_imagestore_add(struct stowage *st, const char *name, const char *url, struct st_err *e);
int core_imagestore_remove(struct stowage *st, const char *name, struct st_err *e);

/* ---- decompressing a stream (unpack.c): gzip, bzip2, xz, or none ---- */
struct core_unpack;
typedef int (*core_unpack_out_fn)(void *ud, const void *buf, size_t len, struct st_err *e);
/* compression: "none" (or "" / NULL), "gzip", "bzip2", "xz"; ST_INVALID for others. */
int core_unpack_new(const char *compression, core_unpack_out_fn out, void *ud,
                    struct core_unpack **u, struct st_err *e);
int core_unpack_feed(struct core_unpack *u, const void *buf, size_t len, struct st_err *e);
/* The input is over: the compressed stream must have ended too. */
int core_unpack_end(struct core_unpack *u, struct st_err *e);
void core_unpack_free(struct core_unpack *u);

/* ---- where a volume is (identity.c) ---- */

/* Refuse v when it is the same place as another volume of rows (ST_EXISTS), lies inside
 * one or contains one (ST_CONFLICT); the message names that volume. v's own row (same
 * id) is skipped. Directories are compared by device and inode after resolving. */
int core_volume_check_place(const struct db_volume *v, const struct db_volume *rows, size_t n,
                            const char *field, struct st_err *e);
/* Why v's place (its open session be) cannot be called its own: -1 and why when the
 * session is not the place recorded at registration, or another volume of rows is the
 * same place; 0 and "" otherwise (a place not recorded yet is recorded now). */
int core_volume_doubt(struct stowage *st, const struct db_volume *v, const struct backend_ops *ops,
                      struct be_volume *be, const struct db_volume *rows, size_t n, char *why,
                      size_t len);
/* A volume's backend parameters as a JSON object (new reference; {} when unreadable). */
json_t *core_volume_params(const struct db_volume *v);
int core_volume_set_params(struct db_volume *v, const json_t *params, struct st_err *e);
/* Its backend checks v's parameters and records what only the place can tell (is it a
 * mount point that must stay one, its identity); v->params is rewritten. */
int core_volume_prepare(struct stowage *st, struct db_volume *v, struct st_err *e);
/* Where stowage mounts the filesystem it makes for a volume (volume.create). */
void core_volume_mount_dir(struct stowage *st, const char *id, char *out, size_t len);

#endif
