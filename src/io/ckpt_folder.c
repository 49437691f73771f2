/* A checkpoint folder written all at once (see ckpt_folder.h). */
#include "io/ckpt_folder.h"
#include "base/tmpfiles.h"
#include "diffscope/error.h"
#include "io/outfile.h"
#include "base/fileio.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int ds_ckpt_is_layout_file(const char *name) {
    if (!strcmp(name, "config.json") || !strcmp(name, "model.safetensors") ||
        !strcmp(name, "model.safetensors.index.json"))
        return 1;
    int end = 0;
    sscanf(name, "model-%*[0-9]-of-%*[0-9].safetensors%n", &end);
    return end > 0 && !name[end];
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* mkdir -p, remembering (and registering for removal on a signal) each folder it creates. */
static int make_dirs(ds_ckpt_folder *t, const char *dir) {
    char *buf = strdup(dir);
    if (!buf) return ds_failc(DS_ERR_NOMEM, "out of memory");
    int rc = 0;
    for (char *p = buf + 1;; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = 0;
        struct stat st;
        if (!mkdir(buf, 0755)) {
            char **m = realloc(t->made, (size_t)(t->n_made + 1) * sizeof *m);
            char *copy = strdup(buf);
            if (!m || !copy) {
                free(copy), rmdir(buf);
                if (m) t->made = m;
                rc = ds_failc(DS_ERR_NOMEM, "out of memory");
                break;
            }
            t->made = m, t->made[t->n_made++] = copy;
            ds_tmpfile_register(copy, DS_TMP_EMPTY_DIR);
        } else if (errno != EEXIST || stat(buf, &st) || !S_ISDIR(st.st_mode)) {
            rc = ds_fail("%s: cannot create the folder: %s", buf, errno == EEXIST ? "not a folder" : strerror(errno));
            break;
        }
        if (!c) break;
        *p = c;
    }
    free(buf);
    return rc;
}

static void forget_made(ds_ckpt_folder *t, int remove) {
    for (int i = t->n_made - 1; i >= 0; i--) {
        if (remove) rmdir(t->made[i]);
        ds_tmpfile_unregister(t->made[i]);
        free(t->made[i]);
    }
    free(t->made);
    t->made = NULL, t->n_made = 0;
}

/* Refuses a folder holding checkpoint files unless FORCE, and then any that is not a writable
 * regular file. */
static int check_old_layout(const ds_ckpt_folder *t) {
    DIR *d = opendir(t->dir);
    if (!d) return ds_fail("%s: cannot read the folder: %s", t->dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (!ds_ckpt_is_layout_file(e->d_name)) continue;
        if (!t->force) {
            rc = ds_fail("%s: already holds a checkpoint (use --force)", t->dir);
            break;
        }
        char *p = join(t->dir, e->d_name);
        rc = p ? ds_outfile_check_target(p, 1) : ds_failc(DS_ERR_NOMEM, "out of memory");
        free(p);
    }
    closedir(d);
    return rc;
}

int ds_ckpt_folder_open(ds_ckpt_folder *t, const char *dir, int force) {
    memset(t, 0, sizeof *t);
    t->lock_fd = -1;
    t->force = force;
    if (!*dir) return ds_fail("the output folder name is empty");
    if (!(t->dir = strdup(dir))) return ds_failc(DS_ERR_NOMEM, "out of memory");
    if (make_dirs(t, dir)) goto fail;
    t->lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->lock_fd < 0) {
        ds_fail("%s: cannot open the folder: %s", dir, strerror(errno));
        goto fail;
    }
    /* Where flock() does not work on folders (some network file systems), writers are not
     * kept apart; the staging folder still keeps each one whole until its commit. */
    if (flock(t->lock_fd, LOCK_EX | LOCK_NB) && errno == EWOULDBLOCK) {
        ds_fail("%s: another diffscope init is writing into this folder; run again when it has finished", dir);
        goto fail;
    }
    if (check_old_layout(t) || !(t->stage = ds_tmpdir_create(dir, ".diffscope-init"))) goto fail;
    return 0;
fail:
    ds_ckpt_folder_abort(t);
    return -1;
}

static int write_staged(ds_ckpt_folder *t, const char *name, const char *data, size_t n) {
    char *p = join(t->stage, name);
    int fd = p ? open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666) : -1;
    int rc = fd >= 0 && write(fd, data, n) == (ssize_t)n ? 0 : -1;
    int err = errno;
    if (fd >= 0 && close(fd) && !rc) rc = -1, err = errno;
    free(p);
    return rc ? ds_failc(DS_ERR_IO, "%s/%s: cannot write: %s", t->dir, name, strerror(err)) : 0;
}

