/* test_config.c — the JSON config: defaults, every key, strictness, finishing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "stowage/config.h"

static void test_config_defaults_match_the_documented_limits(void **state)
{
    struct st_config c;
    struct st_err e;
    (void)state;
    cfg_defaults(&c);
    assert_int_equal(cfg_finish(&c, &e), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.max_body, 1 << 20);
    assert_int_equal(c.max_header, 16 << 10);
    assert_int_equal(c.conn_timeout, 30);
    assert_int_equal(c.per_ip, 64);
    assert_true(c.max_image_size == 1ULL << 40);
    assert_int_equal(c.probe_ttl_ms, 5000);
    assert_true(c.state_dir[0] == '/');
    cfg_free(&c);
}

static void test_config_reads_every_key(void **state)
{
    struct st_config c;
    struct st_err e;
    (void)state;
    cfg_defaults(&c);
    const char *json =
        "{\"listen\":\"127.0.0.1:9090\",\"state_dir\":\"/tmp/st\",\"threads\":3,\"workers\":4,"
        "\"probe_ttl_ms\":250,\"gluster_cli\":\"/usr/sbin/gluster\",\"log_requests\":false,"
        "\"sendfile\":true,\"clone_mode\":\"reflink\",\"staging_expiry_s\":60,"
        "\"limits\":{\"max_body\":2048,\"max_header\":8192,\"connection_timeout\":5,"
        "\"per_ip_connections\":8,\"max_connections\":100,\"max_image_size\":1000000},"
        "\"tls\":{\"cert\":\"/c.pem\",\"key\":\"/k.pem\"},\"mount_roots\":[\"/mnt\"],"
        "\"storages\":[{\"id\":\"internal\",\"name\":\"Internal\",\"volumes\":["
        "{\"id\":\"v1\",\"kind\":\"external\",\"mount_point\":\"/srv/img\"},"
        "{\"id\":\"g1\",\"kind\":\"gluster\",\"server\":\"node1\",\"volume\":\"gv0\"}]}]}";
    assert_int_equal(cfg_load_string(&c, json, &e), 0);
    assert_int_equal(cfg_finish(&c, &e), 0);
    assert_int_equal(c.port, 9090);
    assert_string_equal(c.state_dir, "/tmp/st");
    assert_int_equal(c.threads, 3);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.probe_ttl_ms, 250);
    assert_int_equal(c.log_requests, 0);
    assert_int_equal(c.sendfile, 1);
    assert_int_equal(c.clone_reflink, 1);
    assert_int_equal(c.staging_expiry_s, 60);
    assert_int_equal(c.max_body, 2048);
    assert_int_equal(c.max_header, 8192);
    assert_int_equal(c.conn_timeout, 5);
    assert_int_equal(c.per_ip, 8);
    assert_int_equal(c.max_connections, 100);
    assert_true(c.max_image_size == 1000000);
    assert_string_equal(c.tls_cert, "/c.pem");
    assert_string_equal(c.mount_roots[0], "/mnt");
    assert_int_equal(c.n_storages, 1);
    assert_string_equal(c.storages[0].id, "internal");
    assert_int_equal(c.storages[0].n_volumes, 2);
    /* each volume's parameters are its backend's */
    assert_string_equal(
        json_string_value(json_object_get(c.storages[0].volumes[0].params, "mount_point")),
        "/srv/img");
    assert_string_equal(
        json_string_value(json_object_get(c.storages[0].volumes[1].params, "volume")), "gv0");
    cfg_free(&c);
}

static void expect_invalid(const char *json, const char *field)
{
    struct st_config c;
    struct st_err e;
    cfg_defaults(&c);
    assert_int_equal(cfg_load_string(&c, json, &e), -1);
    assert_int_equal(e.code, ST_INVALID);
    assert_string_equal(e.field, field);
    cfg_free(&c);
}

