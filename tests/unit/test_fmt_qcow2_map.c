/* test_fmt_qcow2_map.c — the qcow2 mapper on images built in memory from the overlay
 * writer's output: which guest ranges are data, zeros, the backing file's, or deflated.
 * The byte-for-byte check against qemu-img is tests/api/test_esdc_snapshot.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stowage/format.h"

#define CL 65536u

struct mem {
    uint8_t *b;
    size_t n;
};

static ssize_t mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    struct mem *m = ctx;
    if (off >= m->n)
        return 0;
    if (len > m->n - off)
        len = m->n - off;
    memcpy(buf, m->b + off, len);
    return (ssize_t)len;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* An overlay of size bytes, grown by room bytes (zeros) for tables the test adds. */
static struct mem overlay(const char *backing, uint64_t size, size_t room)
{
    void *buf;
    size_t len;
    assert_int_equal(fmt_qcow2_overlay_build(backing, backing ? "raw" : NULL, size, &buf, &len), 0);
    struct mem m = {calloc(1, len + room), len + room};
    memcpy(m.b, buf, len);
    free(buf);
    return m;
}

static struct fmt_qcow2_map *open_map(struct mem *m)
{
    struct fmt_source src = {m, mem_pread, m->n};
    struct fmt_qcow2_map *map = NULL;
    char why[160];
    assert_int_equal(fmt_qcow2_map_open(&src, &map, why, sizeof why), 0);
    return map;
}

static void test_an_empty_overlay_is_all_backing_and_a_standalone_all_zeros(void **state)
{
    for (int backed = 0; backed < 2; backed++) {
        struct mem m = overlay(backed ? "../images/base.raw" : NULL, UINT64_C(1) << 30, 0);
        struct fmt_qcow2_map *map = open_map(&m);
        struct fmt_extent x;
        assert_int_equal(fmt_qcow2_map_size(map), UINT64_C(1) << 30);
        assert_int_equal(fmt_qcow2_map_has_backing(map), backed);
        assert_int_equal(fmt_qcow2_map_cluster_size(map), CL);
        assert_int_equal(fmt_qcow2_map_get(map, 12345, UINT64_C(1) << 30, &x), 0);
        assert_int_equal(x.kind, backed ? FMT_EXT_BACKING : FMT_EXT_ZERO);
        assert_int_equal(x.len, (UINT64_C(1) << 30) - 12345); /* joined up to the end */
        assert_int_equal(fmt_qcow2_map_get(map, UINT64_C(1) << 30, 1, &x), -EINVAL);
        fmt_qcow2_map_close(map);
        free(m.b);
    }
}

static void test_l2_entries_map_to_data_zeros_backing_and_deflated_clusters(void **state)
{
    struct mem m = overlay("../images/base.raw", 16 * CL, 3 * CL);
    uint64_t l1 = get64(m.b + 40), l2 = m.n - 3 * CL, data = m.n - 2 * CL;
    put64(m.b + l1, l2 | UINT64_C(1) << 63);
    put64(m.b + l2 + 8, data | UINT64_C(1) << 63);         /* cluster 1: data */
    put64(m.b + l2 + 16, (data + CL) | UINT64_C(1) << 63); /* cluster 2: the next data */
    put64(m.b + l2 + 24, 1);                               /* cluster 3: zeros */
    /* cluster 5: deflated, 2 sectors at data + CL + 512 (x = 62 - (16 - 8) = 54) */
    put64(m.b + l2 + 40, UINT64_C(1) << 62 | UINT64_C(1) << 54 | (data + CL + 512));
    struct fmt_qcow2_map *map = open_map(&m);
    struct fmt_extent x;

    assert_int_equal(fmt_qcow2_map_get(map, 0, 16 * CL, &x), 0);
    assert_int_equal(x.kind, FMT_EXT_BACKING);
    assert_int_equal(x.len, CL);
    assert_int_equal(fmt_qcow2_map_get(map, CL + 100, 16 * CL, &x), 0);
    assert_int_equal(x.kind, FMT_EXT_DATA); /* two contiguous clusters: one extent */
    assert_int_equal(x.host, data + 100);
    assert_int_equal(x.len, 2 * CL - 100);
    assert_int_equal(fmt_qcow2_map_get(map, 3 * CL, CL / 2, &x), 0);
    assert_int_equal(x.kind, FMT_EXT_ZERO);
    assert_int_equal(x.len, CL / 2); /* at most what was asked */
    assert_int_equal(fmt_qcow2_map_get(map, 5 * CL + 7, 16 * CL, &x), 0);
    assert_int_equal(x.kind, FMT_EXT_COMPRESSED);
    assert_int_equal(x.host, data + CL + 512);
    assert_int_equal(x.clen, 2 * 512);
    assert_int_equal(x.cluster, 5 * CL);
    assert_int_equal(x.len, CL - 7);
    assert_int_equal(fmt_qcow2_map_get(map, 6 * CL, 16 * CL, &x), 0);
    assert_int_equal(x.kind, FMT_EXT_BACKING);
    assert_int_equal(x.len, 10 * CL);
    fmt_qcow2_map_close(map);
    free(m.b);
}

static void test_tables_past_the_end_and_other_formats_are_refused(void **state)
{
    struct mem m = overlay(NULL, 16 * CL, 0);
    struct fmt_source src = {&m, mem_pread, m.n};
    struct fmt_qcow2_map *map = NULL;
    char why[160] = "";

    put64(m.b + 40, m.n + CL); /* the L1 table past the end */
    assert_int_equal(fmt_qcow2_map_open(&src, &map, why, sizeof why), -EINVAL);
    assert_null(map);
    assert_non_null(strstr(why, "past the end"));
    memset(m.b, 0, 4); /* no magic */
    assert_int_equal(fmt_qcow2_map_open(&src, &map, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "not a qcow2"));
    free(m.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_empty_overlay_is_all_backing_and_a_standalone_all_zeros),
        cmocka_unit_test(test_l2_entries_map_to_data_zeros_backing_and_deflated_clusters),
        cmocka_unit_test(test_tables_past_the_end_and_other_formats_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
