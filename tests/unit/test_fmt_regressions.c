/* test_fmt_regressions.c — replay every input the fuzzer ever broke the
 * inspector with (fuzz/regressions/fuzz_inspect/, flat or sparse as fuzz/sparse_input.h
 * says). Under the ASan/UBSan build a regression crashes here again; in any
 * build the verdict must be reached and be the same twice. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../fuzz/sparse_input.h"
#include "stowage/format.h"

#define MAX_REGRESSION_BYTES (1 << 20) /* regressions are small by rule */

static int replay(const char *path)
{
    static uint8_t data[MAX_REGRESSION_BYTES];
    struct fuzz_image img;
    struct fmt_info a, b;
    FILE *f = fopen(path, "rb");

    if (!f)
        return -errno;
    size_t n = fread(data, 1, sizeof(data), f);
    fclose(f);
    if (fuzz_image_init(&img, data, n) < 0)
        return -ENOMEM;
    struct fmt_source src = fuzz_image_source(&img);
    int ra = fmt_inspect(&src, &img.opts, &a);
    int rb = fmt_inspect(&src, &img.opts, &b);
    fuzz_image_free(&img);
    if (ra != 0 || rb != 0 || a.reason != b.reason || a.format != b.format ||
        a.virtual_size != b.virtual_size || a.bytes_read != b.bytes_read)
        return -EINVAL;
    return 0;
}

static void test_every_fuzz_regression_is_inspected_cleanly(void **state)
{
    const char *src = getenv("STOWAGE_SOURCE_DIR");
    char dirpath[512], path[1024];
    struct dirent *de;
    int count = 0;

    snprintf(dirpath, sizeof(dirpath), "%s/fuzz/regressions/fuzz_inspect", src ? src : "../..");
    DIR *d = opendir(dirpath);
    if (!d)
        skip();
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
        int ret = replay(path);
        if (ret)
            fail_msg("%s: %s", de->d_name, strerror(-ret));
        count++;
    }
    closedir(d);
    print_message("replayed %d regression inputs\n", count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_fuzz_regression_is_inspected_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
