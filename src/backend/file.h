/* file.h — what the file backends (posix.c, gluster.c) share: the write protocol and
 * clones over their own file operations (file.c). */
#ifndef STOWAGE_BACKEND_FILE_H
#define STOWAGE_BACKEND_FILE_H

#include "stowage/backend.h"

int be_file_stage(const struct backend_ops *ops, struct be_volume *v, const char *staged,
                  struct be_file **out);
int be_file_publish(const struct backend_ops *ops, struct be_volume *v, const char *staged,
                    const char *final, int *moved);
/* publish_many over ops, the objects' bytes made durable by sync (which sets each item's
 * rc and flushed). */
void be_file_publish_many(const struct backend_ops *ops, struct be_volume *v,
                          struct be_publish *items, size_t n,
                          void (*sync)(struct be_volume *v, struct be_publish *items, size_t n));
int be_file_remove(const struct backend_ops *ops, struct be_volume *v, const char *final);
int be_file_init(const struct backend_ops *ops, struct be_volume *v);
int be_file_clone(const struct backend_ops *ops, struct be_volume *v, struct be_clone_req *rq,
                  struct be_file **out, struct st_err *e);

/* POSIX volumes' parameters, place and outside look (posix_place.c). */
int be_posix_parse(json_t *params, struct st_err *e);
int be_posix_prepare(json_t *params, int formatted, const struct be_env *env, struct st_err *e);
int be_posix_same_place(const json_t *a, const json_t *b, enum be_place *out, struct st_err *e);
void be_posix_check(const struct be_params *p, struct be_check *out);
void be_posix_describe_place(const json_t *params, char *out, size_t len);
int be_posix_own_place(const struct backend_ops *ops, struct be_volume *v, const char *name,
                       json_t *params, int *changed, char *why, size_t len);
/* A directory of a POSIX volume, resolved as every path is (posix.c): an fd or -errno. */
int be_posix_open_dir(struct be_volume *v, const char *rel, int flags);
/* Watching a directory of a POSIX volume (posix_watch.c): backend.h's watch_*. */
int be_posix_watch_arm(struct be_volume *v, const char *reldir, struct be_watch **w);
int be_posix_watch_poll(struct be_volume *v, struct be_watch *w);
void be_posix_watch_close(struct be_watch *w);
/* Gluster volumes' parameters, place and what glusterd says (gluster_place.c). */
int be_gluster_parse(json_t *params, struct st_err *e);
int be_gluster_prepare(json_t *params, int formatted, const struct be_env *env, struct st_err *e);
int be_gluster_same_place(const json_t *a, const json_t *b, enum be_place *out, struct st_err *e);
void be_gluster_check(const struct be_params *p, struct be_check *out);
void be_gluster_describe_place(const json_t *params, char *out, size_t len);
int be_gluster_own_place(struct be_volume *v, const char *name, json_t *params, int *changed,
                         char *why, size_t len);
/* Set a check's status and message. */
void be_check_set(struct be_check *c, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The vtable entries of a file backend, bound to its ops table (name: be_posix_ops). */
#define BE_FILE_PROTOCOL(prefix, table)                                                            \
    static int prefix##_stage(struct be_volume *v, const char *staged, struct be_file **out)       \
    {                                                                                              \
        return be_file_stage(&table, v, staged, out);                                              \
    }                                                                                              \
    static int prefix##_publish(struct be_volume *v, const char *staged, const char *final,        \
                                int *moved)                                                        \
    {                                                                                              \
        return be_file_publish(&table, v, staged, final, moved);                                   \
    }                                                                                              \
    static int prefix##_clone(struct be_volume *v, struct be_clone_req *rq, struct be_file **out,  \
                              struct st_err *e)                                                    \
    {                                                                                              \
        return be_file_clone(&table, v, rq, out, e);                                               \
    }                                                                                              \
    static int prefix##_remove(struct be_volume *v, const char *final)                             \
    {                                                                                              \
        return be_file_remove(&table, v, final);                                                   \
    }                                                                                              \
    static int prefix##_init(struct be_volume *v)                                                  \
    {                                                                                              \
        return be_file_init(&table, v);                                                            \
    }

#endif
