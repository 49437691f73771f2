/* Whole-file reads (see include/diffscope/fileio.h). */
#include "base/fileio.h"
#include "diffscope/error.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ds_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        ds_fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* Read in growing chunks rather than trusting ftell: works for pipes and /proc too. */
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) free(buf);
        buf = nb, cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) {
        ds_failc(DS_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    if (err) {
        free(buf);
        ds_failc(DS_ERR_IO, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}
