/* The control: a dialect sees core and the HTTP layer, so this compiles. */
#include "stowage/api.h"
#include "stowage/core.h"
#include "stowage/http.h"
int layer_probe_api_sees_core(void);
int layer_probe_api_sees_core(void) { return 0; }
