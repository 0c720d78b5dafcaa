# sfpipe — the one build entry: make, make test, make demo, make bench, make asan, make fuzz, make clean.
# Without nvcc the build is CPU-only (one info line); with it, kernels/cuda/*.cu are compiled too.

CC      ?= cc
BUILD   ?= build
CUDA_HOME ?= /usr/local/cuda
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ( test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc ))
# Fat binary: A100 (80), RTX 30xx (86), RTX 40xx / L40 (89), H100/H200 (90a, Hopper-only
# instructions), plus compute_90 PTX that newer GPUs JIT-compile. CUDA_ARCHS=NN builds one arch;
# CUDA_ARCH=NN on the command line is the GPU bundle's build of one arch (GPU_BUNDLE below).
CUDA_ARCHS ?= 80 86 89 90a
CUDA_ARCH ?=

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror=implicit-function-declaration
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
# -ffp-contract=off: the CPU kernels are bit-exact references (baseline vs AVX2, CPU vs the
# emulated GPU, the golden sums), so a*b+c must round twice everywhere. GCC's -std=c11 implies
# it, but clang contracts within a statement by default wherever FMA is available (aarch64, an
# FMA target); say it for both (test_kernels no_fp_contract checks).
FP_FLAGS := -ffp-contract=off
# OpenMP: the CPU kernels' one persistent thread team (kernels/cpu/parallel.c). OMP= builds
# without it (a pthread per parallel part, as before).
OMP     ?= -fopenmp
ALL_CFLAGS := -std=c11 $(CFLAGS) $(WARN) $(FP_FLAGS) $(OMP) -pthread -MMD -MP -Icommon -Ikernels -I. -DSF_DATADIR='"$(CURDIR)"' $(EXTRA_CFLAGS)
# oneDNN (libdnnl-dev): the CPU fast and bf16 modes (kernels/dnnl_ops.h). DNNL=0 builds without it
# (kernels/nodnnl/: every mode runs the exact kernels); the GPU bundle (../shared/device/bundle.sh,
# which passes CUDA_ARCH on the command line) leaves it out: the device machine has no libdnnl and
# its 40 MB would not fit the carried bundle.
GPU_BUNDLE := $(if $(filter command line,$(origin CUDA_ARCH)),1,0)
DNNL ?= $(if $(filter 1,$(GPU_BUNDLE)),0,1)
LDLIBS  := -lcjson -lyaml -lmsgpackc -lzmq -lsodium -lpng -lz -lutf8proc -lpcre2-8 -lm $(if $(filter 1,$(DNNL)),-ldnnl) $(OMP) -pthread
LDFLAGS ?=

