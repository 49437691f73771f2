/* libFuzzer harness: the safetensors header and tensor table (src/io/safetensors.c).
 *
 * The input is a whole .safetensors file. When ds_weights_add_file accepts it, the harness
 * checks the invariants the loader promises (src/io/safetensors.h): every tensor's
 * bytes lie inside the data section of the mapping, its byte count is its element count times
 * its dtype size, and no two tensors overlap; then it converts the floating tensors to float32,
 * which reads every byte of them. A broken invariant aborts, which libFuzzer reports. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "diffscope/error.h"
#include "io/safetensors.h"
#include "fuzz_file.h"

static void st_check(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int fd;
    static char path[64];
    ds_weights w = {0};
    if (ds_weights_add_file(&w, fuzz_as_file("fuzz.safetensors", &fd, path, data, size)) == 0) {
        st_check(w.nfiles == 1 && w.files[0].size == size && size >= 8);
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
        const char *lo = (const char *)w.files[0].map + 8 + hlen, *hi = (const char *)w.files[0].map + size;
        for (int i = 0; i < w.ntensors; i++) {
            const ds_tensor *t = &w.tensors[i];
            const char *b = t->data;
            st_check(b >= lo && b <= hi && t->nbytes <= (size_t)(hi - b));
            st_check(t->numel >= 0 && (uint64_t)t->numel * ds_dtype_size(t->dtype) == t->nbytes);
            for (int j = 0; j < i; j++) {
                const char *c = w.tensors[j].data;
                st_check(!t->nbytes || !w.tensors[j].nbytes || b + t->nbytes <= c || c + w.tensors[j].nbytes <= b);
            }
            st_check(ds_weights_find(&w, t->name) != NULL);
            if (t->nbytes > (1u << 20)) continue; /* keep each run fast */
            int owned;
            float *f = ds_tensor_to_f32(t, 1, &owned);
            if (f) {
                for (int64_t k = 0; k < t->numel; k++) st_check(isfinite(f[k])); /* the check let none through */
                if (owned) free(f);
            } else {
                st_check(ds_errmsg()[0] != 0 && strchr(ds_errmsg(), '\n') == NULL);
            }
        }
    } else {
        st_check(ds_errmsg()[0] != 0 && strchr(ds_errmsg(), '\n') == NULL);
    }
    ds_weights_close(&w);
    return 0;
}
