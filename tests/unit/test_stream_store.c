/* ds_stream_row (src/base/stream_store.h), the dump's copy of a map row into a write buffer
 * with non-temporal stores: for every alignment of the destination and the source and every
 * split of a row into copied values and fill up to 100 entries, the row is the source's
 * values then the fill (+0, no -0, for the maps; -inf for the scores), and nothing before or
 * after it is touched. */
#include "test.h"
#include "base/stream_store.h"

TEST(stream_row_copies_then_fills_exactly_its_row) {
    enum { MAX = 100, PAD = 8 };
    float src[MAX + 4], buf[PAD + MAX + PAD];
    for (int i = 0; i < MAX + 4; i++) src[i] = (float)(i + 1);
    long wrong = 0, rows = 0;
    for (int f = 0; f < 2; f++)
    for (int dst_at = 0; dst_at < 4; dst_at++)
        for (int src_at = 0; src_at < 4; src_at++)
            for (size_t total = 0; total <= MAX; total++)
                for (size_t n = 0; n <= total; n++, rows++) {
                    for (int i = 0; i < PAD + MAX + PAD; i++) buf[i] = -7.0f;
                    float *row = buf + dst_at;
                    const float fill = f ? -INFINITY : 0.0f;
                    ds_stream_row(row, src + src_at, n, total, fill);
                    ds_stream_fence();
                    for (size_t i = 0; i < total; i++) {
                        float want = i < n ? src[src_at + i] : fill;
                        wrong += row[i] != want || (!f && signbit(row[i]));
                    }
                    for (float *p = buf; p < buf + PAD + MAX + PAD; p++)
                        wrong += (p < row || p >= row + total) && *p != -7.0f;
                }
    CHECK(wrong == 0, "%ld wrong entries over %ld rows", wrong, rows);
}

int main(void) {
    RUN(stream_row_copies_then_fills_exactly_its_row);
    return test_summary();
}
