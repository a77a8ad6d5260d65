/* A dialect must not see the catalogue's rows: this must not compile. */
#include "stowage/api.h"
#include "stowage/db.h"
int layer_probe_api_sees_db(void);
int layer_probe_api_sees_db(void) { return 0; }
