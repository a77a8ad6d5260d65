/* core.h — the catalogue as the dialects and the HTTP layer see it.
 *
 * core/ owns the state machine of storages, volumes, images, clones, jobs and
 * tokens. This header is all a dialect may use: its types are core's own, its
 * operations have neutral names and typed parameters, and nothing here says
 * which database, storage kind or HTTP dialect is behind it. Each dialect
 * translates its own field names, quirks, wording and envelope. The rest of
 * core (rows, backends, probes) is in src/core/core_internal.h. */
#ifndef STOWAGE_CORE_H
#define STOWAGE_CORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stowage/config.h"
#include "stowage/err.h"
#include "stowage/query.h"

#define CORE_ID 65 /* ids and names: 64 chars + NUL */

struct stowage; /* the daemon context, passed down explicitly */

enum st_role { ROLE_NONE = 0, ROLE_READER, ROLE_ADMIN, ROLE_SUPERADMIN };

struct st_principal {
    enum st_role role;
    char owner[CORE_ID];
    int is_session;
};

/* ---- the daemon ---- */

/* A new context; its config (core_config()) is filled by the caller: cfg_defaults, then
 * the file and the command line. */
struct stowage *core_new(void);
/* Stop if started, close the catalogue, free the config and st. */
void core_free(struct stowage *st);
struct st_config *core_config(struct stowage *st);
const char *core_hostname(const struct stowage *st);
/* Open the state dir and the catalogue (migrated); enough for the CLI subcommands. */
int core_open(struct stowage *st, struct st_err *e);
/* core_open, then the config's initial storages, the first superadmin token, the
 * probers and the job workers. */
int core_start(struct stowage *st, struct st_err *e);
void core_stop(struct stowage *st);
/* Bumped after every committed catalogue change and every probe result that differs
 * from the last: readers use it as a cache key for rendered replies. */
uint64_t core_generation(struct stowage *st);

/* Names: ids of storages and volumes, image names, clone ids. */
int core_valid_id(const char *s);
int64_t core_now_ms(void);

/* ---- auth (auth.c) ---- */
const char *core_role_name(enum st_role r);
int core_role_parse(const char *s, enum st_role *out);
/* Resolve a bearer token / session id. ST_UNAUTHORIZED when unknown or expired. */
int core_authenticate(struct stowage *st, const char *token, struct st_principal *out,
                      struct st_err *e);
/* Make a token; the secret is written to out (NUL-terminated, ≥ 72 bytes). ttl_s 0: never
 * expires. */
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
/* The same for a client that sends the lowercase hex SHA-512 of the password instead of
 * the password (users recorded since the catalogue had digests: `stowaged user add`). */
int core_login_submit_sha512(struct stowage *st, const char *name, const char *sha512_hex,
                             const char *addr, core_login_done_fn done, void *ud,
                             unsigned *retry_after, struct st_err *e);
/* Runs what is queued, then stops the login threads and refuses new checks (the HTTP
 * layer calls it before it stops: no connection may stay suspended); safe to call twice. */
void core_logins_stop(struct stowage *st);

/* ---- what the catalogue holds ---- */

struct core_image {
    char uuid[37];
    char name[CORE_ID];
    char volume_id[CORE_ID];
    char format[16];
    uint64_t virtual_size;
    uint64_t actual_size;
    char status[16]; /* queued saving active error deleted */
    char sha256[65];
    char owner[CORE_ID];
    char guest_id[CORE_ID];
    char parent_uuid[37];
    int64_t created_at;
    int64_t updated_at;
    int64_t generation;
    /* What the catalogue says of it beyond its bytes (Danube Cloud's image object). */
    char alias[33];   /* "" until set: dialects show the name */
    char version[17]; /* "1.0" by default */
    char description[129];
    char tags[1024]; /* a JSON array of strings */
    int ostype;
    int access; /* 1 public, 3 private, 4 deleted */
    int resize, deploy, dc_bound;
    char storage_id[CORE_ID]; /* its volume's image storage (filled by core_image_list) */
};

struct core_clone {
    char clone_id[CORE_ID];
    char image_uuid[37];
    char image_name[CORE_ID];
    char guest_id[CORE_ID];
    char volume_id[CORE_ID];
    int64_t created_at;
};

