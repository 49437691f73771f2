/* Safe output files and temporary names (see outfile.h). */
#include "io/outfile.h"
#include "base/tmpfiles.h"
#include "diffscope/error.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* A temporary name's owner is a PID, which only means something on the machine and in the PID
 * namespace that issued it: MACHINE is a hash of the host name and the namespace, so a folder
 * shared between machines (NFS) or containers never has a live process's file removed. */
static unsigned machine_id(void) {
    static unsigned id;
    if (id) return id;
    char buf[600] = {0};
    gethostname(buf, 256);
    size_t n = strlen(buf) + 1;
    ssize_t k = readlink("/proc/self/ns/pid", buf + n, sizeof buf - n - 1);
    n += k > 0 ? (size_t)k : 0;
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)buf[i]) * 16777619u;
    return id = h ? h : 1;
}

static void random_tag(char out[7]) {
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[6];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        static unsigned long x;
        x = x * 6364136223846793005ul + (unsigned long)time(NULL) + (unsigned long)getpid() + 1442695040888963407ul;
        for (int i = 0; i < 6; i++) r[i] = (unsigned char)(x >> (8 * i + 16));
    }
    for (int i = 0; i < 6; i++) out[i] = al[r[i] % 36];
    out[6] = 0;
}

/* DIR/BASE.tmp-PID-MACHINE-RANDOM, BASE cut so that the name fits NAME_MAX. */
static char *tmp_name(const char *dir, const char *base) {
    char tag[7];
    random_tag(tag);
    size_t n = strlen(dir) + strlen(base) + 64;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%.180s.tmp-%ld-%08x-%s", dir, base, (long)getpid(), machine_id(), tag);
    return s;
}

int ds_outfile_parse_tmp_name(const char *name, long *pid, unsigned *machine) {
    const char *p = NULL;
    for (const char *q = strstr(name, ".tmp-"); q; q = strstr(q + 1, ".tmp-")) p = q;
    if (!p) return 0;
    char digits[12], hex[9], tag[7];
    int end = 0;
    if (sscanf(p + 5, "%11[0-9]-%8[0-9a-f]-%6[0-9a-z]%n", digits, hex, tag, &end) != 3 || p[5 + end] ||
        strlen(hex) != 8 || strlen(tag) != 6)
        return 0;
    *pid = strtol(digits, NULL, 10);
    *machine = (unsigned)strtoul(hex, NULL, 16);
    return *pid > 0;
}

void ds_outfile_remove_stale(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid;
        unsigned machine;
        if (!ds_outfile_parse_tmp_name(e->d_name, &pid, &machine) || machine != machine_id() || pid == getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW)) continue;
        if (S_ISREG(st.st_mode)) {
            unlinkat(dirfd(d), e->d_name, 0);
        } else if (S_ISDIR(st.st_mode)) {
            size_t n = strlen(dir) + strlen(e->d_name) + 2;
            char *p = malloc(n);
            if (p) snprintf(p, n, "%s/%s", dir, e->d_name), ds_tmp_remove(p, DS_TMP_TREE);
            free(p);
        }
    }
    closedir(d);
}

/* The folder and the last component of PATH ("." for a bare name). */
static char *dir_of(const char *path, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a folder" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* 1 when the file of ST is open or mapped in this process: one of this run's inputs (a model's
 * weights stay mapped, a dump being compared stays open). */
static int is_own_input(const struct stat *st) {
    int found = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        struct stat s;
        found = e->d_name[0] != '.' && !fstatat(dirfd(d), e->d_name, &s, 0) && s.st_dev == st->st_dev &&
                s.st_ino == st->st_ino;
    }
    if (d) closedir(d);
    FILE *f = found ? NULL : fopen("/proc/self/maps", "r");
    char line[4608];
    while (f && !found && fgets(line, sizeof line, f)) {
        unsigned maj, min;
        unsigned long ino;
        found = sscanf(line, "%*s %*s %*s %x:%x %lu", &maj, &min, &ino) == 3 && ino == st->st_ino &&
                makedev(maj, min) == st->st_dev;
    }
    if (f) fclose(f);
    return found;
}

int ds_outfile_check_target(const char *path, int force) {
    struct stat st;
    if (lstat(path, &st)) return 0; /* absent, or creating the file next to it reports why not */
    if (!force) return ds_fail("%s: already exists (use --force to overwrite)", path);
    if (S_ISLNK(st.st_mode))
        return ds_fail("%s: is a symbolic link; --force replaces only regular files (remove the link or name its target)", path);
    if (!S_ISREG(st.st_mode))
        return ds_fail("%s: exists and is %s; --force replaces only regular files", path, file_kind(st.st_mode));
    if (!(st.st_mode & 0222)) return ds_fail("%s: is read-only; --force does not replace it (chmod u+w first)", path);
    if (is_own_input(&st)) return ds_fail("%s: is one of this run's inputs; --force does not replace it", path);
    return 0;
}

