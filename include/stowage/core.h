/* core.h — the daemon context and the catalogue's policy.
 *
 * core/ owns the state machine of storages, volumes, images, clones, tasks
 * and tokens. It talks to SQLite through db/, to bytes through backend/, to
 * the real storage through probe/ and format/. API dialects call only this. */
#ifndef STOWAGE_CORE_H
#define STOWAGE_CORE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "stowage/backend.h"
#include "stowage/config.h"
#include "stowage/db.h"
#include "stowage/err.h"
#include "stowage/probe.h"

enum st_role { ROLE_NONE = 0, ROLE_READER, ROLE_ADMIN, ROLE_SUPERADMIN };

struct st_principal {
    enum st_role role;
    char owner[DB_ID];
    int is_session;
};

struct core_volumes; /* live volume state: prober threads, backend sessions (volume.c) */
struct core_tasks;   /* the task queue and its workers (task.c) */
struct core_logins;  /* password checks and their throttle (login.c) */

/* The daemon context, passed down explicitly; the only mutable shared state. */
struct stowage {
    struct st_config cfg;
    struct db *db;
    struct core_volumes *vols;
    struct core_tasks *tasks;
    struct core_logins *logins;
    char hostname[256];
    /* Bumped after every committed catalogue change and every probe result that
     * differs from the last: readers use it as a cache key for rendered replies. */
    atomic_uint_fast64_t generation;
    atomic_int stopping;
    /* bytes of download read-ahead buffers held now, at most cfg.readahead_memory */
    atomic_uint_fast64_t readahead_bytes;
    /* names held by one operation at a time, or shared by readers (core_claim) */
    pthread_mutex_t claims_mu;
    struct core_claim *claims;
};

/* Open the state dir and the database (migrated); enough for the CLI subcommands. */
int core_open(struct stowage *st, struct st_err *e);
/* core_open, then the config's initial
 * storages, make the first superadmin token, start the probers. */
int core_start(struct stowage *st, struct st_err *e);
void core_stop(struct stowage *st);
static inline uint64_t core_generation(struct stowage *st)
{
    return atomic_load(&st->generation);
}
void core_bump(struct stowage *st);

/* ---- auth (auth.c) ---- */
const char *core_role_name(enum st_role r);
int core_role_parse(const char *s, enum st_role *out);
/* Resolve a bearer token / session id. ST_UNAUTHORIZED when unknown or expired. */
int core_authenticate(struct stowage *st, const char *token, struct st_principal *out,
                      struct st_err *e);
/* Make a token; the secret is written to out (NUL-terminated, ≥ 72 bytes). ttl_s 0: never expires.
 */
int core_token_create(struct stowage *st, enum st_role role, const char *owner, int session,
                      int64_t ttl_s, char *out, size_t outlen, struct st_err *e);
int core_token_revoke(struct stowage *st, const char *token, struct st_err *e);
/* Revoke token only when it is a login session (ST_INVALID for a permanent token). */
int core_session_end(struct stowage *st, const char *token, struct st_err *e);
int core_user_add(struct stowage *st, const char *name, const char *password, enum st_role role,
                  struct st_err *e);
/* Check a password and open a session token for the user. */
int core_login(struct stowage *st, const char *name, const char *password, char *session,
               size_t session_len, struct st_principal *who, struct st_err *e);
/* Password logins for every dialect (login.c): checked on login threads, throttled per
 * user and per client address. */
struct core_login_result {
    int ok;           /* session and who are filled; else err says why */
    char session[96]; /* the new session token */
    struct st_principal who;
    struct st_err err; /* ST_UNAUTHORIZED for a wrong password or unknown user */
};
typedef void (*core_login_done_fn)(void *ud, const struct core_login_result *res);
/* Queue a check of name's password from addr (the client's IP as text). 0: queued, and
 * done(ud, …) runs exactly once on a login thread. -1 at once, done never runs:
 * ST_TOO_MANY (a wait or lock-out after failures) or ST_UNAVAILABLE (queue full), with
 * *retry_after the seconds to wait. */
int core_login_submit(struct stowage *st, const char *name, const char *password, const char *addr,
                      core_login_done_fn done, void *ud, unsigned *retry_after, struct st_err *e);