/* A disk present on this host and usable for a storage (or carrying its volume). */
struct core_disk {
    char id[96]; /* WWN without "0x", else the documented fallback id */
    char vendor[64];
    char model[96];
    char host_device[64];
    char volume_id[CORE_ID]; /* the volume this disk carries, "" when unused */
};

struct core_volume_view {
    char id[CORE_ID];
    char storage_id[CORE_ID];
    char kind[16]; /* a backend registry kind; dialects map it to their own sections */
    char primary_disk_id[96];
    char secondary_disk_id[96];
    char status[16]; /* unknown ok degraded broken */
    char status_msg[256];
    uint64_t total_kb;
    uint64_t free_kb;
    /* What the volume's backend says of itself for views (owned): e.g. a mount point,
     * or a Gluster volume's bricks, type, configuration and transport. */
    json_t *details;
    struct core_image *images; /* active images */
    size_t n_images;
    struct core_clone *clones;
    size_t n_clones;
};

struct core_storage_view {
    char id[CORE_ID];
    char name[129];
    char description[257];
    int64_t created_at;
    char (*hosts)[256];
    size_t n_hosts;
    struct core_volume_view *volumes;
    size_t n_volumes;
    struct core_disk *disks;
    size_t n_disks;
};

int core_storage_view(struct stowage *st, const char *id, struct core_storage_view *out,
                      struct st_err *e);
int core_storage_ids(struct stowage *st, char (**ids)[CORE_ID], size_t *n, struct st_err *e);
void core_storage_view_free(struct core_storage_view *v);

/* One line per volume for health and metrics. */
struct core_volume_stat {
    char id[CORE_ID];
    char kind[16];
    char status[16];
    uint64_t total_bytes;
    uint64_t free_bytes;
    uint64_t probe_us;
};
int core_volume_stats(struct stowage *st, struct core_volume_stat **out, size_t *n);

/* Is the catalogue answering? 0 yes; -1 with e saying why not. */
int core_health_catalogue(struct stowage *st, struct st_err *e);

int core_image_get(struct stowage *st, const char *uuid, struct core_image *out, struct st_err *e);
/* The properties a dialect keeps with an image (JSON text of an object, "{}" for none). */
int core_image_properties(struct stowage *st, const char *uuid, char *out, size_t len,
                          struct st_err *e);
/* The live image called name; ST_NOT_FOUND when none is. */
int core_image_find(struct stowage *st, const char *name, struct core_image *out, struct st_err *e);
/* Every live image (any status but deleted), by name, each with its storage_id. */
int core_image_list(struct stowage *st, struct core_image **out, size_t *n, struct st_err *e);
/* The clones made of the live image called name (free *out). */
int core_image_clones(struct stowage *st, const char *name, struct core_clone **out, size_t *n,
                      struct st_err *e);
/* How many clones use the image (its delete is refused while any do). */
int core_image_clone_count(struct stowage *st, const char *uuid, int64_t *n, struct st_err *e);

/* ---- objects on a volume outside the catalogue (unmanaged.c) ----
 * The files an operator put in a volume's root (not in images/, clones/ or a dot
 * directory), and the volume's images for completeness (already managed). Each comes
 * with what adopting it would meet: the inspector's verdict (headers only) and whether
 * it is a plain file that nothing writes to. */
struct core_unmanaged {
    char name[256];        /* in the volume root; "images/<uuid>.<fmt>" for an image */
    char managed_uuid[37]; /* the image it already is, "" when none */
    char format[16];       /* what the inspector found, "" when it did not look */
    uint64_t virtual_size; /* bytes (the file size when the inspector gave none) */
    uint64_t actual_size;  /* bytes allocated */
    int safe;              /* every check passed: image.adopt would take it */
    int writers_unknown;   /* whether a writer holds it cannot be known on this volume */
    char reason[224];      /* why not safe, "" when safe */
};
/* Every object of the volume, sorted by name (*out malloc'd). The verdicts of files
 * whose identity (inode, size, times) has not changed since the last scan are reused, and
 * the writers are looked for, unless the volume's watch proves that nothing changed since
 * (then nothing is looked at again). *gen is new whenever anything listed differs from
 * the last scan, and the largest gen of several volumes is new when any of them is: a
 * reply rendered from the lists may be kept under it. */
int core_unmanaged_list(struct stowage *st, const char *volume_id, struct core_unmanaged **out,
                        size_t *n, uint64_t *gen, struct st_err *e);
