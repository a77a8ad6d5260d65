/* sys.h — the one room that changes the system: formatting a disk, building and
 * stopping an md mirror, mounting and unmounting.
 *
 * Everything else only reads (probe/) or writes inside a volume (backend/). Programs run
 * through st_run (no shell, a timeout); a failure says what the program printed. */
#ifndef STOWAGE_SYS_H
#define STOWAGE_SYS_H

#include <stddef.h>

#include "stowage/err.h"

/* mkfs.xfs with reflink on dev, without -f: it refuses an existing signature too. */
int sys_mkfs_xfs(const char *dev, struct st_err *e);
/* Remove only the xfs signature from dev (undoing sys_mkfs_xfs on a disk that was blank). */
int sys_wipe_xfs(const char *dev, struct st_err *e);

/* Can this host build an md RAID1? ST_UNAVAILABLE (naming field) saying why not. */
int sys_md_usable(const char *field, struct st_err *e);
/* A RAID1 of a and b on the first free /dev/mdN (its path goes to dev). */
int sys_md_create(const char *a, const char *b, char *dev, size_t dev_len, struct st_err *e);
/* Stop the mirror dev and zero its members' superblocks. */
int sys_md_destroy(const char *dev, const char *a, const char *b, struct st_err *e);

/* Mount an xfs device on dir (nosuid, nodev, noexec) / unmount dir. */
int sys_mount_xfs(const char *dev, const char *dir, struct st_err *e);
int sys_umount(const char *dir, struct st_err *e);

#endif
