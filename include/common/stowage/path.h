/* path.h — comparing absolute paths, shared by core (mount roots) and the backends
 * (a volume inside another). */
#ifndef STOWAGE_PATH_H
#define STOWAGE_PATH_H

/* Is path the directory root or below it, by whole components? Trailing slashes of root
 * do not count; an empty root holds nothing, "/" every absolute path. Neither path is
 * resolved here: callers pass resolved (or normalized) ones. */
int st_path_under(const char *path, const char *root);

#endif
