/* metrics.c — request counters by route and status, and a latency histogram per route. */
#include "http_internal.h"

#include <stdarg.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned status_slots[HTTP_STATUS_SLOTS - 1] = {200, 201, 202, 204, 206, 300, 304, 400,
                                                             401, 403, 404, 405, 406, 409, 410, 412,
                                                             413, 415, 416, 431, 500, 503, 507};
/* The last slot counts every other status. */

static const double bucket_le[HTTP_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0};

int http_metrics_init(struct http_server *s)
{
    s->n_metrics = http_router_count(s->rt) + 1;
    s->metrics = calloc(s->n_metrics, sizeof *s->metrics);
    return s->metrics ? 0 : -1;
}

void http_metrics_free(struct http_server *s)
{
    free(s->metrics);
    s->metrics = NULL;
}

void http_metrics_record(struct http_server *s, int route_idx, unsigned status, uint64_t us)
{
    size_t idx = route_idx >= 0 ? (size_t)route_idx : s->n_metrics - 1;
    struct route_metrics *m = &s->metrics[idx];
    size_t slot = HTTP_STATUS_SLOTS - 1;
    for (size_t i = 0; i < HTTP_STATUS_SLOTS - 1; i++) {
        if (status_slots[i] == status) {
            slot = i;
            break;
        }
    }
    atomic_fetch_add(&m->by_status[slot], 1);
    size_t b = 0;
    while (b < HTTP_LATENCY_BUCKETS && (double)us / 1e6 > bucket_le[b])
        b++;
    atomic_fetch_add(&m->latency[b], 1);
    atomic_fetch_add(&m->latency_sum_us, us);
}

int http_buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return 0;
        }
        size_t ncap = *cap ? *cap * 2 : 16384;
        while (ncap < *len + (size_t)n + 1)
            ncap *= 2;
        char *p = realloc(*buf, ncap);
        if (!p)
            return -1;
        *buf = p;
        *cap = ncap;
    }
}

int http_metrics_render(struct http_server *s, char **buf, size_t *len, size_t *cap)
{
    int rc = 0;
    rc |= http_buf_printf(buf, len, cap,
                          "# HELP stowage_http_requests_total HTTP requests by route and status.\n"
                          "# TYPE stowage_http_requests_total counter\n");
    for (size_t i = 0; i < s->n_metrics; i++) {
        const struct http_route *rt = http_router_route(s->rt, (int)i);
        const char *method = rt ? rt->method : "";
        const char *pattern = rt ? rt->pattern : "unmatched";
        for (size_t k = 0; k < HTTP_STATUS_SLOTS; k++) {
            uint64_t v = atomic_load(&s->metrics[i].by_status[k]);
            if (!v)
                continue;
            if (k < HTTP_STATUS_SLOTS - 1)
                rc |= http_buf_printf(
                    buf, len, cap,
                    "stowage_http_requests_total{method=\"%s\",route=\"%s\",status=\"%u\"} %llu\n",
                    method, pattern, status_slots[k], (unsigned long long)v);
            else
                rc |=
                    http_buf_printf(buf, len, cap,
                                    "stowage_http_requests_total{method=\"%s\",route=\"%s\",status="
                                    "\"other\"} %llu\n",
                                    method, pattern, (unsigned long long)v);
        }
    }
    rc |= http_buf_printf(buf, len, cap,
                          "# HELP stowage_http_request_duration_seconds Request latency by route.\n"
                          "# TYPE stowage_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < s->n_metrics; i++) {
        const struct http_route *rt = http_router_route(s->rt, (int)i);
        const char *method = rt ? rt->method : "";
        const char *pattern = rt ? rt->pattern : "unmatched";
        uint64_t cum = 0;
        uint64_t total = 0;
        for (size_t b = 0; b <= HTTP_LATENCY_BUCKETS; b++)
            total += atomic_load(&s->metrics[i].latency[b]);
        if (!total)
            continue;
        for (size_t b = 0; b < HTTP_LATENCY_BUCKETS; b++) {
            cum += atomic_load(&s->metrics[i].latency[b]);
            rc |= http_buf_printf(
                buf, len, cap,
                "stowage_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\","
                "le=\"%g\"} %llu\n",
                method, pattern, bucket_le[b], (unsigned long long)cum);
        }
        rc |= http_buf_printf(
            buf, len, cap,
            "stowage_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+"
            "Inf\"} %llu\n"
            "stowage_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n"
            "stowage_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n",
            method, pattern, (unsigned long long)total, method, pattern,
            (double)atomic_load(&s->metrics[i].latency_sum_us) / 1e6, method, pattern,
            (unsigned long long)total);
    }
    return rc ? -1 : 0;
}
