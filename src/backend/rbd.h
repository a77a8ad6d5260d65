/* rbd.h — what the Ceph RBD backend's two files share: connecting to a cluster
 * (rbd_place.c) and the volume's session (rbd.c). */
#ifndef STOWAGE_BACKEND_RBD_H
#define STOWAGE_BACKEND_RBD_H

#include <rados/librados.h>

#include "file.h"

/* Seconds a mon or OSD may take to answer before a call fails with ETIMEDOUT (Ceph's
 * own defaults wait 300 s or forever: a dead cluster would hang a prober thread). */
#define RB_TIMEOUT_S "5"

/* A connected cluster handle for a volume's parameters (conf or mon_host, user, key or
 * keyring), its timeouts set before the connect. 0, or -errno with why in msg. */
int rb_connect(const json_t *params, rados_t *out, char *msg, size_t len);
/* The pool a volume's parameters name. */
const char *rb_pool(const json_t *params);

int be_rbd_parse(json_t *params, struct st_err *e);
int be_rbd_prepare(json_t *params, int formatted, const struct be_env *env, struct st_err *e);
int be_rbd_same_place(const json_t *a, const json_t *b, enum be_place *out, struct st_err *e);
void be_rbd_describe_place(const json_t *params, char *out, size_t len);
void be_rbd_check(const struct be_params *p, struct be_check *out);
/* The pool's statistics as place_stats tells them (mon commands df and osd pool ls). */
int be_rbd_pool_stats(rados_t cluster, const char *pool, json_t **out, struct st_err *e);
/* The session's cluster fsid and pool id against what was registered (recorded when not). */
int be_rbd_own_place(rados_t cluster, rados_ioctx_t io, json_t *params, int *changed, char *why,
                     size_t len);

#endif