int core_logins_start(struct stowage *st, struct st_err *e);
/* Runs what is queued, then stops the threads and refuses new checks; safe to call twice. */
void core_logins_stop(struct stowage *st);
void core_logins_free(struct stowage *st);
/* On first start: create a superadmin token, write STATE_DIR/admin.token (0600), print it. */
int core_auth_bootstrap(struct stowage *st, struct st_err *e);

/* ---- storages and volumes (storage.c, volume.c) ---- */

struct core_vol_state {
    char status[16]; /* unknown ok degraded broken */
    char status_msg[256];
    uint64_t total_kb;
    uint64_t free_kb;
    int64_t probed_at_ms;
    uint64_t probe_us; /* duration of the last probe */
    int have_gluster;
    struct probe_gluster gluster;
    dev_t devno;       /* local/external: st_dev of the mount carrying the volume */
    char dev_name[32]; /* its kernel block device name ("loop3", "md0"), "" if none */
};

struct core_volume_view {
    struct db_volume row;
    struct core_vol_state state;
    struct db_image *images;
    size_t n_images;
    struct db_clone *clones;
    size_t n_clones;
};

struct core_disk_view {
    struct probe_disk disk;
    char volume_id[DB_ID]; /* the volume this disk carries, "" when unused */
};

struct core_storage_view {
    struct db_storage row;
    char (*hosts)[256];
    size_t n_hosts;
    struct core_volume_view *volumes;
    size_t n_volumes;
    struct core_disk_view *disks;
    size_t n_disks;
};

int core_storage_view(struct stowage *st, const char *id, struct core_storage_view *out,
                      struct st_err *e);
int core_storage_ids(struct stowage *st, char (**ids)[DB_ID], size_t *n, struct st_err *e);
void core_storage_view_free(struct core_storage_view *v);

/* Apply the config's initial storages (insert what is missing). */
int core_storage_apply_config(struct stowage *st, struct st_err *e);

/* Live volume state (volume.c). */
int core_volumes_start(struct stowage *st, struct st_err *e);
void core_volumes_stop(struct stowage *st);
/* Start probing a volume that was just added to the catalogue / forget one removed. */
int core_volumes_add(struct stowage *st, const struct db_volume *row, struct st_err *e);
void core_volumes_remove(struct stowage *st, const char *id);
int core_volume_state(struct stowage *st, const char *id, struct core_vol_state *out);
/* The latest disk probe with each disk's volume, *out malloc'd. */
int core_disks(struct stowage *st, struct core_disk_view **out, size_t *n, struct st_err *e);

/* One line per volume for health and metrics. */
struct core_volume_stat {
    char id[DB_ID];
    char kind[16];
    char status[16];
    uint64_t total_bytes;
    uint64_t free_bytes;
    uint64_t probe_us;
};
int core_volume_stats(struct stowage *st, struct core_volume_stat **out, size_t *n);

/* Hold a key ("image:<uuid>") for one operation at a time: ST_CONFLICT naming what
 * when another holds it. core_claim_shared holds it beside other shared holders (the
 * clones and copies of one image run together; its delete or upload waits for none). */
int core_claim(struct stowage *st, const char *key, const char *what, struct st_err *e);
int core_claim_shared(struct stowage *st, const char *key, const char *what, struct st_err *e);
/* Give back one hold of key (either kind). */
void core_unclaim(struct stowage *st, const char *key);

/* Names: ids of storages and volumes, image names, clone ids. */
int core_valid_id(const char *s);
int64_t core_now_ms(void);

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

int core_image_get(struct stowage *st, const char *uuid, struct db_image *out, struct st_err *e);
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
/* Delete an image (by name): ST_IN_USE while clones use it. */
int core_image_delete(struct stowage *st, const char *name, struct st_err *e);
/* Detach an image from its guest (guest_id = ""). */
int core_image_release(struct stowage *st, const char *name, struct st_err *e);
/* The default volume for new images of a storage (NULL: the first storage). */
int core_default_volume(struct stowage *st, const char *storage_id, char *out, size_t len,
                        struct st_err *e);

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

/* ---- uploads and downloads (upload.c, download.c) ---- */

struct core_upload;

