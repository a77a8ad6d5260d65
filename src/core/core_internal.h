/* core_internal.h — what image.c, clone.c, upload.c and recover.c share: the names of
 * files on a volume and the steps of the commit protocol. */
#ifndef STOWAGE_CORE_INTERNAL_H
#define STOWAGE_CORE_INTERNAL_H

#include "stowage/core.h"
#include "stowage/format.h"

/* Staging names say who owns the bytes: an ".upload" survives a restart (a client
 * may resume it), a ".task" never does. */
#define STAGING_DIR ".staging"
#define UPLOAD_SUFFIX ".upload"
#define TASK_SUFFIX ".task"

#define COPY_CHUNK (4u << 20)

/* ".staging/<id><suffix>" */
void core_staging_path(const char *id, const char *suffix, char *out, size_t len);
/* Insert a 'saving' row for name on volume_id, with the client's uuid or a new one (NULL). */
int core_image_reserve(struct stowage *st, const char *name, const char *uuid,
                       const char *volume_id, const char *owner, struct db_image *out,
                       struct st_err *e);
/* Forget a row that never held committed bytes. */
void core_image_discard(struct stowage *st, const char *uuid);
/* The end of every write: fsync f, record what the bytes are in the row, rename the
 * staging file to its final name (never replacing), fsync the directory, then mark the
 * row active. On failure the staging file is removed; the row is left to the caller. */
int core_image_commit(struct stowage *st, const struct core_vol_ref *v, struct be_file *f,
                      const char *staging, struct db_image *im, struct st_err *e);
/* Inspect a file on a volume through its backend. */
int core_inspect(const struct core_vol_ref *v, struct be_file *f, const char *declared,
                 uint64_t max_virtual_size, int allow_backing, struct fmt_info *out,
                 struct st_err *e);
/* Map a refusal to an st_err: virtual size over the cap is ST_TOO_LARGE, the rest ST_INVALID. */
int core_refusal(const struct fmt_info *info, struct st_err *e);
/* Write all of buf at off (looping over short writes). */
int core_pwrite_all(const struct core_vol_ref *v, struct be_file *f, const void *buf, size_t len,
                    uint64_t off, struct st_err *e);
/* Create a staging file (O_EXCL), replacing a crashed try's leftover of that name. */
int core_open_staging(const struct core_vol_ref *v, const char *path, struct be_file **f,
                      struct st_err *e);
/* Fill a fresh file with buf's len bytes, leaving all-zero 4 KiB pages (not the last) holes. */
int core_pwrite_sparse(const struct core_vol_ref *v, struct be_file *f, const void *buf, size_t len,
                       struct st_err *e);
/* The size of an open file. */
int core_file_size(const struct core_vol_ref *v, struct be_file *f, uint64_t *size,
                   struct st_err *e);

/* ---- where a volume is (identity.c) ---- */

/* Refuse v when it is the same place as another volume of rows (ST_EXISTS), lies inside
 * one or contains one (ST_CONFLICT); the message names that volume. v's own row (same
 * id) is skipped. Directories are compared by device and inode after resolving. */
int core_volume_check_place(const struct db_volume *v, const struct db_volume *rows, size_t n,
                            const char *field, struct st_err *e);
/* st_dev and st_ino of a directory (symlinks followed); -1 when it is none. */
int core_dir_identity(const char *path, uint64_t *dev, uint64_t *ino);
/* Why v's directory cannot be called its own, or "" in why: root (the directory the
 * backend opened; NULL for Gluster) is not the one recorded, or another volume of rows
 * is the same place. */
void core_volume_doubt(const struct db_volume *v, const struct stat *root,
                       const struct db_volume *rows, size_t n, char *why, size_t len);

#endif
