/* test_fmt_corpus.c — every sample of the qemu-img corpus
 * (tests/fixtures/make_corpus.py) inspected through fmt_inspect_fd: the
 * exact format, virtual size, verdict, reason and flags of its expectations
 * table, and a bound on the bytes read. Skipped when qemu-img is missing. */
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
#include <unistd.h>

#include <cmocka.h>

#include "stowage/format.h"

/* The corpus's largest tables: a 64 KiB VHDX region table and metadata, a
 * 256 KiB qcow2 L1 of 512-byte clusters. Headers only, never the data. */
#define MAX_BYTES_READ (320 * 1024)

static char dir[256];

static int setup(void **state)
{
    const char *src = getenv("STOWAGE_SOURCE_DIR");
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char cmd[1024];

    if (system("qemu-img --version >/dev/null 2>&1") != 0 || access("/usr/bin/python3", X_OK))
        return 0; /* the test skips itself */
    snprintf(dir, sizeof(dir), "%s/test_fmt_corpus_XXXXXX", tmp);
    if (!mkdtemp(dir))
        return -1;
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s/tests/fixtures/make_corpus.py' '%s/corpus'",
             src ? src : "../..", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];

    if (!dir[0])
        return 0;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int check_sample(json_t *s)
{
    const char *name = json_string_value(json_object_get(s, "name"));
    const char *declared = json_string_value(json_object_get(s, "declared"));
    const char *want_fmt = json_string_value(json_object_get(s, "format"));
    const char *want_reason = json_string_value(json_object_get(s, "reason"));
    json_t *cap = json_object_get(s, "max_virtual_size"), *flags = json_object_get(s, "flags");
    uint64_t want_vsize = (uint64_t)json_integer_value(json_object_get(s, "virtual_size"));
    struct fmt_opts o;
    struct fmt_info info;
    char path[512];
    int bad = 0;

    fmt_opts_init(&o);
    o.declared = fmt_from_name(declared);
    if (json_is_integer(cap))
        o.max_virtual_size = (uint64_t)json_integer_value(cap);
    snprintf(path, sizeof(path), "%s/corpus/%s", dir, name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        print_error("%s: %s\n", name, strerror(errno));
        return 1;
    }
    int ret = fmt_inspect_fd(fd, &o, &info);
    close(fd);

    uint32_t want_flags = 0;
    for (size_t i = 0; i < json_array_size(flags); i++)
        for (uint32_t bit = 1; bit; bit <<= 1)
            if (fmt_flag_name(bit) &&
                !strcmp(fmt_flag_name(bit), json_string_value(json_array_get(flags, i))))
                want_flags |= bit;
    const char *got_fmt = info.format == FMT_UNKNOWN ? NULL : fmt_name(info.format);
    const char *got_reason = info.reason == FMT_R_OK ? NULL : fmt_reason_str(info.reason);
    if (ret != 0 || (got_fmt == NULL) != (want_fmt == NULL) ||
        (got_fmt && strcmp(got_fmt, want_fmt)) || info.virtual_size != want_vsize ||
        (got_reason == NULL) != (want_reason == NULL) ||
        (got_reason && strcmp(got_reason, want_reason)) || info.flags != want_flags) {
        print_error(
            "%s (declared %s): got %s %llu %s flags 0x%x (%s); want %s %llu %s flags 0x%x\n", name,
            declared ? declared : "auto", got_fmt ? got_fmt : "-",
            (unsigned long long)info.virtual_size, got_reason ? got_reason : "accept", info.flags,
            info.detail, want_fmt ? want_fmt : "-", (unsigned long long)want_vsize,
            want_reason ? want_reason : "accept", want_flags);
        bad = 1;
    }
    if (info.bytes_read > MAX_BYTES_READ) {
        print_error("%s: read %llu bytes\n", name, (unsigned long long)info.bytes_read);
        bad = 1;
    }
    return bad;
}

static void test_every_corpus_sample_gets_its_expected_verdict(void **state)
{
    char path[512];
    json_error_t err;

    if (!dir[0])
        skip();
    snprintf(path, sizeof(path), "%s/corpus/expect.json", dir);
    json_t *exp = json_load_file(path, 0, &err);
    assert_non_null(exp);
    json_t *samples = json_object_get(exp, "samples");
    assert_true(json_array_size(samples) >= 100);
    int bad = 0;
    for (size_t i = 0; i < json_array_size(samples); i++)
        bad += check_sample(json_array_get(samples, i));
    json_decref(exp);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_corpus_sample_gets_its_expected_verdict),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