struct core_upload_req {
    const char *name;            /* image name: created when no live image has it */
    const char *uuid;            /* or an existing image by uuid (native route) */
    const char *volume_id;       /* where a new image goes (NULL: the default volume) */
    const char *declared_format; /* NULL: whatever safe format the inspector finds */
    uint64_t length;             /* bytes in this request's body, UINT64_MAX if unknown */
    int has_range;               /* Content-Range: bytes start-end/total */
    uint64_t range_start, range_end, range_total; /* total UINT64_MAX for "*" */
    const char *sha256_hex; /* expected checksum of the whole image, or NULL */
    const struct st_principal *who;
    uint64_t *resume_offset; /* filled with the staged length on ST_RANGE (may be NULL) */
};

/* Start (or resume) an upload. ST_CONFLICT when the image is already active,
 * ST_RANGE when a Content-Range does not start at the staged length (e->msg
 * names it), ST_NO_SPACE / ST_TOO_LARGE from the declared length. */
int core_upload_begin(struct stowage *st, const struct core_upload_req *rq,
                      struct core_upload **out, struct st_err *e);
/* How the writer pauses its feeder: sleep(ud) is called (under the upload's lock) when
 * write() takes nothing because both buffers are full, wake(ud) once it can take more.
 * The HTTP layer passes MHD's suspend and resume. */
void core_upload_set_waiter(struct core_upload *u, void (*sleep)(void *ud), void (*wake)(void *ud),
                            void *ud);
/* Offer bytes; returns how many were taken (0: sleep(ud) was called), or -1 on error:
 * the upload is then dead — its staging file and uncommitted row are gone. */
ssize_t core_upload_write(struct core_upload *u, const void *buf, size_t len, struct st_err *e);
/* All of this request's bytes are in. Returns 1 when this was one part of a ranged
 * upload that is not complete yet (u is freed; *staged says how much is in),
 * 0 when the image is complete: length and checksum verified, inspected, fsynced,
 * renamed, directory fsynced, row active — out filled, u freed. -1: refused or failed;
 * the staging file and the uncommitted row are gone, u freed. */
int core_upload_finish(struct core_upload *u, struct db_image *out, uint64_t *staged,
                       struct st_err *e);
/* The client went away: keep the staged bytes for a resume (they expire), free u. */
void core_upload_abort(struct core_upload *u);
/* Bytes staged so far by an unfinished upload of im (for X-Upload-Offset). */
int core_upload_staged(struct stowage *st, const struct db_image *im, uint64_t *staged,
                       struct st_err *e);

struct core_download;
int core_download_open(struct stowage *st, const char *name, const char *uuid,
                       struct core_download **out, struct db_image *img, struct st_err *e);
/* A kernel fd at the image's bytes for sendfile (owned by the caller), or -1. */
int core_download_kernel_fd(struct core_download *d);
/* Read at off; holes come back as zeros without reading the backend. */
ssize_t core_download_read(struct core_download *d, uint64_t off, void *buf, size_t len);
uint64_t core_download_size(struct core_download *d);
void core_download_close(struct core_download *d);

/* ---- restart recovery (recover.c), run once per volume when its backend opens ---- */
int core_recover_volume(struct stowage *st, const char *volume_id, const struct backend_ops *ops,
                        struct be_volume *be, struct st_err *e);
/* Remove resumable uploads untouched for cfg.staging_expiry_s (run now and then). */
int core_expire_uploads(struct stowage *st, const char *volume_id, const struct backend_ops *ops,
                        struct be_volume *be, struct st_err *e);

/* ---- tasks (task.c) ---- */

struct core_task_view {
    char id[37];
    char type[32];
    char state[16];  /* queued running completed */
    char result[16]; /* pending success error revoked */
    int progress;
    char result_msg[512];
    char owner[DB_ID];
    int64_t created_at; /* unix seconds */
    int64_t started_at;
    int64_t finished_at;
};

int core_tasks_start(struct stowage *st, struct st_err *e);
void core_tasks_stop(struct stowage *st);
/* Validate params for the type at once (ST_INVALID naming the field, ST_FORBIDDEN for the
 * role), then queue it; the id of the new task goes to id. */
int core_task_submit(struct stowage *st, const char *type, json_t *params,
                     const struct st_principal *who, char id[37], struct st_err *e);
int core_task_get(struct stowage *st, const char *id, struct core_task_view *out, struct st_err *e);
int core_task_list(struct stowage *st, struct core_task_view **out, size_t *n, struct st_err *e);
int core_task_cancel(struct stowage *st, const char *id, struct st_err *e);

#endif
