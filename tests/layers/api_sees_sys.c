/* A dialect must not change the system: this must not compile. */
#include "stowage/api.h"
#include "stowage/sys.h"
int layer_probe_api_sees_sys(void);
int layer_probe_api_sees_sys(void) { return 0; }
