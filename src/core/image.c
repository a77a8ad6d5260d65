/* image.c — images: the commit protocol every write ends with, and the image
 * operations of the task API (create empty, copy, delete, release).
 *
 * The protocol: bytes go to VOLUME/.staging/, are fsynced, the row learns what
 * they are (format, sizes, checksum) while still 'saving', the file is renamed
 * to VOLUME/images/<uuid>.<fmt> without replacing anything, the directory is
 * fsynced, and only then does the row turn 'active'. recover.c relies on this
 * order: a 'saving' row whose final file exists is complete. A create whose bytes all
 * came at once has no row until the end (core_image_commit_new): fsync, rename, fsync of
 * the directory, then its row is inserted active — recovery removes a file of no row. The
 * catalogue changes are members of group commits (db_group), shared with concurrent
 * writers. Concurrent such creates go in batches (st->publishes): one leader makes all
 * their files durable (publish_many: one syncfs where that is equivalent), renames them,
 * fsyncs images/ once, then commits all their rows in one group commit while the next
 * batch's files are published; each create is answered after its row's COMMIT. */
#include "core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

void core_staging_path(const char *id, const char *suffix, char *out, size_t len)
{
    snprintf(out, len, STAGING_DIR "/%s%s", id, suffix);
}

void core_image_path(const struct db_image *im, char *out, size_t len)
{
    snprintf(out, len, "images/%s.%s", im->uuid, im->format);
}

void core_image_from_row(const struct db_image *row, struct core_image *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->uuid, row->uuid, sizeof out->uuid);
    memcpy(out->name, row->name, sizeof out->name);
    memcpy(out->volume_id, row->volume_id, sizeof out->volume_id);
    memcpy(out->format, row->format, sizeof out->format);
    out->virtual_size = row->virtual_size;
    out->actual_size = row->actual_size;
    memcpy(out->status, row->status, sizeof out->status);
    memcpy(out->sha256, row->sha256, sizeof out->sha256);
    memcpy(out->owner, row->owner, sizeof out->owner);
    memcpy(out->guest_id, row->guest_id, sizeof out->guest_id);
    memcpy(out->parent_uuid, row->parent_uuid, sizeof out->parent_uuid);
    out->created_at = row->created_at;
    out->updated_at = row->updated_at;
    out->generation = row->generation;
    memcpy(out->alias, row->meta.alias, sizeof out->alias);
    memcpy(out->version, row->meta.version, sizeof out->version);
    memcpy(out->description, row->meta.description, sizeof out->description);
    memcpy(out->tags, row->meta.tags, sizeof out->tags);
    out->ostype = row->meta.ostype;
    out->access = row->meta.access;
    out->resize = row->meta.resize;
    out->deploy = row->meta.deploy;
    out->dc_bound = row->meta.dc_bound;
    memcpy(out->storage_id, row->storage_id, sizeof out->storage_id);
}

int core_image_find(struct stowage *st, const char *name, struct core_image *out, struct st_err *e)
{
    struct db_image row;
    if (core_image_by_name(st, name, &row, e))
        return -1;
    core_image_from_row(&row, out);
    return 0;
}

