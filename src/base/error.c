/* Thread-local last-error message and status (see include/diffscope/error.h). */
#include "diffscope/error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];
static _Thread_local ds_status errcode;

static int record(ds_status status, const char *fmt, va_list ap) {
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    /* Messages are one line by contract: fold any newline a caller passed through. */
    for (char *p = errbuf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    errcode = status;
    return -1;
}

int ds_failc(ds_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(status, fmt, ap);
    va_end(ap);
    return -1;
}

int ds_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(DS_ERR_INPUT, fmt, ap);
    va_end(ap);
    return -1;
}

const char *ds_errmsg(void) { return errbuf; }

ds_status ds_errcode(void) { return errcode; }

void ds_err_prefix(const char *prefix) {
    char tmp[sizeof errbuf];
    snprintf(tmp, sizeof tmp, "%.200s: %.800s", prefix, errbuf);
    memcpy(errbuf, tmp, sizeof errbuf);
}
