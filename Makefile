# diffscope build.
#
#   make            build libdiffscope.a, libdiffscope.so + diffscope.pc, the diffscope CLI and
#                   diffscope-view
#   make demo       install what is missing, build, and run the main job on the demo model
#   make test       build and run every test, then the same suite under ASan + UBSan
#                   (skips the ../shared cross-checks when absent); CI runs this
#   make test-plain the suite once, without sanitizers (the quick loop while developing)
#   make test-asan  the suite under AddressSanitizer + UndefinedBehaviorSanitizer only
#   make bench      benchmarks that print figures (speed, memory, dump overhead)
#   make bench-bf16 the bf16 compute mode against f32 here, and its memory (BENCH_8B=1: 8 B params)
#   make fuzz       libFuzzer harnesses, FUZZ_SECONDS each
#
# Missing Debian packages are installed by the `deps` step (apt-get), once per build dir.

BUILD    ?= build
CC       ?= cc
SAN      ?=
OPT      ?= -O2 -march=native
PKGS      = hdf5 libcjson libpcre2-8 libcrypto
VIZ_PKGS  = sdl2 SDL2_ttf SDL2_image hdf5

# Debian packages the build, the tests and the viewer need.
DEB_PKGS = build-essential pkg-config libopenblas-openmp-dev libhdf5-dev hdf5-tools libcjson-dev \
           libpcre2-dev libutf8proc-dev libsdl2-dev libsdl2-ttf-dev libsdl2-image-dev \
           fonts-dejavu-core python3 python3-h5py python3-numpy python3-matplotlib xvfb xdotool time \
           openmpi-bin libopenmpi-dev libdnnl-dev libssl-dev

DEPS_STAMP = $(BUILD)/.deps-ok

# -MMD -MP: each object depends on the headers it includes, and no more.
# -fPIC: the same objects go into libdiffscope.a and libdiffscope.so; -fno-semantic-interposition
# keeps the inlining of a non-PIC build, so the binaries compute exactly what they did before.
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Iinclude -Isrc \
              -fopenmp -fPIC -fno-semantic-interposition $(OPT) -g $(SAN) -MMD -MP
# OpenBLAS: the OpenMP build, linked statically, so that a GEMM called inside one of our
# OpenMP loops runs single-threaded instead of fighting our threads, and so that the
# binary runs on a machine that has only the pthreads build (or none).
BLAS_DIR    = /usr/lib/x86_64-linux-gnu/openblas-openmp
BLAS_CFLAGS = -I/usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIBS   = $(BLAS_DIR)/libopenblas.a
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(BLAS_CFLAGS)
# libhdf5_hl: the dimension labels of the dump's maps (H5DSset_label).
# oneDNN (libdnnl, shared: Debian ships no archive): the bf16 compute mode's products.
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhdf5_hl $(BLAS_LIBS) -ldnnl -lutf8proc -lm -fopenmp
VIZ_CFLAGS  = $(shell pkg-config --cflags $(VIZ_PKGS) 2>/dev/null)
VIZ_LIBS    = $(shell pkg-config --libs $(VIZ_PKGS) 2>/dev/null) -lm

CFLAGS  = $(CFLAGS_BASE) $(PKG_CFLAGS)
# Open MPI's mpi.h for the one file that calls MPI; libmpi is loaded at run time, not linked
# (src/cli/sweep_mpi.c, docs/sweep.md).
MPI_CFLAGS = $(shell pkg-config --cflags ompi-c 2>/dev/null)
$(BUILD)/src/cli/sweep_mpi.o: CFLAGS += $(MPI_CFLAGS)
LDFLAGS = $(SAN)

