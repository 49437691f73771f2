/* src/io/outfile.c and src/io/ckpt_folder.c at the library level: temporary names are parsed
 * back exactly (the stale clean-up must never take a user's file for one of ours), names of a
 * checkpoint's layout are recognised, a commit without force never replaces a file that
 * appeared meanwhile, and an abandoned ds_outfile leaves nothing. */
#include "test.h"
#include "diffscope/error.h"
#include "io/ckpt_folder.h"
#include "io/outfile.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

TEST(tmp_names_parse_exactly) {
    long pid;
    unsigned m;
    CHECK(ds_outfile_parse_tmp_name("out.h5.tmp-123-0a1b2c3d-x9y8z7", &pid, &m) && pid == 123 && m == 0x0a1b2c3du,
          "pid %ld machine %x", pid, m);
    CHECK(ds_outfile_parse_tmp_name("a.tmp-b.tmp-7-ffffffff-aaaaaa", &pid, &m) && pid == 7, "last .tmp- counts");
    static const char *not_ours[] = {"out.h5", "out.h5.tmp123", "out.h5.tmp-123-0a1b2c3d-x9y8z", "x.tmp-123-0a1b2c3d-x9y8z7.bak",
                                     "x.tmp-123-0A1B2C3D-x9y8z7", "x.tmp--0a1b2c3d-x9y8z7", "x.tmp-0-0a1b2c3d-x9y8z7",
                                     "x.tmp-12-0a1b2c3-x9y8z7a"};
    for (size_t i = 0; i < sizeof not_ours / sizeof *not_ours; i++)
        CHECK(!ds_outfile_parse_tmp_name(not_ours[i], &pid, &m), "'%s' taken for a temporary name", not_ours[i]);
}

TEST(layout_file_names) {
    static const char *yes[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                                "model-00001-of-00002.safetensors"};
    static const char *no[] = {"tokenizer.json", "model-00001-of-00002.safetensors.bak", "model.safetensors.tmp",
                               "model-1.safetensors", "generation_config.json"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) CHECK(ds_ckpt_is_layout_file(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) CHECK(!ds_ckpt_is_layout_file(no[i]), "%s", no[i]);
}

static int entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* A new folder DIR (a mkdtemp template) and an output O to PATH = DIR/out in it: 0, or -1. */
static int create_in_new_folder(ds_outfile *o, char *dir, char *path, size_t size) {
    if (!mkdtemp(dir)) return -1;
    snprintf(path, size, "%s/out", dir);
    return ds_outfile_create(o, path, 0);
}

TEST(commit_never_replaces_without_force) {
    char dir[] = "/tmp/ds-outfile-XXXXXX", path[64];
    ds_outfile o;
    REQUIRE(!create_in_new_folder(&o, dir, path, sizeof path), "mkdtemp or create: %s", ds_errmsg());
    CHECK(write(o.fd, "new", 3) == 3, "write");
    FILE *f = fopen(path, "w"); /* someone else's file appears at the target */
    fputs("theirs", f);
    fclose(f);
    CHECK(ds_outfile_commit(&o) < 0, "the commit replaced a file that appeared meanwhile");
    char buf[16] = {0};
    f = fopen(path, "r");
    CHECK(f && fread(buf, 1, sizeof buf - 1, f) == 6 && !strcmp(buf, "theirs"), "target now '%s'", buf);
    if (f) fclose(f);
    CHECK(entries(dir) == 1, "%d files left in the folder", entries(dir));

    REQUIRE(!ds_outfile_create(&o, path, 1), "create with force: %s", ds_errmsg());
    ds_outfile_abort(&o);
    CHECK(entries(dir) == 1, "abort left %d files", entries(dir));
    unlink(path);
    rmdir(dir);
}

/* A reserved range is allocated on disk at once (where the file system can) and reads as
 * zeros; what is written into it afterwards reads back; an empty range does nothing. */
TEST(reserve_allocates_the_range) {
    char dir[] = "/tmp/ds-outfile-XXXXXX", path[64];
    ds_outfile o;
    REQUIRE(!create_in_new_folder(&o, dir, path, sizeof path), "mkdtemp or create: %s", ds_errmsg());
    const long long off = 8192, len = 1 << 20;
    CHECK(ds_outfile_reserve(&o, off, 0) == 0, "an empty range: %s", ds_errmsg());
    CHECK(ds_outfile_reserve(&o, off, len) == 0, "%s", ds_errmsg());
    struct stat st;
    REQUIRE(!fstat(o.fd, &st), "fstat");
    if (fallocate(o.fd, 0, 0, 4096) && errno == EOPNOTSUPP) {
        ds_outfile_abort(&o);
        rmdir(dir);
        SKIP("%s cannot allocate ahead", dir);
    }
    CHECK(st.st_size == off + len, "size %lld, want %lld", (long long)st.st_size, off + len);
    CHECK((long long)st.st_blocks * 512 >= len, "%lld bytes allocated, want %lld", (long long)st.st_blocks * 512, len);
    char *back = malloc((size_t)len);
    REQUIRE(back, "out of memory");
    CHECK(pread(o.fd, back, (size_t)len, off) == len, "read");
    long long nonzero = 0;
    for (long long i = 0; i < len; i++) nonzero += back[i] != 0;
    CHECK(nonzero == 0, "%lld reserved bytes not zero", nonzero);
    CHECK(pwrite(o.fd, "data", 4, off + 100) == 4 && pread(o.fd, back, 4, off + 100) == 4 && !memcmp(back, "data", 4),
          "written into the range, read back '%.4s'", back);
    free(back);
    ds_outfile_abort(&o);
    CHECK(entries(dir) == 0, "abort left %d files", entries(dir));
    rmdir(dir);
}

int main(void) {
    RUN(tmp_names_parse_exactly);
    RUN(layout_file_names);
    RUN(commit_never_replaces_without_force);
    RUN(reserve_allocates_the_range);
    return test_summary();
}
