/* Names of the dump schema that need code (see diffscope/dump_format.h). */
#include "diffscope/dump_format.h"

const char *ds_map_name(ds_map map) {
    static const char *const names[DS_MAP_COUNT] = {
        [DS_MAP_SOFTMAX1] = "softmax1", [DS_MAP_SOFTMAX2] = "softmax2", [DS_MAP_DIFF] = "diff",
        [DS_MAP_SOFTMAX] = "softmax",   [DS_MAP_SCORES] = "scores",
    };
    return map >= 0 && map < DS_MAP_COUNT ? names[map] : "?";
}
