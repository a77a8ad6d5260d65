/* api.h — the dialects: each one file in src/api/, each a route table plus its error envelope. */
#ifndef STOWAGE_API_H
#define STOWAGE_API_H

#include "stowage/http.h"

extern const struct http_dialect api_flexvdi;
extern const struct http_dialect api_esdc;
extern const struct http_dialect api_esdc_data;
extern const struct http_dialect api_native;
extern const struct http_dialect api_cinder;
extern const struct http_dialect api_zstack;
extern const struct http_dialect api_zstack_ceph; /* /zstack/v1/backup-storage/ceph */
extern const struct http_dialect api_zstack_image; /* ZStack images on backup storages */
extern const struct http_dialect api_imgapi;

/* All dialects, NULL-terminated, in match order. */
extern const struct http_dialect *const api_dialects[];

#endif