# The library is every part of src/ but the command line (docs/architecture.md).
LIB_SRC  = $(filter-out src/cli/%,$(wildcard src/*/*.c))
CLI_SRC  = $(wildcard src/cli/*.c)
VIZ_SRC  = $(wildcard viz/*.c)
TEST_SRC = $(wildcard tests/unit/test_*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
VIZ_OBJ  = $(VIZ_SRC:%.c=$(BUILD)/%.o)
TEST_BIN = $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)

LIB  = $(BUILD)/libdiffscope.a
SO   = $(BUILD)/libdiffscope.so
PC   = $(BUILD)/diffscope.pc
CLI  = $(BUILD)/diffscope
VIEW = $(if $(VIZ_SRC),$(BUILD)/diffscope-view)

.PHONY: all deps demo test test-plain test-asan bench bench-bf16 fuzz clean
all: $(LIB) $(SO) $(PC) $(CLI) $(VIEW)

deps: $(DEPS_STAMP)
$(DEPS_STAMP):
	@sh tools/install_deps.sh $(DEB_PKGS)
	@mkdir -p $(BUILD) && touch $@

# Objects are rebuilt when the compiler flags change (the stamp's content is the flags).
FLAGS_STAMP = $(BUILD)/.cflags
$(FLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(CFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS)' >$@
.PHONY: FORCE

# The commit the build is made from, which provenance records (src/io/provenance.c): the
# header is rewritten only when `git describe` says something new, "unknown" outside git.
GIT_COMMIT_H = $(BUILD)/git_commit.h
$(GIT_COMMIT_H): FORCE
	@mkdir -p $(dir $@)
	@line="#define DS_GIT_COMMIT \"$$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)\""; \
	 echo "$$line" | cmp -s - $@ || echo "$$line" >$@
$(BUILD)/src/io/provenance.o: $(GIT_COMMIT_H)
$(BUILD)/src/io/provenance.o: CFLAGS += -I$(BUILD)

$(BUILD)/src/%.o: src/%.c $(DEPS_STAMP) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/viz/%.o: viz/%.c $(DEPS_STAMP) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(VIZ_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The shared library (for C programs and the Python package, docs/python.md): the same objects,
# with Debian's static OpenBLAS inside as in the binaries (its archive is position-independent).
# --exclude-libs keeps OpenBLAS's symbols private, so a process that also loads another BLAS
# (NumPy's) gets each library's own sgemm.
$(SO): $(LIB_OBJ)
	$(CC) $(LDFLAGS) -shared -fopenmp -Wl,-soname,libdiffscope.so -Wl,--exclude-libs,ALL -o $@ $^ $(PKG_LIBS)

# pkg-config for C users of the shared library in the build folder (README: "Linking from C").
VERSION = $(shell sed -n 's/^\#define DS_VERSION "\(.*\)"/\1/p' include/diffscope/diffscope.h)
$(PC): Makefile src/cli/cli.h
	@mkdir -p $(dir $@)
	@printf '%s\n' 'prefix=$(abspath .)' 'libdir=$(abspath $(BUILD))' 'includedir=$${prefix}/include' '' \
	  'Name: diffscope' 'Description: look inside Differential-Transformer (DiffLlama) and Llama models' \
	  'Version: $(VERSION)' 'Libs: -L$${libdir} -Wl,-rpath,$${libdir} -ldiffscope' 'Cflags: -I$${includedir}' >$@

$(CLI): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -fopenmp -o $@ $(CLI_OBJ) $(LIB) $(PKG_LIBS)

# The viewer parses its options with the CLI's option tables and messages, not its commands.
VIZ_CLI_OBJ = $(BUILD)/src/cli/cli_opt.o $(BUILD)/src/cli/cli_util.o
$(BUILD)/diffscope-view: $(VIZ_OBJ) $(VIZ_CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -fopenmp -o $@ $(VIZ_OBJ) $(VIZ_CLI_OBJ) $(LIB) $(VIZ_LIBS) $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(LIB) $(PKG_LIBS) $(LDFLAGS)

-include $(shell find $(BUILD) -name "*.d" -type f 2>/dev/null)

# Every C test binary and every tests/cli/test_*.sh script, once.
test-plain: all $(TEST_BIN)
	@BUILD=$(BUILD) sh tests/run_tests.sh

# The README's test command: the suite, then the same suite under the sanitizers.
test: test-plain
	@$(MAKE) --no-print-directory test-asan

test-asan:
	$(MAKE) BUILD=build/asan OPT="-O1" SAN="-fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=all" test-plain

bench: all $(BUILD)/bench_tokenizer
	@BUILD=$(BUILD) sh tools/bench.sh

bench-bf16: all
	@BUILD=$(BUILD) sh tools/bench_bf16.sh

demo: all
	@BUILD=$(BUILD) sh tools/demo.sh

clean:
	rm -rf $(BUILD)

# Tokenizer encode speed: 1 MB of English text per tokenizer, in MB/s.
.PHONY: bench-tokenizer
$(BUILD)/bench_tokenizer: tools/bench/bench_tokenizer.c $(LIB)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(PKG_LIBS) $(LDFLAGS)
bench-tokenizer: $(BUILD)/bench_tokenizer
	@$(BUILD)/bench_tokenizer

# GEMM tile sizes for src/model/linear.c: one kajuma layer's products per tile size, in GFLOP/s.
$(BUILD)/bench_tiles: tools/bench/bench_tiles.c $(LIB)
	$(CC) $(CFLAGS) -fopenmp -o $@ $< $(LIB) $(PKG_LIBS) $(LDFLAGS)
# oneDNN bf16 matmul on the kajuma shapes: plain weights against weights reordered once.
$(BUILD)/bench_dnnl: tools/bench/bench_dnnl.c $(DEPS_STAMP)
	$(CC) $(CFLAGS) -fopenmp -o $@ $< -ldnnl $(LDFLAGS)
# Write throughput of the storage for the dump's writers: buffered or O_DIRECT, 1-8 threads, sequential or
# scattered, beside spinning threads or not.
$(BUILD)/bench_pwrite: tools/bench/bench_pwrite.c
	$(CC) $(CFLAGS) -o $@ $< -lpthread $(LDFLAGS)
# The CPU's own float32 FMA and AMX bf16 rates and clock, alone and on every thread: the ceiling
# for the bf16 products (x86-64).
$(BUILD)/bench_amx: tools/bench/bench_amx.c
	$(CC) $(CFLAGS) -fopenmp -o $@ $< $(LDFLAGS)

# libFuzzer harnesses tests/fuzz/fuzz_*.c, each built with clang together with the parser
# sources it exercises (compiled with clang too), run FUZZ_SECONDS each by tools/fuzz.sh.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_FLAGS    = -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -Itests/unit $(PKG_CFLAGS) \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC  = src/base/error.c src/base/fileio.c src/base/half.c src/base/path.c src/io/safetensors.c src/model/arch.c src/model/config.c \
                $(wildcard src/tokenizer/*.c) src/dump/read.c src/dump/format.c src/io/h5_guard.c src/io/h5in.c
FUZZ_BIN      = $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz_file.h $(FUZZ_LIB_SRC) $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LIB_SRC) $(shell pkg-config --libs $(PKGS)) -lutf8proc -lm
fuzz: $(FUZZ_BIN)
	@sh tools/fuzz.sh $(BUILD) $(FUZZ_SECONDS)

# Short `diffscope logits`, `dump` and `generate` runs under valgrind (memcheck); fails on any
# error. Built without -march=native: valgrind does not decode AVX-512.
.PHONY: valgrind
valgrind:
	$(MAKE) BUILD=$(BUILD)/valgrind OPT="-O1" $(BUILD)/valgrind/diffscope
	@BUILD=$(BUILD)/valgrind sh tools/valgrind.sh
