/* Thread-local last-error message (see include/diffscope/error.h). */
#include "diffscope/error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

int ds_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    /* Messages are one line by contract: fold any newline a caller passed through. */
    for (char *p = errbuf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return -1;
}

const char *ds_errmsg(void) { return errbuf; }

void ds_err_prefix(const char *prefix) {
    char tmp[sizeof errbuf];
    snprintf(tmp, sizeof tmp, "%.200s: %.800s", prefix, errbuf);
    memcpy(errbuf, tmp, sizeof errbuf);
}
