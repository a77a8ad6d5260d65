/* A dialect must not see the probes: this must not compile. */
#include "stowage/api.h"
#include "stowage/probe.h"
int layer_probe_api_sees_probe(void);
int layer_probe_api_sees_probe(void) { return 0; }
