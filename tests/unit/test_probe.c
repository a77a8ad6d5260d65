/* test_probe.c — probes and backend rules that need no real disk or glusterd.
 *
 * The Gluster XML samples under tests/unit/data/ were captured from glusterd 10.3
 * (brick paths shortened to /bricks/…); a fake `gluster` script exercises the CLI
 * runner: output capture, --remote-host, timeouts, reaping. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "stowage/backend.h"
#include "stowage/probe.h"

#include "../../src/probe/mountinfo.h"
#include "../../src/probe/xml.h"

/* ---- helpers ---- */

static char *data_path(const char *name)
{
    static char path[4096];
    const char *src = getenv("STOWAGE_SOURCE_DIR");
    const char *dirs[] = {"tests/unit/data", "../tests/unit/data", "data"};
    size_t i;

    if (src) {
        snprintf(path, sizeof path, "%s/tests/unit/data/%s", src, name);
        return path;
    }
    for (i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dirs[i], name);
        if (access(path, R_OK) == 0)
            break;
    }
    return path;
}

static char *slurp(const char *name, size_t *len)
{
    FILE *fp = fopen(data_path(name), "rb");
    char *buf;
    long n;

    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    rewind(fp);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static struct probe_gluster *parse_info_file(const char *name)
{
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e = {0};
    size_t len;
    char *xml = slurp(name, &len);

    assert_non_null(g);
    assert_int_equal(probe_gluster_parse_info(xml, len, g, &e), 0);
    free(xml);
    return g;
}

static void parse_status_file(struct probe_gluster *g, const char *name, int want_rc)
{
    struct st_err e = {0};
    size_t len;
    char *xml = slurp(name, &len);

    assert_int_equal(probe_gluster_parse_status(xml, len, g, &e), want_rc);
    free(xml);
}

/* ---- "Number of Bricks" ---- */

static void conf_is(const char *type, int b, int d, int r, int a, int dc, int rc, const char *want)
{
    char out[64];

    assert_int_equal(probe_gluster_configuration(type, b, d, r, a, dc, rc, out, sizeof out), 0);
    assert_string_equal(out, want);
}

static void test_configuration_matches_gluster_notation(void **state)
{
    (void)state;
    conf_is("Disperse", 6, 1, 1, 0, 6, 2, "1 x (4 + 2)");
    conf_is("Replicate", 3, 1, 3, 0, 0, 0, "1 x 3 = 3");
    conf_is("Distributed-Replicate", 6, 2, 3, 0, 0, 0, "2 x 3 = 6");
    conf_is("Replicate", 3, 1, 3, 1, 0, 0, "1 x (2 + 1) = 3");
    conf_is("Distribute", 3, 3, 1, 0, 0, 0, "3");
    conf_is("Distributed-Disperse", 12, 2, 1, 0, 6, 2, "2 x (4 + 2)");
    conf_is("Distributed-Replicate", 6, 2, 3, 1, 0, 0, "2 x (2 + 1) = 6");
}

static void test_configuration_ignores_old_distcount_meaning(void **state)
{
    (void)state;
    /* gluster 3.x put bricks-per-group in distCount: same answer. */
    conf_is("Replicate", 3, 3, 3, 0, 0, 0, "1 x 3 = 3");
    conf_is("Distributed-Disperse", 12, 6, 1, 0, 6, 2, "2 x (4 + 2)");
    conf_is(NULL, 6, 0, 1, 0, 6, 2, "1 x (4 + 2)");
}

static void test_configuration_rejects_inconsistent_counts(void **state)
{
    char out[64], tiny[4];

    (void)state;
    assert_int_equal(probe_gluster_configuration("Distribute", 0, 0, 1, 0, 0, 0, out, 64), -EINVAL);
    assert_int_equal(probe_gluster_configuration("Disperse", 7, 1, 1, 0, 6, 2, out, 64), -EINVAL);
    assert_int_equal(probe_gluster_configuration("Disperse", 6, 1, 1, 0, 6, 6, out, 64), -EINVAL);
    assert_int_equal(probe_gluster_configuration("Disperse", 6, 1, 1, 0, 0, 0, out, 64), -EINVAL);
    assert_int_equal(probe_gluster_configuration("Replicate", 4, 1, 3, 0, 0, 0, out, 64), -EINVAL);
    assert_int_equal(probe_gluster_configuration("Replicate", 3, 1, 3, 3, 0, 0, out, 64), -EINVAL);
    assert_int_equal(probe_gluster_configuration("Disperse", 6, 1, 1, 0, 6, 2, tiny, sizeof tiny),
                     -ERANGE);
}

/* ---- volume info ---- */

static void test_parse_info_disperse(void **state)
{
    struct probe_gluster *g = parse_info_file("gluster-info-gdisp.xml");
    size_t i;
    char want[64];

    (void)state;
    assert_string_equal(g->name, "gdisp");
    assert_string_equal(g->type, "Disperse");
    assert_string_equal(g->configuration, "1 x (4 + 2)");
    assert_string_equal(g->transport, "tcp");
    assert_int_equal(g->started, 1);
    assert_int_equal(g->n_bricks, 6);
    for (i = 0; i < 6; i++) {
        snprintf(want, sizeof want, "vm:/bricks/gdisp/b%zu", i + 1);
        assert_string_equal(g->bricks[i].name, want);
        assert_int_equal(g->bricks[i].online, -1);
    }
    assert_int_equal(g->bricks_online, -1);
    assert_int_equal(g->heal_pending, -1);
    free(g);
}

static void test_parse_info_every_layout(void **state)
{
    static const struct {
        const char *file, *type, *conf;
        size_t bricks;
    } cases[] = {
        {"gluster-info-grep3.xml", "Replicate", "1 x 3 = 3", 3},
        {"gluster-info-garb.xml", "Replicate", "1 x (2 + 1) = 3", 3},
        {"gluster-info-gdist.xml", "Distribute", "3", 3},
        {"gluster-info-gdr.xml", "Distributed-Replicate", "2 x 3 = 6", 6},
        {"gluster-info-gdd.xml", "Distributed-Disperse", "2 x (4 + 2)", 12},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct probe_gluster *g = parse_info_file(cases[i].file);

        assert_string_equal(g->type, cases[i].type);
        assert_string_equal(g->configuration, cases[i].conf);
        assert_int_equal(g->n_bricks, cases[i].bricks);
        free(g);
    }
}

static void test_parse_info_missing_volume_is_not_found(void **state)
{
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e = {0};
    size_t len;
    char *xml = slurp("gluster-info-nosuch.xml", &len);

    (void)state;
    assert_int_equal(probe_gluster_parse_info(xml, len, g, &e), -ENOENT);
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_non_null(strstr(e.msg, "Volume does not exist"));
    free(xml);
    free(g);
}

static void test_parse_info_survives_truncation(void **state)
{
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e;
    size_t len, cut;
    char *xml = slurp("gluster-info-gdisp.xml", &len);

    (void)state;
    /* Every prefix must fail cleanly (or parse), never read past the end. */
    for (cut = 0; cut < len; cut += 7) {
        char *copy = malloc(cut ? cut : 1);

        memcpy(copy, xml, cut);
        st_clear(&e);
        assert_true(probe_gluster_parse_info(copy, cut, g, &e) < 0);
        assert_int_not_equal(e.code, ST_OK);
        free(copy);
    }
    assert_true(probe_gluster_parse_info("garbage", 7, g, &e) < 0);
    assert_true(probe_gluster_parse_info(NULL, 0, g, &e) < 0);
    free(xml);
    free(g);
}

static void test_parse_info_decodes_entities_in_brick_paths(void **state)
{
    static const char xml[] =
        "<?xml version=\"1.0\"?><cliOutput><opRet>0</opRet><opErrno>0</opErrno><opErrstr/>"
        "<volInfo><volumes><volume><name>v&amp;1</name><status>0</status>"
        "<brickCount>1</brickCount><distCount>1</distCount><replicaCount>1</replicaCount>"
        "<arbiterCount>0</arbiterCount><disperseCount>0</disperseCount>"
        "<redundancyCount>0</redundancyCount><typeStr>Distribute</typeStr>"
        "<transport>2</transport><bricks><brick uuid=\"x>y\">h:/a&lt;b"
        "<name>h:/a&lt;b&#x20;c&#233;</name></brick></bricks>"
        "<options><option><name>not.a.brick</name></option></options>"
        "</volume><count>1</count></volumes></volInfo></cliOutput>";
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e = {0};

    (void)state;
    assert_int_equal(probe_gluster_parse_info(xml, sizeof xml - 1, g, &e), 0);
    assert_string_equal(g->name, "v&1");
    assert_string_equal(g->transport, "tcp,rdma");
    assert_int_equal(g->started, 0);
    assert_int_equal(g->n_bricks, 1);
    assert_string_equal(g->bricks[0].name, "h:/a<b c\xc3\xa9");
    free(g);
}

/* ---- volume status ---- */

static void test_status_marks_every_brick_online(void **state)
{
    struct probe_gluster *g = parse_info_file("gluster-info-gdisp.xml");
    size_t i;

    (void)state;
    parse_status_file(g, "gluster-status-gdisp.xml", 0);
    assert_int_equal(g->bricks_online, 6);
    for (i = 0; i < 6; i++) {
        assert_int_equal(g->bricks[i].online, 1);
        assert_true(g->bricks[i].pid > 0);
    }
    free(g);
}

static void test_status_marks_killed_brick_offline_and_ignores_shd(void **state)
{
    struct probe_gluster *g = parse_info_file("gluster-info-gdisp.xml");

    (void)state;
    parse_status_file(g, "gluster-status-gdisp-brick2-down.xml", 0);
    assert_int_equal(g->bricks_online, 5);
    assert_int_equal(g->bricks[1].online, 0);
    assert_int_equal(g->bricks[1].pid, -1);
    assert_int_equal(g->bricks[0].pid, 6303);
    assert_int_equal(g->bricks[5].pid, 6383);
    free(g);
}

static void test_status_of_stopped_volume_is_zero_online(void **state)
{
    struct probe_gluster *g = parse_info_file("gluster-info-grep3.xml");

    (void)state;
    parse_status_file(g, "gluster-status-grep3-stopped.xml", 0);
    assert_int_equal(g->bricks_online, 0);
    assert_int_equal(g->started, 0);
    assert_int_equal(g->bricks[0].online, 0);
    free(g);
}

static void test_status_matches_bricks_by_host_and_path(void **state)
{
    struct probe_gluster *g = parse_info_file("gluster-info-gdisp.xml");

    (void)state;
    /* Another volume's status names none of these bricks: none is serving. */
    parse_status_file(g, "gluster-status-grep3.xml", 0);
    assert_int_equal(g->bricks_online, 0);
    free(g);
}

static void test_status_other_failure_leaves_bricks_unknown(void **state)
{
    static const char xml[] = "<cliOutput><opRet>-1</opRet><opErrno>0</opErrno>"
                              "<opErrstr>Another transaction is in progress</opErrstr>"
                              "</cliOutput>";
    struct probe_gluster *g = parse_info_file("gluster-info-gdisp.xml");
    struct st_err e = {0};

    (void)state;
    assert_int_equal(probe_gluster_parse_status(xml, sizeof xml - 1, g, &e), -EIO);
    assert_int_equal(e.code, ST_UNAVAILABLE);
    assert_int_equal(g->bricks_online, -1);
    assert_int_equal(g->bricks[0].online, -1);
    free(g);
}

/* ---- the xml scanner ---- */

static void test_xml_scanner_skips_nested_and_handles_empty(void **state)
{
    static const char doc[] = "<a><b><c>inner</c></b><c>outer</c><d/><e x='1>2'>t</e></a>";
    struct probe_xml_el a, el;
    const char *pos = doc;
    char buf[16];
    long v;

    (void)state;
    assert_int_equal(probe_xml_next(&pos, doc + sizeof doc - 1, "a", &a), 0);
    assert_int_equal(probe_xml_child_text(&a, "c", buf, sizeof buf), 0);
    assert_string_equal(buf, "outer");
    assert_int_equal(probe_xml_child(&a, "d", &el), 0);
    assert_ptr_equal(el.body, el.end);
    assert_int_equal(probe_xml_child_text(&a, "e", buf, sizeof buf), 0);
    assert_string_equal(buf, "t");
    assert_int_equal(probe_xml_child(&a, "zz", &el), -ENOENT);
    assert_int_equal(probe_xml_child_int(&a, "c", &v), -EINVAL);
    assert_int_equal(probe_xml_child_text(&a, "c", buf, 3), -ERANGE);
}

/* ---- the CLI runner, with a fake gluster ---- */

struct fake {
    char dir[64], cli[128], args[128];
};

static void make_fake(struct fake *f, const char *body)
{
    FILE *fp;

    strcpy(f->dir, "/tmp/stowage-fake-gluster-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cli, sizeof f->cli, "%s/gluster", f->dir);
    snprintf(f->args, sizeof f->args, "%s/args", f->dir);
    fp = fopen(f->cli, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\necho \"$*\" >> %s\n%s\n", f->args, body);
    fclose(fp);
    chmod(f->cli, 0755);
}

static void drop_fake(struct fake *f)
{
    unlink(f->args);
    unlink(f->cli);
    rmdir(f->dir);
}

static void test_probe_gluster_runs_info_then_status(void **state)
{
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e = {0};
    struct fake f;
    char body[9000], info[4096], status[4096], args[512] = "";
    FILE *fp;

    (void)state;
    /* data_path returns a static buffer: copy each before the next call. */
    snprintf(info, sizeof info, "%s", data_path("gluster-info-gdisp.xml"));
    snprintf(status, sizeof status, "%s", data_path("gluster-status-gdisp-brick2-down.xml"));
    snprintf(body, sizeof body,
             "case \"$*\" in *'volume info gdisp'*) cat '%s';;\n"
             "*'volume status gdisp'*) cat '%s'; exit 1;; esac",
             info, status);
    make_fake(&f, body);
    assert_int_equal(probe_gluster(f.cli, "far.example.org", "gdisp", 5000, g, &e), 0);
    assert_string_equal(g->configuration, "1 x (4 + 2)");
    assert_int_equal(g->bricks_online, 5);
    fp = fopen(f.args, "r");
    assert_non_null(fp);
    args[fread(args, 1, sizeof args - 1, fp)] = '\0';
    fclose(fp);
    assert_string_equal(args,
                        "--mode=script --xml --remote-host=far.example.org volume info gdisp\n"
                        "--mode=script --xml --remote-host=far.example.org volume status gdisp\n");
    drop_fake(&f);
    free(g);
}

static void test_probe_gluster_local_server_needs_no_remote_host(void **state)
{
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e = {0};
    struct fake f;
    char body[4200], args[256] = "";
    FILE *fp;

    (void)state;
    snprintf(body, sizeof body, "cat '%s'", data_path("gluster-info-gdist.xml"));
    make_fake(&f, body);
    assert_int_equal(probe_gluster(f.cli, "localhost", "gdist", 5000, g, &e), 0);
    fp = fopen(f.args, "r");
    assert_non_null(fp);
    args[fread(args, 1, sizeof args - 1, fp)] = '\0';
    fclose(fp);
    assert_null(strstr(args, "--remote-host"));
    drop_fake(&f);
    free(g);
}

static void test_probe_gluster_times_out_and_reaps(void **state)
{
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e = {0};
    struct timespec a, b;
    struct fake f;
    long ms;

    (void)state;
    make_fake(&f, "exec sleep 30");
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(probe_gluster(f.cli, NULL, "gdisp", 300, g, &e), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms < 2000);
    assert_int_equal(e.code, ST_UNAVAILABLE);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* nothing left to reap */
    assert_int_equal(errno, ECHILD);
    drop_fake(&f);
    free(g);
}

static void test_probe_gluster_without_glusterd_says_why(void **state)
{
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e = {0};
    struct fake f;

    (void)state;
    make_fake(&f, "echo 'Connection failed. Please check if gluster daemon is operational.'\n"
                  "exit 1");
    assert_int_equal(probe_gluster(f.cli, NULL, "gv0", 5000, g, &e), -EBADMSG);
    assert_int_equal(e.code, ST_UNAVAILABLE);
    assert_non_null(strstr(e.msg, "Connection failed"));
    assert_int_equal(g->bricks_online, -1);
    drop_fake(&f);
    free(g);
}

static void test_probe_gluster_refuses_option_like_names(void **state)
{
    struct probe_gluster *g = calloc(1, sizeof *g);
    struct st_err e = {0};

    (void)state;
    assert_int_equal(probe_gluster("/bin/false", NULL, "--help", 1000, g, &e), -EINVAL);
    assert_int_equal(e.code, ST_INVALID);
    assert_int_equal(probe_gluster("/bin/false", "-x", "gv0", 1000, g, &e), -EINVAL);
    assert_int_equal(probe_gluster("/bin/false", NULL, "a b", 1000, g, &e), -EINVAL);
    free(g);
}

/* ---- disk ids ---- */

static void id_is(const char *name, const char *wwid, const char *serial, const char *loop,
                  const char *want)
{
    char out[96];

    assert_int_equal(probe_disk_id(name, wwid, serial, loop, out, sizeof out), 0);
    assert_string_equal(out, want);
}

static void test_disk_id_from_wwn(void **state)
{
    (void)state;
    id_is("sdb", "naa.500253887013e77e", "S3Z9NB0K", NULL, "3500253887013e77e");
    id_is("sdb", "NAA.500253887013E77E", NULL, NULL, "3500253887013e77e");
    id_is("sdc", "0x5000c500a1b2c3d4", NULL, NULL, "35000c500a1b2c3d4");
    id_is("sdd", "naa.600508b1001c2d3e4f5a6b7c8d9e0f10", NULL, NULL,
          "3600508b1001c2d3e4f5a6b7c8d9e0f10");
    id_is("nvme0n1", "eui.0025388b71b01234", "S4EWNX0R", NULL, "20025388b71b01234");
    id_is("sda", "t10.ATA     QEMU HARDDISK                           QM00001  ", NULL, NULL,
          "1ATA_QEMU_HARDDISK_QM00001");
}

static void test_disk_id_fallbacks(void **state)
{
    (void)state;
    /* NVMe's synthesized "nvme.…" wwid is not a WWN: the serial rule applies. */
    id_is("nvme0n1", "nvme.8086-43564654", "PHKS7481", NULL, "nvme-PHKS7481");
    id_is("vdb", NULL, "1816640833883210", NULL, "virtio-1816640833883210");
    id_is("vdc", "", "  my disk/1 ", NULL, "virtio-my_disk_1");
    id_is("xvdb", NULL, "abc", NULL, "xen-abc");
    id_is("nbd0", NULL, "s1", NULL, "nbd-s1");
    id_is("loop3", NULL, NULL, "/var/lib/stowage/disk0.img", "loop-438e513cecd0486b");
    /* Re-attached to another loop device, or its file deleted while attached: same id. */
    id_is("loop7", NULL, NULL, "/var/lib/stowage/disk0.img (deleted)", "loop-438e513cecd0486b");
    id_is("loop0", NULL, NULL, "/tmp/x y.img", "loop-38cda4767a5c3783");
    id_is("sdz", NULL, NULL, NULL, "dev-sdz");
    id_is("sdz", "garbage", "   ", NULL, "dev-sdz");
}

static void test_disk_id_errors(void **state)
{
    char small[8];

    (void)state;
    assert_int_equal(probe_disk_id(NULL, NULL, NULL, NULL, small, sizeof small), -EINVAL);
    assert_int_equal(probe_disk_id("sdb", "naa.500253887013e77e", NULL, NULL, NULL, 0), -EINVAL);
    assert_int_equal(probe_disk_id("averyverylongname", NULL, NULL, NULL, small, sizeof small),
                     -ERANGE);
}

/* ---- mountinfo ---- */

static void test_mountinfo_unescapes_and_skips_optional_fields(void **state)
{
    char line[] = "36 35 7:3 / /srv/my\\040vol\\011x rw,noatime shared:1 master:2 - xfs "
                  "/dev/loop3 rw,attr2\n";
    struct probe_mount m;

    (void)state;
    assert_int_equal(probe_mountinfo_parse_line(line, &m), 0);
    assert_string_equal(m.mount_point, "/srv/my vol\tx");
    assert_string_equal(m.source, "/dev/loop3");
    assert_string_equal(m.fstype, "xfs");
    assert_int_equal(major(m.devno), 7);
    assert_int_equal(minor(m.devno), 3);
    assert_int_equal(m.readonly, 0);
}

static void test_mountinfo_readonly_and_malformed(void **state)
{
    char ro[] = "40 1 0:45 / /mnt/ro ro,relatime - tmpfs tmpfs rw";
    char sro[] = "40 1 0:45 / /mnt/x rw - ext4 /dev/sda1 ro,errors=remount-ro";
    char bad[] = "40 1 0:45 / /mnt/x rw shared:1";
    char esc[] = "40 1 0:45 / /mnt/\\04 rw - tmpfs tmpfs rw";
    char back[] = "a\\134b";
    struct probe_mount m;

    (void)state;
    assert_int_equal(probe_mountinfo_parse_line(ro, &m), 0);
    assert_int_equal(m.readonly, 1);
    assert_int_equal(probe_mountinfo_parse_line(sro, &m), 0);
    assert_int_equal(m.readonly, 1);
    assert_int_equal(probe_mountinfo_parse_line(bad, &m), -EINVAL);
    assert_int_equal(probe_mountinfo_parse_line(esc, &m), -EINVAL);
    assert_int_equal(probe_mountinfo_unescape(back), 0);
    assert_string_equal(back, "a\\b");
}

static void test_mount_of_root_and_space(void **state)
{
    struct probe_mount *m = malloc(sizeof *m);
    struct st_err e = {0};
    uint64_t total = 0, avail = 0;
    int ro = -1;

    (void)state;
    assert_int_equal(probe_mount_of("/", m, &e), 0);
    assert_string_equal(m->mount_point, "/");
    assert_int_equal(probe_is_mount_point("/"), 1);
    assert_int_equal(probe_mount_of("/nonexistent/stowage", m, &e), -ENOENT);
    assert_int_equal(e.code, ST_NOT_FOUND);
    assert_int_equal(probe_space_kb("/", &total, &avail, &ro, &e), 0);
    assert_true(total > 0 && avail <= total);
    assert_true(ro == 0 || ro == 1);
    free(m);
}

/* ---- backend rules ---- */

static void test_be_path_ok(void **state)
{
    static const char *const bad[] = {"",    "/x", "..", "a/../b", "a//b", "./a",
                                      "a/.", "a/", ".",  "../x",   "a/..", NULL};
    static const char *const good[] = {
        "images/x.qcow2", "a", ".staging/x", "a/b/c", "..a", "a..", NULL};
    size_t i;

    (void)state;
    for (i = 0; bad[i]; i++)
        assert_false(be_path_ok(bad[i]));
    for (i = 0; good[i]; i++)
        assert_true(be_path_ok(good[i]));
    assert_false(be_path_ok(NULL));
}

static void test_be_ops_for_kinds(void **state)
{
    (void)state;
    assert_ptr_equal(be_ops_for("local"), &be_posix_ops);
    assert_ptr_equal(be_ops_for("external"), &be_posix_ops);
    assert_ptr_equal(be_ops_for("gluster"), &be_gluster_ops);
    assert_null(be_ops_for("ceph"));
    assert_null(be_ops_for(NULL));
    assert_null(be_gluster_ops.reflink);
}

static void test_be_fail_codes(void **state)
{
    struct st_err e;

    (void)state;
    assert_int_equal(be_fail(&e, -ENOSPC, "vol1"), -1);
    assert_int_equal(e.code, ST_NO_SPACE);
    assert_non_null(strstr(e.msg, "vol1"));
    be_fail(&e, -ENOTCONN, "g");
    assert_int_equal(e.code, ST_UNAVAILABLE);
    be_fail(&e, -EIO, "g");
    assert_int_equal(e.code, ST_UNAVAILABLE);
    be_fail(&e, EROFS, "g");
    assert_int_equal(e.code, ST_UNAVAILABLE);
    be_fail(&e, -ENOENT, "g");
    assert_int_equal(e.code, ST_NOT_FOUND);
    be_fail(&e, -EEXIST, "g");
    assert_int_equal(e.code, ST_EXISTS);
    be_fail(&e, -ELOOP, "g");
    assert_int_equal(e.code, ST_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configuration_matches_gluster_notation),
        cmocka_unit_test(test_configuration_ignores_old_distcount_meaning),
        cmocka_unit_test(test_configuration_rejects_inconsistent_counts),
        cmocka_unit_test(test_parse_info_disperse),
        cmocka_unit_test(test_parse_info_every_layout),
        cmocka_unit_test(test_parse_info_missing_volume_is_not_found),
        cmocka_unit_test(test_parse_info_survives_truncation),
        cmocka_unit_test(test_parse_info_decodes_entities_in_brick_paths),
        cmocka_unit_test(test_status_marks_every_brick_online),
        cmocka_unit_test(test_status_marks_killed_brick_offline_and_ignores_shd),
        cmocka_unit_test(test_status_of_stopped_volume_is_zero_online),
        cmocka_unit_test(test_status_matches_bricks_by_host_and_path),
        cmocka_unit_test(test_status_other_failure_leaves_bricks_unknown),
        cmocka_unit_test(test_xml_scanner_skips_nested_and_handles_empty),
        cmocka_unit_test(test_probe_gluster_runs_info_then_status),
        cmocka_unit_test(test_probe_gluster_local_server_needs_no_remote_host),
        cmocka_unit_test(test_probe_gluster_times_out_and_reaps),
        cmocka_unit_test(test_probe_gluster_without_glusterd_says_why),
        cmocka_unit_test(test_probe_gluster_refuses_option_like_names),
        cmocka_unit_test(test_disk_id_from_wwn),
        cmocka_unit_test(test_disk_id_fallbacks),
        cmocka_unit_test(test_disk_id_errors),
        cmocka_unit_test(test_mountinfo_unescapes_and_skips_optional_fields),
        cmocka_unit_test(test_mountinfo_readonly_and_malformed),
        cmocka_unit_test(test_mount_of_root_and_space),
        cmocka_unit_test(test_be_path_ok),
        cmocka_unit_test(test_be_ops_for_kinds),
        cmocka_unit_test(test_be_fail_codes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
