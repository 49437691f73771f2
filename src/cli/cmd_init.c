/* diffscope init OUT_DIR --like kajuma|small|tiny|CONFIG.json: a random-weight checkpoint of
 * a real shape (config.json + safetensors, sharded above 2 GB), loadable by transformers.
 * Weights follow transformers' initialisation: N(0, 0.02) matrices, unit norms, zero biases,
 * λ vectors N(0, 0.1). The values depend only on --seed and the tensor name. */
#include <limits.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "diffscope/config.h"
#include "base/fileio.h"
#include "io/st_writer.h"
#include "io/ckpt_folder.h"

static const char *usage =
    "usage: diffscope init OUT_DIR --like kajuma|small|tiny|CONFIG.json [options]\n\n"
    "Writes a random-weight checkpoint (config.json + model.safetensors, or shards and an\n"
    "index above 2 GB) of a real shape, for benchmarks and tests. It has no tokenizer.json\n"
    "(use --ids) unless --tokenizer copies one in.\n"
    "  kajuma  the shape of kajuma/DiffLlama-0.3B-handcut: D 2048, 16 layers, 32 heads, 8 kv\n"
    "          heads, head_dim 64, MLP 8192, vocab 128256, llama3 RoPE, tied (1.24 B params)\n"
    "  small   D 768, 12 layers, 12 heads, 4 kv heads, MLP 2048, vocab 32000 (125 M params)\n"
    "  tiny    D 64, 2 layers, 4 heads, 2 kv heads, MLP 128, vocab 256\n\n";

static const char *preset(const char *name) {
    if (!strcmp(name, "kajuma"))
        return "{\"hidden_size\": 2048, \"intermediate_size\": 8192, \"num_hidden_layers\": 16,"
               "\"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"head_dim\": 64, \"vocab_size\": 128256,"
               "\"max_position_embeddings\": 8192, \"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": true,"
               "\"bos_token_id\": 128000, \"eos_token_id\": 128001,"
               "\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 32.0,"
               "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}";
    if (!strcmp(name, "small"))
        return "{\"hidden_size\": 768, \"intermediate_size\": 2048, \"num_hidden_layers\": 12,"
               "\"num_attention_heads\": 12, \"num_key_value_heads\": 4, \"vocab_size\": 32000,"
               "\"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": false,"
               "\"bos_token_id\": 1, \"eos_token_id\": 2,"
               "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}}";
    if (!strcmp(name, "tiny"))
        return "{\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
               "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 256,"
               "\"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": false,"
               "\"bos_token_id\": 1, \"eos_token_id\": 2,"
               "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}}";
    return NULL;
}

typedef struct {
    uint64_t seed;
    cli_progress progress; /* tensors written */
    long done;
} fill_ctx;

static uint64_t hash_name(const char *s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Normal(0, std) in fixed chunks, each seeded from (tensor, chunk), so the values do not
 * depend on the thread count. */
static void fill_normal(float *out, int64_t n, uint64_t seed, float std) {
    const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < (n + chunk - 1) / chunk; c++) {
        uint64_t st = seed ^ (uint64_t)c * 0xD1B54A32D192ED03ull;
        int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        for (int64_t i = c * chunk; i < end; i += 2) {
            double u1 = ((splitmix(&st) >> 11) + 1.0) / 9007199254740993.0;
            double u2 = (splitmix(&st) >> 11) / 9007199254740992.0;
            double r = sqrt(-2.0 * log(u1)) * std;
            out[i] = (float)(r * cos(2 * M_PI * u2));
            if (i + 1 < end) out[i + 1] = (float)(r * sin(2 * M_PI * u2));
        }
    }
}

static void fill(const char *name, float *out, int64_t n, void *user) {
    fill_ctx *c = user;
    cli_progress_step(&c->progress, ++c->done);
    size_t len = strlen(name);
    if (len > 5 && !strcmp(name + len - 5, ".bias")) {
        memset(out, 0, (size_t)n * sizeof *out);
    } else if (strstr(name, "norm.weight")) {
        for (int64_t i = 0; i < n; i++) out[i] = 1.0f;
    } else {
        fill_normal(out, n, hash_name(name, c->seed), strstr(name, ".lambda_") ? 0.1f : 0.02f);
    }
}

/* Declares each tensor of the architecture's table (src/model/arch.c) for this config. */
static int declare_one(const ds_tensor_ref *t, void *w) { return ds_st_writer_add(w, t->name, t->ndim, t->shape); }

/* The progress bar's total: one step per tensor the writer fills. */
static int count_one(const ds_tensor_ref *t, void *n) { return ++*(long *)n, 0; }

/* --tokenizer FILE must load with our tokenizer and have no id past the model's vocabulary
 * (a prompt's ids must be rows of the embedding). */
static int check_tokenizer(const char *path, const ds_config *c) {
    ds_tokenizer *tok = ds_tokenizer_load(path);
    if (!tok) {
        if (strncmp(ds_errmsg(), path, strlen(path))) ds_err_prefix(path);
        ds_err_prefix("--tokenizer");
        return -1;
    }
    int n = ds_tokenizer_vocab_size(tok);
    ds_tokenizer_free(tok);
    if (n > c->vocab_size)
        return ds_fail("--tokenizer %s: its ids go up to %d, past the model's vocab_size %d (set vocab_size >= %d "
                       "in the config)", path, n - 1, c->vocab_size, n);
    return 0;
}