int ds_outfile_create(ds_outfile *o, const char *path, int force) {
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->force = force;
    if (!*path) return ds_fail("the output path is empty");
    if (ds_outfile_check_target(path, force)) return -1;
    const char *base;
    char *dir = dir_of(path, &base);
    if (!dir || !(o->path = strdup(path))) {
        free(dir);
        return ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    if (!*base) {
        free(dir);
        ds_outfile_abort(o);
        return ds_fail("%s: is a folder, not a file name", path);
    }
    ds_outfile_remove_stale(dir);
    int err = 0;
    for (int attempt = 0; attempt < 100 && o->fd < 0; attempt++) {
        free(o->tmp);
        if (!(o->tmp = tmp_name(dir, base))) break;
        o->fd = open(o->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        err = errno;
        /* Registered once it is ours (a signal in between leaves it to the stale clean-up):
         * never a name that someone else's file might hold. */
        if (o->fd >= 0) ds_tmpfile_register(o->tmp, DS_TMP_FILE);
        else if (err != EEXIST) break;
    }
    free(dir);
    if (o->fd < 0) {
        free(o->tmp), o->tmp = NULL;
        ds_outfile_abort(o);
        return ds_failc(DS_ERR_IO, "%s: cannot create output file: %s", path, err ? strerror(err) : "out of memory");
    }
    ds_test_stop_point("tmpfile-created");
    return 0;
}

int ds_rename_noreplace(const char *tmp, const char *path) {
    if (!renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE)) return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return -1;
    /* No RENAME_NOREPLACE on this file system (NFS, some FUSE ones): link() fails with EEXIST
     * as well. Without hard links either (vfat), only the check right before rename() is left. */
    if (!link(tmp, path)) return unlink(tmp), 0;
    if (errno != EPERM && errno != ENOTSUP && errno != ENOSYS) return -1;
    struct stat st;
    if (!lstat(path, &st)) return errno = EEXIST, -1;
    return rename(tmp, path);
}

int ds_outfile_reserve(const ds_outfile *o, long long off, long long len) {
    if (o->fd < 0 || len <= 0) return 0;
    /* fallocate, not posix_fallocate: where the file system cannot allocate ahead, glibc's
     * posix_fallocate writes zeros into every block instead, a second write of the data. */
    if (!fallocate(o->fd, 0, (off_t)off, (off_t)len)) return 0;
    const int e = errno;
    if (e == EOPNOTSUPP || e == ENOSYS || e == EINVAL) return 0;
    return ds_failc(DS_ERR_IO, "%s: cannot reserve %.1f MB for the output: %s", o->path, (double)len / 1e6, strerror(e));
}

int ds_outfile_commit(ds_outfile *o) {
    int rc = 0;
    if (o->fd >= 0 && close(o->fd)) rc = ds_failc(DS_ERR_IO, "%s: writing failed: %s", o->path, strerror(errno));
    o->fd = -1;
    ds_test_stop_point("before-commit");
    if (!rc && o->force) {
        if (ds_outfile_check_target(o->path, 1)) rc = -1;
        else if (rename(o->tmp, o->path))
            rc = ds_failc(DS_ERR_IO, "%s: cannot rename the finished file into place: %s", o->path, strerror(errno));
    } else if (!rc && ds_rename_noreplace(o->tmp, o->path)) {
        rc = errno == EEXIST ? ds_fail("%s: appeared while this run was writing it; left as it is (use --force to replace it)", o->path)
                             : ds_failc(DS_ERR_IO, "%s: cannot rename the finished file into place: %s", o->path, strerror(errno));
    }
    if (rc) {
        ds_outfile_abort(o);
        return -1;
    }
    ds_tmpfile_unregister(o->tmp);
    free(o->path), free(o->tmp);
    o->path = o->tmp = NULL;
    return 0;
}

void ds_outfile_abort(ds_outfile *o) {
    if (o->tmp && o->fd >= 0) close(o->fd);
    o->fd = -1;
    if (o->tmp) unlink(o->tmp), ds_tmpfile_unregister(o->tmp);
    free(o->path), free(o->tmp);
    o->path = o->tmp = NULL;
}

char *ds_tmpdir_create(const char *parent, const char *base) {
    ds_outfile_remove_stale(parent);
    for (int attempt = 0; attempt < 100; attempt++) {
        char *dir = tmp_name(parent, base);
        if (!dir) break;
        if (!mkdir(dir, 0700)) return ds_tmpfile_register(dir, DS_TMP_TREE), dir;
        int err = errno;
        free(dir);
        if (err != EEXIST) return ds_failc(DS_ERR_IO, "%s: cannot create a temporary folder: %s", parent, strerror(err)), NULL;
    }
    return ds_fail("%s: cannot create a temporary folder", parent), NULL;
}

void ds_tmpdir_remove(char *dir) {
    if (!dir) return;
    ds_tmp_remove(dir, DS_TMP_TREE);
    ds_tmpfile_unregister(dir);
    free(dir);
}

int ds_close_stdout(void) {
    int bad = fflush(stdout) != 0;
    int err = bad ? errno : 0;
    bad |= ferror(stdout) != 0;
    /* Closing reports what the file system deferred (NFS, quotas); EBADF only says that fd 1
     * was closed from the start and nothing was written. */
    if (fclose(stdout) && !bad && errno != EBADF) bad = 1, err = errno;
    if (!bad) return 0;
    return ds_failc(DS_ERR_IO, "cannot write the standard output: %s", err ? strerror(err) : "write error");
}
