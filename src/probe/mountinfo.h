/* mountinfo.h — parsing one line of /proc/self/mountinfo (private to src/probe, and
 * exposed for the unit tests: escapes and optional fields are easy to get wrong). */
#ifndef STOWAGE_PROBE_MOUNTINFO_H
#define STOWAGE_PROBE_MOUNTINFO_H

#include "stowage/probe.h"

/* Decode the kernel's octal escapes ("\040" space, "\011" tab, "\012" newline, "\134"
 * backslash) of src in place. 0, or -EINVAL for a malformed escape. */
int probe_mountinfo_unescape(char *s);

/* Parse one mountinfo line (without or with its '\n') into out. The line is modified
 * (split and unescaped in place). 0 or -EINVAL. */
int probe_mountinfo_parse_line(char *line, struct probe_mount *out);

#endif
