/* libdiffscope: the whole public API in one include, and the version that the library, the
 * diffscope CLI and the viewer report (dumps record it as tool_version). */
#ifndef DIFFSCOPE_H
#define DIFFSCOPE_H

#define DS_VERSION "0.1.0"

#include "diffscope/attn_stats.h"
#include "diffscope/config.h"
#include "diffscope/dump.h"
#include "diffscope/dump_reader.h"
#include "diffscope/error.h"
#include "diffscope/generate.h"
#include "diffscope/hidden_states.h"
#include "diffscope/intervene.h"
#include "diffscope/model.h"
#include "diffscope/probe.h"
#include "diffscope/provenance.h"
#include "diffscope/span.h"
#include "diffscope/table5.h"
#include "diffscope/tokenizer.h"

#endif
