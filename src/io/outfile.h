/* Output files that never clobber, never follow a planted link and never stay half-written
 * (the contract is in docs/reliability.md, "Output safety").
 *
 * ds_outfile_create() checks the target (see ds_outfile_check_target), removes the stale
 * temporary files that dead diffscope processes of this machine left in the target's folder,
 * and creates a temporary file next to the target under a fresh name
 * (TARGET.tmp-PID-MACHINE-RANDOM) with O_CREAT|O_EXCL|O_NOFOLLOW, registered for removal on a
 * fatal signal. ds_outfile_commit() gives it the target's name: without FORCE only if that name
 * is still free at that instant (renameat2 RENAME_NOREPLACE, or link()+unlink() where the file
 * system lacks it), so a file that appeared meanwhile is never replaced; with FORCE by
 * rename(), after checking the target again. */
#ifndef DIFFSCOPE_OUTFILE_H
#define DIFFSCOPE_OUTFILE_H
#include <stddef.h>

typedef struct {
    char *path; /* the file asked for */
    char *tmp;  /* the temporary file being written */
    int fd;     /* open for reading and writing on tmp; a writer may take it (then set -1) */
    int force;
} ds_outfile;

/* 0 when PATH may be written: it does not exist, or FORCE and it is a regular file with a write
 * permission bit. Refused (-1 and a message naming PATH): an existing PATH without FORCE; with
 * FORCE, a symbolic link, folder, device, FIFO or socket, a read-only file, or a file this
 * process has open or mapped (one of its inputs: -o naming the model's weights). */
int ds_outfile_check_target(const char *path, int force);
int ds_outfile_create(ds_outfile *o, const char *path, int force);
/* Allocates the blocks of bytes [OFF, OFF+LEN) of the temporary file, which the caller will
 * fill: a full disk shows now, before the data is made, and filling allocated blocks through
 * the page cache costs less than filling holes (ext4 reserves each new block of a hole as it
 * is written). 0, also where the file system cannot allocate ahead (its writes allocate as
 * they go); -1 with a message naming the output when there is no room (DS_ERR_IO). */
int ds_outfile_reserve(const ds_outfile *o, long long off, long long len);
/* Closes fd (when still open) and commits; on failure the temporary file is removed. */
int ds_outfile_commit(ds_outfile *o);
/* Removes the temporary file; harmless on a zeroed or finished ds_outfile. */
void ds_outfile_abort(ds_outfile *o);

/* rename(FROM, TO) only if TO does not exist at that instant: -1 with errno EEXIST if it does. */
int ds_rename_noreplace(const char *from, const char *to);

/* A new private folder PARENT/BASE.tmp-PID-MACHINE-RANDOM (mode 0700), registered for removal
 * with its files on a fatal signal; stale ones of dead processes in PARENT are removed first.
 * Returns its malloc'd path, or NULL with a message. */
char *ds_tmpdir_create(const char *parent, const char *base);
/* Removes the folder (and the plain files in it), unregisters it and frees DIR. */
void ds_tmpdir_remove(char *dir);

/* Removes temporary files and folders in DIR whose name says a diffscope process of this
 * machine (same host name and PID namespace) made them and whose process is gone. */
void ds_outfile_remove_stale(const char *dir);
/* Splits a temporary name made here: 1 and *PID, *MACHINE when NAME is one. */
int ds_outfile_parse_tmp_name(const char *name, long *pid, unsigned *machine);

/* Flushes and closes stdout: 0, or -1 and a message when something written to it was lost
 * (a full disk, /dev/full, a closed pipe with SIGPIPE ignored). */
int ds_close_stdout(void);

#endif
