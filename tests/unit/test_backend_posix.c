/* test_backend_posix.c — the local/external backend against a real temporary directory.
 *
 * What matters is what the backend refuses: paths that leave the root, symlinks
 * anywhere on a path, replacing an existing file on rename, FIFOs that would hang. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/magic.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "stowage/backend.h"

struct fixture {
    char root[64];
    char path[128];
    const struct backend_ops *ops;
    struct be_volume *v;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    const char *tmp = getenv("TMPDIR");
    struct be_params p = {0};
    struct st_err e = {0};

    if (!fx)
        return -1;
    snprintf(fx->root, sizeof fx->root, "%s/stowage-posix-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(fx->root))
        return -1;
    fx->ops = be_ops_for("local");
    json_t *params = json_pack("{s:s}", "mount_point", fx->root);
    p.params = params;
    int rc = fx->ops->open(&p, &fx->v, &e);
    json_decref(params);
    if (rc != 0) {
        fprintf(stderr, "open %s: %s\n", fx->root, e.msg);
        return -1;
    }
    *state = fx;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    if (fx->v)
        fx->ops->close(fx->v);
    nftw(fx->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static const char *in_root(struct fixture *fx, const char *rel)
{
    snprintf(fx->path, sizeof fx->path, "%s/%s", fx->root, rel);
    return fx->path;
}

static void write_file(struct fixture *fx, const char *rel, const char *text)
{
    struct be_file *f;

    assert_int_equal(fx->ops->open_file(fx->v, rel, O_RDWR | O_CREAT | O_EXCL, 0644, &f), 0);
    assert_int_equal(fx->ops->pwrite(f, text, strlen(text), 0), (ssize_t)strlen(text));
    assert_int_equal(fx->ops->fsync(f), 0);
    assert_int_equal(fx->ops->close_file(f), 0);
}

static void assert_content(struct fixture *fx, const char *rel, const char *text)
{
    struct be_file *f;
    char buf[256] = "";
    ssize_t n;

    assert_int_equal(fx->ops->open_file(fx->v, rel, O_RDONLY, 0, &f), 0);
    n = fx->ops->pread(f, buf, sizeof buf - 1, 0);
    assert_int_equal(n, (ssize_t)strlen(text));
    assert_memory_equal(buf, text, (size_t)n);
    fx->ops->close_file(f);
}

static void test_create_write_rename_unlink(void **state)
{
    struct fixture *fx = *state;
    struct stat st;

    assert_int_equal(fx->ops->mkdir(fx->v, ".staging", 0755), 0);
    assert_int_equal(fx->ops->mkdir(fx->v, "images", 0755), 0);
    assert_int_equal(fx->ops->mkdir(fx->v, "images", 0755), 0); /* EEXIST is success */
    write_file(fx, ".staging/a.raw", "image bytes");
    assert_int_equal(fx->ops->rename(fx->v, ".staging/a.raw", "images/a.raw"), 0);
    assert_int_equal(fx->ops->fsync_dir(fx->v, "images"), 0);
    assert_int_equal(fx->ops->fsync_dir(fx->v, ""), 0);
    assert_int_equal(fx->ops->stat(fx->v, ".staging/a.raw", &st), -ENOENT);
    assert_int_equal(fx->ops->stat(fx->v, "images/a.raw", &st), 0);
    assert_int_equal(st.st_size, 11);
    assert_content(fx, "images/a.raw", "image bytes");
    assert_int_equal(fx->ops->unlink(fx->v, "images/a.raw"), 0);
    assert_int_equal(fx->ops->unlink(fx->v, "images/a.raw"), -ENOENT);
    assert_int_equal(fx->ops->unlink(fx->v, "images"), -EISDIR);
}

static void test_rename_never_replaces(void **state)
{
    struct fixture *fx = *state;

    write_file(fx, "new", "new");
    write_file(fx, "old", "old");
    assert_int_equal(fx->ops->rename(fx->v, "new", "old"), -EEXIST);
    assert_content(fx, "old", "old");
    assert_content(fx, "new", "new");
}

static void test_create_excl_refuses_existing(void **state)
{
    struct fixture *fx = *state;
    struct be_file *f;

    write_file(fx, "x", "1");
    assert_int_equal(fx->ops->open_file(fx->v, "x", O_RDWR | O_CREAT | O_EXCL, 0644, &f), -EEXIST);
    assert_int_equal(fx->ops->mkdir(fx->v, "x", 0755), -EEXIST); /* a file, not a dir */
}

