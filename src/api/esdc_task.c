/* esdc_task.c — Danube Cloud's /task/ over core's job records (every dialect's jobs
 * show here), and ES-STREAM: the synchronous answer Danube's clients wait on.
 *
 * ES-STREAM is esdc-ce's APISyncMiddleware: a 201 PENDING answer becomes a body of
 * single spaces, one per look at the task (after 1 s, then 3, 6, 12 and 30 s naps as
 * the wait grows), then "<code>\n" (only when the header's value is "es", as the `es`
 * CLI sends) and the task's status JSON; after api_sync_timeout seconds it ends with
 * the pending JSON and no code line. Between looks the connection sleeps
 * (http_reader_sleep): no thread waits for it. */
#include "esdc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *esdc_state_name(const struct core_job *j, unsigned *status)
{
    if (strcmp(j->state, "completed") != 0)
        return *status = ESDC_PENDING, "PENDING";
    if (strcmp(j->result, "success") == 0)
        return *status = ESDC_SUCCESS, "SUCCESS";
    if (strcmp(j->result, "revoked") == 0)
        return *status = ESDC_REVOKED, "REVOKED";
    return *status = ESDC_FAILURE, "FAILURE";
}

/* What /task/{id}/status/ answers: the envelope of the job's state; a success's result is
 * what core says it made, a failure's the reason. */
json_t *esdc_task_status_json(const struct core_job *j, unsigned *status)
{
    const char *state = esdc_state_name(j, status);
    json_t *result = json_null();
    if (*status == ESDC_SUCCESS)
        result = j->outcome ? json_deep_copy(j->outcome) : json_object();
    else if (*status != ESDC_PENDING)
        result = json_pack("{s:s}", "detail", j->error);
    return json_pack("{s:s, s:s, s:o}", "task_id", j->id, "status", state, "result", result);
}

static int get_job(struct http_req *r, struct core_job *j)
{
    struct st_err e;
    if (core_job_get(http_st(r), http_capture(r, 0), j, &e) == 0)
        return 0;
    if (e.code == ST_NOT_FOUND)
        esdc_reply_detail(r, 404, "Task does not exist (anymore)");
    else
        http_reply_error(r, &e);
    return -1;
}

static void reply_status(struct http_req *r, const struct core_job *j)
{
    unsigned status;
    json_t *body = esdc_task_status_json(j, &status);
    esdc_headers(r, j->id, 1);
    http_reply_json(r, status, body);
}

void esdc_task_status(struct http_req *r)
{
    struct core_job j;
    if (get_job(r, &j))
        return;
    reply_status(r, &j);
    core_job_free(&j);
}

void esdc_task_done(struct http_req *r)
{
    struct core_job j;
    unsigned status;
    if (get_job(r, &j))
        return;
    esdc_state_name(&j, &status);
    esdc_headers(r, j.id, 0);
    http_reply_json(r, status,
                    json_pack("{s:s, s:b}", "task_id", j.id, "done", status != ESDC_PENDING));
    core_job_free(&j);
}

/* Only a pending task can be cancelled (406 otherwise, as esdc); the answer is its
 * status after the cancel: REVOKED when it had not started, else PENDING until its
 * body stops. */
void esdc_task_cancel(struct http_req *r)
{
    struct core_job j;
    struct st_err e;
    unsigned status;
    if (get_job(r, &j))
        return;
    esdc_state_name(&j, &status);
    core_job_free(&j);
    if (status != ESDC_PENDING || core_job_cancel(http_st(r), http_capture(r, 0), &e)) {
        esdc_reply_detail(r, 406, "Task cannot be canceled");
        return;
    }
    if (get_job(r, &j))
        return;
    reply_status(r, &j);
    core_job_free(&j);
}

/* The ids of the tasks still pending. */
void esdc_task_list(struct http_req *r)
{
    struct core_job *v = NULL;
    size_t n = 0;
    struct st_err e;
    unsigned status;
    if (core_job_list(http_st(r), &v, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (esdc_state_name(&v[i], &status), status == ESDC_PENDING)
            json_array_append_new(arr, json_string(v[i].id));
    core_jobs_free(v, n);
    esdc_headers(r, "", 0);
    http_reply_json(r, 200, arr);
}

/* The task log, newest first: one line per job of any dialect. */
void esdc_task_log(struct http_req *r)
{
    struct core_job *v = NULL;
    size_t n = 0;
    struct st_err e;
    if (core_job_list(http_st(r), &v, &n, &e)) {
        http_reply_error(r, &e);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = n; i-- > 0;) {
        char when[24];
        unsigned status;
        struct tm tm;
        time_t t = (time_t)v[i].created_at;
        const json_t *o = v[i].outcome;
        const char *object = json_string_value(json_object_get(o, "name"));
        const char *state = esdc_state_name(&v[i], &status);
        when[0] = '\0';
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "time", when, "task",
                                        v[i].id, "user", v[i].owner, "object", object ? object : "",
                                        "msg", v[i].op, "status", state));
        json_object_set_new(json_array_get(arr, json_array_size(arr) - 1), "detail",
                            json_string(status == ESDC_SUCCESS ? "" : v[i].error));
    }
    core_jobs_free(v, n);
    esdc_headers(r, "", 0);
    http_reply_json(r, 200, json_pack("{s:o}", "results", arr));
}

