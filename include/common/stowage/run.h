/* run.h — running a program safely: no shell, a timeout, captured output, always reaped.
 *
 * Shared ground: probe/ runs the gluster CLI through it to read, sys/ runs mkfs, mdadm
 * and wipefs through it to change the system. */
#ifndef STOWAGE_RUN_H
#define STOWAGE_RUN_H

#include <stddef.h>

/* Where a program is: argv[0] as given when it has a '/', else the first of /usr/sbin,
 * /usr/bin, /sbin, /bin that has it. 0 or -ENOENT. */
int st_find_program(const char *name, char *out, size_t len);
/* Run argv (no shell; argv[0] found as above) with stdin from /dev/null, a fixed PATH,
 * LC_ALL=C, default signals, in its own process group. Its stdout (and stderr when
 * merge_stderr) is captured into *out (malloc'd, NUL-terminated, at most max bytes);
 * after timeout_ms the whole group is killed. Always reaped. 0 with the waitpid
 * *status, or -errno: -ENOENT (no such program), -ETIMEDOUT, -EFBIG (output over max). */
int st_run(char *const argv[], int merge_stderr, unsigned timeout_ms, size_t max, char **out,
           size_t *len, int *status);

#endif
