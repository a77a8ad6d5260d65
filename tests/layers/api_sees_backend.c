/* A dialect must not see the storage backends: this must not compile. */
#include "stowage/api.h"
#include "stowage/backend.h"
int layer_probe_api_sees_backend(void);
int layer_probe_api_sees_backend(void) { return 0; }
