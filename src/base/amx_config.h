/* AMX's tile configuration, shared by the bf16 kernel (src/model/bf16_tiles.c) and the tile
 * benchmark (tools/bench/bench_amx.c). x86-64 only. */
#ifndef DS_AMX_CONFIG_H
#define DS_AMX_CONFIG_H
#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} ds_tile_config;

/* Configures tiles 0-7 of the calling thread as 16 rows of 64 bytes each (16 × 16 f32
 * accumulators, 16 × 32 bf16 operands). */
__attribute__((target("amx-tile"))) static inline void ds_tiles_configure(void) {
    ds_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.rows[i] = 16, cfg.colsb[i] = 64;
    /* not _tile_loadconfig: GCC 12's names only 8 bytes of the configuration as read, so the
     * stores of the rest may be dropped, and LDTILECFG then faults on a garbage configuration */
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

#endif
