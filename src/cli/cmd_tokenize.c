/* diffscope tokenize / detokenize: text <-> token ids with a model's tokenizer.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/fileio.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "diffscope/tokenizer.h"
#include <cjson/cJSON.h>

static const char *tokenize_usage =
    "usage: diffscope tokenize PATH [--no-special] [--json] [TEXT]\n\n"
    "Encodes TEXT (or, when TEXT is absent, all of standard input, read as raw bytes so that\n"
    "newlines and tabs survive) with the tokenizer.json of PATH, a model folder or a\n"
    "tokenizer.json file, exactly as Hugging Face tokenizers does.\n"
    "Prints the ids on one line, comma-separated (the form --ids takes).\n\n";

static const char *detokenize_usage =
    "usage: diffscope detokenize PATH --ids 1,2,3 [--skip-special]\n\n"
    "Decodes token ids with the tokenizer.json of PATH (a model folder or a tokenizer.json\n"
    "file), as Hugging Face tokenizers' decode does, and prints the text and a newline.\n\n";

/* All of stdin as bytes; NULL with a message on failure. */
static char *read_stdin(size_t *len) {
    size_t cap = 65536, n = 0, k;
    char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += k;
        if (n > DS_MAX_TEXT_BYTES) { /* /dev/zero or a runaway pipe: not read until memory runs out */
            free(buf);
            ds_fail("standard input: more than the limit of %zu MiB of text", DS_MAX_TEXT_BYTES >> 20);
            return NULL;
        }
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    if (!buf) return ds_failc(DS_ERR_NOMEM, "out of memory reading standard input"), NULL;
    if (ferror(stdin)) {
        free(buf);
        return ds_fail("standard input: read error"), NULL;
    }
    *len = n;
    return buf;
}

/* {"ids": [...], "tokens": [...]}: the ids and their vocabulary strings. */
static int print_json(const ds_tokenizer *t, const int *ids, int n) {
    cJSON *o = cJSON_CreateObject(), *tokens = cJSON_CreateArray();
    cJSON_AddItemToObject(o, "ids", cJSON_CreateIntArray(ids, n));
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(tokens, cJSON_CreateString(ds_tokenizer_token_str(t, ids[i])));
    cJSON_AddItemToObject(o, "tokens", tokens);
    return cli_print_json(o);
}

int cmd_tokenize(int argc, char **argv) {
    int no_special = 0, json = 0, rc;
    const cli_opt opts[] = {
        {"no-special", 0, CLI_FLAG, &no_special, 0, 0, NULL, "do not add the post-processor's special tokens (the BOS of Llama)"},
        {"json", 0, CLI_FLAG, &json, 0, 0, NULL, "print {\"ids\": [...], \"tokens\": [...]} (tokens: vocabulary strings)"},
        {0}};
    const cli_cmd cmd = {"tokenize", tokenize_usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    int add_special = !no_special;
    if (optind >= argc) return cli_error("tokenize: missing PATH (see diffscope tokenize --help)");
    if (argc - optind > 2) return cli_error("tokenize: give TEXT as one quoted argument, or on standard input");
    const char *path = argv[optind];
    ds_tokenizer *t = ds_tokenizer_load(path);
    if (!t) return cli_lib_error();
    char *text;
    size_t len;
    if (argc - optind == 2) {
        text = strdup(argv[optind + 1]);
        len = text ? strlen(text) : 0;
    } else {
        text = read_stdin(&len);
    }
    if (!text) {
        ds_tokenizer_free(t);
        return cli_lib_error();
    }
    int *ids, n;
    if (ds_tokenizer_encode(t, text, len, add_special, &ids, &n)) {
        free(text);
        ds_tokenizer_free(t);
        return cli_lib_error();
    }
    rc = DS_EXIT_OK;
    if (json) {
        if (print_json(t, ids, n)) rc = cli_lib_error();
    } else {
        for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
        printf("\n");
    }
    free(ids);
    free(text);
    ds_tokenizer_free(t);
    return rc;
}

int cmd_detokenize(int argc, char **argv) {
    const char *ids_arg = NULL;
    int skip = 0, rc;
    const cli_opt opts[] = {{"ids", 0, CLI_STRING, &ids_arg, 0, 0, "LIST", "the ids, comma-separated"},
                            {"skip-special", 0, CLI_FLAG, &skip, 0, 0, NULL, "leave out special tokens (BOS, EOS, ...)"},
                            {0}};
    const cli_cmd cmd = {"detokenize", detokenize_usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (optind >= argc) return cli_error("detokenize: missing PATH (see diffscope detokenize --help)");
    if (argc - optind > 1) return cli_error("detokenize: unexpected argument '%s'", argv[optind + 1]);
    if (!ids_arg) return cli_error("detokenize: --ids is required");
    int *ids, n;
    if (cli_parse_ids(ids_arg, &ids, &n)) return cli_lib_error();
    ds_tokenizer *t = ds_tokenizer_load(argv[optind]);
    if (!t) {
        free(ids);
        return cli_lib_error();
    }
    rc = DS_EXIT_OK;
    for (int i = 0; i < n && rc == DS_EXIT_OK; i++)
        if (!ds_tokenizer_token_str(t, ids[i]))
            rc = cli_error("--ids: id %d is not in the vocabulary of %s (%d ids)", ids[i], argv[optind],
                           ds_tokenizer_vocab_size(t));
    if (rc == DS_EXIT_OK) {
        size_t len;
        char *text = ds_tokenizer_decode(t, ids, n, skip, &len);
        if (!text) {
            rc = cli_lib_error();
        } else {
            fwrite(text, 1, len, stdout); /* NULs included, as HF decodes them */
            putchar('\n');
            free(text);
        }
    }
    free(ids);
    ds_tokenizer_free(t);
    return rc;
}