LIB_SRC := $(wildcard common/*.c) $(filter-out $(if $(filter 1,$(DNNL)),,kernels/cpu/dnnl_ops.c),$(wildcard kernels/cpu/*.c)) \
           $(if $(filter 1,$(DNNL)),,kernels/nodnnl/dnnl_none.c) \
           $(filter-out %/main.c,$(wildcard stages/*/*.c) $(wildcard tools/*/*.c))
PROG_MAIN := $(wildcard stages/*/main.c) $(wildcard tools/*/main.c)
PROGS   := $(foreach m,$(PROG_MAIN),$(BUILD)/bin/sf-$(notdir $(patsubst %/,%,$(dir $(m)))))
TEST_SRC := $(wildcard tests/unit/test_*.c)
TESTS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCHES := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

ifneq ($(strip $(NVCC)),)
  CU_SRC  := $(wildcard kernels/cuda/*.cu)
  CU_OBJ  := $(patsubst %.cu,$(BUILD)/obj/%.o,$(CU_SRC))
  # plain-C CUDA-side files (cuDNN through dlopen): $(CC) with the toolkit's headers
  CU_OBJ  += $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard kernels/cuda/*.c))
  LIB_OBJ_EXTRA := $(CU_OBJ)
  LDLIBS  += -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lstdc++
  ifneq ($(strip $(CUDA_ARCH)),)
    CUDA_ARCHS := $(CUDA_ARCH)
  endif
  nv_comma := ,
  NV_GENCODE := $(foreach a,$(CUDA_ARCHS),-gencode=arch=compute_$(a)$(nv_comma)code=sm_$(a)) \
                $(if $(filter 90a,$(CUDA_ARCHS)),-gencode=arch=compute_90$(nv_comma)code=compute_90)
  NVFLAGS ?= -O2 -std=c++17 $(NV_GENCODE) -Icommon -Ikernels -I. -Xcompiler -Wall
  BUILD_KIND := CPU + CUDA ($(foreach a,$(CUDA_ARCHS),sm_$(a)), $(NVCC))
else
  LIB_SRC += kernels/nocuda/nocuda.c
  LIB_OBJ_EXTRA :=
  BUILD_KIND := CPU only (nvcc not found: put it on PATH or set NVCC=/path/to/nvcc for the CUDA parts)
endif

LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(LIB_OBJ_EXTRA)
LIB     := $(BUILD)/libsf.a
# The GPU bundle links every program and test against one shared lib/libsf.so (found through
# $ORIGIN/../lib, the bundle's layout too) instead of a copy of libsf.a each: the attention kernels
# alone are ~8 MB of SASS, and the carried tree + bundle must fit 64 MiB. The library holds the one
# copy of the CUDA runtime (cudart_static), so the programs do not link it again.
ifeq ($(GPU_BUNDLE),1)
  LIB     := $(BUILD)/lib/libsf.so
  # sf-view's own objects go into sf-view alone (libsf.so must not need libmicrohttpd), the image
  # reader into its users alone (nor libjpeg: IMAGE_LIBS below)
  VIEW_OBJ := $(filter $(BUILD)/obj/tools/view/%,$(LIB_OBJ))
  IMAGE_OBJ := $(filter $(BUILD)/obj/stages/decode/image.o,$(LIB_OBJ))
  VAE_ENCODE_OBJ := $(filter $(BUILD)/obj/tools/vae-encode/%,$(LIB_OBJ)) # sf-vae-encode's, which call it
  TAPS_OBJ := $(filter $(BUILD)/obj/tools/taps/%,$(LIB_OBJ)) # sf-taps's (its token maps draw over video frames)
  LIB_OBJ := $(filter-out $(VIEW_OBJ) $(IMAGE_OBJ) $(VAE_ENCODE_OBJ) $(TAPS_OBJ),$(LIB_OBJ))
  ALL_CFLAGS += -fPIC
  override NVFLAGS += -Xcompiler -fPIC
  # the fatbin's SASS compressed by nvcc (zstd-class, CUDA >= 12.8; the driver inflates it at load, any
  # r580 driver for CUDA 13): ~0.45 of gzip's size for the attention kernels, ~1 MiB less to carry
  override NVFLAGS += $(shell $(NVCC) --help 2>/dev/null | grep -q -e '--compress-mode' && echo --compress-mode=size)
  # $ORIGIN/../lib: bin/ and tests/ beside lib/, here and unpacked on the device; the absolute
  # second entry lets bundle.sh's ldd find the library from its staging copies of the binaries
  EXE_LDLIBS = -Wl,-rpath,'$$ORIGIN/../lib:$(CURDIR)/$(BUILD)/lib' $(filter-out -lcudart_static,$(LDLIBS))
  # objects compiled before this rule existed (no -fPIC) are older than the stamp: rebuilt once
  # (made while parsing: .SECONDARY would let a missing stamp rebuild nothing)
  $(shell mkdir -p $(BUILD)/obj && { test -e $(BUILD)/obj/.pic || touch $(BUILD)/obj/.pic; })
  $(LIB_OBJ): $(BUILD)/obj/.pic
else
  EXE_LDLIBS = $(LDLIBS)
endif

.PHONY: all test demo bench asan fuzz heldout tokdiff clean info install
# keep the objects of tests/benches built through pattern rules, so a second make relinks nothing
.SECONDARY:
# The GPU bundle (GPU_BUNDLE, above) builds only what tests/gpu/check.sh runs on the device: the
# carried tree + bundle must fit 64 MiB (every binary shares lib/libsf.so, above; sf-view, for
# tests/gpu/live.sh, brings GnuTLS in through libmicrohttpd: ~3 MiB packed). Elsewhere `all` is
# everything; $(ALL_EMU) collects the emulation tests.
GPU_CHECK_TESTS := test_conv_plans test_cuda_glue test_cuda_graphs_gpu test_cuda_kernels test_dit_cuda test_dit_cuda_shapes \
                   test_fp8_cuda \
                   test_hopper_gpu test_rng_torch test_sdpa_plans \
                   test_t5_cuda test_t5_cuda_shapes test_t5_glue_gpu test_tap_mass_gpu test_kv_compress_gpu test_vae_cuda test_vae_cuda_shapes \
                   test_vae_encode_cuda test_vae_glue test_taehv_glue test_taehv_cuda
ifeq ($(GPU_BUNDLE),1)
  ALL_EMU := gpu-bundle-skips
  all: info $(PROGS) $(addprefix $(BUILD)/tests/,$(GPU_CHECK_TESTS))
else
  ALL_EMU := all
  all: info $(PROGS) $(TESTS)
endif

info:
	@echo "sfpipe build: $(BUILD_KIND)"

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/kernels/cuda/%.o: kernels/cuda/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -isystem $(CUDA_HOME)/include -c $< -o $@

# test_sdpa_plans runs cuDNN deviceless with this libcuda.so.1 stand-in first on LD_LIBRARY_PATH
$(BUILD)/tests/cudnn_stub/libcuda.so.1: tests/gpu/cudnn_stub/stub.c
	@mkdir -p $(dir $@)
	$(CC) -shared -fPIC -O1 -o $@ $<
$(BUILD)/tests/test_sdpa_plans $(BUILD)/tests/test_conv_plans: | $(BUILD)/tests/cudnn_stub/libcuda.so.1

# NVFLAGS are part of a CUDA object's recipe: a stamp holding them, rewritten only when they change,
# rebuilds the objects once after a change (a new arch list, the bundle's flags) instead of never
ifneq ($(strip $(NVCC)),)
  NV_STAMP := $(BUILD)/obj/.nvflags
  $(shell mkdir -p $(BUILD)/obj && { printf '%s\n' '$(NVCC) $(NVFLAGS)' | cmp -s - $(NV_STAMP) || printf '%s\n' '$(NVCC) $(NVFLAGS)' >$(NV_STAMP); })
endif
$(BUILD)/obj/%.o: %.cu $(wildcard common/*.h kernels/*.h kernels/cuda/*.cuh) $(NV_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/libsf.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/lib/libsf.so: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libsf.so -Wl,--no-undefined $(LDFLAGS) -o $@ $^ $(LDLIBS)

define prog_rule
$(BUILD)/bin/sf-$(notdir $(patsubst %/,%,$(dir $(1)))): $(patsubst %.c,$(BUILD)/obj/%.o,$(1)) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) $$(LDFLAGS) -o $$@ $$^ $$(EXE_LDLIBS)
endef
$(foreach m,$(PROG_MAIN),$(eval $(call prog_rule,$(m))))

# sf-batch is a bash script (process orchestration: sbatch, workers, retries), copied beside the programs
# (not in the GPU bundle: bundle.sh strips every bin/sf-* as a binary, and the device check has no use for it)
SCRIPTS := $(BUILD)/bin/sf-batch
all: $(if $(filter 1,$(GPU_BUNDLE)),,$(SCRIPTS))
$(BUILD)/bin/sf-batch: tools/batch/sf-batch.sh
	@mkdir -p $(dir $@)
	install -m 755 $< $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(EXE_LDLIBS)

# CPU emulation of the CUDA kernels (kernels/cuda/emu/cuda_emu.h): the same .cu files compiled by
# g++ with -DSF_CUDA_EMU into $(BUILD)/emu/, linked into test_cuda_emu only (never into libsf.a),
# in every build: no nvcc, CUDA headers or GPU needed. Add a .cu here when it has custom kernels
# (cuBLAS/cuDNN-only files need their library calls emulated first). The emulated wrappers have
# the real ones' names: the objects come before libsf.a, so its CUDA members are never pulled in,
# and the link checks that no real CUDA code got in.
CXX     ?= g++
EMU_SRC := kernels/cuda/emu/cuda_emu.cc kernels/cuda/emu/emu_selftest.cu kernels/cuda/cuda_common.cu \
           kernels/cuda/norm_act.cu kernels/cuda/gemm.cu kernels/cuda/dit_glue.cu kernels/cuda/attn_blas.cu \
           kernels/cuda/device.cu kernels/cuda/norm_fused.cu kernels/cuda/t5_glue.cu kernels/cuda/vae_glue.cu \
           kernels/cuda/taehv_glue.cu kernels/cuda/fp8.cu \
           kernels/cuda/emu/conv_emu.cc kernels/cuda/emu/sdpa_emu.cc kernels/cuda/emu/wgmma_emu.cc kernels/cuda/emu/libs_emu.cc kernels/cuda/emu/async_emu.cc kernels/cuda/emu/emu_runtime.cc kernels/cuda/emu/graph_emu.cc \
           kernels/cuda/tap_mass.cu kernels/cuda/kv_compress.cu kernels/cuda/attn_mass.cu \
           kernels/cuda/attn_mass_wg.cu kernels/cuda/attn_mass_ws.cu kernels/cuda/hopper_probe.cu kernels/cuda/graph.cu
EMU_OBJ := $(patsubst %,$(BUILD)/emu/%.o,$(EMU_SRC))
EMU_CXXFLAGS := -std=c++17 $(CFLAGS) -Wall -Wextra -Wshadow -Wno-unknown-pragmas $(FP_FLAGS) -MMD -MP -DSF_CUDA_EMU \
           -Icommon -Ikernels -I. $(EXTRA_CFLAGS)
emu_comma := ,
CPU_LDLIBS = $(filter-out -L% -Wl$(emu_comma)% -lcublas -lcudart_static -lstdc++,$(LDLIBS))

$(BUILD)/emu/%.o: %
	@mkdir -p $(dir $@)
	$(CXX) -x c++ $(EMU_CXXFLAGS) -c $< -o $@

# emu_link: a test linked with the emulated kernels ($(EMU_OBJ) before libsf.a); one that holds real
# CUDA objects is refused.
define emu_link
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@.tmp $^ $(CPU_LDLIBS)
	@if nm $@.tmp | grep -q -e __cudaRegisterFatBinary -e cudaLaunchKernel; then \
	  echo "$@: real CUDA objects were linked instead of the emulated ones"; rm -f $@.tmp; exit 1; fi
	@mv $@.tmp $@
endef
# The tests linked with the emulated kernels (emu_link) and their objects built from another test's
# source: X_emu from X.c with -DSF_TEST_EMU (the GPU test on the emulation), X_gpu / test_cuda_glue
# from the emulated test's source with -DSF_TEST_GPU (the same cases on a real GPU; SKIP without one).
#   test_cuda_emu / test_cuda_glue   the DiT's kernels (test_cuda_emu.c; check.sh runs test_cuda_glue)
#   test_cuda_graphs / test_cuda_graphs_gpu  CUDA graphs: capture, launch, update, invalidation
#   test_emu_self                    the emulation's own rules (emu_selftest.cu), emulated only
#   test_dit_emu                     test_dit_cuda.c: the whole CUDA DiT forward (dit_cuda.c) on the host
#   test_dit_shapes_emu              test_dit_cuda_shapes.c: the same forward against the CPU DiT on other
#                                    model shapes (head dims, ffn / text dims, odd tokens a frame, rolling)
#   test_t5_glue / test_t5_glue_gpu  the umT5 encoder's kernels; test_t5_emu: test_t5_cuda.c, the whole
#                                    GPU encoder
#   test_t5_shapes_emu               test_t5_cuda_shapes.c: the GPU encoder against the CPU one on other
#                                    model shapes (head dims 8-128, dim_attn != dim, odd dims, buckets, dtypes)
#   test_vae_emu                     test_vae_cuda.c: the GPU VAE decoder against the goldens, cuBLASLt
#                                    and cuDNN conv emulated (kernels/cuda/emu/conv_emu.cc)
#   test_vae_shapes_emu              test_vae_cuda_shapes.c: the GPU decoder against the CPU one on other
#                                    model shapes (base dims, z dims, odd latent sizes; refusals)
#   test_vae_encode_emu              test_vae_encode_cuda.c: the GPU VAE encoder against the goldens and the
#                                    CPU encoder (other widths), cuBLASLt and cuDNN conv emulated
#   test_vae_glue_emu                test_vae_glue.c (the VAE's kernels vs kernels/vae_ops.h); the plain
#                                    test_vae_glue is the same file on the real kernels
#   test_taehv_emu                   test_taehv_cuda.c: the GPU TAEHV decoder (stages/decode/taehv_cuda.c) against
#                                    the taehv golden and the CPU decoder (other widths, odd latent sizes)
#   test_taehv_glue_emu              test_taehv_glue.c (the TAEHV kernels vs kernels/taehv_ops.h); the plain
#                                    test_taehv_glue is the same file on the real kernels
#   test_hopper / test_hopper_gpu    the Hopper probes (kernels/cuda/hopper_probe.cu; check.sh part attn)
#   test_tap_mass / test_tap_mass_gpu  the attention-tap aggregates and the fused attention kernels
#   test_kv_compress / _gpu          --kv-compress's key importance, selection and compaction (kernels/kv_compress.h)
#   test_conv_emu                    test_conv_plans.c's forward on the emulated cuDNN conv (conv_emu.cc)
#                                    against sf_conv3d_cpu, the encoder's stride-2 shapes included
#   test_sdpa_emu                    test_sdpa_plans.c's forward on the emulated cuDNN attention
#                                    (kernels/cuda/emu/sdpa_emu.cc) against the CPU attention
#   test_fp8_emu                     test_fp8_cuda.c: --fp8's quantization kernel (bit for bit vs the CPU), the
#                                    FP8 linear and the whole DiT forward in fp8 against the fp8 golden
EMU_TESTS := test_cuda_emu test_cuda_graphs test_emu_self test_dit_emu test_dit_shapes_emu test_t5_glue test_t5_emu test_t5_shapes_emu \
             test_vae_emu test_vae_shapes_emu test_vae_glue_emu test_hopper test_tap_mass test_kv_compress test_sdpa_emu test_conv_emu \
             test_vae_encode_emu test_taehv_emu test_taehv_glue_emu test_fp8_emu
$(ALL_EMU): $(addprefix $(BUILD)/tests/,test_conv_emu test_vae_encode_emu test_dit_emu test_dit_shapes_emu test_t5_emu test_t5_shapes_emu test_vae_emu \
                                        test_vae_shapes_emu test_vae_glue_emu test_sdpa_emu test_taehv_emu test_taehv_glue_emu \
                                        test_fp8_emu)
all: $(addprefix $(BUILD)/tests/,test_cuda_glue test_cuda_graphs_gpu test_t5_glue_gpu test_hopper_gpu test_tap_mass_gpu \
                                  test_kv_compress_gpu)
$(addprefix $(BUILD)/tests/,$(EMU_TESTS)): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(EMU_OBJ) $(LIB)
	$(emu_link)
# The three stage programs linked with the emulated kernels instead of CUDA (build/emu-bin/): their
# --device cuda paths run on the CPU, so tests/bats/emu-gpu.bats can run whole pipelines "on the GPU"
# here — the stages' own GPU code (device selection, pinned slots, run-ahead loops, the live switch)
# before any device minute is spent on it.
# A copy of sf-run sits beside them: it starts the sf-* programs next to itself first (then PATH).
EMU_BIN := $(addprefix $(BUILD)/emu-bin/,sf-encode sf-denoise sf-decode sf-run sf-vae-encode)
$(ALL_EMU): $(EMU_BIN)
$(BUILD)/emu-bin/sf-run: $(BUILD)/bin/sf-run
	@mkdir -p $(dir $@)
	install -m 755 $< $@
$(BUILD)/emu-bin/sf-%: $(BUILD)/obj/stages/%/main.o $(EMU_OBJ) $(LIB)
	$(emu_link)
$(BUILD)/emu-bin/sf-vae-encode: $(BUILD)/obj/tools/vae-encode/main.o $(EMU_OBJ) $(LIB)
	$(emu_link)
# twin_obj OBJECT SOURCE FLAG: tests/unit/SOURCE.c compiled with FLAG as the object of test OBJECT
define twin_obj
$(BUILD)/obj/tests/unit/$(1).o: tests/unit/$(2).c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) $(3) -c $$< -o $$@
endef
$(eval $(call twin_obj,test_dit_emu,test_dit_cuda,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_dit_shapes_emu,test_dit_cuda_shapes,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_t5_emu,test_t5_cuda,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_t5_shapes_emu,test_t5_cuda_shapes,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_vae_emu,test_vae_cuda,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_vae_shapes_emu,test_vae_cuda_shapes,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_vae_glue_emu,test_vae_glue,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_taehv_emu,test_taehv_cuda,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_taehv_glue_emu,test_taehv_glue,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_sdpa_emu,test_sdpa_plans,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_conv_emu,test_conv_plans,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_vae_encode_emu,test_vae_encode_cuda,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_fp8_emu,test_fp8_cuda,-DSF_TEST_EMU))
$(eval $(call twin_obj,test_cuda_glue,test_cuda_emu,-DSF_TEST_GPU))
$(eval $(call twin_obj,test_cuda_graphs_gpu,test_cuda_graphs,-DSF_TEST_GPU))
$(eval $(call twin_obj,test_t5_glue_gpu,test_t5_glue,-DSF_TEST_GPU))
$(eval $(call twin_obj,test_hopper_gpu,test_hopper,-DSF_TEST_GPU))
$(eval $(call twin_obj,test_tap_mass_gpu,test_tap_mass,-DSF_TEST_GPU))
$(eval $(call twin_obj,test_kv_compress_gpu,test_kv_compress,-DSF_TEST_GPU))

# sf-view (tools/view/): an HTTP server (libmicrohttpd) and JPEG (libjpeg-turbo), linked into it and its test only
VIEW_LIBS := -lmicrohttpd -lturbojpeg
$(BUILD)/bin/sf-view $(BUILD)/tests/test_view: LDLIBS += $(VIEW_LIBS)
$(BUILD)/bin/sf-view: $(VIEW_OBJ) # the GPU bundle's (empty elsewhere: they are in libsf.a)

# Input images for image-to-video (stages/decode/image.c): JPEG through libjpeg (libjpeg62-turbo-dev; PNG
# through the -lpng every program has), linked into the programs and tests that read images only. A
# program that calls sf_image_load joins IMAGE_USERS.
IMAGE_LIBS := -ljpeg
IMAGE_USERS := $(BUILD)/tests/test_image $(BUILD)/bin/sf-vae-encode $(BUILD)/emu-bin/sf-vae-encode $(BUILD)/bin/sf-taps
$(IMAGE_USERS): LDLIBS += $(IMAGE_LIBS)
$(IMAGE_USERS): $(IMAGE_OBJ) # the GPU bundle's (empty elsewhere: it is in libsf.a)
$(BUILD)/bin/sf-vae-encode: $(VAE_ENCODE_OBJ) # likewise
$(BUILD)/bin/sf-taps: $(TAPS_OBJ) # likewise

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(EXE_LDLIBS)

# SF_FUZZ_SMOKE=0 skips the 20 s-per-target fuzz smoke (visibly)
SF_FUZZ_SMOKE ?= 1
test: all
	@BUILD=$(BUILD) SF_FUZZ_SMOKE=$(SF_FUZZ_SMOKE) bash tests/run.sh

# AddressSanitizer + UBSan build of everything (GCC's UBSan leaves float-cast-overflow out: a NaN
# or huge float converted to an integer; asked for here), then the whole suite on it, the
# hostile-input corpus included. The fuzz smoke is skipped there (its targets are instrumented).
asan:
	$(MAKE) BUILD=build-asan NVCC= OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=undefined,float-cast-overflow" \
	  LDFLAGS="-fsanitize=address,undefined,float-cast-overflow" SF_FUZZ_SMOKE=0 test

bench: all $(BENCHES)
	@BUILD=$(BUILD) bash tests/bench/run.sh

demo:
	@bash tests/demo.sh

# The CPU stages against the reference PyTorch modules on model shapes the goldens never used
# (tests/heldout/: writes the models, runs the reference and ours, compares), then --pc-budget against
# Deep Forcing's released code on settings its golden never used (run_deepforcing.sh; skipped without the
# release's git mirror). A developer's check, not part of `make test`: it needs python3 with torch
# (Debian's python3-torch) and the reference source.
heldout: all
	@SF_BIN=$(BUILD)/bin bash tests/heldout/run_heldout.sh
	@SF_BIN=$(BUILD)/bin bash tests/heldout/run_deepforcing.sh

# The prompt cleaning and tokenizer against ftfy 6.3.1 (fix_text as the reference calls it, mojibake
# repair included) + sentencepiece on random hard prompts, two seeds, then + Hugging Face tokenizers on
# the tiny model's tokenizer.json (tests/heldout/tokenizer_diff.py; a venv from PyPI under
# $(BUILD)/tokvenv, whose Python also runs tests/heldout/gen_ftfy_tables.py and hftok_fixture.py).
# Not part of make test.
TOKDIFF_PY := $(BUILD)/tokvenv/bin/python
$(TOKDIFF_PY):
	python3 -m venv $(BUILD)/tokvenv && $(BUILD)/tokvenv/bin/pip install -q ftfy==6.3.1 sentencepiece regex tokenizers
tokdiff: all $(TOKDIFF_PY)
	$(TOKDIFF_PY) tests/heldout/tokenizer_diff.py --bin $(BUILD)/bin/sf-encode --mode ftfy --n 3000 --seed 1
	$(TOKDIFF_PY) tests/heldout/tokenizer_diff.py --bin $(BUILD)/bin/sf-encode --mode ftfy --n 3000 --seed 2
	$(TOKDIFF_PY) -c 'import tokenizers' 2>/dev/null || $(BUILD)/tokvenv/bin/pip install -q tokenizers # an older venv
	$(TOKDIFF_PY) tests/heldout/tokenizer_diff.py --bin $(BUILD)/bin/sf-encode --n 3000 --seed 3 \
	    --fast tests/unit/fixtures/umt5_tiny_tokenizer.json.gz

# libFuzzer targets (clang): the file and stream parsers (common/*.c) and the tokenizer, with
# ASan + UBSan (float-cast-overflow included), in build-fuzz/ — their own small library, not the
# whole libsf. `make fuzz` runs each for FUZZ_SECONDS (the README's figures: 600 each);
# `make test` runs a 20 s smoke of each (tests/fuzz/smoke.sh; SKIPs without clang/libFuzzer).
FUZZ_SECONDS ?= 60
FUZZ_DIR := build-fuzz
FUZZ_CFLAGS := -std=c11 -O1 -g -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all \
               -Icommon -Ikernels -I. -DSF_DATADIR='"$(CURDIR)"'
FUZZ_LIB_SRC := $(wildcard common/*.c) stages/encode/tokenizer.c stages/encode/hftok.c stages/encode/clean.c stages/encode/html_entities.c \
                stages/encode/mojibake.c stages/encode/mojibake_tables.c stages/decode/image.c \
                stages/decode/video.c kernels/cpu/tap_mass.c kernels/cpu/parallel.c $(filter-out tools/taps/main.c,$(wildcard tools/taps/*.c))
FUZZ_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_LIB_SRC))
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRC))
FUZZ_LDLIBS := $(filter-out -lcublas -lcudart_static -lstdc++ -fopenmp -ldl -lrt -L%,$(LDLIBS))
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_DIR)/libsf-fuzz.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/libsf-fuzz.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_DIR)/libsf-fuzz.a $(FUZZ_LDLIBS) -o $@
$(FUZZ_DIR)/fuzz_image $(FUZZ_DIR)/fuzz_taps: FUZZ_LDLIBS += $(IMAGE_LIBS)
.PHONY: fuzz-build
fuzz-build: $(FUZZ_BIN)
fuzz: fuzz-build
	@set -e; for b in $(FUZZ_BIN); do n=$$(basename $$b); \
	  mkdir -p $(FUZZ_DIR)/corpus-$$n; cp -n tests/fuzz/seeds/$$n/* $(FUZZ_DIR)/corpus-$$n/ 2>/dev/null || true; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  $$b -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 $(FUZZ_DIR)/corpus-$$n; done
-include $(wildcard $(FUZZ_DIR)/obj/*/*.d $(FUZZ_DIR)/obj/*/*/*.d)

# Install the programs and the data they look for (configs, pipeline specs and scripts).
PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/sfpipe/configs $(DESTDIR)$(PREFIX)/share/sfpipe/pipelines
	install -m 755 $(PROGS) $(SCRIPTS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 configs/*.yaml $(DESTDIR)$(PREFIX)/share/sfpipe/configs/
	install -m 644 pipelines/*.yaml pipelines/reference_flags.sh pipelines/flags.sh $(DESTDIR)$(PREFIX)/share/sfpipe/pipelines/
	install -m 755 pipelines/figure4.sh pipelines/streaming.sh pipelines/each.sh pipelines/highframe.sh pipelines/sink_study.sh \
	  pipelines/full_attention.sh pipelines/streaming_distributed.sh pipelines/demo.sh $(DESTDIR)$(PREFIX)/share/sfpipe/pipelines/

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
