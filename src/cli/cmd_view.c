/* diffscope view: runs diffscope-view, the SDL2 viewer, which is built beside this binary.
 * The viewer is its own program (it links SDL2); this command only finds it and execs it
 * with the same arguments. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/commands.h"

int cmd_view(int argc, char **argv) {
    char self[PATH_MAX], viewer[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) return cli_error("view: cannot find the diffscope binary (/proc/self/exe: %s)", strerror(errno));
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) slash[1] = 0;
    snprintf(viewer, sizeof viewer, "%sdiffscope-view", slash ? self : "./");
    argv[0] = viewer;
    (void)argc;
    execv(viewer, argv);
    return cli_error("view: cannot run %s: %s (build it with make)", viewer, strerror(errno));
}
