/* diffscope info MODEL: architecture, shapes, parameters, storage dtype, λ per layer. */
#include <math.h>
#include <stdio.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "diffscope/model.h"
#include <cjson/cJSON.h>

static const char *usage =
    "usage: diffscope info MODEL [--json] [--allow-nonfinite] [--compute f32|bf16]\n\n"
    "Prints the architecture, shapes, parameter count and storage dtype of the checkpoint in\n"
    "the folder MODEL, the compute mode it was loaded in and the kernel family bf16 products\n"
    "run on here (AMX, AVX512-BF16, AVX512 emulation or AVX2), and for a differential model\n"
    "(DiffLlama) lambda_init and lambda of every layer.\n\n";

static int print_json(const ds_model *m) {
    const ds_config *c = ds_model_config(m);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arch", ds_arch_name(c->arch));
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "num_layers", c->num_layers);
    cJSON_AddNumberToObject(o, "num_heads", c->num_heads);
    cJSON_AddNumberToObject(o, "num_kv_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddStringToObject(o, "rope_type", c->rope_type == DS_ROPE_LLAMA3 ? "llama3" : "default");
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddBoolToObject(o, "qkv_bias", c->qkv_bias);
    cJSON_AddBoolToObject(o, "o_bias", c->o_bias);
    cJSON_AddBoolToObject(o, "mlp_bias", c->mlp_bias);
    cJSON_AddBoolToObject(o, "qk_norm", c->desc->qk_norm);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(o, "parameters", (double)ds_config_param_count(c));
    cJSON_AddStringToObject(o, "storage_dtype", ds_model_storage_dtype(m));
    cJSON_AddStringToObject(o, "compute", ds_compute_name(ds_model_compute(m)));
    cJSON_AddStringToObject(o, "bf16_kernel", ds_bf16_kernel());
    cJSON_AddStringToObject(o, "bf16_impl", ds_bf16_impl());
    if (c->desc->differential) {
        static const char *names[4] = {"lambda_1", "lambda_2", "lambda_init", "lambda_full"};
        cJSON *layers = cJSON_AddArrayToObject(o, "lambda");
        for (int l = 0; l < c->num_layers; l++) {
            double lam[4];
            ds_model_lambda(m, l, lam);
            cJSON *lj = cJSON_CreateObject();
            cJSON_AddNumberToObject(lj, "layer", l);
            for (int k = 0; k < 4; k++) cJSON_AddNumberToObject(lj, names[k], lam[k]);
            cJSON_AddItemToArray(layers, lj);
        }
    }
    return cli_print_json(o);
}

static void print_text(const ds_model *m) {
    const ds_config *c = ds_model_config(m);
    printf("model          %s\n", ds_model_dir(m));
    printf("architecture   %s\n", c->desc->title);
    printf("parameters     %lld (%.1f M)\n", ds_config_param_count(c), ds_config_param_count(c) / 1e6);
    printf("storage dtype  %s\n", ds_model_storage_dtype(m));
    printf("compute        %s\n", ds_compute_name(ds_model_compute(m)));
    printf("bf16 kernel    %s (implementation: %s)\n", ds_bf16_kernel(), ds_bf16_impl());
    printf("layers         %d\n", c->num_layers);
    printf("hidden         %d (intermediate %d)\n", c->hidden_size, c->intermediate_size);
    printf("heads          %d query, %d key/value, head_dim %d", c->num_heads, c->num_kv_heads, c->head_dim);
    if (c->desc->differential) printf(" (%d differential heads)", c->map_heads);
    printf("\nvocabulary     %d\n", c->vocab_size);
    printf("positions      %d (RoPE %s, theta %g)\n", c->max_position_embeddings,
           c->rope_type == DS_ROPE_LLAMA3 ? "llama3" : "default", c->rope_theta);
    printf("tied embedding %s, q/k/v bias %s, o bias %s, mlp bias %s, q/k norm %s, rms_norm_eps %g\n",
           c->tie_word_embeddings ? "yes" : "no", c->qkv_bias ? "yes" : "no", c->o_bias ? "yes" : "no",
           c->mlp_bias ? "yes" : "no", c->desc->qk_norm ? "yes" : "no", c->rms_norm_eps);
    if (!c->desc->differential) return;
    printf("\nlayer  lambda_1   lambda_2   lambda_init  lambda\n");
    for (int l = 0; l < c->num_layers; l++) {
        double lam[4];
        ds_model_lambda(m, l, lam);
        printf("%5d  %9.6f  %9.6f  %11.6f  %9.6f\n", l, lam[0], lam[1], lam[2], lam[3]);
    }
}

int cmd_info(int argc, char **argv) {
    int json = 0, allow_nonfinite = 0, rc;
    const char *compute = "f32";
    const cli_opt opts[] = {{"json", 0, CLI_FLAG, &json, 0, 0, NULL, "one JSON object on stdout"},
                            {"compute", 0, CLI_CHOICE, &compute, 0, 0, "f32|bf16",
                             "load the weights for this compute mode (default f32)"},
                            {"allow-nonfinite", 0, CLI_FLAG, &allow_nonfinite, 0, 0, NULL,
                             "load a checkpoint with NaN/inf weights or lambda (JSON shows null)"},
                            {0}};
    const cli_cmd cmd = {"info", usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    ds_set_allow_nonfinite(allow_nonfinite);
    ds_compute mode = DS_COMPUTE_F32;
    ds_compute_parse(compute, &mode);
    ds_set_compute(mode);
    if (optind != argc - 1) return cli_error("info needs one MODEL folder (see diffscope info --help)");
    ds_model *m = ds_model_load(argv[optind]);
    if (!m) return cli_lib_error();
    rc = DS_EXIT_OK;
    if (!json) print_text(m);
    else if (print_json(m)) rc = cli_lib_error();
    ds_model_free(m);
    return rc;
}
