/* config.h — daemon configuration: defaults, the JSON config file, command-line overrides. */
#ifndef STOWAGE_CONFIG_H
#define STOWAGE_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "stowage/err.h"

#define CFG_ID_MAX 64

struct cfg_volume {
    char id[CFG_ID_MAX + 1];
    char kind[16];  /* a kind of the backend registry */
    json_t *params; /* the rest of the volume's object: its backend checked them */
};

struct cfg_storage {
    char id[CFG_ID_MAX + 1];
    char *name;
    char *description;
    struct cfg_volume *volumes;
    size_t n_volumes;
};

/* An address or network of import_allow: family AF_INET or AF_INET6, bytes in network
 * order, prefix bits (32 / 128 for a single address). */
struct cfg_cidr {
    int family;
    unsigned char addr[16];
    unsigned prefix;
};

/* An IMGAPI server esdc's /imagestore/ lists and imports from. */
struct cfg_imagestore {
    char name[CFG_ID_MAX + 1];
    char *url; /* http(s)://host[:port][/path], without a trailing slash */
};

struct st_config {
    char listen_host[64];
    uint16_t port;
    char *state_dir;  /* absolute after cfg_finish() */
    unsigned threads; /* HTTP event threads (0: number of cores) */
    unsigned workers; /* task worker threads */
    /* limits (API.md § Common) */
    size_t max_body;       /* JSON body bytes */
    size_t max_header;     /* total request header bytes */
    unsigned conn_timeout; /* idle seconds */
    unsigned per_ip;       /* connections per client IP */
    unsigned max_connections;
    uint64_t max_image_size;   /* bytes */
    unsigned header_timeout;   /* seconds a request may take to send its headers */
    unsigned min_body_rate;    /* bytes/s a body must average over each window (0: off) */
    unsigned body_rate_window; /* seconds */
    uint64_t readahead_memory; /* bytes of download read-ahead buffers in all */
    /* password logins (core/login.c) */
    unsigned login_workers;          /* threads that check passwords */
    unsigned login_queue;            /* checks waiting for a thread; beyond: 503 */
    unsigned login_free_failures;    /* failures before delays start */
    unsigned login_lockout_failures; /* failures that lock a user or address out */
    unsigned login_lockout_s;        /* how long a lock-out lasts */
    char *tls_cert;
    char *tls_key;
    unsigned probe_ttl_ms;
    char *gluster_cli; /* path of the gluster CLI */
    unsigned gluster_timeout_ms;
    char *ceph_keyring; /* a Ceph keyring for mon URLs of Ceph backup storages without a key */
    char **mount_roots; /* directories under which evolume_create may register mounts */
    size_t n_mount_roots;
    unsigned staging_expiry_s; /* abandoned resumable uploads are removed after this */
    unsigned api_sync_timeout; /* seconds an ES-STREAM answer waits for its task (esdc) */
    unsigned session_ttl_s;    /* a password login's session lasts this long */
    unsigned api_job_expiry_s; /* a finished job's result is kept for asynchronous readers */
    /* URL imports (core/fetch.c): addresses a URL may reach although they are loopback,
     * private, link-local, multicast or unspecified; the whole fetch's time limit. */
    struct cfg_cidr *import_allow;
    size_t n_import_allow;
    unsigned import_timeout_s;
    struct cfg_imagestore *imagestores;
    size_t n_imagestores;
    int log_requests;
    int sendfile;      /* downloads from local volumes with sendfile (else reads) */
    int clone_reflink; /* clone_mode "reflink": raw images on XFS get reflinked raw clones */
    struct cfg_storage *storages; /* initial storages, created when missing */
    size_t n_storages;
};

void cfg_defaults(struct st_config *c);
/* Merge a JSON config file into c. Unknown keys are errors (a typo must not pass silently). */
int cfg_load_file(struct st_config *c, const char *path, struct st_err *e);
int cfg_load_string(struct st_config *c, const char *json, struct st_err *e);
/* Parse "host:port" into c (host must be an IP literal or "localhost"). */
int cfg_set_listen(struct st_config *c, const char *hostport, struct st_err *e);
int cfg_set_state_dir(struct st_config *c, const char *dir, struct st_err *e);
/* Make paths absolute and check ranges after all sources are merged. */
int cfg_finish(struct st_config *c, struct st_err *e);
void cfg_free(struct st_config *c);
/* "10.0.0.0/8", "127.0.0.1", "fd00::/8" into out; 0 or -1 (not an address or network). */
int cfg_parse_cidr(const char *s, struct cfg_cidr *out);

#endif