int core_image_list(struct stowage *st, struct core_image **out, size_t *n, struct st_err *e)
{
    struct db_image *rows = NULL;
    size_t cnt = 0;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_list_live(c, &rows, &cnt, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    struct core_image *v = calloc(cnt ? cnt : 1, sizeof *v);
    if (!v) {
        free(rows);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < cnt; i++)
        core_image_from_row(&rows[i], &v[i]);
    free(rows);
    *out = v;
    *n = cnt;
    return 0;
}

int core_image_clones(struct stowage *st, const char *name, struct core_clone **out, size_t *n,
                      struct st_err *e)
{
    struct db_image im;
    struct db_clone *rows = NULL;
    size_t cnt = 0;
    if (core_image_by_name(st, name, &im, e))
        return -1;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_clone_list_image(c, im.uuid, &rows, &cnt, e);
    db_release(st->db, c);
    if (rc)
        return -1;
    struct core_clone *v = calloc(cnt ? cnt : 1, sizeof *v);
    if (!v) {
        free(rows);
        return st_fail(e, ST_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < cnt; i++) {
        snprintf(v[i].clone_id, sizeof v[i].clone_id, "%s", rows[i].clone_id);
        snprintf(v[i].image_uuid, sizeof v[i].image_uuid, "%s", rows[i].image_uuid);
        snprintf(v[i].image_name, sizeof v[i].image_name, "%s", rows[i].image_name);
        snprintf(v[i].guest_id, sizeof v[i].guest_id, "%s", rows[i].guest_id);
        snprintf(v[i].volume_id, sizeof v[i].volume_id, "%s", rows[i].volume_id);
        v[i].created_at = rows[i].created_at;
    }
    free(rows);
    *out = v;
    *n = cnt;
    return 0;
}

/* image.update: the new metadata over the row's, checked against every other live image
 * ((alias, version) is unique) and against the generation the client saw. */
int core_image_update(struct stowage *st, const char *name, const json_t *p, int write,
                      struct db_image *out, struct st_err *e)
{
    struct db_image im;
    char other[DB_ID];
    json_t *v;

    if (core_image_by_name(st, name, &im, e))
        return -1;
    if ((v = json_object_get(p, "generation")) && json_integer_value(v) != im.generation)
        return st_fail_field(e, ST_PRECONDITION, "generation",
                             "image '%s' has changed (generation %lld, not %lld)", name,
                             (long long)im.generation, (long long)json_integer_value(v));
    struct db_image_meta m = im.meta;
    if ((v = json_object_get(p, "alias")))
        snprintf(m.alias, sizeof m.alias, "%s", json_string_value(v));
    if ((v = json_object_get(p, "version")))
        snprintf(m.version, sizeof m.version, "%s", json_string_value(v));
    if ((v = json_object_get(p, "description")))
        snprintf(m.description, sizeof m.description, "%s", json_string_value(v));
    if ((v = json_object_get(p, "tags"))) {
        char *t = json_dumps(v, JSON_COMPACT);
        if (!t || strlen(t) >= sizeof m.tags) {
            free(t);
            return st_fail_field(e, ST_INVALID, "tags", "'tags' is longer than %zu bytes",
                                 sizeof m.tags - 1);
        }
        snprintf(m.tags, sizeof m.tags, "%s", t);
        free(t);
    }
    if ((v = json_object_get(p, "access")))
        m.access = (int)json_integer_value(v);
    if ((v = json_object_get(p, "resize")))
        m.resize = json_is_true(v);
    if ((v = json_object_get(p, "deploy")))
        m.deploy = json_is_true(v);
    if ((v = json_object_get(p, "dc_bound")))
        m.dc_bound = json_is_true(v);

    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    int taken =
        rc ? 0
           : db_image_alias_taken(c, m.alias[0] ? m.alias : im.name, m.version, im.uuid, other, e);
    if (rc == 0 && taken < 0)
        rc = -1;
    else if (rc == 0 && taken)
        rc = st_fail_field(e, ST_EXISTS, "alias",
                           "alias '%s' version '%s' is already used by image '%s'",
                           m.alias[0] ? m.alias : im.name, m.version, other);
    if (rc == 0 && write)
        rc = db_image_set_meta(c, im.uuid, &m, e);
    if (rc == 0 && out)
        rc = db_image_get(c, im.uuid, out, e);
    if (rc == 0 && write)
        rc = db_commit(c, e);
    else
        db_rollback(c);
    db_release(st->db, c);
    if (rc == 0 && write)
        core_bump(st);
    return rc;
}

int core_image_get(struct stowage *st, const char *uuid, struct core_image *out, struct st_err *e)
{
    struct db_image row;
    if (core_image_row(st, uuid, &row, e))
        return -1;
    core_image_from_row(&row, out);
    return 0;
}

int core_image_properties(struct stowage *st, const char *uuid, char *out, size_t len,
                          struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_get_properties(c, uuid, out, len, e);
    db_release(st->db, c);
    return rc;
}

int core_image_row(struct stowage *st, const char *uuid, struct db_image *out, struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_get(c, uuid, out, e);
    db_release(st->db, c);
    return rc;
}

int core_image_by_name(struct stowage *st, const char *name, struct db_image *out, struct st_err *e)
{
    if (!core_valid_id(name))
        return st_fail(e, ST_NOT_FOUND, "image '%.64s' not found", name ? name : "");
    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_by_name(c, name, out, e);
    db_release(st->db, c);
    return rc;
}

/* The first usable volume of a storage, or the one with the most free space. */
static int pick_volume(struct stowage *st, const char *storage_id, int roomiest, char *out,
                       size_t len, struct st_err *e)
{
    struct db_storage *ss = NULL;
    struct db_volume *vols = NULL;
    size_t ns = 0, nv = 0;
    uint64_t best = 0;
    int rc = -1;
    struct db_conn *c = db_acquire(st->db);

    if (!storage_id) {
        if (db_storage_list(c, &ss, &ns, e))
            goto out;
        if (ns == 0) {
            st_fail(e, ST_NOT_FOUND, "there is no image storage");
            goto out;
        }
        storage_id = ss[0].id;
    }
    if (db_volume_list(c, storage_id, &vols, &nv, e))
        goto out;
    for (size_t i = 0; i < nv; i++) {
        struct core_vol_state s;
        if (core_volume_state(st, vols[i].id, &s) != 0 || strcmp(s.status, "broken") == 0 ||
            (rc == 0 && (!roomiest || s.free_kb <= best)))
            continue;
        snprintf(out, len, "%s", vols[i].id);
        best = s.free_kb;
        rc = 0;
        if (!roomiest)
            break;
    }
    if (rc)
        st_fail(e, nv ? ST_UNAVAILABLE : ST_NOT_FOUND, "image storage '%s' has no %svolume",
                storage_id, nv ? "usable " : "");
out:
    db_release(st->db, c);
    free(ss);
    free(vols);
    return rc;
}

int core_default_volume(struct stowage *st, const char *storage_id, char *out, size_t len,
                        struct st_err *e)
{
    return pick_volume(st, storage_id, 0, out, len, e);
}

int core_roomiest_volume(struct stowage *st, const char *storage_id, char *out, size_t len,
                         struct st_err *e)
{
    return pick_volume(st, storage_id, 1, out, len, e);
}

int core_alias_free(struct stowage *st, const char *alias, const char *version, struct st_err *e)
{
    char other[DB_ID];
    struct db_conn *c = db_acquire(st->db);
    int taken = db_image_alias_taken(c, alias, version, "", other, e);
    db_release(st->db, c);
    if (taken > 0)
        return st_fail_field(e, ST_EXISTS, "alias",
                             "alias '%s' version '%s' is already used by image '%s'", alias,
                             version, other);
    return taken < 0 ? -1 : 0;
}

int core_image_set_meta_unique(struct stowage *st, const struct db_image *im,
                               const struct db_image_meta *m, struct st_err *e)
{
    char other[DB_ID];
    const char *alias = m->alias[0] ? m->alias : im->name;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    int taken = rc ? 0 : db_image_alias_taken(c, alias, m->version, im->uuid, other, e);
    if (rc == 0 && taken < 0)
        rc = -1;
    else if (rc == 0 && taken)
        rc = st_fail_field(e, ST_EXISTS, "alias",
                           "alias '%s' version '%s' is already used by image '%s'", alias,
                           m->version, other);
    if (rc == 0)
        rc = db_image_set_meta(c, im->uuid, m, e);
    if (rc == 0)
        rc = db_commit(c, e);
    else
        db_rollback(c);
    db_release(st->db, c);
    return rc;
}

int core_image_reserve(struct stowage *st, const char *name, const char *uuid,
                       const char *volume_id, const char *owner, struct db_image *out,
                       struct st_err *e)
{
    struct db_conn *c = db_acquire(st->db);
    int rc = core_image_reserve_in(c, name, uuid, volume_id, owner, out, e);
    db_release(st->db, c);
    return rc;
}

int core_image_prepare(const char *name, const char *uuid, const char *volume_id, const char *owner,
                       struct db_image *out, struct st_err *e)
{
    uuid_t u;

    if (!core_valid_id(name))
        return st_fail_field(e, ST_INVALID, "name",
                             "image names match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$");
    memset(out, 0, sizeof *out);
    if (uuid) {
        /* Only the canonical lower-case form: it names files on the volume. */
        char canon[37];
        if (strlen(uuid) != 36 || uuid_parse(uuid, u) != 0)
            return st_fail_field(e, ST_INVALID, "uuid", "'%.40s' is not a UUID", uuid);
        uuid_unparse_lower(u, canon);
        if (strcmp(canon, uuid) != 0)
            return st_fail_field(e, ST_INVALID, "uuid", "write the UUID in lower case");
    } else {
        uuid_generate_random(u);
    }
    uuid_unparse_lower(u, out->uuid);
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->volume_id, sizeof out->volume_id, "%s", volume_id);
    snprintf(out->format, sizeof out->format, "raw");
    snprintf(out->status, sizeof out->status, "saving");
    snprintf(out->owner, sizeof out->owner, "%s", owner ? owner : "");
    return 0;
}

/* The row's insert, a taken name said as such. */
static int insert_row(struct db_conn *c, const struct db_image *im, struct st_err *e)
{
    int rc = db_image_insert(c, im, e);
    if (rc && e && e->code == ST_EXISTS)
        st_fail_field(e, ST_EXISTS, "name", "an image named '%s' already exists", im->name);
    return rc;
}

int core_image_reserve_in(struct db_conn *c, const char *name, const char *uuid,
                          const char *volume_id, const char *owner, struct db_image *out,
                          struct st_err *e)
{
    struct db_volume v;

    if (core_image_prepare(name, uuid, volume_id, owner, out, e))
        return -1;
    return db_volume_get(c, volume_id, &v, e) ? -1 : insert_row(c, out, e);
}

void core_image_discard(struct stowage *st, const char *uuid)
{
    struct st_err e;
    struct db_conn *c = db_acquire(st->db);
    if (db_image_delete_row(c, uuid, &e) && e.code != ST_NOT_FOUND)
        fprintf(stderr, "stowaged: image %s: %s\n", uuid, e.msg);
    db_release(st->db, c);
}

int core_pwrite_all(const struct core_vol_ref *v, struct be_file *f, const void *buf, size_t len,
                    uint64_t off, struct st_err *e)
{
    int rc = be_pwrite_all(v->ops, f, buf, len, off);
    return rc < 0 ? be_fail(e, rc, "write") : 0;
}

int core_file_size(const struct core_vol_ref *v, struct be_file *f, uint64_t *size,
                   struct st_err *e)
{
    struct stat sb;
    int rc = v->ops->fstat(f, &sb);
    if (rc < 0)
        return be_fail(e, rc, "stat");
    *size = (uint64_t)sb.st_size;
    return 0;
}

struct inspect_src {
    const struct core_vol_ref *v;
    struct be_file *f;
};

static ssize_t inspect_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
    struct inspect_src *s = ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t n = s->v->ops->pread(s->f, (char *)buf + done, len - done, off + done);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int core_inspect(const struct core_vol_ref *v, struct be_file *f, const char *declared,
                 uint64_t max_virtual_size, int allow_backing, struct fmt_info *out,
                 struct st_err *e)
{
    struct inspect_src ctx = {v, f};
    struct fmt_source src = {&ctx, inspect_pread, 0};
    struct fmt_opts o;
    struct stat sb;

    if (core_file_size(v, f, &src.size, e))
        return -1;
    fmt_opts_init(&o);
    o.declared = fmt_from_name(declared);
    if (o.declared == FMT_INVALID)
        return st_fail_field(e, ST_INVALID, "format", "unknown image format '%s'", declared);
    o.max_virtual_size = max_virtual_size;
    o.allow_backing_file = allow_backing;
    int rc = fmt_inspect(&src, &o, out);
    if (rc < 0)
        return be_fail(e, rc, "inspect");
    if (v->ops->fstat(f, &sb) == 0)
        out->actual_size = (uint64_t)sb.st_blocks * 512;
    return 0;
}

int core_inspect_accepted(struct stowage *st, const struct core_vol_ref *v, struct be_file *f,
                          const char *declared, struct fmt_info *out, struct st_err *e)
{
    if (core_inspect(v, f, declared, st->cfg.max_image_size, 0, out, e))
        return -1;
    return fmt_accepted(out) ? 0 : core_refusal(out, e);
}

int core_refusal(const struct fmt_info *info, struct st_err *e)
{
    return st_fail_field(e, info->reason == FMT_R_TOO_LARGE ? ST_TOO_LARGE : ST_INVALID, "image",
                         "image refused: %s: %s", fmt_reason_str(info->reason), info->detail);
}

/* The protocol's catalogue changes, as members of group commits (db_group). */
static int record_data(struct db_conn *c, void *ud, struct st_err *e)
{
    const struct db_image *im = ud;
    return db_image_set_data(c, im->uuid, im->format, im->virtual_size, im->actual_size, im->sha256,
                             e);
}

static int turn_active(struct db_conn *c, void *ud, struct st_err *e)
{
    const struct db_image *im = ud;
    return db_image_set_status(c, im->uuid, "active", e);
}

int core_image_commit(struct stowage *st, const struct core_vol_ref *v, struct be_file *f,
                      const char *staging, struct db_image *im, struct st_err *e)
{
    char final[128];
    int rc;

    core_image_path(im, final, sizeof final);
    if ((rc = v->ops->flush(f)) < 0) {
        be_fail(e, rc, "fsync");
        goto fail;
    }
    if (db_group(st->db, record_data, im, e))
        goto fail;
    int moved;
    if ((rc = v->ops->publish(v->be, staging, final, &moved)) < 0 && !moved) {
        be_fail(e, rc, "rename into images/");
        goto fail;
    }
    if (rc < 0)
        return be_fail(e, rc, "fsync images/"); /* renamed: recovery decides, not us */
    if (db_group(st->db, turn_active, im, e))
        return -1;
    snprintf(im->status, sizeof im->status, "active");
    core_bump(st);
    return 0;
fail:
    v->ops->discard(v->be, staging);
    return -1;
}

/* A create whose row is inserted only once its file is published (core_image_commit_new). */
struct new_image {
    const struct core_vol_ref *v;
    struct db_image *im;
    struct be_publish p; /* its file, where it goes, how that went */
    int handed;          /* to publish_many */
};

/* Creates of one volume handed to publish_many at once, at most. */
#define PUBLISH_GROUP 64

/* The error of a publish that failed, named by the step. */
static int publish_failed(const struct be_publish *p, struct st_err *e)
{
    return be_fail(e, p->rc,
                   !p->flushed ? "fsync"
                   : p->moved  ? "fsync images/"
                               : "rename into images/");
}

static int insert_new(struct db_conn *c, void *ud, struct st_err *e)
{
    const struct new_image *ni = ud;
    return insert_row(c, ni->im, e);
}

/* A batch of creates (st->publishes' step): the files of each volume's creates published
 * together by publish_many. */
void core_publish_batch(void *ctx, struct st_group_member *batch, size_t n)
{
    struct be_publish group[PUBLISH_GROUP];
    struct new_image *of[PUBLISH_GROUP];

    (void)ctx;
    (void)n;
    for (struct st_group_member *m = batch; m; m = m->next) {
        struct new_image *first = m->ud;
        size_t k = 0;
        if (first->handed)
            continue; /* with an earlier group */
        for (struct st_group_member *o = m; o && k < PUBLISH_GROUP; o = o->next) {
            struct new_image *ni = o->ud;
            if (!ni->handed && ni->v->be == first->v->be) {
                ni->handed = 1;
                of[k] = ni;
                group[k++] = ni->p;
            }
        }
        first->v->ops->publish_many(first->v->be, group, k);
        for (size_t g = 0; g < k; g++)
            of[g]->p = group[g];
    }
    for (struct st_group_member *m = batch; m; m = m->next) {
        struct new_image *ni = m->ud;
        if (ni->p.rc < 0)
            m->rc = publish_failed(&ni->p, &m->err);
    }
}

/* The second step of a batch of creates: the rows of those published, in one group
 * commit, while the next batch's files are published. */
void core_publish_rows(void *ctx, struct st_group_member *batch, size_t n)
{
    struct stowage *st = ctx;
    void **uds = calloc(n, sizeof *uds);
    int *rcs = calloc(n, sizeof *rcs);
    struct st_err *errs = calloc(n, sizeof *errs);
    size_t k = 0;

    if (!uds || !rcs || !errs) { /* no memory to batch them: one at a time */
        for (struct st_group_member *m = batch; m; m = m->next)
            if (m->rc == 0)
                m->rc = db_group(st->db, insert_new, m->ud, &m->err);
        goto out;
    }
    for (struct st_group_member *m = batch; m; m = m->next)
        if (m->rc == 0)
            uds[k++] = m->ud;
    db_group_all(st->db, insert_new, uds, k, rcs, errs);
    k = 0;
    for (struct st_group_member *m = batch; m; m = m->next) {
        if (m->rc == 0 && (m->rc = rcs[k++]) != 0)
            m->err = errs[k - 1];
    }
out:
    free(uds);
    free(rcs);
    free(errs);
}

/* flush and publish for one create alone, on its own thread (a backend without
 * publish_many). */
static int publish_one(struct new_image *ni, struct st_err *e)
{
    ni->p.rc = ni->v->ops->flush(ni->p.f);
    if (!(ni->p.flushed = ni->p.rc == 0))
        return publish_failed(&ni->p, e);
    ni->p.rc = ni->v->ops->publish(ni->v->be, ni->p.staged, ni->p.final, &ni->p.moved);
    return ni->p.rc < 0 ? publish_failed(&ni->p, e) : 0;
}

/* In a batch of creates when the backend syncs many files at once for less than a flush
 * of each (publish_many, syncs_together): their files published together by its leader,
 * then their rows committed together (core_publish_rows). Otherwise alone, as before:
 * concurrent creates' flushes and publishes then overlap on their own threads (a
 * directory's concurrent fsyncs are shared by the backend), and their rows share a
 * group commit. */
static int publish_and_insert(struct stowage *st, struct new_image *ni, struct st_err *e)
{
    const struct backend_ops *ops = ni->v->ops;
    if (ops->publish_many && (!ops->syncs_together || ops->syncs_together(ni->v->be)))
        return st_group_join(&st->publishes, ni, e);
    if (publish_one(ni, e))
        return -1;
    return db_group(st->db, insert_new, ni, e);
}

static void new_row_fields(struct db_image *im)
{
    snprintf(im->status, sizeof im->status, "active");
    im->created_at = im->updated_at = (int64_t)time(NULL);
    im->generation = 1;
}

/* After a create's publish and insert: rc 0, or nothing of it stays. */
static int new_image_end(struct stowage *st, const struct new_image *ni, int rc)
{
    if (rc == 0) {
        core_bump(st);
        return 0;
    }
    snprintf(ni->im->status, sizeof ni->im->status, "saving");
    if (ni->p.moved)
        ni->v->ops->remove(ni->v->be, ni->p.final);
    else
        ni->v->ops->discard(ni->v->be, ni->p.staged);
    return -1;
}

int core_image_commit_new(struct stowage *st, const struct core_vol_ref *v, struct be_file *f,
                          const char *staging, struct db_image *im, struct st_err *e)
{
    char final[128];
    struct new_image ni = {v, im, {.f = f, .staged = staging, .final = final}, 0};

    core_image_path(im, final, sizeof final);
    new_row_fields(im);
    return new_image_end(st, &ni, publish_and_insert(st, &ni, e));
}

/* A create handed to the servers of st->publishes (core_image_commit_new_async). */
struct new_image_job {
    struct st_group_member m;
    struct new_image ni;
    struct stowage *st;
    char final[128];
    core_commit_fn done;
    void *ud;
};

static void new_image_finished(struct st_group_member *m)
{
    struct new_image_job *j = (struct new_image_job *)(void *)m;
    int rc = new_image_end(j->st, &j->ni, m->rc);
    j->done(j->ud, rc, &m->err);
    free(j);
}

int core_image_commit_new_async(struct stowage *st, const struct core_vol_ref *v, struct be_file *f,
                                const char *staging, struct db_image *im, const void *client,
                                core_commit_fn done, void *ud)
{
    const struct backend_ops *ops = v->ops;
    if (!ops->publish_many || (ops->syncs_together && !ops->syncs_together(v->be)))
        return 1;
    struct new_image_job *j = calloc(1, sizeof *j);
    if (!j)
        return 1;
    j->st = st;
    j->done = done;
    j->ud = ud;
    j->ni = (struct new_image){v, im, {.f = f, .staged = staging, .final = j->final}, 0};
    j->m.ud = &j->ni;
    j->m.client = client; /* its next create is waited for by the next batch's leader */
    j->m.finished = new_image_finished;
    core_image_path(im, j->final, sizeof j->final);
    new_row_fields(im);
    if (st_group_submit(&st->publishes, &j->m)) {
        free(j);
        return 1;
    }
    return 0;
}

/* A new staging object (a crashed try's leftover of that name goes first). */
int core_open_staging(const struct core_vol_ref *v, const char *path, struct be_file **f,
                      struct st_err *e)
{
    int rc = v->ops->stage(v->be, path, f);
    return rc < 0 ? be_fail(e, rc, "create staging file") : 0;
}

int core_publish_clone_file(const struct core_vol_ref *v, struct be_file *f, const char *staging,
                            const char *final, const char *what, struct st_err *e)
{
    char step[64];
    int moved = 0, rc = v->ops->flush(f);
    if (rc < 0) {
        snprintf(step, sizeof step, "fsync %s", what);
    } else if ((rc = v->ops->publish(v->be, staging, final, &moved)) < 0) {
        if (moved)
            snprintf(step, sizeof step, "fsync clones/");
        else
            snprintf(step, sizeof step, "rename %s into clones/", what);
    }
    if (rc >= 0)
        return 0;
    if (!moved)
        v->ops->discard(v->be, staging);
    return be_fail(e, rc, step);
}

int core_image_create_empty(struct stowage *st, const char *name, const char *volume_id,
                            uint64_t size, const char *format, const char *owner,
                            struct db_image *out, struct st_err *e)
{
    struct core_vol_ref v;
    struct be_file *f = NULL;
    char staging[96];
    void *hdr = NULL;
    size_t hdr_len = 0;
    int qcow2 = format && strcmp(format, "qcow2") == 0;

    if (format && !qcow2 && strcmp(format, "raw") != 0)
        return st_fail_field(e, ST_INVALID, "format", "image_create makes raw or qcow2 images");
    if (size == 0 || size % 512 || size > st->cfg.max_image_size)
        return st_fail_field(e, size > st->cfg.max_image_size ? ST_TOO_LARGE : ST_INVALID, "size",
                             "size must be a positive multiple of 512 up to %llu bytes",
                             (unsigned long long)st->cfg.max_image_size);
    if (core_volume_acquire(st, volume_id, &v, e))
        return -1;
    if (core_image_reserve(st, name, NULL, volume_id, owner, out, e)) {
        core_volume_release(&v);
        return -1;
    }
    core_staging_path(out->uuid, TASK_SUFFIX, staging, sizeof staging);
    if (core_open_staging(&v, staging, &f, e))
        goto fail;
    if (qcow2) {
        int rc = fmt_qcow2_overlay_build(NULL, NULL, size, &hdr, &hdr_len);
        if (rc < 0) {
            st_fail(e, ST_INTERNAL, "cannot build a qcow2 header: %s", strerror(-rc));
            goto fail_unlink;
        }
        if ((rc = be_pwrite_sparse(v.ops, f, hdr, hdr_len)) < 0) {
            be_fail(e, rc, "write the qcow2 header");
            goto fail_unlink;
        }
    } else {
        int rc = v.ops->ftruncate(f, size);
        if (rc < 0) {
            be_fail(e, rc, "size the image");
            goto fail_unlink;
        }
    }
    snprintf(out->format, sizeof out->format, "%s", qcow2 ? "qcow2" : "raw");
    out->virtual_size = size;
    out->actual_size = hdr_len;
    if (core_image_commit(st, &v, f, staging, out, e))
        goto fail;
    v.ops->close_file(f);
    free(hdr);
    core_volume_release(&v);
    return 0;
fail_unlink:
    v.ops->discard(v.be, staging);
fail:
    if (f)
        v.ops->close_file(f);
    free(hdr);
    core_image_discard(st, out->uuid);
    core_volume_release(&v);
    return -1;
}

struct copy_job {
    const struct core_vol_ref *sv, *dv;
    struct be_file *sf, *df;
    uint64_t size, done;
    const struct core_progress *p;
    char *buf;
};

static int cancelled(const struct core_progress *p)
{
    return p && p->cancel && atomic_load(p->cancel);
}

static void report(const struct copy_job *j)
{
    if (j->p && j->p->fn && j->size)
        j->p->fn(j->p->ud, (int)(j->done * 99 / j->size));
}

/* Copy [off, off+len) through the backends in big chunks. */
static int copy_extent(struct copy_job *j, uint64_t off, uint64_t len, struct st_err *e)
{
    while (len > 0) {
        if (cancelled(j->p))
            return st_fail(e, ST_CONFLICT, "copy cancelled");
        size_t want = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;
        ssize_t n = j->sv->ops->pread(j->sf, j->buf, want, off);
        if (n < 0)
            return be_fail(e, (int)n, "read source");
        if (n == 0)
            return st_fail(e, ST_INTERNAL, "source shrank during the copy");
        /* the destination was sized first: its zeros need no write (an allocated zero
         * extent of the source, or what an upload wrote, becomes a hole) */
        int rc = be_pwrite_data(j->dv->ops, j->df, j->buf, (size_t)n, off);
        if (rc < 0)
            return be_fail(e, rc, "write");
        off += (uint64_t)n;
        len -= (uint64_t)n;
        j->done += (uint64_t)n;
        report(j);
    }
    return 0;
}

/* Only the data extents travel; holes stay holes (the destination was sized first). */
static int sparse_copy(struct copy_job *j, struct st_err *e)
{
    uint64_t off = 0;
    int rc = j->dv->ops->ftruncate(j->df, j->size);
    if (rc < 0)
        return be_fail(e, rc, "size the copy");
    if (!(j->buf = core_page_alloc(COPY_CHUNK)))
        return st_fail(e, ST_INTERNAL, "out of memory");
    while (off < j->size) {
        uint64_t data, hole;
        rc = j->sv->ops->next_data(j->sf, off, &data, &hole);
        if (rc == -ENXIO)
            break; /* only a hole up to the end */
        if (rc < 0)
            return be_fail(e, rc, "map source extents");
        if (hole > j->size)
            hole = j->size;
        j->done += data - off; /* holes count as copied */
        if (data >= hole)
            break;
        if (copy_extent(j, data, hole - data, e))
            return -1;
        off = hole;
    }
    return 0;
}

/* Same volume or one local filesystem: share blocks, or let the kernel copy. */
static int fast_copy(struct copy_job *j, struct st_err *e)
{
    if (j->sv->ops == j->dv->ops && j->sv->ops->reflink && j->sv->ops->reflink(j->sf, j->df) == 0)
        return 0;
    if (j->sv->ops != j->dv->ops || !j->sv->ops->copy_range)
        return 1;
    while (j->done < j->size) {
        if (cancelled(j->p))
            return st_fail(e, ST_CONFLICT, "copy cancelled");
        uint64_t left = j->size - j->done;
        size_t want = left < (64u << 20) ? (size_t)left : (64u << 20);
        ssize_t n = j->sv->ops->copy_range(j->sf, j->done, j->df, j->done, want);
        if (n <= 0) {
            if (j->done == 0 && (n == -EXDEV || n == -EOPNOTSUPP || n == -ENOSYS || n == -EINVAL))
                return 1; /* not possible here: fall back */
            return n == 0 ? st_fail(e, ST_INTERNAL, "source shrank during the copy")
                          : be_fail(e, (int)n, "copy");
        }
        j->done += (uint64_t)n;
        report(j);
    }
    return 0;
}

static int copy_file(struct copy_job *j, struct st_err *e)
{
    int rc = fast_copy(j, e);
    if (rc == 1) {
        j->done = 0;
        rc = sparse_copy(j, e);
    }
    return rc;
}

int core_copy_file(const struct core_vol_ref *sv, struct be_file *sf, const struct core_vol_ref *dv,
                   struct be_file *df, const struct core_progress *p, struct st_err *e)
{
    struct copy_job j = {sv, dv, sf, df, 0, 0, p, NULL};
    int rc = core_file_size(sv, sf, &j.size, e);
    if (rc == 0)
        rc = copy_file(&j, e);
    free(j.buf);
    return rc;
}

int core_image_copy(struct stowage *st, const char *source_name, const char *new_name,
                    const char *volume_id, const char *owner, const struct core_progress *p,
                    struct db_image *out, struct st_err *e)
{
    struct db_image src;
    struct core_vol_ref sv = {0}, dv = {0};
    struct copy_job j = {&sv, &dv, NULL, NULL, 0, 0, p, NULL};
    char path[128], staging[96], key[64];
    int rc = -1;

    if (core_image_by_name(st, source_name, &src, e))
        return -1;
    if (strcmp(src.status, "active") != 0)
        return st_fail(e, ST_CONFLICT, "image '%s' has no data yet (%s)", source_name, src.status);
    snprintf(key, sizeof key, "image:%s", src.uuid);
    /* Hold the source so it cannot be deleted under the copy. */
    if (core_claim_shared(st, key, source_name, e))
        return -1;
    if (core_volume_acquire(st, src.volume_id, &sv, e) ||
        core_volume_acquire(st, volume_id, &dv, e))
        goto out;
    core_image_path(&src, path, sizeof path);
    if ((rc = sv.ops->open_file(sv.be, path, O_RDONLY, 0, &j.sf)) < 0) {
        rc = be_fail(e, rc, "open source image");
        goto out;
    }
    if ((rc = core_file_size(&sv, j.sf, &j.size, e)))
        goto out;
    if ((rc = core_image_reserve(st, new_name, NULL, volume_id, owner, out, e)))
        goto out;
    core_staging_path(out->uuid, TASK_SUFFIX, staging, sizeof staging);
    if ((rc = core_open_staging(&dv, staging, &j.df, e)))
        goto discard;
    if ((rc = copy_file(&j, e)))
        goto unlink;
    snprintf(out->format, sizeof out->format, "%s", src.format);
    out->virtual_size = src.virtual_size;
    snprintf(out->sha256, sizeof out->sha256, "%s", src.sha256); /* the same bytes */
    struct fmt_info info;
    if ((rc = core_inspect_accepted(st, &dv, j.df, src.format, &info, e)))
        goto unlink;
    out->actual_size = info.actual_size;
    if ((rc = core_image_commit(st, &dv, j.df, staging, out, e)))
        goto discard;
    if (p && p->fn)
        p->fn(p->ud, 100);
    goto out;
unlink:
    dv.ops->discard(dv.be, staging);
discard:
    core_image_discard(st, out->uuid);
out:
    if (j.df)
        dv.ops->close_file(j.df);
    if (j.sf)
        sv.ops->close_file(j.sf);
    free(j.buf);
    core_volume_release(&dv);
    core_volume_release(&sv);
    core_unclaim(st, key);
    return rc ? -1 : 0;
}

int core_image_delete(struct stowage *st, const char *name, struct st_err *e)
{
    struct db_image im;
    struct core_vol_ref v;
    char key[64], names[256], path[128];
    int64_t n = 0;

    if (core_image_by_name(st, name, &im, e))
        return -1;
    snprintf(key, sizeof key, "image:%s", im.uuid);
    if (core_claim(st, key, name, e))
        return -1;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_begin(c, e);
    if (rc == 0 && (rc = db_clone_count_image(c, im.uuid, &n, names, sizeof names, e)) == 0 &&
        n > 0)
        rc = st_fail(e, ST_IN_USE, "image '%s' is used by %lld clone%s (%s%s); delete them first",
                     name, (long long)n, n == 1 ? "" : "s", names, n > 5 ? ", ..." : "");
    if (rc == 0)
        rc = db_image_set_status(c, im.uuid, "deleted", e);
    if (rc == 0)
        rc = db_commit(c, e);
    else
        db_rollback(c);
    db_release(st->db, c);
    if (rc == 0) {
        core_bump(st);
        /* The row is gone first: if the volume is away or we crash now, recovery
         * removes the file of a deleted row. */
        core_image_path(&im, path, sizeof path);
        struct st_err ignore;
        if (core_volume_acquire(st, im.volume_id, &v, &ignore) == 0) {
            v.ops->remove(v.be, path);
            core_volume_release(&v);
        }
    }
    core_unclaim(st, key);
    return rc;
}

int core_image_release(struct stowage *st, const char *name, struct st_err *e)
{
    struct db_image im;
    if (core_image_by_name(st, name, &im, e))
        return -1;
    struct db_conn *c = db_acquire(st->db);
    int rc = db_image_set_guest(c, im.uuid, "", e);
    db_release(st->db, c);
    if (rc == 0)
        core_bump(st);
    return rc;
}