/* The *gen core_unmanaged_list would give now, without the copy of the list. */
int core_unmanaged_gen(struct stowage *st, const char *volume_id, uint64_t *gen, struct st_err *e);
/* One object of the volume's root, judged afresh but for its writers (ST_NOT_FOUND when
 * there is none). */
int core_unmanaged_get(struct stowage *st, const char *volume_id, const char *name,
                       struct core_unmanaged *out, struct st_err *e);
/* The volumes of a storage (ids, *out malloc'd): which a scan may name. */
int core_volume_ids(struct stowage *st, const char *storage_id, char (**out)[CORE_ID], size_t *n,
                    struct st_err *e);

/* ---- operations (ops.c): every change to the catalogue, run as a job ----
 *
 * Each operation has a neutral name and takes the fields of struct core_op_params that
 * its row in core's table names; core checks the submitter's role and every value
 * (ST_INVALID naming the neutral field) before the job is queued. */
enum core_op {
    CORE_OP_STORAGE_CREATE,
    CORE_OP_STORAGE_MODIFY,
    CORE_OP_STORAGE_DELETE,
    CORE_OP_VOLUME_CREATE, /* format an unused disk (or two, mirrored) into a volume */
    CORE_OP_VOLUME_DELETE,
    CORE_OP_EXTERNAL_CREATE, /* register a mounted directory as a volume */
    CORE_OP_EXTERNAL_DELETE,
    CORE_OP_IMAGE_CREATE,
    CORE_OP_IMAGE_COPY,
    CORE_OP_IMAGE_RELEASE,
    CORE_OP_IMAGE_DELETE,
    CORE_OP_CLONE_CREATE,
    CORE_OP_CLONE_DELETE,
    CORE_OP_IMAGE_UPDATE,     /* an image's metadata: alias, version, description, tags, ... */
    CORE_OP_IMAGE_ADOPT,      /* a file put on a volume by someone else becomes an image */
    CORE_OP_IMAGE_UNMANAGE,   /* an image's file leaves the catalogue, under its old name */
    CORE_OP_BACKUP_CREATE,    /* a backup storage on a place of this host (a backend's url) */
    CORE_OP_BACKUP_UPDATE,    /* its name, description, hostname, username, port */
    CORE_OP_BACKUP_RECONNECT, /* look at its place again: Connected or Disconnected */
    CORE_OP_BACKUP_STATE,     /* enable or disable it */
    CORE_OP_BACKUP_DELETE,    /* refused while image backups are on it, unless forced */
    CORE_OP_IMAGE_IMPORT,     /* an IMGAPI manifest's file, fetched from a URL, becomes an image */
    CORE_OP_IMAGESTORE_REFRESH, /* fetch an image server's list of images again */
    CORE_OP_BACKUP_CEPH_CREATE, /* a backup storage on a Ceph pool (core_backup_ceph_submit) */
    CORE_OP_ZONE_CREATE,        /* a named group of backup storages (ZStack's zone) */
    CORE_OP_ZONE_UPDATE,        /* its name, description, "enable" / "disable" */
    CORE_OP_ZONE_DELETE,        /* detaches its backup storages */
    CORE_OP_ZONE_ATTACH,        /* a backup storage to a zone */
    CORE_OP_ZONE_DETACH,
    CORE_OP_BIMAGE_ADD,      /* an image copied onto backup storages, from a URL or the catalogue */
    CORE_OP_BIMAGE_DELETE,   /* its copies removed from some or all of its backup storages */
    CORE_OP_BIMAGE_RESTORE,  /* a copy back into a catalogue volume, as a new image */
    CORE_OP_SNAPSHOT_CREATE, /* freeze a clone's current state (a copy the guest never writes) */
    CORE_OP_SNAPSHOT_DELETE,
    CORE_OP_SNAPSHOT_IMAGE, /* a new standalone raw image: a snapshot flattened over its base */
    CORE_OP_IMAGESTORE_ADD, /* an image server, kept in the catalogue beside the config's */
    CORE_OP_IMAGESTORE_REMOVE,
    CORE_OP_COUNT
};

enum core_tri { CORE_UNSET = 0, CORE_FALSE, CORE_TRUE };

