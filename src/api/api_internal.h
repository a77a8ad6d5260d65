/* api_internal.h — pieces the dialect files share. */
#ifndef STOWAGE_API_INTERNAL_H
#define STOWAGE_API_INTERNAL_H

#include "stowage/api.h"

/* The data path (data.c): PUT and GET of an image's bytes, by name or by uuid. */
void api_data_put(struct http_req *r, const char *name, const char *uuid);
void api_data_get(struct http_req *r, const char *name, const char *uuid);
/* An image as the data path and the native API show it. */
json_t *api_image_json(const struct core_image *im);
/* "bytes A-B/TOTAL" (TOTAL may be "*": UINT64_MAX); 0 ok, -1 malformed or inconsistent. */
int api_parse_content_range(const char *h, uint64_t *a, uint64_t *b, uint64_t *total);
/* "bytes * /TOTAL" without the space (the complete length alone): 0 ok, -1 not that form. */
int api_parse_complete_length(const char *h, uint64_t *total);
/* The client's expected SHA-256 (hex) from X-Checksum-Sha256 or Digest: 1, 0 absent, -1 bad. */
int api_expected_sha256(struct http_req *r, char out[65]);

/* A password login (login.c): checks user's password off the HTTP threads, then calls
 * reply(r, res) on an HTTP thread, which must reply. A refusal before any check
 * (throttled: ST_TOO_MANY, queue full: ST_UNAVAILABLE) comes with Retry-After set. */
typedef void (*api_login_reply_fn)(struct http_req *r, const struct core_login_result *res);
void api_login(struct http_req *r, const char *user, const char *password,
               api_login_reply_fn reply);
/* The same with the password's lowercase hex SHA-512 in its place (ZStack). */
void api_login_sha512(struct http_req *r, const char *user, const char *sha512_hex,
                      api_login_reply_fn reply);

#endif