static void test_symlink_out_of_root_is_refused(void **state)
{
    struct fixture *fx = *state;
    struct be_file *f;
    struct stat st;
    int rc;

    assert_int_equal(symlink("/etc", in_root(fx, "evil")), 0);
    assert_int_equal(symlink("/etc/passwd", in_root(fx, "pw")), 0);
    assert_int_equal(symlink("..", in_root(fx, "up")), 0);
    rc = fx->ops->open_file(fx->v, "evil/passwd", O_RDONLY, 0, &f);
    assert_true(rc == -ELOOP || rc == -EXDEV);
    assert_int_equal(fx->ops->open_file(fx->v, "pw", O_RDONLY, 0, &f), -ELOOP);
    rc = fx->ops->open_file(fx->v, "up/etc/passwd", O_RDONLY, 0, &f);
    assert_true(rc == -ELOOP || rc == -EXDEV);
    /* Creating through a symlinked directory is refused the same way. */
    rc = fx->ops->open_file(fx->v, "evil/stowage-test", O_RDWR | O_CREAT | O_EXCL, 0644, &f);
    assert_true(rc == -ELOOP || rc == -EXDEV);
    rc = fx->ops->rename(fx->v, "pw", "evil/x");
    assert_true(rc == -ELOOP || rc == -EXDEV);
    /* stat and list report the link itself. */
    assert_int_equal(fx->ops->stat(fx->v, "pw", &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(fx->ops->mkdir(fx->v, "evil", 0755), -EEXIST);
}

static void test_dotdot_and_absolute_paths_are_refused(void **state)
{
    struct fixture *fx = *state;
    struct be_file *f;
    struct stat st;

    assert_int_equal(fx->ops->open_file(fx->v, "../x", O_RDONLY, 0, &f), -EINVAL);
    assert_int_equal(fx->ops->open_file(fx->v, "/etc/passwd", O_RDONLY, 0, &f), -EINVAL);
    assert_int_equal(fx->ops->open_file(fx->v, "a//b", O_RDONLY, 0, &f), -EINVAL);
    assert_int_equal(fx->ops->stat(fx->v, "..", &st), -EINVAL);
    assert_int_equal(fx->ops->unlink(fx->v, "./x"), -EINVAL);
    assert_int_equal(fx->ops->rename(fx->v, "x", "../x"), -EINVAL);
}

static void test_fifo_and_directory_are_not_files(void **state)
{
    struct fixture *fx = *state;
    struct be_file *f;

    assert_int_equal(mkfifo(in_root(fx, "fifo"), 0600), 0);
    assert_int_equal(fx->ops->open_file(fx->v, "fifo", O_RDONLY, 0, &f), -EINVAL);
    assert_int_equal(fx->ops->mkdir(fx->v, "d", 0755), 0);
    assert_int_equal(fx->ops->open_file(fx->v, "d", O_RDONLY, 0, &f), -EISDIR);
}

static void test_sparse_file_reports_holes(void **state)
{
    struct fixture *fx = *state;
    char block[4096];
    struct be_file *f;
    uint64_t data, hole;
    int rc;

    memset(block, 'z', sizeof block);
    assert_int_equal(fx->ops->open_file(fx->v, "sparse", O_RDWR | O_CREAT | O_EXCL, 0644, &f), 0);
    assert_int_equal(fx->ops->pwrite(f, block, sizeof block, 0), (ssize_t)sizeof block);
    assert_int_equal(fx->ops->pwrite(f, block, sizeof block, 8 << 20), (ssize_t)sizeof block);
    assert_int_equal(fx->ops->ftruncate(f, 16 << 20), 0);
    assert_int_equal(fx->ops->fsync(f), 0);
    assert_int_equal(fx->ops->next_data(f, 0, &data, &hole), 0);
    assert_int_equal(data, 0);
    assert_true(hole >= sizeof block && hole < (8 << 20));
    assert_int_equal(fx->ops->next_data(f, hole, &data, &hole), 0);
    assert_true(data <= (8 << 20) && data > sizeof block);
    assert_true(hole >= (8 << 20) + sizeof block && hole < (16 << 20));
    assert_int_equal(fx->ops->next_data(f, hole, &data, &hole), -ENXIO);
    /* Punching the first block leaves only the second extent. */
    rc = fx->ops->punch_hole(f, 0, sizeof block);
    if (rc == 0) {
        assert_int_equal(fx->ops->next_data(f, 0, &data, &hole), 0);
        assert_true(data > sizeof block);
    } else {
        assert_int_equal(rc, -EOPNOTSUPP);
    }
    assert_true(fx->ops->kernel_fd(f) >= 0);
    fx->ops->close_file(f);
}

static void test_reflink_and_copy_range(void **state)
{
    struct fixture *fx = *state;
    struct be_file *src, *dst, *dst2;
    ssize_t n;
    int rc;

    write_file(fx, "src", "shared blocks");
    assert_int_equal(fx->ops->open_file(fx->v, "src", O_RDONLY, 0, &src), 0);
    assert_int_equal(fx->ops->open_file(fx->v, "dst", O_RDWR | O_CREAT | O_EXCL, 0644, &dst), 0);
    rc = fx->ops->reflink(src, dst);
    /* ext4/tmpfs cannot share blocks; XFS (reflink=1) and btrfs can. */
    assert_true(rc == 0 || rc == -EOPNOTSUPP || rc == -EXDEV);
    fx->ops->close_file(dst);
    if (rc == 0)
        assert_content(fx, "dst", "shared blocks");
    assert_int_equal(fx->ops->open_file(fx->v, "dst2", O_RDWR | O_CREAT | O_EXCL, 0644, &dst2), 0);
    n = fx->ops->copy_range(src, 0, dst2, 0, 13);
    assert_true(n == 13 || n == -EOPNOTSUPP || n == -EXDEV);
    fx->ops->close_file(dst2);
    if (n == 13)
        assert_content(fx, "dst2", "shared blocks");
    fx->ops->close_file(src);
}

struct names {
    int count;
    int saw_file, saw_dir, saw_link;
};

static int collect(void *ud, const char *name, const struct stat *st)
{
    struct names *n = ud;

    n->count++;
    if (!strcmp(name, "f") && S_ISREG(st->st_mode))
        n->saw_file = 1;
    if (!strcmp(name, "d") && S_ISDIR(st->st_mode))
        n->saw_dir = 1;
    if (!strcmp(name, "l") && S_ISLNK(st->st_mode))
        n->saw_link = 1;
    return 0;
}

static int stop_early(void *ud, const char *name, const struct stat *st)
{
    (void)name;
    (void)st;
    ++*(int *)ud;
    return 42;
}

static void test_list_reports_entries_with_lstat(void **state)
{
    struct fixture *fx = *state;
    struct names n = {0};
    int calls = 0;

    write_file(fx, "f", "x");
    assert_int_equal(fx->ops->mkdir(fx->v, "d", 0755), 0);
    assert_int_equal(symlink("/etc", in_root(fx, "l")), 0);
    assert_int_equal(fx->ops->list(fx->v, "", collect, &n), 0);
    assert_int_equal(n.count, 3);
    assert_true(n.saw_file && n.saw_dir && n.saw_link);
    assert_int_equal(fx->ops->list(fx->v, "", stop_early, &calls), 42);
    assert_int_equal(calls, 1);
    assert_int_equal(fx->ops->list(fx->v, "l", collect, &n), -ELOOP);
}

static void test_health_and_space(void **state)
{
    struct fixture *fx = *state;
    struct st_err e = {0};
    struct be_space sp;
    char moved[128], images[128], real[128];

    assert_int_equal(fx->ops->statvfs(fx->v, &sp, &e), 0);
    assert_true(sp.total_bytes > 0 && sp.free_bytes <= sp.total_bytes);
    /* Healthy means the layout every write goes through is there, as directories. */
    assert_true(fx->ops->health(fx->v, &e) < 0);
    assert_int_equal(fx->ops->mkdir(fx->v, "images", 0755), 0);
    assert_int_equal(fx->ops->mkdir(fx->v, "clones", 0755), 0);
    assert_int_equal(fx->ops->mkdir(fx->v, ".staging", 0700), 0);
    assert_int_equal(fx->ops->health(fx->v, &e), 0);
    /* images/ replaced by a symlink to a directory: broken, and the message says why. */
    snprintf(images, sizeof images, "%s/images", fx->root);
    snprintf(real, sizeof real, "%s/real-images", fx->root);
    assert_int_equal(rename(images, real), 0);
    assert_int_equal(symlink("real-images", images), 0);
    assert_int_equal(fx->ops->health(fx->v, &e), -ELOOP);
    assert_int_equal(e.code, ST_UNAVAILABLE);
    assert_non_null(strstr(e.msg, "images is a symbolic link, not a directory"));
    assert_int_equal(unlink(images), 0);
    assert_int_equal(rename(real, images), 0);
    assert_int_equal(fx->ops->health(fx->v, &e), 0);
    /* The configured path no longer leads to the directory we hold. */
    snprintf(moved, sizeof moved, "%s.moved", fx->root);
    assert_int_equal(rename(fx->root, moved), 0);
    assert_int_equal(mkdir(fx->root, 0755), 0);
    assert_true(fx->ops->health(fx->v, &e) < 0);
    assert_int_equal(e.code, ST_UNAVAILABLE);
    rmdir(fx->root);
    assert_int_equal(rename(moved, fx->root), 0);
    assert_int_equal(fx->ops->health(fx->v, &e), 0);
}

static int count_fds(void)
{
    struct dirent *de;
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* An idle volume must not pin its mount: the operator's umount has to work. */
static void test_idle_volume_holds_no_fd(void **state)
{
    struct fixture *fx = *state;
    const struct backend_ops *ops = be_ops_for("external");
    json_t *params = json_pack("{s:s}", "mount_point", fx->root);
    struct be_params p = {.params = params};
    struct be_volume *v;
    struct st_err e = {0};
    struct stat st;
    int before = count_fds();

    assert_int_equal(ops->open(&p, &v, &e), 0);
    assert_int_equal(ops->mkdir(v, "images", 0755), 0);
    assert_int_equal(ops->mkdir(v, "clones", 0755), 0);
    assert_int_equal(ops->mkdir(v, ".staging", 0700), 0);
    assert_int_equal(ops->stat(v, "images", &st), 0);
    assert_int_equal(ops->health(v, &e), 0);
    assert_int_equal(count_fds(), before);
    ops->close(v);
    json_decref(params);
}

static void test_open_refuses_bad_roots(void **state)
{
    const struct backend_ops *ops = be_ops_for("external");
    json_t *rel = json_pack("{s:s}", "mount_point", "relative/dir");
    json_t *gone = json_pack("{s:s}", "mount_point", "/nonexistent/stowage/root");
    struct be_params p = {.params = rel};
    struct be_volume *v;
    struct st_err e = {0};

    (void)state;
    assert_int_equal(ops->open(&p, &v, &e), -EINVAL);
    assert_int_equal(e.code, ST_INVALID);
    p.params = gone;
    assert_int_equal(ops->open(&p, &v, &e), -ENOENT);
    assert_int_equal(e.code, ST_NOT_FOUND);
    json_decref(rel);
    json_decref(gone);
}

/* The watch tells nothing until something a scan would see happens: an open of a
 * directory is never a writer, a file's open is reported as such, and a change reaching
 * a file by a name in another directory (a hard link there) is seen by the file's own
 * watch. */
static void test_watch_reports_changes_and_opens(void **state)
{
    struct fixture *fx = *state;
    const struct backend_ops *ops = fx->ops;
    struct be_watch *w = NULL;
    struct be_file *f;
    char other[192];

    write_file(fx, "a", "x");
    assert_int_equal(ops->mkdir(fx->v, "sub", 0755), 0);
    assert_int_equal(ops->watch_arm(fx->v, "", &w), 0);
    assert_non_null(w);
    assert_int_equal(ops->watch_poll(fx->v, w), 0);
    DIR *d = opendir(fx->root);
    assert_non_null(d);
    closedir(d);
    assert_int_equal(ops->watch_poll(fx->v, w), 0);

    assert_int_equal(ops->open_file(fx->v, "a", O_RDONLY, 0, &f), 0);
    assert_int_equal(ops->close_file(f), 0);
    assert_int_equal(ops->watch_poll(fx->v, w), BE_SEEN_OPEN);
    assert_int_equal(ops->watch_poll(fx->v, w), 0);

    snprintf(other, sizeof other, "%s/sub/a2", fx->root);
    assert_int_equal(link(in_root(fx, "a"), other), 0);
    assert_true(ops->watch_poll(fx->v, w) & BE_SEEN_CHANGE);
    write_file(fx, "b", "y");
    assert_true(ops->watch_poll(fx->v, w) & BE_SEEN_CHANGE);
    assert_int_equal(ops->watch_poll(fx->v, w), 0);
    ops->watch_close(w);
}

/* A root whose path leads elsewhere now is a change, and arming then fails as every
 * operation on the volume does. */
static void test_watch_sees_the_root_moved_away(void **state)
{
    struct fixture *fx = *state;
    struct be_watch *w = NULL;
    char moved[96];

    assert_int_equal(fx->ops->watch_arm(fx->v, "", &w), 0);
    snprintf(moved, sizeof moved, "%s.moved", fx->root);
    assert_int_equal(rename(fx->root, moved), 0);
    assert_true(fx->ops->watch_poll(fx->v, w) & BE_SEEN_CHANGE);
    assert_int_equal(fx->ops->watch_arm(fx->v, "", &w), -ESTALE);
    assert_null(w);
    assert_int_equal(rename(moved, fx->root), 0);
}

#define PUBLISHERS 16

struct publisher {
    struct fixture *fx;
    int i, rc, moved;
};

/* One create's protocol: stage, write, flush, publish (rename + the directory's fsync). */
static void *publish_one(void *arg)
{
    struct publisher *p = arg;
    const struct backend_ops *ops = p->fx->ops;
    char staged[64], final[64];
    struct be_file *f;

    snprintf(staged, sizeof staged, ".staging/p%d.upload", p->i);
    snprintf(final, sizeof final, "images/p%d.raw", p->i);
    if ((p->rc = ops->stage(p->fx->v, staged, &f)) < 0)
        return NULL;
    if ((p->rc = (int)ops->pwrite(f, "x", 1, 0)) == 1 && (p->rc = ops->flush(f)) == 0)
        p->rc = ops->publish(p->fx->v, staged, final, &p->moved);
    ops->close_file(f);
    return NULL;
}

/* Concurrent publishes share the fsyncs of images/ (posix.c) and every one still lands
 * and hears 0; a directory whose fsync fails says so to its caller and wedges nothing. */
static void test_concurrent_publishes_into_one_directory_all_land(void **state)
{
    struct fixture *fx = *state;
    struct publisher ps[PUBLISHERS];
    pthread_t t[PUBLISHERS];
    struct stat sb;

    assert_int_equal(fx->ops->init(fx->v), 0);
    for (int i = 0; i < PUBLISHERS; i++) {
        ps[i] = (struct publisher){.fx = fx, .i = i, .rc = -1};
        assert_int_equal(pthread_create(&t[i], NULL, publish_one, &ps[i]), 0);
    }
    for (int i = 0; i < PUBLISHERS; i++) {
        char rel[64];
        pthread_join(t[i], NULL);
        assert_int_equal(ps[i].rc, 0);
        assert_int_equal(ps[i].moved, 1);
        snprintf(rel, sizeof rel, "images/p%d.raw", i);
        assert_int_equal(stat(in_root(fx, rel), &sb), 0);
        assert_int_equal(sb.st_size, 1);
    }
    assert_true(fx->ops->fsync_dir(fx->v, "nowhere") < 0);
    assert_true(fx->ops->fsync_dir(fx->v, "nowhere") < 0);
    assert_int_equal(fx->ops->fsync_dir(fx->v, "images"), 0);
}

#define MANY 6

/* publish_many publishes each staged file as flush and publish would: all land under their
 * final names with their bytes, except the one whose final name is taken — it stays
 * staged, unrenamed, with rename's error — and one flushed by its caller is only renamed. */
static void test_publish_many_lands_all_but_the_refused_one(void **state)
{
    struct fixture *fx = *state;
    struct be_publish items[MANY];
    struct be_file *f[MANY];
    char staged[MANY][64], final[MANY][64];
    struct stat sb;

    assert_int_equal(fx->ops->init(fx->v), 0);
    write_file(fx, "images/m2.raw", "taken");
    for (int i = 0; i < MANY; i++) {
        snprintf(staged[i], sizeof staged[i], ".staging/m%d.upload", i);
        snprintf(final[i], sizeof final[i], "images/m%d.raw", i);
        assert_int_equal(fx->ops->stage(fx->v, staged[i], &f[i]), 0);
        assert_int_equal(fx->ops->pwrite(f[i], "abc", 3, 0), 3);
        items[i] = (struct be_publish){.f = f[i], .staged = staged[i], .final = final[i]};
    }
    assert_int_equal(fx->ops->flush(f[4]), 0);
    items[4].flushed = 1;
    fx->ops->publish_many(fx->v, items, MANY);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(items[i].flushed, 1);
        if (i == 2) {
            assert_int_equal(items[i].rc, -EEXIST);
            assert_int_equal(items[i].moved, 0);
            assert_content(fx, final[i], "taken");
            assert_content(fx, staged[i], "abc");
        } else {
            assert_int_equal(items[i].rc, 0);
            assert_int_equal(items[i].moved, 1);
            assert_content(fx, final[i], "abc");
            assert_int_equal(stat(in_root(fx, staged[i]), &sb), -1);
        }
        fx->ops->close_file(f[i]);
    }
}

/* The page-cache pages of [off, off + len) of the file at path that are resident. */
static size_t resident_pages(const char *path, size_t off, size_t len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(map != MAP_FAILED);
    size_t pages = ((size_t)st.st_size + 4095) / 4096, n = 0;
    unsigned char *vec = malloc(pages);
    assert_non_null(vec);
    assert_int_equal(mincore(map, (size_t)st.st_size, vec), 0);
    for (size_t i = off / 4096; i < (off + len + 4095) / 4096; i++)
        n += vec[i] & 1;
    free(vec);
    munmap(map, (size_t)st.st_size);
    close(fd);
    return n;
}

static int on_block_device_fs(const char *path)
{
    struct statfs sf;
    assert_int_equal(statfs(path, &sf), 0);
    return sf.f_type == XFS_SUPER_MAGIC || sf.f_type == EXT4_SUPER_MAGIC ||
           sf.f_type == BTRFS_SUPER_MAGIC;
}

/* A large aligned write goes around the page cache on a filesystem of a block device; an
 * unaligned one, and any write elsewhere (tmpfs), through it. All read back alike. */
static void test_large_aligned_writes_go_around_the_page_cache(void **state)
{
    struct fixture *fx = *state;
    const size_t big = 1u << 20, odd = 5000;
    unsigned char *buf = aligned_alloc(4096, big), *back = malloc(big);
    struct be_file *f;

    assert_non_null(buf);
    assert_non_null(back);
    for (size_t i = 0; i < big; i++)
        buf[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(fx->ops->open_file(fx->v, "big.raw", O_RDWR | O_CREAT | O_EXCL, 0644, &f), 0);
    /* such a file asks for large writes: several device requests of each in flight */
    assert_int_equal(fx->ops->write_size(f, 0), on_block_device_fs(fx->root) ? 4u << 20 : 0);
    assert_int_equal(fx->ops->write_size(f, 5000), 0); /* no direct write from there */
    assert_int_equal(fx->ops->pwrite(f, buf, big, 0), (ssize_t)big);
    assert_int_equal(fx->ops->pwrite(f, buf + 1, odd, big), (ssize_t)odd);
    assert_int_equal(fx->ops->fsync(f), 0);
    if (on_block_device_fs(fx->root)) {
        assert_int_equal(resident_pages(in_root(fx, "big.raw"), 0, big), 0);
        assert_true(resident_pages(in_root(fx, "big.raw"), big, odd) > 0);
    }
    assert_int_equal(fx->ops->pread(f, back, big, 0), (ssize_t)big);
    assert_memory_equal(back, buf, big);
    assert_int_equal(fx->ops->pread(f, back, big, big), (ssize_t)odd);
    assert_memory_equal(back, buf + 1, odd);
    assert_int_equal(fx->ops->close_file(f), 0);
    free(buf);
    free(back);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_create_write_rename_unlink),
        T(test_rename_never_replaces),
        T(test_create_excl_refuses_existing),
        T(test_symlink_out_of_root_is_refused),
        T(test_dotdot_and_absolute_paths_are_refused),
        T(test_fifo_and_directory_are_not_files),
        T(test_sparse_file_reports_holes),
        T(test_reflink_and_copy_range),
        T(test_list_reports_entries_with_lstat),
        T(test_health_and_space),
        T(test_idle_volume_holds_no_fd),
        T(test_watch_reports_changes_and_opens),
        T(test_watch_sees_the_root_moved_away),
        T(test_concurrent_publishes_into_one_directory_all_land),
        T(test_publish_many_lands_all_but_the_refused_one),
        T(test_large_aligned_writes_go_around_the_page_cache),
        cmocka_unit_test(test_open_refuses_bad_roots),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
