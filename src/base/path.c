/* File paths (see base/path.h). */
#include "base/path.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/error.h"

char *ds_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (!p) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}