int ds_ckpt_folder_add_file(ds_ckpt_folder *t, const char *name, const char *text) {
    return write_staged(t, name, text, strlen(text));
}

int ds_ckpt_folder_copy_file(ds_ckpt_folder *t, const char *name, const char *src, size_t max) {
    char *target = join(t->dir, name);
    int rc = target ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
    if (!rc && !ds_ckpt_is_layout_file(name) && ds_outfile_check_target(target, t->force)) rc = -1;
    free(target);
    size_t n = 0;
    char *data = rc ? NULL : ds_read_file(src, max, &n);
    if (!rc && !data) rc = -1;
    if (!rc) rc = write_staged(t, name, data, n);
    free(data);
    return rc;
}

/* The names in the staging folder, config.json last (it is what makes a folder a checkpoint). */
static int staged_names(const ds_ckpt_folder *t, char ***names, int *n) {
    *names = NULL, *n = 0;
    DIR *d = opendir(t->stage);
    if (!d) return ds_fail("%s: cannot read the staging folder: %s", t->dir, strerror(errno));
    int rc = 0, config = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (!strcmp(e->d_name, "config.json")) {
            config = 1;
            continue;
        }
        char **m = realloc(*names, (size_t)(*n + 2) * sizeof *m);
        if (!m || !(m[*n] = strdup(e->d_name))) rc = ds_failc(DS_ERR_NOMEM, "out of memory");
        if (m) *names = m, *n += !rc;
    }
    closedir(d);
    if (!rc && config && !((*names)[(*n)++] = strdup("config.json"))) rc = ds_failc(DS_ERR_NOMEM, "out of memory");
    return rc;
}

static int contains(char **names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return 1;
    return 0;
}

/* Removes the files of the old layout that no staged file replaces. */
static int remove_old_layout(const ds_ckpt_folder *t, char **names, int n) {
    DIR *d = opendir(t->dir);
    if (!d) return ds_fail("%s: cannot read the folder: %s", t->dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));)
        if (ds_ckpt_is_layout_file(e->d_name) && !contains(names, n, e->d_name) && unlinkat(dirfd(d), e->d_name, 0))
            rc = ds_failc(DS_ERR_IO, "%s/%s: cannot remove the old file: %s", t->dir, e->d_name, strerror(errno));
    closedir(d);
    return rc;
}

/* Moves the staged files into the folder; without FORCE a file that appeared meanwhile stops it,
 * and the files already moved (new ones) are removed again. */
static int move_into_place(const ds_ckpt_folder *t, char **names, int n) {
    int rc = 0, moved = 0;
    for (; moved < n && !rc; moved++) {
        char *from = join(t->stage, names[moved]), *to = join(t->dir, names[moved]);
        if (!from || !to) rc = ds_failc(DS_ERR_NOMEM, "out of memory");
        else if (t->force && ds_outfile_check_target(to, 1)) rc = -1;
        else if (t->force ? rename(from, to) : ds_rename_noreplace(from, to))
            rc = errno == EEXIST ? ds_fail("%s: appeared while this run was writing; left as it is (use --force)", to)
                                 : ds_failc(DS_ERR_IO, "%s: cannot move into place: %s", to, strerror(errno));
        free(from), free(to);
    }
    for (int i = 0; rc && !t->force && i < moved - 1; i++) {
        char *p = join(t->dir, names[i]);
        if (p) unlink(p);
        free(p);
    }
    return rc;
}

int ds_ckpt_folder_commit(ds_ckpt_folder *t) {
    char **names;
    int n;
    int rc = staged_names(t, &names, &n);
    ds_tmpfiles_hold(); /* a signal from here on waits until the folder is whole again */
    ds_test_stop_point("before-commit");
    if (!rc && t->force) rc = remove_old_layout(t, names, n);
    if (!rc) rc = move_into_place(t, names, n);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc) {
        ds_ckpt_folder_abort(t);
    } else {
        ds_tmpdir_remove(t->stage);
        t->stage = NULL;
        forget_made(t, 0);
        ds_ckpt_folder_abort(t); /* the lock and the names */
    }
    ds_tmpfiles_release();
    return rc;
}

void ds_ckpt_folder_abort(ds_ckpt_folder *t) {
    ds_tmpdir_remove(t->stage);
    t->stage = NULL;
    forget_made(t, 1);
    if (t->lock_fd >= 0) close(t->lock_fd);
    t->lock_fd = -1;
    free(t->dir);
    t->dir = NULL;
}
