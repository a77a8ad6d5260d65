/* cli.c — `stowaged inspect` (a safe `qemu-img info` for operators and
 * scripts) and the hidden `stowaged qcow2-overlay` used by tests and for
 * manual repairs. Both print one JSON object on stdout and return the exit
 * code; src/main.c only dispatches to them. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmt_int.h"

#define EXIT_ACCEPT 0
#define EXIT_READ_ERROR 1
#define EXIT_USAGE 2
#define EXIT_REFUSE 3

static const char inspect_usage[] =
    "usage: stowaged inspect FILE [--format DECLARED] [--max-virtual-size BYTES]\n"
    "  Inspects FILE's headers (never runs qemu-img) and prints one JSON object:\n"
    "  {\"format\",\"virtual_size\",\"actual_size\",\"verdict\",\"reason\",\"detail\",\"flags\"}.\n"
    "  DECLARED: auto (default), raw, qcow2, vmdk, vpc|vhd, vhdx, iso.\n"
    "  BYTES may end in K, M, G or T (powers of 1024); default 1T.\n"
    "  Exit: 0 accepted, 3 refused, 1 read error, 2 usage error.\n";

static const char overlay_usage[] =
    "usage: stowaged qcow2-overlay OUT BACKING BACKING_FORMAT [--size BYTES]\n"
    "  Creates OUT (must not exist) as a qcow2 v3 overlay on BACKING, opened as\n"
    "  BACKING_FORMAT. Without --size, BACKING's virtual size is inspected.\n"
    "  Exit: 0 created, 1 error, 2 usage error.\n";

/* "1073741824", "1G", "100G": bytes, with an optional binary suffix. */
static int parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "KMGT";
    char *end;

    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    const char *unit = *end ? strchr(units, *end) : NULL;
    if (*end && (!unit || end[1]))
        return -EINVAL;
    unsigned shift = unit ? 10 * (unsigned)(unit - units + 1) : 0;
    if (v > (UINT64_MAX >> shift))
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

/* "--name VALUE" or "--name=VALUE": the value, advancing *i past it. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n))
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static json_t *size_json(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? json_null() : json_integer((json_int_t)v);
}

/* argv and file names need not be UTF-8; jansson refuses such strings. */
static json_t *string_json(const char *s)
{
    json_t *j = json_string(s);

    if (j)
        return j;
    char *copy = strdup(s);
    if (!copy)
        return json_null();
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c > 0x7e || *c < 0x20)
            *c = '?';
    j = json_string(copy);
    free(copy);
    return j ? j : json_null();
}

static int print_json(json_t *obj)
{
    int ret = 0;

    if (!obj || json_dumpf(obj, stdout, JSON_COMPACT) < 0 || fputc('\n', stdout) == EOF ||
        fflush(stdout) == EOF)
        ret = -EIO;
    json_decref(obj);
    return ret;
}

static json_t *info_json(const struct fmt_info *info)
{
    json_t *o = json_object(), *flags = json_array();

    if (!o || !flags) {
        json_decref(o);
        json_decref(flags);
        return NULL;
    }
    for (uint32_t bit = 1; bit; bit <<= 1)
        if ((info->flags & bit) && fmt_flag_name(bit))
            json_array_append_new(flags, json_string(fmt_flag_name(bit)));
    json_object_set_new(o, "format",
                        info->format == FMT_UNKNOWN ? json_null()
                                                    : json_string(fmt_name(info->format)));
    json_object_set_new(o, "virtual_size", size_json(info->virtual_size));
    json_object_set_new(o, "actual_size", size_json(info->actual_size));
    json_object_set_new(o, "verdict", json_string(info->reason == FMT_R_OK ? "accept" : "refuse"));
    json_object_set_new(o, "reason",
                        info->reason == FMT_R_OK ? json_null()
                                                 : json_string(fmt_reason_str(info->reason)));
    json_object_set_new(o, "detail", string_json(info->detail));
    json_object_set_new(o, "flags", flags);
    return o;
}

static int print_error(const char *what, const char *file, int err)
{
    char detail[512];

    snprintf(detail, sizeof(detail), "%s %s: %s", what, file, strerror(err));
    fprintf(stderr, "stowaged: %s\n", detail);
    print_json(json_pack("{s:n, s:n, s:s, s:s, s:o}", "format", "virtual_size", "verdict", "error",
                         "reason", fmt_reason_str(FMT_R_READ_ERROR), "detail",
                         string_json(detail)));
    return EXIT_READ_ERROR;
}

static int usage_error(const char *usage, const char *msg, const char *arg)
{
    fprintf(stderr, "stowaged: %s%s%s\n%s", msg, arg ? ": " : "", arg ? arg : "", usage);
    return EXIT_USAGE;
}

