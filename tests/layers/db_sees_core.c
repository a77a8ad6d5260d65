/* Nothing below core includes a core header: this must not compile. */
#include "stowage/db.h"
#include "stowage/core.h"
int layer_probe_db_sees_core(void);
int layer_probe_db_sees_core(void) { return 0; }