static void test_config_rejects_unknown_keys_and_wrong_types(void **state)
{
    (void)state;
    expect_invalid("{\"listen\":\"127.0.0.1:8080\",\"colour\":1}", "colour");
    expect_invalid("{\"threads\":\"two\"}", "threads");
    expect_invalid("{\"threads\":-1}", "threads");
    expect_invalid("{\"limits\":{\"max_body\":\"1M\"}}", "max_body");
    expect_invalid("{\"limits\":{\"nope\":1}}", "nope");
    expect_invalid("{\"listen\":\"127.0.0.1\"}", "listen");
    expect_invalid("{\"listen\":\"127.0.0.1:99999\"}", "listen");
    expect_invalid("{\"storages\":[{\"id\":\"../x\"}]}", "storage id");
    expect_invalid("{\"storages\":[{\"id\":\"s\",\"volumes\":[{\"id\":\"v\",\"kind\":\"nfs\"}]}]}",
                   "kind");
    expect_invalid(
        "{\"storages\":[{\"id\":\"s\",\"volumes\":[{\"id\":\"v\",\"kind\":\"gluster\"}]}]}",
        "volumes");
    expect_invalid("{\"log_requests\":1}", "log_requests");
    expect_invalid("{\"clone_mode\":\"copy\"}", "clone_mode");
    expect_invalid("{\"sendfile\":\"yes\"}", "sendfile");
}

static void test_config_rejects_malformed_json_and_duplicate_keys(void **state)
{
    struct st_config c;
    struct st_err e;
    (void)state;
    cfg_defaults(&c);
    assert_int_equal(cfg_load_string(&c, "{\"threads\":", &e), -1);
    assert_int_equal(e.code, ST_INVALID);
    assert_int_equal(cfg_load_string(&c, "{\"threads\":1,\"threads\":2}", &e), -1);
    assert_int_equal(cfg_load_string(&c, "[1,2]", &e), -1);
    cfg_free(&c);
}

static void test_config_finish_makes_paths_absolute_and_checks_tls_pairs(void **state)
{
    struct st_config c;
    struct st_err e;
    char cwd[4096], want[4200];
    (void)state;
    assert_non_null(getcwd(cwd, sizeof cwd));
    cfg_defaults(&c);
    assert_int_equal(cfg_load_string(&c, "{\"state_dir\":\"./var\"}", &e), 0);
    assert_int_equal(cfg_finish(&c, &e), 0);
    snprintf(want, sizeof want, "%s/var", cwd);
    assert_string_equal(c.state_dir, want);
    cfg_free(&c);

    cfg_defaults(&c);
    assert_int_equal(cfg_load_string(&c, "{\"tls\":{\"cert\":\"/c.pem\"}}", &e), 0);
    assert_int_equal(cfg_finish(&c, &e), -1);
    assert_string_equal(e.field, "tls");
    cfg_free(&c);
}

/* fuzz_config found it (fuzz/regressions/fuzz_config/): a second source's mount_roots
 * leaked the first list and kept counting it, so cfg_free read past the new array. */
static void test_config_a_second_source_replaces_mount_roots(void **state)
{
    struct st_config c;
    struct st_err e;
    (void)state;
    cfg_defaults(&c);
    assert_int_equal(cfg_load_string(&c, "{\"mount_roots\":[\"/a\",\"/b\"]}", &e), 0);
    assert_int_equal(cfg_load_string(&c, "{\"mount_roots\":[\"/c\"]}", &e), 0);
    assert_int_equal(cfg_finish(&c, &e), 0);
    assert_int_equal(c.n_mount_roots, 1);
    assert_string_equal(c.mount_roots[0], "/c");
    assert_null(c.mount_roots[1]);
    cfg_free(&c);
}

static void test_config_listen_localhost_becomes_loopback(void **state)
{
    struct st_config c;
    struct st_err e;
    (void)state;
    cfg_defaults(&c);
    assert_int_equal(cfg_set_listen(&c, "localhost:1234", &e), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.port, 1234);
    cfg_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_match_the_documented_limits),
        cmocka_unit_test(test_config_reads_every_key),
        cmocka_unit_test(test_config_rejects_unknown_keys_and_wrong_types),
        cmocka_unit_test(test_config_rejects_malformed_json_and_duplicate_keys),
        cmocka_unit_test(test_config_finish_makes_paths_absolute_and_checks_tls_pairs),
        cmocka_unit_test(test_config_a_second_source_replaces_mount_roots),
        cmocka_unit_test(test_config_listen_localhost_becomes_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
