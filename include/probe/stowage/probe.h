/* probe.h — what the site's storage really looks like right now.
 *
 * Disks through libblkid + sysfs, mounts through /proc/self/mountinfo +
 * statvfs, Gluster volumes through the gluster CLI's XML (bricks, type,
 * brick liveness: things gfapi does not expose). Probes never touch SQLite;
 * core/ caches their results and refreshes them in the background. */
#ifndef STOWAGE_PROBE_H
#define STOWAGE_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stowage/err.h"

/* ---- disks ---- */

struct probe_disk {
    char id[96]; /* physical_disk_id: WWN without "0x", else the fallback id (see API docs) */
    char vendor[64];
    char model[96]; /* product_number */
    char serial[96];
    char host_device[64]; /* "/dev/sdb" */
    char name[32];        /* kernel name "sdb", "loop3" */
    dev_t devno;
    uint64_t size_bytes;
    int readonly;
    /* what libblkid sees on the whole device (and its partitions) */
    int has_signature; /* any filesystem/raid/partition-table signature */
    char fs_type[32];  /* "xfs", "linux_raid_member", "" */
    char fs_uuid[64];
    char pt_type[16]; /* "gpt", "dos", "" */
    int mounted;      /* the device or one of its partitions/holders is mounted */
    char holder[32];  /* "md0" when the disk is a member of an md/dm device */
};

/* Enumerate whole block devices that can carry data (skips ram, zram, empty
 * loop devices, partitions, dm/md composites). *out is malloc'd. */
int probe_disks(struct probe_disk **out, size_t *n, struct st_err *e);
/* Probe one device by kernel name ("loop3", "sdb"). */
int probe_disk_one(const char *name, struct probe_disk *out, struct st_err *e);
/* The stable id of a device: WWN (lower-case hex, no "0x"); without one, the
 * documented fallback built from what sysfs gives (serial, loop backing file). */
int probe_disk_id(const char *name, const char *wwid, const char *serial,
                  const char *loop_backing_file, char *out, size_t outlen);

/* ---- mounts ---- */

struct probe_mount {
    char mount_point[4096];
    char source[4096]; /* "/dev/loop3", "server:/vol" */
    char fstype[32];
    dev_t devno; /* st_dev major:minor from mountinfo */
    int readonly;
};

/* The mount that contains path (longest mount-point prefix of its realpath). */
int probe_mount_of(const char *path, struct probe_mount *out, struct st_err *e);
/* Is path itself a mount point (listed in mountinfo)? 1 yes, 0 no, -1 error. */
int probe_is_mount_point(const char *path);
/* statvfs in KB: total and available-to-user. */
int probe_space_kb(const char *path, uint64_t *total_kb, uint64_t *free_kb, int *readonly,
                   struct st_err *e);

/* ---- gluster ---- */

#define PROBE_MAX_BRICKS 64

struct probe_gluster_brick {
    char name[1024]; /* "host:/path" */
    int online;      /* from volume status; -1 unknown */
    int pid;
};

struct probe_gluster {
    char name[128];
    char type[48];          /* Gluster's typeStr: "Disperse", "Replicate", "Distribute", ... */
    char configuration[64]; /* "1 x (4 + 2)", "1 x 3 = 3", "3" */
    char transport[16];     /* "tcp", "rdma", "tcp,rdma" */
    int started;
    size_t n_bricks;
    struct probe_gluster_brick bricks[PROBE_MAX_BRICKS];
    int bricks_online; /* -1 when status is unknown */
    int heal_pending;  /* entries needing heal, -1 unknown */
};

/* Gluster's own "Number of Bricks" notation from the counts in volume info. */
int probe_gluster_configuration(const char *type_str, int brick_count, int dist_count,
                                int replica_count, int arbiter_count, int disperse_count,
                                int redundancy_count, char *out, size_t outlen);
/* Parse `gluster volume info NAME --xml` into g (bricks, type, configuration, transport). */
int probe_gluster_parse_info(const char *xml, size_t len, struct probe_gluster *g,
                             struct st_err *e);
/* Parse `gluster volume status NAME --xml` and mark g's bricks online/offline. */
int probe_gluster_parse_status(const char *xml, size_t len, struct probe_gluster *g,
                               struct st_err *e);
/* Run the CLI (no shell, with a timeout) for info + status of one volume.
 * cli is the gluster binary ("gluster"); server may be NULL for the local glusterd. */
int probe_gluster(const char *cli, const char *server, const char *volume, unsigned timeout_ms,
                  struct probe_gluster *g, struct st_err *e);

#endif