struct core_op_params {
    const char *storage;     /* an image storage id */
    const char *volume;      /* a volume id */
    const char *name;        /* a storage's display name, an image's name */
    const char *description; /* a storage's description, an image's (image.update) */
    const char *disk;        /* volume.create: the disk, and its mirror */
    const char *mirror_disk;
    const char *mount_point; /* external.create: an absolute directory */
    uint64_t size;           /* image.create: virtual size in bytes (0: absent) */
    const char *format;      /* image.create: "raw" or "qcow2" */
    const char *source;      /* image.copy: the source image's name and volume */
    const char *source_volume;
    const char *image; /* clone.create: the image's name, the guest, the clone's id */
    const char *guest;
    const char *clone;
    /* image.update: what changes (absent: stays). The rules are Danube Cloud's: alias up
     * to 32, version up to 16, description up to 128, none with any of <>%$&;'" ; tags a
     * JSON array of strings; (alias, version) unique among live images. */
    const char *alias;
    const char *version;
    const char *tags;     /* JSON text of an array of strings */
    int access;           /* 1 public, 3 private, 4 deleted; 0: absent */
    enum core_tri resize; /* CORE_UNSET: absent */
    enum core_tri deploy;
    enum core_tri dc_bound;
    int64_t generation; /* If-Match: the image's generation must be this (0: any) */
    /* image.adopt: the object outside the catalogue (its name in the volume's root), and
     * whom the new image belongs to (absent: the submitter). */
    const char *object;
    const char *owner;
    const char *properties; /* image.adopt: JSON text of an object a dialect keeps with the
                             * image (Cinder's metadata, bootable...); core never reads it */
    /* backup.*: the backup storage (its uuid), the new one's uuid (absent: generated), its
     * place as a URL, the host that must be this one, a login name and port kept for
     * views, "enable" / "disable" (backup.state), and a delete despite image backups. */
    const char *backup_storage;
    const char *uuid;
    const char *url;
    const char *hostname;
    const char *username;
    int64_t port; /* 1..65535 (0: absent) */
    const char *state;
    enum core_tri force;
    /* image.import: the IMGAPI manifest and the file (absent: manifest_url + "/file");
     * name, storage, volume and the metadata above say what the new image is. */
    const char *manifest_url;
    const char *file_url;
    /* backup.ceph_create: the pool (absent: one is made), and the mons as JSON text of
     * [{"hostname","mon_port","ssh_port","user"}] (core_backup_ceph_submit fills it). */
    const char *pool;
    const char *mons;
    /* zone.*: the zone (its uuid); a new one's uuid, name, description and state are the
     * fields above, and zone.attach / zone.detach name the backup_storage. */
    const char *zone;
    /* bimage.*: the image's uuid (uuid above), where its bytes come from (url above:
     * http(s) or "stowage://image/{uuid}"), what it is (ZStack's mediaType, platform,
     * guestOsType; format above, checked by the inspector), the SHA-256 its bytes must
     * have (absent: any), and the backup storages it goes to or leaves (JSON text of an
     * array of uuids; bimage.delete: absent is all). bimage.restore takes name, storage,
     * volume and backup_storage (absent: the first ready copy). */
    const char *media_type;
    const char *platform;
    const char *guest_os_type;
    const char *sha256;
    const char *backup_storages;
    /* snapshot.*: the clone's snapshot by name (clone names the clone); its note is
     * description. snapshot.image takes name, storage, volume, owner and the metadata. */
    const char *snapshot;
};

/* The operation's neutral name ("image.create"), or NULL. */
const char *core_op_name(enum core_op op);
/* The operation called name; -1 when none is. */
int core_op_by_name(const char *name);
/* The role an operation needs. */
enum st_role core_op_role(enum core_op op);

/* A job: the record each dialect's asynchronous form maps onto. */
struct core_job {
    char id[37];
    char op[32];          /* core_op_name(), or a name this build does not know */
    char state[16];       /* queued running completed */
    char result[16];      /* pending success error revoked */
    int progress;         /* 0..100 */
    char error[512];      /* why it failed (result error/revoked) */
    char legacy_msg[512]; /* a success message recorded by an older build, else "" */
    json_t *outcome;      /* success: what was made, in neutral fields (owned; may be NULL) */
    char owner[CORE_ID];
    int64_t created_at; /* unix seconds */
    int64_t started_at;
    int64_t finished_at;
};

