/* The order in which a rank runs prompts. Alone (one process, or a --shard job) it runs its own
 * range from the front. As one of several MPI ranks it does the same, claiming each prompt
 * first, and then takes what is left of the other ranks' ranges from their backs: a rank that
 * finishes early (a faster core, shorter prompts) helps the slower ones instead of waiting.
 * A claim is a symbolic link OUT.h5.shards/claims/BBBBB/PPPPPPPP -> R (the rank's number) made
 * with symlink(2), which fails when the name exists, so exactly one rank runs each prompt
 * (atomic on local file systems, NFS, Lustre and GPFS). BBBBB is P / CLAIM_BUCKET: creating or
 * removing a name locks its folder, so ranks working in their own ranges, and removing their
 * ranges' claims at the end, each lock folders of their own rather than all one. Which rank
 * ran a prompt changes nothing in the results: records are keyed by prompt, and once all ranks
 * have finished each writes its range's shard from its own records and those of the ranks
 * that its range's claims name. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/path.h"
#include "cli/sweep.h"
#include "diffscope/error.h"

enum { CLAIM_BUCKET = 1024 };

/* DIR/claims, or DIR/claims/NAME (malloc'd). */
static char *claim_path(const char *dir, const char *name) {
    char rel[64];
    snprintf(rel, sizeof rel, "claims%s%s", name ? "/" : "", name ? name : "");
    return ds_path_join(dir, rel);
}

/* Removes the folder PATH's entries, one level of folders below it included, then PATH. */
static void remove_folder(const char *path, int depth) {
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *p = e->d_name[0] == '.' ? NULL : ds_path_join(path, e->d_name);
        if (!p) continue;
        if (unlink(p) && (errno == EISDIR || errno == EPERM) && depth > 0) remove_folder(p, depth - 1);
        free(p);
    }
    if (d) closedir(d), rmdir(path);
}

void sweep_claims_remove(const char *dir) {
    char *claims = claim_path(dir, NULL);
    if (claims) remove_folder(claims, 1);
    free(claims);
}

/* DIR/claims/BBBBB/PPPPPPPP, prompt I's claim, or with NAME 0 its bucket's folder (malloc'd). */
static char *claim_file(const char *dir, int i, int name) {
    char rel[32];
    if (name) snprintf(rel, sizeof rel, "%05d/%08d", i / CLAIM_BUCKET, i);
    else snprintf(rel, sizeof rel, "%05d", i / CLAIM_BUCKET);
    return claim_path(dir, rel);
}

void sweep_claims_release(const char *dir, int a, int b) {
    for (int i = a; i < b; i++) {
        char *p = claim_file(dir, i, 1);
        if (p) unlink(p);
        free(p);
    }
}

int sweep_claims_reset(const char *dir) {
    sweep_claims_remove(dir); /* a killed run's claims */
    char *claims = claim_path(dir, NULL);
    int rc = !claims ? -1 : mkdir(claims, 0755) && errno != EEXIST ? ds_fail("%s: cannot create: %s", claims, strerror(errno)) : 0;
    free(claims);
    return rc;
}

/* The rank that claimed prompt I, or -1 when its claim does not say. */
static int claimed_by(const char *dir, int i) {
    char *p = claim_file(dir, i, 1), num[16] = {0};
    int r = -1;
    if (p && readlink(p, num, sizeof num - 1) > 0 && sscanf(num, "%d", &r) != 1) r = -1;
    free(p);
    return r;
}

/* 1: prompt I is this rank's (RANK) now, 0: another rank's, -1: error. The claim is a symbolic
 * link whose target is the rank's number, so that the prompt's owner knows whose journal to
 * read it from; symlink(2) fails when the name exists, so one rank wins. A short target is
 * kept in the link's inode: a claim has no data block to allocate when written back, and to
 * free again when removed (a file holding the number made each removal about ten times
 * slower). An existing link that names this rank is its own: a call retried over NFS. */
static int claim(const char *dir, int i, int rank) {
    char *p = claim_file(dir, i, 1), num[16];
    struct stat st;
    if (!p) return -1;
    /* A rank that has run its own range looks at every prompt of the others': most are taken.
     * Looking a name up takes no lock; creating one locks its folder. */
    if (!lstat(p, &st)) return free(p), 0;
    snprintf(num, sizeof num, "%d", rank);
    int made = !symlink(num, p);
    if (!made && errno == ENOENT) { /* the bucket's first claim: its folder, made by whoever comes first */
        char *bucket = claim_file(dir, i, 0);
        if (!bucket || (mkdir(bucket, 0755) && errno != EEXIST)) {
            if (bucket) ds_fail("%s: cannot create: %s", bucket, strerror(errno));
            free(bucket), free(p);
            return -1;
        }
        free(bucket);
        made = !symlink(num, p);
    }
    int rc = made ? 1 : errno == EEXIST ? claimed_by(dir, i) == rank : ds_fail("%s: cannot create: %s", p, strerror(errno));
    free(p);
    return rc;
}

int sweep_claims_gather(const char *dir, const sweep_setup *su, int nranks, int a, int b, void **recs) {
    unsigned char *ran = calloc((size_t)nranks, 1);
    if (!ran) return ds_failc(DS_ERR_NOMEM, "out of memory");
    int all = 0, rc = 0;
    for (int i = a; !all && i < b; i++) {
        int r = recs[i] ? -2 : claimed_by(dir, i);
        if (r >= nranks || r == -1) all = 1;
        else if (r >= 0) ran[r] = 1;
    }
    if (all) rc = sweep_journal_load(dir, su, a, b, recs);
    for (int r = 0; !all && !rc && r < nranks; r++)
        if (ran[r]) rc = sweep_journal_load_rank(dir, su, r, nranks, a, b, recs);
    free(ran);
    return rc;
}

void sweep_queue_init(sweep_queue *q, const char *dir, const int *first, int rank, int nranks, int shared) {
    *q = (sweep_queue){.dir = dir, .first = first, .rank = rank, .nranks = nranks, .shared = shared,
                       .next = first[rank]};
}

int sweep_queue_next(sweep_queue *q, void *const *recs) {
    for (;;) {
        int v = (q->rank + q->victim) % q->nranks;
        if (q->victim ? q->next < q->first[v] : q->next >= q->first[v + 1]) {
            if (!q->shared || ++q->victim >= q->nranks) return -1;
            q->next = q->first[(q->rank + q->victim) % q->nranks + 1] - 1;
            continue;
        }
        int i = q->victim ? q->next-- : q->next++;
        if (recs[i]) continue; /* done in an earlier run */
        int c = q->shared ? claim(q->dir, i, q->rank) : 1;
        if (c) return c < 0 ? -2 : i;
        /* Taken. Ranks take another's range from its back, one prompt after the other, and its
         * owner from the front: in this rank's own range, whoever took it has taken all that
         * follows; in another's, when its owner took it, all that precedes. Either way that
         * range has nothing left for this rank. */
        if (!q->victim) q->next = q->first[v + 1];
        else if (claimed_by(q->dir, i) == v) q->next = q->first[v] - 1;
    }
}
