/* The HTTP layer must not see the catalogue's rows: this must not compile. */
#include "stowage/http.h"
#include "stowage/db.h"
int layer_probe_http_sees_db(void);
int layer_probe_http_sees_db(void) { return 0; }