int fmt_cli_inspect(int argc, char **argv)
{
    struct fmt_opts opts;
    struct fmt_info info;
    const char *file = NULL, *v;
    int fd, ret;

    fmt_opts_init(&opts);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(inspect_usage, stdout);
            return EXIT_ACCEPT;
        } else if ((v = opt_value(argc, argv, &i, "--format"))) {
            opts.declared = fmt_from_name(v);
            if (opts.declared == FMT_INVALID)
                return usage_error(inspect_usage, "unknown format", v);
        } else if ((v = opt_value(argc, argv, &i, "--max-virtual-size"))) {
            if (parse_size(v, &opts.max_virtual_size) < 0 || opts.max_virtual_size == 0)
                return usage_error(inspect_usage, "bad size", v);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error(inspect_usage, "unknown or incomplete option", argv[i]);
        } else if (file) {
            return usage_error(inspect_usage, "more than one file", argv[i]);
        } else {
            file = argv[i];
        }
    }
    if (!file)
        return usage_error(inspect_usage, "no file given", NULL);

    /* O_NONBLOCK: a FIFO must not hang the tool; fmt_inspect_fd refuses it. */
    fd = open(file, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return print_error("cannot open", file, errno);
    ret = fmt_inspect_fd(fd, &opts, &info);
    close(fd);
    if (ret < 0)
        return print_error("cannot read", file, -ret);
    if (print_json(info_json(&info)) < 0)
        return EXIT_READ_ERROR;
    return info.reason == FMT_R_OK ? EXIT_ACCEPT : EXIT_REFUSE;
}

/* The base's virtual size, from its own header. The operator named it, and
 * it may itself be an overlay of the daemon's (a snapshot chain). */
static int base_virtual_size(const char *path, enum fmt_format fmt, uint64_t *size, char *why,
                             size_t whylen)
{
    struct fmt_opts opts;
    struct fmt_info info;
    int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0) {
        snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    fmt_opts_init(&opts);
    opts.declared = fmt;
    opts.max_virtual_size = UINT64_MAX;
    opts.allow_backing_file = 1;
    int ret = fmt_inspect_fd(fd, &opts, &info);
    close(fd);
    if (ret < 0 || info.reason != FMT_R_OK) {
        snprintf(why, whylen, "base %s refused: %s (%s)", path, fmt_reason_str(info.reason),
                 info.detail);
        return -1;
    }
    *size = info.virtual_size;
    return 0;
}

static int write_new_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    const uint8_t *p = buf;
    int err = 0;

    if (fd < 0)
        return -errno;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : EIO;
            goto fail;
        }
        p += n;
        len -= (size_t)n;
    }
    if (fsync(fd) < 0) {
        err = errno;
        goto fail;
    }
    if (close(fd) < 0) {
        err = errno;
        fd = -1;
        goto fail;
    }
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    unlink(path);
    return -err;
}

int fmt_cli_overlay(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL}, *v;
    uint64_t size = 0;
    int npos = 0, ret;
    void *buf = NULL;
    size_t len = 0;
    char why[1200];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(overlay_usage, stdout);
            return 0;
        } else if ((v = opt_value(argc, argv, &i, "--size"))) {
            if (parse_size(v, &size) < 0 || size == 0)
                return usage_error(overlay_usage, "bad size", v);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error(overlay_usage, "unknown or incomplete option", argv[i]);
        } else if (npos == 3) {
            return usage_error(overlay_usage, "too many arguments", argv[i]);
        } else {
            pos[npos++] = argv[i];
        }
    }
    if (npos != 3)
        return usage_error(overlay_usage, "OUT, BACKING and BACKING_FORMAT are required", NULL);
    enum fmt_format fmt = fmt_from_name(pos[2]);
    if (fmt == FMT_INVALID || fmt == FMT_UNKNOWN)
        return usage_error(overlay_usage, "unknown backing format", pos[2]);
    if (size == 0 && base_virtual_size(pos[1], fmt, &size, why, sizeof(why)) < 0) {
        fprintf(stderr, "stowaged: %s\n", why);
        return 1;
    }
    ret = fmt_qcow2_overlay_build(pos[1], pos[2], size, &buf, &len);
    if (ret < 0) {
        fprintf(stderr, "stowaged: cannot build the overlay: %s\n", strerror(-ret));
        return 1;
    }
    ret = write_new_file(pos[0], buf, len);
    free(buf);
    if (ret < 0) {
        fprintf(stderr, "stowaged: cannot write %s: %s\n", pos[0], strerror(-ret));
        return 1;
    }
    ret = print_json(json_pack("{s:o, s:o, s:s, s:o, s:o}", "path", string_json(pos[0]),
                               "backing_file", string_json(pos[1]), "backing_format",
                               fmt_qemu_driver(fmt), "virtual_size", size_json(size),
                               "bytes_written", size_json(len)));
    return ret < 0 ? 1 : 0;
}