/* Builds the config.json text: the preset or file, with model_type and architectures set. */
static char *config_text(const char *like, const ds_arch_desc *arch, const char *dtype) {
    const char *p = preset(like);
    char *file_text = NULL;
    if (!p) {
        if (!(file_text = ds_read_file(like, DS_MAX_CONFIG_BYTES, NULL))) {
            ds_fail("--like: '%s' is not kajuma, small, tiny or a readable config.json", like);
            return NULL;
        }
        p = file_text;
    }
    cJSON *j = p ? cJSON_Parse(p) : NULL;
    free(file_text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        ds_fail("%s: not a JSON object", like);
        return NULL;
    }
    cJSON_DeleteItemFromObject(j, "model_type");
    cJSON_DeleteItemFromObject(j, "architectures");
    cJSON_DeleteItemFromObject(j, "dtype");
    cJSON_AddStringToObject(j, "model_type", arch->model_type);
    cJSON *a = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(arch->hf_class));
    cJSON_AddStringToObject(j, "dtype", strcmp(dtype, "bf16") ? "float32" : "bfloat16");
    if (!cJSON_GetObjectItem(j, "hidden_act")) cJSON_AddStringToObject(j, "hidden_act", "silu");
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    return s;
}

/* The checkpoint of the config LIKE (a preset or a file) into DIR, whole or not at all
 * (src/io/ckpt_folder.h). Everything that can be refused is checked before anything is created. */
static int write_checkpoint(const char *dir, const char *like, const ds_arch_desc *arch, const char *dtype, int seed,
                            int shard_mb, const char *tokenizer, int force) {
    char *text = config_text(like, arch, dtype);
    if (!text) return cli_lib_error();
    ds_config c;
    if (ds_config_parse(&c, text, like)) {
        free(text);
        return cli_lib_error();
    }
    if (tokenizer && check_tokenizer(tokenizer, &c)) {
        ds_config_free(&c);
        free(text);
        return cli_lib_error();
    }
    ds_ckpt_folder t;
    int rc = ds_ckpt_folder_open(&t, dir, force);
    if (!rc && tokenizer && ds_ckpt_folder_copy_file(&t, "tokenizer.json", tokenizer, DS_MAX_TOKENIZER_BYTES)) {
        ds_ckpt_folder_abort(&t);
        rc = -1;
    }
    /* The checkpoint's size against the free space of DIR, unless --force. */
    double bytes = (double)ds_config_param_count(&c) * (strcmp(dtype, "bf16") ? 4 : 2);
    if (rc || (!force && ds_check_free_space(dir, bytes))) {
        if (!rc) ds_ckpt_folder_abort(&t);
        ds_config_free(&c);
        free(text);
        return cli_lib_error();
    }
    ds_st_writer *w = rc ? NULL : ds_st_writer_new(t.stage, dir, strcmp(dtype, "bf16") ? DS_DT_F32 : DS_DT_BF16,
                                                   (uint64_t)shard_mb * 1000000ull);
    fill_ctx fc = {.seed = (uint64_t)seed};
    long tensors = 0;
    ds_config_tensors(&c, count_one, &tensors);
    cli_progress_start(&fc.progress, "init", tensors);
    if (!w) {
        rc = -1;
    } else if (ds_config_tensors(&c, declare_one, w)) {
        ds_st_writer_free(w);
        rc = -1;
    } else {
        rc = ds_st_writer_write(w, fill, &fc); /* frees w */
    }
    if (!rc) rc = ds_ckpt_folder_add_file(&t, "config.json", text);
    if (!rc) rc = ds_ckpt_folder_commit(&t);
    else ds_ckpt_folder_abort(&t);
    cli_progress_end(&fc.progress);
    free(text);
    if (rc) {
        ds_config_free(&c);
        return cli_lib_error();
    }
    fprintf(stderr, "diffscope: wrote %s: %s, %.1f M parameters, %s\n", dir, ds_arch_name(c.arch),
            ds_config_param_count(&c) / 1e6, dtype);
    ds_config_free(&c);
    return DS_EXIT_OK;
}

int cmd_init(int argc, char **argv) {
    const char *like = NULL, *arch_name = "diffllama", *dtype = "f32", *tokenizer = NULL;
    char archs[128]; /* the choices: the model types of the architecture table */
    int seed = 0, shard_mb = 2000, force = 0, rc;
    const cli_opt opts[] = {
        {"like", 0, CLI_STRING, &like, 0, 0, "kajuma|small|tiny|CONFIG.json", NULL},
        {"arch", 0, CLI_CHOICE, &arch_name, 0, 0, ds_arch_names(archs, sizeof archs, "|"),
         "architecture (default diffllama)"},
        {"dtype", 0, CLI_CHOICE, &dtype, 0, 0, "f32|bf16", "storage dtype (default f32)"},
        {"seed", 0, CLI_INT, &seed, 0, INT_MAX, "S", "random seed (default 0)"},
        {"shard-mb", 0, CLI_INT, &shard_mb, 1, 1 << 20, "N", "shard size in MB (default 2000)"},
        {"tokenizer", 0, CLI_STRING, &tokenizer, 0, 0, "FILE",
         "copy this tokenizer.json into OUT_DIR (so that --prompt works); it\nmust load and its ids must fit the config's vocab_size"},
        {"force", 0, CLI_FLAG, &force, 0, 0, NULL, "replace the checkpoint OUT_DIR holds (its whole layout, and its\ntokenizer.json with --tokenizer), even when the checkpoint exceeds\nthe free space"},
        {0}};
    const cli_cmd cmd = {"init", usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (optind != argc - 1 || !like) return cli_error("init needs OUT_DIR and --like (see diffscope init --help)");
    return write_checkpoint(argv[optind], like, ds_arch_find(arch_name), dtype, seed, shard_mb, tokenizer, force);
}
