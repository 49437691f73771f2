/* The table of temporary outputs and the fatal-signal handler (see tmpfiles.h). A slot's path is
 * written before the slot is marked used, and the mark is cleared before the path is reused,
 * so a handler running in between sees either no path or a whole one. */
#include "base/tmpfiles.h"
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    char path[DS_TMPFILE_MAX];
    ds_tmp_kind kind;
    volatile sig_atomic_t used;
} slots[DS_TMPFILE_SLOTS];

static volatile sig_atomic_t held, pending;

int ds_tmpfile_register(const char *path, ds_tmp_kind kind) {
    if (strlen(path) >= DS_TMPFILE_MAX) return -1;
    for (int i = 0; i < DS_TMPFILE_SLOTS; i++)
        if (!slots[i].used) {
            strcpy(slots[i].path, path);
            slots[i].kind = kind;
            slots[i].used = 1;
            return 0;
        }
    return -1;
}

void ds_tmpfile_unregister(const char *path) {
    for (int i = 0; i < DS_TMPFILE_SLOTS; i++)
        if (slots[i].used && !strcmp(slots[i].path, path)) slots[i].used = 0;
}

/* Unlinks every entry of the folder PATH (a staging folder holds plain files only), then the
 * folder. Removing entries while reading the folder may hide others from the same pass, so
 * passes repeat until one finds nothing. Only system calls: safe in a signal handler. */
static void remove_tree(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    static char buf[8192] __attribute__((aligned(16)));
    for (int pass = 0, removed = 1; removed && pass < 64; pass++) {
        removed = 0;
        lseek(fd, 0, SEEK_SET);
        ssize_t n;
        while ((n = getdents64(fd, buf, sizeof buf)) > 0)
            for (ssize_t off = 0; off < n;) {
                struct dirent64 *d = (struct dirent64 *)(buf + off);
                off += d->d_reclen;
                const char *s = d->d_name;
                if (s[0] == '.' && (!s[1] || (s[1] == '.' && !s[2]))) continue;
                if (!unlinkat(fd, s, 0)) removed = 1;
            }
    }
    close(fd);
    rmdir(path);
}

void ds_tmp_remove(const char *path, ds_tmp_kind kind) {
    if (kind == DS_TMP_FILE) unlink(path);
    else if (kind == DS_TMP_TREE) remove_tree(path);
    else rmdir(path);
}

void ds_tmpfiles_remove_all(void) {
    for (int i = DS_TMPFILE_SLOTS - 1; i >= 0; i--)
        if (slots[i].used) ds_tmp_remove(slots[i].path, slots[i].kind);
}

/* Signals raised by the faulting instruction itself cannot wait for a commit to finish. */
static int synchronous(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS ||
           sig == SIGABRT;
}

static void on_fatal_signal(int sig) {
    if (held && !synchronous(sig)) {
        pending = sig;
        return;
    }
    ds_tmpfiles_remove_all();
    /* Die of the same signal: it is blocked while this handler runs, so the raised one is
     * delivered with the default action as soon as the handler returns (a fault re-raised by
     * the kernel too, when its instruction runs again). */
    signal(sig, SIG_DFL);
    raise(sig);
}

void ds_tmpfiles_catch_signals(void) {
    static const int fixed[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGILL,  SIGTRAP,   SIGABRT, SIGBUS, SIGFPE,
                                SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM,   SIGTERM, SIGSTKFLT,
                                SIGXCPU, SIGVTALRM, SIGPROF, SIGIO, SIGPWR,  SIGSYS};
    int n_fixed = (int)(sizeof fixed / sizeof *fixed), n_rt = SIGRTMAX - SIGRTMIN + 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigfillset(&sa.sa_mask); /* one clean-up at a time */
    for (int i = 0; i < n_fixed + n_rt; i++) {
        int sig = i < n_fixed ? fixed[i] : SIGRTMIN + (i - n_fixed);
        struct sigaction old;
        /* Only where the default action would run: an ignored signal stays ignored, and a
         * handler that someone installed before us (a sanitizer's, a profiler's) stays. */
        if (!sigaction(sig, NULL, &old) && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL)
            sigaction(sig, &sa, NULL);
    }
    signal(SIGXFSZ, SIG_IGN);
}

void ds_tmpfiles_hold(void) { held = 1; }

void ds_tmpfiles_release(void) {
    held = 0;
    if (pending) raise(pending);
}

void ds_test_stop_point(const char *point) {
    static volatile sig_atomic_t stopped; /* once: a point passed in a loop stops the first time */
    const char *want = getenv("DIFFSCOPE_TEST_STOP");
    if (want && !strcmp(want, point) && !stopped) stopped = 1, raise(SIGSTOP);
}