/* Check and queue; the new job's id goes to id. */
int core_job_submit(struct stowage *st, enum core_op op, const struct core_op_params *p,
                    const struct st_principal *who, char id[37], struct st_err *e);
/* The same with the job's id chosen by the submitter (want_id: 1 to 36 of [0-9a-f-]; NULL:
 * generated); ST_EXISTS when a job already has that id. */
int core_job_submit_as(struct stowage *st, enum core_op op, const struct core_op_params *p,
                       const struct st_principal *who, const char *want_id, char id[37],
                       struct st_err *e);
int core_job_get(struct stowage *st, const char *id, struct core_job *out, struct st_err *e);
int core_job_list(struct stowage *st, struct core_job **out, size_t *n, struct st_err *e);
void core_job_free(struct core_job *j);            /* the members of one job */
void core_jobs_free(struct core_job *v, size_t n); /* an array from core_job_list */
int core_job_cancel(struct stowage *st, const char *id, struct st_err *e);

/* ---- backup storages (backup.c) ---- */

struct core_backup {
    char uuid[CORE_ID];
    char name[129];
    char description[257];
    char type[32]; /* ImageStoreBackupStorage */
    char url[4096];
    char hostname[256];
    char username[CORE_ID];
    int64_t ssh_port;
    char state[16];  /* Enabled Disabled */
    char status[16]; /* Connecting Connected Disconnected */
    char status_msg[256];
    uint64_t total;     /* bytes */
    uint64_t available; /* bytes */
    int64_t created_at; /* unix seconds */
    int64_t last_op_at;
    char (*zones)[CORE_ID]; /* attached zones (owned) */
    size_t n_zones;
};

/* The backup storages q selects (fields uuid name description type url hostname username
 * ssh_port state status total available created_at last_op_at), and how many match in
 * all (*total). out NULL: the count alone. ST_INVALID names an unknown field. */
int core_backup_query(struct stowage *st, const struct st_query *q, struct core_backup **out,
                      size_t *n, int64_t *total, struct st_err *e);
int core_backup_get(struct stowage *st, const char *uuid, struct core_backup *out,
                    struct st_err *e);
void core_backups_free(struct core_backup *v, size_t n);
/* The room of the backup storages named in bs (n_bs) and of those attached to the zones
 * named in zones (n_zones), each counted once; neither named: of every one. An unknown
 * uuid is ST_NOT_FOUND naming it. Kept fresh by the backup storages' prober. */
int core_backup_capacity(struct stowage *st, const char *const *zones, size_t n_zones,
                         const char *const *bs, size_t n_bs, uint64_t *total, uint64_t *available,
                         struct st_err *e);

/* ---- zones (zone.c): named groups that backup storages are attached to ---- */

struct core_zone {
    char uuid[CORE_ID];
    char name[129];
    char description[257];
    char state[16]; /* Enabled Disabled */
    int64_t created_at;
    int64_t last_op_at;
};

/* The zones q selects (fields uuid name description state created_at last_op_at), as
 * core_backup_query. */
int core_zone_query(struct stowage *st, const struct st_query *q, struct core_zone **out, size_t *n,
                    int64_t *total, struct st_err *e);
int core_zone_get(struct stowage *st, const char *uuid, struct core_zone *out, struct st_err *e);
/* ---- Ceph backup storages (backup_ceph.c): a backup storage on a pool of a Ceph cluster,
 * reached through its mons with a cephx user and key. stowage does not ssh: the key is
 * what a mon URL's password carries (or, when it is empty, the config's ceph_keyring
 * has it), kept 0600 in the state dir and never shown. */

struct core_ceph_mon_req {
    const char *hostname; /* a mon's host (an IP literal or a name) */
    int64_t mon_port;     /* its v1 port (6789), or 3300 for msgr2 */
    int64_t ssh_port;     /* kept for views */
    const char *user;     /* the cephx id: "admin" or "client.admin" */
    const char *key;      /* its secret; "" or NULL: the config's ceph_keyring */
};

struct core_ceph_add {
    const char *name, *description, *uuid, *url; /* as backup.create */
    const char *pool;                            /* NULL or "": bak-t-<uuid> is made */
    const struct core_ceph_mon_req *mons;
    size_t n_mons;
};

/* Check and queue backup.ceph_create as the job want_id (NULL: a new id): the keys are
 * written to the state dir first, the job's params hold none. */
