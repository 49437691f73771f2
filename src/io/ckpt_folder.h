/* Writing a checkpoint folder (config.json with model.safetensors, or shards and an index) so
 * that it is either the old checkpoint or the whole new one, never a mix:
 *
 *  - ds_ckpt_folder_open() creates the folder (and missing parents, removed again on failure),
 *    takes an exclusive flock() on it, so a second writer into the same folder is refused
 *    instead of interleaving, refuses a folder that already holds checkpoint files unless FORCE
 *    (then each must be a writable regular file), and makes a staging folder inside it
 *    (.diffscope-init.tmp-..., removed with its files on failure or a fatal signal);
 *  - the caller writes every file into t->stage;
 *  - ds_ckpt_folder_commit() moves them into the folder with signals held, after removing the
 *    files of the old layout that the new one does not replace (shards and index when the new
 *    checkpoint is one file, model.safetensors and surplus shards when it is sharded), and
 *    config.json last. */
#ifndef DIFFSCOPE_CKPT_FOLDER_H
#define DIFFSCOPE_CKPT_FOLDER_H
#include <stddef.h>

typedef struct {
    char *dir;   /* the checkpoint folder */
    char *stage; /* the staging folder inside it */
    char **made; /* folders this run created, parents first */
    int n_made;
    int lock_fd;
    int force;
} ds_ckpt_folder;

int ds_ckpt_folder_open(ds_ckpt_folder *t, const char *dir, int force);
/* Writes TEXT as NAME in the staging folder. */
int ds_ckpt_folder_add_file(ds_ckpt_folder *t, const char *name, const char *text);
/* Copies the file SRC (at most MAX bytes) as NAME into the staging folder. A NAME that is not
 * a file of the checkpoint layout (tokenizer.json) must not exist in the folder unless FORCE:
 * it is refused here, before anything is moved. */
int ds_ckpt_folder_copy_file(ds_ckpt_folder *t, const char *name, const char *src, size_t max);
/* Moves the staged files into place; on failure (or after abort) nothing new is left. */
int ds_ckpt_folder_commit(ds_ckpt_folder *t);
void ds_ckpt_folder_abort(ds_ckpt_folder *t);

/* 1 when NAME is one of the files of a checkpoint's layout: config.json, model.safetensors,
 * model.safetensors.index.json, model-NNNNN-of-NNNNN.safetensors. */
int ds_ckpt_is_layout_file(const char *name);

#endif
