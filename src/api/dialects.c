/* dialects.c — the dialects the daemon serves; the last one answers unknown paths. */
#include "stowage/api.h"

const struct http_dialect *const api_dialects[] = {
    &api_flexvdi, &api_esdc_data,    &api_esdc,   &api_cinder, &api_zstack_ceph,
    &api_zstack,  &api_zstack_image, &api_imgapi, &api_native, NULL,
};