int core_backup_ceph_submit(struct stowage *st, const struct core_ceph_add *rq,
                            const struct st_principal *who, const char *want_id, char id[37],
                            struct st_err *e);

struct core_ceph_mon {
    char uuid[CORE_ID];
    char hostname[256];
    char mon_addr[256];
    int64_t mon_port, ssh_port;
    char username[CORE_ID];
    char status[16]; /* Connecting Connected Disconnected */
    int64_t created_at, last_op_at;
};

struct core_ceph_view {
    char fsid[64];
    char pool[256];
    uint64_t pool_used, pool_avail; /* bytes stored, bytes that can still be stored */
    int64_t replicas;
    double utilization;         /* the share of raw space that is data: 1/replicas, k/(k+m) */
    char policy[16];            /* Copy ErasureCode */
    int pool_created;           /* stowage made the pool */
    struct core_ceph_mon *mons; /* owned */
    size_t n_mons;
};

/* The Ceph part of a backup storage (ST_NOT_FOUND when it has none). */
int core_backup_ceph(struct stowage *st, const char *uuid, struct core_ceph_view *out,
                     struct st_err *e);
void core_ceph_view_free(struct core_ceph_view *v);

/* What the URL fetcher did since the start (fetch.c): sockets it opened, and hops its
 * address guard refused before connecting. */
struct core_fetch_stats {
    uint64_t sockets;
    uint64_t refused;
};
void core_fetch_stats(struct stowage *st, struct core_fetch_stats *out);
/* The catalogue's group commit: batches committed and the writes they carried. */
struct core_commit_stats {
    uint64_t commits;
    uint64_t members;
    uint64_t publishes; /* batches of creates whose files were published together */
    uint64_t published; /* the creates they carried */
};
void core_commit_stats(struct stowage *st, struct core_commit_stats *out);

/* ---- images on backup storages (backup_image.c) ---- */

struct core_bimage_ref {
    char bs_uuid[CORE_ID];
    char install_path[4224]; /* the backup storage's url + "/images/<uuid>.<fmt>" */
    char status[16];         /* Downloading Ready */
    int64_t created_at;
    int64_t last_op_at;
};

struct core_bimage {
    char uuid[CORE_ID];
    char name[129];
    char description[257];
    char url[1025];
    char media_type[32];
    char guest_os_type[65];
    char platform[32];
    char format[16];
    char state[16];  /* Enabled */
    char status[16]; /* Downloading Ready */
    uint64_t size;   /* virtual bytes */
    uint64_t actual_size;
    char sha256[65];
    int system;
    int64_t created_at;
    int64_t last_op_at;
    struct core_bimage_ref *refs; /* its copies (owned) */
    size_t n_refs;
};

/* The images q selects (fields uuid name description url media_type guest_os_type
 * platform format state status size actual_size sha256 system created_at last_op_at),
 * as core_backup_query. */
int core_bimage_query(struct stowage *st, const struct st_query *q, struct core_bimage **out,
                      size_t *n, int64_t *total, struct st_err *e);
int core_bimage_get(struct stowage *st, const char *uuid, struct core_bimage *out,
                    struct st_err *e);
void core_bimages_free(struct core_bimage *v, size_t n);

/* ---- image servers (imagestore.c): the config's IMGAPI servers and their cached lists ---- */
struct core_imagestore {
    char name[CORE_ID];
    char url[1024];
    json_t *images;       /* the manifests of the last refresh (owned), NULL before one */
    int64_t refreshed_at; /* unix seconds, 0 never */
    char error[256];      /* why the last refresh failed, "" when it did not */
};
int core_imagestore_list(struct stowage *st, struct core_imagestore **out, size_t *n,
                         struct st_err *e);
int core_imagestore_get(struct stowage *st, const char *name, struct core_imagestore *out,
                        struct st_err *e);
/* The members of n entries (not the array). */
void core_imagestore_free(struct core_imagestore *v, size_t n);
/* Whether the image server called name came from the config (which no call changes). */
int core_imagestore_from_config(struct stowage *st, const char *name);

/* ---- snapshots of clones (snapshot.c) ----
 * A guest's disks are its clones, oldest first (Danube Cloud's disk_id 1 is the first). A
 * snapshot is a copy of a clone's file made at one instant (a reflink where the volume
 * shares blocks, else a sparse copy), beside the clone on its volume; it goes with the
 * clone. snapshot.image flattens it over the clone's image into a new raw image. */
