/* The prompts of a sweep: a JSONL file checked line by line before any work, or needle's grid
 * of context lengths × depths × trials built with needle's prompt builders (cli/needle.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/fileio.h"
#include "cli/needle.h"
#include "cli/sweep.h"
#include "diffscope/error.h"
#include "diffscope/span.h"

int sweep_parse_depths(const char *s, int **out, int *n) {
    int a, b, step;
    char extra;
    if (sscanf(s, "%d:%d:%d%c", &a, &b, &step, &extra) != 3) return cli_parse_list(s, "", 0, 100, out, n);
    if (a < 0 || b > 100 || a > b || step <= 0)
        return ds_fail("'%s' is not A:B:STEP with 0 <= A <= B <= 100 and STEP > 0", s);
    *n = (b - a) / step + 1;
    if (!(*out = malloc((size_t)*n * sizeof **out))) return ds_failc(DS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < *n; i++) (*out)[i] = a + i * step;
    return 0;
}

/* ---- JSONL ---- */

/* A JSON number that is an int in LO..HI. */
static int json_int(const cJSON *x, long lo, long hi, int *out) {
    if (!cJSON_IsNumber(x) || x->valuedouble != (double)(long)x->valuedouble || x->valuedouble < lo ||
        x->valuedouble > hi)
        return -1;
    *out = (int)x->valuedouble;
    return 0;
}

static int parse_ids(const cJSON *arr, int vocab, int **ids, int *n) {
    int cnt = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || cnt == 0) return ds_fail("\"ids\" is not a non-empty list of token ids");
    if (!(*ids = malloc((size_t)cnt * sizeof **ids))) return ds_failc(DS_ERR_NOMEM, "out of memory");
    *n = cnt;
    int i = 0;
    for (const cJSON *x = arr->child; x; x = x->next, i++)
        if (json_int(x, 0, vocab - 1, &(*ids)[i]))
            return ds_fail("\"ids\"[%d] is not a token id of the model (0..%d)", i, vocab - 1);
    return 0;
}

/* The span: text found among the tokens, or [i, j]. */
static int parse_span(const cJSON *span, const sweep_opts *o, sweep_prompt *p) {
    if (cJSON_IsString(span)) {
        const ds_tokenizer *t = cli_tokenizer(o->model[0]);
        if (!t || ds_span_find(t, p->ids, p->n, span->valuestring, &p->span_begin, &p->span_end)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", ds_errmsg()); /* ds_fail formats into ds_errmsg's buffer */
            return ds_fail("\"span\": %s", msg);
        }
        return 0;
    }
    if (cJSON_GetArraySize(span) != 2 || json_int(cJSON_GetArrayItem(span, 0), 0, p->n, &p->span_begin) ||
        json_int(cJSON_GetArrayItem(span, 1), 0, p->n, &p->span_end) || p->span_end <= p->span_begin)
        return ds_fail("\"span\" is neither text nor [i, j] with 0 < i < j <= %d", p->n);
    return 0;
}

