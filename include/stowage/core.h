/* core.h — the daemon context and the catalogue's policy.
 *
 * core/ owns the state machine of storages, volumes, images, clones, tasks
 * and tokens. It talks to SQLite through db/, to bytes through backend/, to
 * the real storage through probe/ and format/. API dialects call only this. */
#ifndef STOWAGE_CORE_H
#define STOWAGE_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

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

/* The daemon context, passed down explicitly; the only mutable shared state. */
struct stowage {
    struct st_config cfg;
    struct db *db;
    struct core_volumes *vols;
    char hostname[256];
    /* Bumped after every committed catalogue change and every probe result that
     * differs from the last: readers use it as a cache key for rendered replies. */
    atomic_uint_fast64_t generation;
    atomic_int stopping;
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
int core_user_add(struct stowage *st, const char *name, const char *password, enum st_role role,
                  struct st_err *e);
/* Check a password and open a session token for the user. */
int core_login(struct stowage *st, const char *name, const char *password, char *session,
               size_t session_len, struct st_principal *who, struct st_err *e);
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

/* Names: ids of storages and volumes, image names, clone ids. */
int core_valid_id(const char *s);
int64_t core_now_ms(void);

#endif
