/* test_fmt_cli.c — `stowaged inspect` and `stowaged qcow2-overlay` run
 * in-process (fmt_cli_inspect, fmt_cli_overlay), so their JSON and exit
 * codes are checked whether or not the daemon binary is built. The pytest
 * tests/api/test_inspect.py runs the real binary on the qemu-img corpus. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "stowage/format.h"

static char dir[256];

static int setup(void **state)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof(dir), "%s/test_fmt_cli_XXXXXX", tmp);
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static void write_file(const char *name, const void *b, size_t n, uint64_t size)
{
    char p[512];
    path_in(p, sizeof(p), name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    if (size > n)
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
}

/* Run fn(argc, argv) with stdout captured and stderr silenced; returns the
 * exit code and the parsed JSON (NULL when stdout is not one JSON object). */
static int run(int (*fn)(int, char **), json_t **out, const char *a0, ...)
{
    char *argv[16];
    int argc = 0;
    va_list ap;
    char cap[512];

    argv[argc++] = (char *)a0;
    va_start(ap, a0);
    for (char *a; (a = va_arg(ap, char *)) && argc < 15;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    path_in(cap, sizeof(cap), "stdout");
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fd = open(cap, O_RDWR | O_CREAT | O_TRUNC, 0644), null = open("/dev/null", O_WRONLY);
    assert_true(fd >= 0 && null >= 0 && saved_out >= 0 && saved_err >= 0);
    dup2(fd, 1);
    dup2(null, 2);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    close(null);
    close(fd);
    json_error_t err;
    *out = json_load_file(cap, 0, &err);
    return rc;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void test_inspect_accepts_raw_with_exit_0(void **state)
{
    char p[512];
    json_t *o;

    write_file("disk.raw", "hello", 5, 1 << 20);
    path_in(p, sizeof(p), "disk.raw");
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, NULL), 0);
    assert_non_null(o);
    assert_string_equal(str(o, "format"), "raw");
    assert_int_equal(json_integer_value(json_object_get(o, "virtual_size")), 1 << 20);
    assert_string_equal(str(o, "verdict"), "accept");
    assert_true(json_is_null(json_object_get(o, "reason")));
    assert_true(json_is_array(json_object_get(o, "flags")));
    json_decref(o);
}

static void test_inspect_refuses_declared_mismatch_with_exit_3(void **state)
{
    char p[512];
    json_t *o;

    path_in(p, sizeof(p), "disk.raw");
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, "--format", "qcow2", NULL), 3);
    assert_string_equal(str(o, "verdict"), "refuse");
    assert_string_equal(str(o, "reason"), "format_mismatch");
    assert_string_equal(str(o, "format"), "raw");
    json_decref(o);
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", "--format=raw", p, NULL), 0);
    json_decref(o);
}

static void test_inspect_cap_gives_its_own_reason(void **state)
{
    char p[512];
    json_t *o;

    path_in(p, sizeof(p), "disk.raw");
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, "--max-virtual-size", "512K", NULL), 3);
    assert_string_equal(str(o, "reason"), "virtual_size_over_cap");
    json_decref(o);
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, "--max-virtual-size=1M", NULL), 0);
    json_decref(o);
}

static void test_inspect_empty_file_is_refused(void **state)
{
    char p[512];
    json_t *o;

    write_file("empty", "", 0, 0);
    path_in(p, sizeof(p), "empty");
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, NULL), 3);
    assert_string_equal(str(o, "reason"), "empty_file");
    assert_true(json_is_null(json_object_get(o, "format")));
    json_decref(o);
}

static void test_inspect_missing_file_is_a_read_error_exit_1(void **state)
{
    char p[512];
    json_t *o;

    path_in(p, sizeof(p), "no-such-file");
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, NULL), 1);
    assert_string_equal(str(o, "verdict"), "error");
    assert_string_equal(str(o, "reason"), "read_error");
    json_decref(o);
    /* a directory is not an image either */
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", dir, NULL), 1);
    json_decref(o);
}

static void test_inspect_usage_errors_exit_2(void **state)
{
    char p[512];
    json_t *o;

    path_in(p, sizeof(p), "disk.raw");
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", NULL), 2);
    assert_null(o);
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, "--format", "qcow3", NULL), 2);
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, "--format", NULL), 2);
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, "--max-virtual-size", "1X", NULL), 2);
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, p, NULL), 2);
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", p, "--bogus", NULL), 2);
}

static void test_overlay_subcommand_writes_an_inspectable_overlay(void **state)
{
    char base[512], out[512], out2[512];
    json_t *o;

    write_file("base.raw", "data", 4, 1 << 30);
    path_in(base, sizeof(base), "base.raw");
    path_in(out, sizeof(out), "clone.qcow2");
    assert_int_equal(run(fmt_cli_overlay, &o, "qcow2-overlay", out, base, "raw", NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "virtual_size")), 1 << 30);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_written")), 4 * 65536);
    assert_string_equal(str(o, "backing_format"), "raw");
    json_decref(o);

    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_size, 4 * 65536);
    /* a client's upload of such a file is refused: it points at another file */
    assert_int_equal(run(fmt_cli_inspect, &o, "inspect", out, NULL), 3);
    assert_string_equal(str(o, "reason"), "qcow2_backing_file");
    json_decref(o);

    /* never overwrites, and --size skips reading the base */
    assert_int_equal(run(fmt_cli_overlay, &o, "qcow2-overlay", out, base, "raw", NULL), 1);
    path_in(out2, sizeof(out2), "clone2.qcow2");
    assert_int_equal(run(fmt_cli_overlay, &o, "qcow2-overlay", out2, "/nonexistent/base", "qcow2",
                         "--size", "100G", NULL),
                     0);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_written")), 4 * 65536);
    json_decref(o);
    assert_int_equal(run(fmt_cli_overlay, &o, "qcow2-overlay", out2, base, "bogus", NULL), 2);
    assert_int_equal(run(fmt_cli_overlay, &o, "qcow2-overlay", out2, base, NULL), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inspect_accepts_raw_with_exit_0),
        cmocka_unit_test(test_inspect_refuses_declared_mismatch_with_exit_3),
        cmocka_unit_test(test_inspect_cap_gives_its_own_reason),
        cmocka_unit_test(test_inspect_empty_file_is_refused),
        cmocka_unit_test(test_inspect_missing_file_is_a_read_error_exit_1),
        cmocka_unit_test(test_inspect_usage_errors_exit_2),
        cmocka_unit_test(test_overlay_subcommand_writes_an_inspectable_overlay),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