/* ---- ES-STREAM ---- */

struct stream {
    struct http_req *r;
    char task_id[37];
    int with_code;    /* ES-STREAM: es — the code line the `es` CLI reads */
    unsigned elapsed; /* seconds slept so far */
    unsigned nap;     /* the coming sleep */
    int slept;        /* this nap is over */
    char *out;        /* what is still to send */
    size_t out_len, out_off;
    int last; /* out is the end of the body */
};

/* esdc-ce's schedule: look often at first, then less and less. */
static unsigned nap_after(unsigned elapsed)
{
    return elapsed > 1200 ? 30 : elapsed > 60 ? 12 : elapsed > 30 ? 6 : elapsed > 5 ? 3 : 1;
}

static void set_out(struct stream *s, char *text, int last)
{
    free(s->out);
    s->out = text;
    s->out_len = text ? strlen(text) : 0;
    s->out_off = 0;
    s->last = last;
}

static char *pending_json(const char *task_id)
{
    json_t *j = json_pack("{s:s, s:s, s:n}", "task_id", task_id, "status", "PENDING", "result");
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return t;
}

/* The task's end: "<code>\n" (for es) and its status JSON. */
static char *final_text(struct stream *s, const struct core_job *j)
{
    unsigned status;
    json_t *body = esdc_task_status_json(j, &status);
    char *text = json_dumps(body, JSON_COMPACT), *out = NULL;
    json_decref(body);
    if (!text || !s->with_code)
        return text;
    if (asprintf(&out, "%u\n%s", status, text) < 0)
        out = NULL;
    free(text);
    return out;
}

/* One look at the task: a keep-alive, its end, or the timeout. */
static void look(struct stream *s)
{
    struct core_job j;
    struct st_err e;
    unsigned status = ESDC_PENDING, timeout = core_config(http_st(s->r))->api_sync_timeout;

    s->elapsed += s->nap;
    if (core_job_get(http_st(s->r), s->task_id, &j, &e) == 0) {
        esdc_state_name(&j, &status);
        if (status != ESDC_PENDING) {
            set_out(s, final_text(s, &j), 1);
            core_job_free(&j);
            return;
        }
        core_job_free(&j);
    }
    if (s->elapsed >= timeout) {
        set_out(s, pending_json(s->task_id), 1);
        return;
    }
    set_out(s, strdup(" "), 0);
    s->nap = nap_after(s->elapsed);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->out && s->out_off < s->out_len) {
            size_t n = s->out_len - s->out_off < max ? s->out_len - s->out_off : max;
            memcpy(buf, s->out + s->out_off, n);
            s->out_off += n;
            return (ssize_t)n;
        }
        if (s->last)
            return -1;             /* MHD_CONTENT_READER_END_OF_STREAM */
        if (!s->out && s->out_len) /* out of memory */
            return -2;
        if (!s->slept) {
            s->slept = 1;
            if (http_reader_sleep(s->r, s->nap * 1000u) == 0)
                return 0;
            /* the server is stopping: the pending answer, now */
            set_out(s, pending_json(s->task_id), 1);
            continue;
        }
        s->slept = 0;
        look(s);
    }
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    free(s->out);
    free(s);
}

void esdc_stream(struct http_req *r, const char *task_id)
{
    struct stream *s = calloc(1, sizeof *s);
    if (!s) {
        esdc_reply_task(r, ESDC_PENDING, task_id, NULL);
        return;
    }
    s->r = r;
    snprintf(s->task_id, sizeof s->task_id, "%s", task_id);
    s->with_code = strcmp(http_header(r, "ES-STREAM"), "es") == 0;
    s->nap = 1;
    esdc_headers(r, task_id, 1);
    http_add_header(r, "es_stream", "True");
    http_reply_reader(r, ESDC_PENDING, "application/json", UINT64_MAX, stream_read, s, stream_free);
}
