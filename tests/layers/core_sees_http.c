/* Core knows no HTTP: this must not compile. */
#include "stowage/core.h"
#include "stowage/http.h"
int layer_probe_core_sees_http(void);
int layer_probe_core_sees_http(void) { return 0; }
