/* fuzz_config.c — libFuzzer harness for the config parser.
 *
 * The input is one or more JSON config documents separated by NUL bytes. Each is merged
 * in turn into one config with cfg_load_string (as a file and then further sources
 * would be: config.h says "merge"), the first refusal stops, then cfg_finish runs and
 * cfg_free frees. Beyond "no crash, no leak on any input": every refusal carries a code
 * and a message; a config that cfg_finish accepts holds what it promises (absolute
 * paths, limits in range, tls cert and key together, storages and volumes with ids and
 * the fields of their kind); cfg_free leaves the struct zeroed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stowage/backend.h"
#include "stowage/config.h"

#define MAX_DOCS 4

static void fail(const char *why, const struct st_err *e)
{
    fprintf(stderr, "fuzz_config: invariant broken: %s (code %d, field '%s', msg '%s')\n", why,
            e ? (int)e->code : -1, e ? e->field : "", e ? e->msg : "");
    abort();
}

static void check_error(const struct st_err *e)
{
    if (!memchr(e->msg, '\0', sizeof e->msg) || !memchr(e->field, '\0', sizeof e->field))
        fail("an unterminated error", NULL);
    if (e->code <= ST_OK || e->code >= ST_CODE_COUNT || !e->msg[0])
        fail("an error without a code or a message", e);
}

static int id_ok(const char *id)
{
    size_t n = strlen(id);
    return n >= 1 && n <= CFG_ID_MAX &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") >= 1 &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static void check_finished(const struct st_config *c)
{
    if (!c->state_dir || c->state_dir[0] != '/' || !c->gluster_cli || !c->gluster_cli[0])
        fail("no absolute state_dir or no gluster_cli", NULL);
    if (!!c->tls_cert != !!c->tls_key ||
        (c->tls_cert && (c->tls_cert[0] != '/' || c->tls_key[0] != '/')))
        fail("tls cert and key not both absolute", NULL);
    if (c->max_body < 1024 || c->max_body > (1u << 30) || c->max_header < 1024 ||
        c->max_header > (1u << 20) || c->per_ip == 0 || c->max_connections == 0 ||
        c->probe_ttl_ms < 100 || c->workers == 0 || c->workers > 256 || c->threads > 256)
        fail("a limit out of range", NULL);
    if (!memchr(c->listen_host, '\0', sizeof c->listen_host))
        fail("listen host unterminated", NULL);
    for (size_t i = 0; i < c->n_mount_roots; i++)
        if (!c->mount_roots[i] || c->mount_roots[i][0] != '/')
            fail("a mount root is not absolute", NULL);
    for (size_t i = 0; i < c->n_storages; i++) {
        const struct cfg_storage *s = &c->storages[i];
        if (!id_ok(s->id))
            fail("a storage without a valid id", NULL);
        for (size_t k = 0; k < s->n_volumes; k++) {
            const struct cfg_volume *v = &s->volumes[k];
            if (!id_ok(v->id))
                fail("a volume without a valid id", NULL);
            /* Its kind is the registry's, and its backend accepts its parameters as they
             * were left (a second parse of what the first one normalized changes nothing). */
            const struct backend_ops *ops = be_ops_for(v->kind);
            if (!ops)
                fail("a volume of an unknown kind", NULL);
            json_t *again = json_deep_copy(v->params);
            struct st_err pe = {0};
            if (!json_is_object(v->params) || ops->parse(again, &pe) ||
                !json_equal(again, v->params))
                fail("a volume's parameters that its backend does not keep as they are", &pe);
            json_decref(again);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_config c;
    struct st_err e = {0};
    char *text = malloc(size + 1);
    int rc = 0;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    cfg_defaults(&c);
    const char *doc = text;
    for (int i = 0; i < MAX_DOCS && doc < text + size && rc == 0; i++) {
        rc = cfg_load_string(&c, doc, &e);
        doc += strlen(doc) + 1;
    }
    if (rc == 0 && (rc = cfg_finish(&c, &e)) == 0)
        check_finished(&c);
    if (rc)
        check_error(&e);
    cfg_free(&c);
    static const struct st_config zero;
    if (memcmp(&c, &zero, sizeof c))
        fail("cfg_free left something behind", NULL);
    free(text);
    return 0;
}
