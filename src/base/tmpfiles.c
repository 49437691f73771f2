/* The table of temporary output files (see include/diffscope/tmpfiles.h). A slot's path is
 * written before the slot is marked used, and the mark is cleared before the path is reused,
 * so a signal handler running in between sees either no file or a whole path. */
#include "base/tmpfiles.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static struct {
    char path[DS_TMPFILE_MAX];
    volatile sig_atomic_t used;
} slots[DS_TMPFILE_SLOTS];

void ds_tmpfile_register(const char *path) {
    if (strlen(path) >= DS_TMPFILE_MAX) return;
    for (int i = 0; i < DS_TMPFILE_SLOTS; i++)
        if (!slots[i].used) {
            strcpy(slots[i].path, path);
            slots[i].used = 1;
            return;
        }
}

void ds_tmpfile_unregister(const char *path) {
    for (int i = 0; i < DS_TMPFILE_SLOTS; i++)
        if (slots[i].used && !strcmp(slots[i].path, path)) slots[i].used = 0;
}

void ds_tmpfiles_remove_all(void) {
    for (int i = 0; i < DS_TMPFILE_SLOTS; i++)
        if (slots[i].used) unlink(slots[i].path);
}