struct core_snapshot {
    char clone_id[CORE_ID];
    char guest_id[CORE_ID];
    char name[CORE_ID];
    char note[129];
    char volume_id[CORE_ID];
    char image_uuid[37]; /* the clone's image */
    uint64_t size;       /* bytes of its file */
    int64_t created_at;
    int status; /* 1 ok, 2 pending (an operation holds it), 4 lost (its file is gone) */
};
/* The clones of a guest, oldest first (*out malloc'd); ST_NOT_FOUND when it has none. */
int core_guest_clones(struct stowage *st, const char *guest, struct core_clone **out, size_t *n,
                      struct st_err *e);
/* The snapshots of one clone, oldest first (*out malloc'd). */
int core_snapshot_list(struct stowage *st, const char *clone_id, struct core_snapshot **out,
                       size_t *n, struct st_err *e);
int core_snapshot_get(struct stowage *st, const char *clone_id, const char *name,
                      struct core_snapshot *out, struct st_err *e);

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
    int finish_only; /* "bytes * /range_total", no body: commit what is staged (has_range set) */
    const char *sha256_hex; /* expected checksum of the whole image, or NULL */
    const struct st_principal *who;
    const void *client;      /* who sends it (one request at a time each), NULL if unknown */
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
int core_upload_finish(struct core_upload *u, struct core_image *out, uint64_t *staged,
                       struct st_err *e);
/* core_upload_finish on one of core's finisher threads (kept, not one per finish), so that
 * its fsyncs and its commit wait hold no HTTP thread: done(ud, rc, out, staged, e) runs on
 * that thread once it is over (u is freed by then; out and e are valid during the call).
 * -1 when there is no finisher to run it (none could be started, or they were stopped):
 * done never runs, u is untouched (finish it on the caller's thread). */
typedef void (*core_upload_done_fn)(void *ud, int rc, const struct core_image *out, uint64_t staged,
                                    const struct st_err *e);
int core_upload_finish_async(struct core_upload *u, core_upload_done_fn done, void *ud);
/* Wait for the finishes still queued or running, then stop the finisher threads (the
 * HTTP layer calls it before it stops: their connections are suspended until they answer).
 * A finish asked for afterwards is the caller's to run. */
void core_uploads_drain(struct stowage *st);
/* The client went away: keep the staged bytes for a resume (they expire), free u. */
void core_upload_abort(struct core_upload *u);
/* Bytes staged so far by an unfinished upload of im (for X-Upload-Offset; 0 when the
 * staging file is not the upload's own), and the whole length a request declared
 * (UINT64_MAX: none yet). */
int core_upload_staged(struct stowage *st, const struct core_image *im, uint64_t *staged,
                       uint64_t *total, struct st_err *e);

struct core_download;
int core_download_open(struct stowage *st, const char *name, const char *uuid,
                       struct core_download **out, struct core_image *img, struct st_err *e);
/* A kernel fd at the image's bytes for sendfile (owned by the caller), or -1: when the
 * backend has none, or [off, off+len) holds a hole (core_download_read skips it). */
int core_download_kernel_fd(struct core_download *d, uint64_t off, uint64_t len);
/* Read at off; holes come back as zeros without reading the backend. */
ssize_t core_download_read(struct core_download *d, uint64_t off, void *buf, size_t len);
/* The bytes at off without a copy: up to max of them at *p (a read-ahead block, or zeros
 * for a hole), valid until the next call on d; 0 at the end, negative errno on failure.
 * core_download_advance says how many of them were used, which frees a block used up. */
ssize_t core_download_peek(struct core_download *d, uint64_t off, size_t max, const void **p);
void core_download_advance(struct core_download *d, uint64_t off, size_t n);
uint64_t core_download_size(struct core_download *d);
/* Bytes of read-ahead blocks all downloads hold now (at most cfg.readahead_memory). */
uint64_t core_readahead_bytes(struct stowage *st);
void core_download_close(struct core_download *d);
/* The SHA-1 (hex) and byte size of an active image's stored file, as IMGAPI manifests
 * say them: cached in the catalogue, computed by reading the image once when unknown. */
int core_image_sha1(struct stowage *st, const char *uuid, char out[41], uint64_t *size,
                    struct st_err *e);

#endif