static int parse_line(const char *line, const sweep_opts *o, const ds_config *ca, sweep_prompt *p) {
    cJSON *j = cJSON_Parse(line);
    int rc = -1;
    if (!cJSON_IsObject(j)) {
        ds_fail("not a JSON object");
        goto out;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text"), *ids = cJSON_GetObjectItemCaseSensitive(j, "ids");
    if (!text == !ids) {
        ds_fail("give \"text\" or \"ids\" (one of them)");
        goto out;
    }
    if (text && !cJSON_IsString(text)) {
        ds_fail("\"text\" is not a string");
        goto out;
    }
    if (text ? cli_tokenize_prompt(o->model[0], text->valuestring, !o->in.no_special, &p->ids, &p->n, NULL)
             : parse_ids(ids, ca->vocab_size, &p->ids, &p->n))
        goto out;
    if (p->n > ca->max_position_embeddings && !o->in.allow_long) {
        ds_fail("%d tokens, more than max_position_embeddings (%d); --allow-long runs them anyway", p->n,
                ca->max_position_embeddings);
        goto out;
    }
    const cJSON *span = cJSON_GetObjectItemCaseSensitive(j, "span"), *q = cJSON_GetObjectItemCaseSensitive(j, "query");
    p->query = p->n - 1;
    if (q && json_int(q, -p->n, p->n - 1, &p->query)) {
        ds_fail("\"query\" is not a token index of the prompt (0..%d, or -1..-%d)", p->n - 1, p->n);
        goto out;
    }
    if (p->query < 0) p->query += p->n;
    if (span && !cJSON_IsNull(span) && parse_span(span, o, p)) goto out;
    ds_attn_stats_opts so = {.query = p->query, .span_begin = p->span_begin, .span_end = p->span_end};
    if (ds_attn_stats_check(&so, p->n)) goto out;
    cJSON_DeleteItemFromObjectCaseSensitive(j, "ids");
    p->meta = cJSON_PrintUnformatted(j);
    rc = p->meta ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
out:
    const char *near = cJSON_GetErrorPtr();
    if (!j && near && *near) ds_fail("not valid JSON (near '%.20s')", near);
    else if (!j) ds_fail("not valid JSON (it ends too early)");
    cJSON_Delete(j);
    return rc;
}

static int load_jsonl(sweep_prompts *ps, const sweep_opts *o, const ds_config *ca) {
    char *buf = ds_read_file(o->prompts, DS_MAX_TEXT_BYTES, NULL);
    if (!buf) return -1;
    int cap = 0, lineno = 0, rc = 0;
    for (char *line = buf, *next; !rc && line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        if (!line[strspn(line, " \t\r")]) continue; /* blank lines */
        if (ps->n == cap) {
            cap = cap ? 2 * cap : 64;
            sweep_prompt *p = realloc(ps->p, (size_t)cap * sizeof *p);
            if (!p) {
                rc = ds_failc(DS_ERR_NOMEM, "out of memory");
                break;
            }
            ps->p = p;
        }
        sweep_prompt *p = &ps->p[ps->n];
        memset(p, 0, sizeof *p);
        p->answer_id = p->length = p->depth = p->trial = -1;
        ps->n++;
        if (parse_line(line, o, ca, p)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", ds_errmsg());
            rc = ds_fail("%s:%d: %s", o->prompts, lineno, msg);
        }
    }
    free(buf);
    if (!rc && ps->n == 0) rc = ds_fail("%s: no prompts (one JSON object per line)", o->prompts);
    return rc;
}

/* ---- the needle grid ---- */

static int grid_meta(sweep_prompt *p) {
    char buf[160];
    snprintf(buf, sizeof buf, "{\"length\":%d,\"depth\":%d,\"trial\":%d,\"answer_id\":%d}", p->length, p->depth,
             p->trial, p->answer_id);
    return (p->meta = strdup(buf)) ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
}

/* Each length's prompts are those of `diffscope needle --context-tokens N --depths ... --trials
 * K --seed S` (the random stream restarts at the seed for each length). */
static int load_grid(sweep_prompts *ps, const sweep_opts *o, const ds_config *ca) {
    const ds_tokenizer *t = cli_tokenizer(o->model[0]);
    if (!t) return -1;
    int add_special = !o->in.no_special, K = o->trials, D = o->ndepths, rc = 0;
    int kv_task = !strcmp(o->task, "kv");
    needle_kv kv = {0};
    needle_text nt = {0};
    if (kv_task ? needle_kv_load(&kv, t, o->model[0], add_special)
                : needle_text_load(&nt, t, o->haystack, o->needle, o->question, add_special))
        return -1;
    ps->n = o->nlengths * D * K;
    if (!(ps->p = calloc((size_t)ps->n, sizeof *ps->p))) rc = ds_failc(DS_ERR_NOMEM, "out of memory");
    for (int li = 0; !rc && li < o->nlengths; li++) {
        int N = o->lengths[li];
        uint64_t rng = (uint64_t)o->seed;
        if (kv_task && N < 2 * o->pairs) rc = ds_fail("--lengths %d: too short for %d pairs (at least %d)", N, o->pairs, 2 * o->pairs);
        if (!kv_task && N > nt.nhay) rc = ds_fail("%s: the haystack has %d tokens, fewer than --lengths %d", o->haystack, nt.nhay, N);
        for (int i = 0; !rc && i < D * K; i++) {
            sweep_prompt *p = &ps->p[(size_t)li * D * K + i];
            needle_prompt np;
            rc = kv_task ? needle_kv_prompt(&kv, N, o->pairs, o->depths[i / K], &rng, &np)
                         : needle_text_prompt(&nt, N, o->depths[i / K], &np);
            if (rc) break;
            p->ids = np.ids, p->n = np.n, p->query = np.n - 1;
            p->span_begin = np.span_begin, p->span_end = np.span_end, p->answer_id = np.answer_id;
            p->length = N, p->depth = o->depths[i / K], p->trial = i % K;
            if (p->n > ca->max_position_embeddings && !o->in.allow_long)
                rc = ds_fail("--lengths %d: the prompts have %d tokens, more than max_position_embeddings (%d); "
                             "--allow-long runs them anyway", N, p->n, ca->max_position_embeddings);
            rc = rc || grid_meta(p);
        }
    }
    needle_kv_free(&kv);
    needle_text_free(&nt);
    return rc;
}

int sweep_prompts_load(sweep_prompts *ps, const sweep_opts *o, const ds_config *ca) {
    memset(ps, 0, sizeof *ps);
    int rc = o->task ? load_grid(ps, o, ca) : load_jsonl(ps, o, ca);
    for (int i = 0; !rc && i < ps->n; i++) ps->tokens += ps->p[i].n;
    return rc;
}

void sweep_prompts_free(sweep_prompts *ps) {
    for (int i = 0; ps->p && i < ps->n; i++) free(ps->p[i].ids), free(ps->p[i].meta);
    free(ps->p);
    memset(ps, 0, sizeof *ps);
}
