#!/usr/bin/env bash
# tests/gpu/check.sh — the one prepared device check, run on the lent GPU machine through the
# device tool with the binaries built HERE by ../shared/device/bundle.sh (the GPU machine has no
# Debian -dev packages, so it cannot `make`):
#
#   ../shared/device/bundle.sh                       # on the CPU machine: build-gpu/ + .gpu/
#   bash tests/gpu/prepare_ref.sh                    # .ref/: the reference's sources (fetch the fork first)
#   bash tests/gpu/rehearse.sh                       # still here: the bundle tried on the CPU
#   SF_CHECK_DRY=1 bash tests/gpu/check.sh           # still here: what the call will run, in which order
#   bash tests/gpu/pack_goldens.sh pack              # only when the rehearsal's carry line says so (~13 MiB less)
#   device run: bash tests/gpu/check.sh              carry [".gpu", ".ref"], timeout_s 600
#   bash tests/gpu/pack_goldens.sh restore           # after the last call, when packed
#
# A device session has 15 minutes in all (machine start included) and a call at most 600 s, so the
# check is made of units run most-needed first under a time budget (SF_CHECK_BUDGET seconds, default
# 540; 0 = none): a unit whose estimate no longer fits is left for the next call, and the summary's
# last rows name them as the next call's command (`SF_CHECK_UNITS=... bash tests/gpu/check.sh`, or
# `SF_CHECK_UNITS=next`, read from build/sf-check-next on the machine — an ignored path, which the device
# tool keeps between calls while the machine is warm: fire it at once, the machine stays
# warm only ~30 s between calls) and
# each unit's measured seconds beside its estimate. table.md is rewritten after every unit, so a call
# killed at its limit still brings the table of what ran. The units, in the order a call runs them:
#   dit_paths    test_dit_cuda attention_paths / taps_probs_cross / graphs: the DiT's attention paths and
#                its forwards as CUDA graphs against the CPU (the default path must be right before it is timed);
#                test_fp8_cuda: --fp8's quantization bit for bit, the FP8 GEMM, the fp8 golden forward (and
#                whether cuBLASLt takes FP8 with the GELU epilogue: a '#' line in its log when not)
#   bench        sf-denoise --bench 1.3b (full size, random weights; then profiled: the TFLOP/s rows),
#                sf-decode --bench 1.3b and taehv, sf-encode --bench xxl
#   ref          the reference PyTorch bench (../shared/refbench/ref_bench.py, copied into .ref), right after
#                ours (same call, same card: issue 13); its deadline leaves e2e its share
#   e2e          tests/gpu/e2e.sh: sf-run t2v.yaml tiny (GPU vs CPU) and full size with its timeline, the
#                low_memory run, MPS, the live pipeline (issue 15's figures)
#   taps         the 1.3b video with all 30 layers tapped: frames, probs, and both with the default
#                selection (step 0 of each block), against the plain video (issue 14's ≤ 10 % / ≤ 25 %)
#   probes       test_hopper_gpu (wgmma operand forms, TMA through an mbarrier ring, named barriers:
#                exact), test_tap_mass_gpu (every fused-attention variant vs the CPU)
#   bench_attn   sf-denoise --bench attn (every attention path beside cuDNN on the same inputs) and
#                --bench glue (the norm / RoPE / residual kernels' TB/s against a device copy)
#   ab           the A/Bs each optimisation must pay against: per-frame VAE convs, no conv autotune, the
#                VAE norm as it was, the VAE and umT5 profiles, GELU unfused, --fp8, no CUDA graphs
#   attn_videos  the video on sfpipe's own attention instead of cuDNN (mma.sync, wgmma, ws, ws2; profiled)
#                and the probs taps on each kernel (explicit, wgmma, ws, ws2)
#   tests        every CUDA test: kernels, glue, cuDNN SDPA and conv plans, the DiT / umT5 / VAE goldens and
#                the three on random models of other shapes vs the CPU, sf-decode cuda = cpu, figure4.sh
#                --gpu_id 0 = the CPU run, the reference's noise stream = torch.randn on the card
#   san_attn     compute-sanitizer on the fused attention kernels (memcheck, racecheck, synccheck)
#   san_tests    compute-sanitizer memcheck on the goldens end to end, racecheck on the kernels
# Choosing: SF_CHECK_UNITS=LIST (units), or SF_CHECK_ONLY=LIST of the older parts — attn (probes,
# dit_paths, bench_attn, san_attn), tests (the same + tests, san_tests), bench (bench, ab; SF_CHECK_AB=0:
# bench alone), taps (taps, attn_videos), e2e, ref; default every unit. Order is always the one above,
# but for a bench that is only the baseline of ab / ref: its partners follow it at once.
# Each unit runs under a watchdog: what the budget leaves + 40 s (a call's timeout_s must leave that).
# Everything lands in $OUT (at most 8 files come back): summary.txt, report.txt, bench.txt,
# ref_bench.json, gpu.txt, logs.tar.gz (this call's logs, each up to its last 2 MiB), table.md (issue 13's figures, measured / target, beside the reference; issue
# 14's tap overheads; issue 15's live figures). A step that fails prints enough to fix it blind.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD

UNITS_ALL="dit_paths bench ref e2e taps probes bench_attn ab attn_videos tests san_attn san_tests"
# Seconds each unit is expected to take on the H200 (conservative; each call's summary has the measured
# ones: update these from it). ref is the least the reference bench needs: it gets what is left after e2e's
# share when e2e is still to run, ≤ 220 s. e2e: sf-mkmodel 1.3b (~8 GB of random weights), 3 full-size runs,
# MPS and the live pipeline.
est_of() {
    case $1 in
    dit_paths) echo 45 ;; bench) echo 100 ;; e2e) echo 240 ;; ref) echo 120 ;; taps) echo 135 ;;
    probes) echo 30 ;; bench_attn) echo 60 ;; ab) echo 170 ;; attn_videos) echo 200 ;; tests) echo 260 ;;
    san_attn) echo 150 ;; san_tests) echo 200 ;; *) return 1 ;;
    esac
}
units_of_part() {
    case $1 in
    attn) echo probes dit_paths bench_attn san_attn ;;
    tests) echo probes dit_paths san_attn tests san_tests ;;
    bench) [ "${SF_CHECK_AB:-1}" != 0 ] && echo bench ab || echo bench ;;
    taps) echo taps attn_videos ;;
    e2e | ref) echo "$1" ;;
    *) return 1 ;;
    esac
}
# the chosen units, in UNITS_ALL's order
chosen=""
# what a call left for the next one, kept on the machine (it stays warm only ~30 s between calls: the next
# call's command is then fixed in advance, SF_CHECK_UNITS=next)
NEXT_FILE=${SF_CHECK_NEXT_FILE:-$ROOT/build/sf-check-next}
next_note=""
prev_next="" # what an earlier call on this machine left: kept for the next call unless this one runs it
[ "${SF_CHECK_DRY:-0}" != 1 ] && [ -s "$NEXT_FILE" ] && prev_next=$(head -n1 "$NEXT_FILE" | tr ',' ' ')
# bench in this call only as the baseline of ab / ref (the A/Bs and the reference stand beside our figures
# only when measured in the same call): it runs only when it fits together with one of them
pair_bench=0
if [ "${SF_CHECK_UNITS:-}" = next ] && [ ! -s "$NEXT_FILE" ]; then
    # a fresh machine (the warm one was given back): the default plan rather than a machine start for nothing
    next_note="SF_CHECK_UNITS=next but no earlier call on this machine left units ($NEXT_FILE): the default plan"
    echo "check.sh: $next_note" >&2
    req=$UNITS_ALL
elif [ "${SF_CHECK_UNITS:-}" = next ]; then
    req=$(head -n1 "$NEXT_FILE" | tr ',' ' ')
    grep -qx 'bench: baseline only' "$NEXT_FILE" && pair_bench=1
elif [ -n "${SF_CHECK_UNITS:-}" ]; then
    req=${SF_CHECK_UNITS//,/ }
elif [ -n "${SF_CHECK_ONLY:-}" ]; then
    req=""
    for p in ${SF_CHECK_ONLY//,/ }; do
        u=$(units_of_part "$p") || { echo "check.sh: unknown part '$p' in SF_CHECK_ONLY (attn tests bench taps e2e ref)" >&2; exit 2; }
        req="$req $u"
    done
else
    req=$UNITS_ALL
fi
for u in $req; do est_of "$u" >/dev/null || { echo "check.sh: unknown unit '$u' (units: $UNITS_ALL)" >&2; exit 2; }; done
# the A/Bs are measured against the default figures of the same call: ab brings bench
[[ " $req " == *" ab "* ]] && [[ " $req " != *" bench "* ]] && req="$req bench" && pair_bench=1
for u in $UNITS_ALL; do [[ " $req " == *" $u "* ]] && chosen="$chosen $u"; done
# a bench that is only a baseline is followed at once by its partners (the reference, the A/Bs): the units
# between would otherwise take the time its partner was planned for, and the bench would be run for nothing
if [ "$pair_bench" = 1 ]; then
    order=""
    for u in $chosen; do
        case $u in
        ab | ref) ;;
        bench) order="$order bench"; for x in ref ab; do [[ " $chosen " == *" $x "* ]] && order="$order $x"; done ;;
        *) order="$order $u" ;;
        esac
    done
    chosen=$order
fi
BUDGET=${SF_CHECK_BUDGET:-540}
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "check.sh: SF_CHECK_BUDGET must be whole seconds (0: no budget)" >&2; exit 2; }

# seconds used so far (a dry run counts the estimates instead) and left of the budget
DRY=${SF_CHECK_DRY:-0} T_DRY=0
used() { [ "$DRY" = 1 ] && echo "$T_DRY" || echo "$SECONDS"; }
left() { [ "$BUDGET" -eq 0 ] && echo 100000 || echo $((BUDGET - $(used))); }
# the reference bench's deadline out of LEFT seconds: what is left but a margin and, while e2e is still to
# run in this call ($rest), e2e's share; at most SF_REF_DEADLINE (220). Never below the reference's own
# estimate while the budget has it: then e2e goes to the next call instead.
rest=""
ref_deadline() {
    local d=$(($1 - 15)) m=${SF_REF_DEADLINE:-220} e
    e=$(est_of ref)
    [[ " $rest " == *" e2e "* ]] && [ $((d - $(est_of e2e))) -ge "$e" ] && d=$((d - $(est_of e2e)))
    [ "$d" -gt "$m" ] && d=$m
    echo "$d"
}
# the seconds a unit is planned for: its estimate; the reference bench gets the deadline it will be given
plan_of() {
    local e d
    e=$(est_of "$1")
    [ "$1" = ref ] && d=$(ref_deadline "$(left)") && [ "$d" -gt "$e" ] && e=$d
    echo "$e"
}

# the plan (runs nothing, needs no GPU): SF_CHECK_DRY=1, tested in tests/bats/gpu-tools.bats
if [ "$DRY" = 1 ]; then
    row() { :; }
fi

# what built the bundle: .gpu/BUILD_INFO (written by tests/gpu/rehearse.sh: the commit, whether the tree
# had changes, the bundle's sha256), checked against the bundle that travelled
bundle_info() {
    local have want
    have=$(sha256sum .gpu/bundle.tar.gz 2>/dev/null | cut -c1-16)
    [ -f .gpu/BUILD_INFO ] || { echo "bundle ${have:-missing} (no .gpu/BUILD_INFO: not rehearsed)"; return; }
    want=$(sed -n 's/.*bundle sha256 \([0-9a-f]*\).*/\1/p' .gpu/BUILD_INFO)
    [ "$want" = "$have" ] && echo "$(head -n1 .gpu/BUILD_INFO)" ||
        echo "bundle $have, rebuilt after its rehearsal ($(head -n1 .gpu/BUILD_INFO))"
}

# the GPU machine: output folder, the bundle unpacked, the libraries it does not carry
fail=0
setup_device() {
    OUT=${OUT:-$ROOT/gpu-out}
    G=${SF_GPU_DIR:-/tmp/sfgpu}
    MARK=/tmp/sf-check-start.$$ # logs(): what this call wrote
    touch -d '-1 second' "$MARK"
    mkdir -p "$OUT" "$G"
    exec > >(tee "$OUT/report.txt") 2>&1
    TEE_PID=$!
    S=$OUT/summary.txt
    : >"$S"
    row() { printf '%-26s %s\n' "$1" "$2" >>"$S"; }
    local when build
    when=$(date -u +%FT%TZ)
    build=$(bundle_info)
    echo "== sfpipe GPU check $when on $(uname -n); units:$chosen; budget ${BUDGET} s; $build"
    local smi
    smi=$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>/dev/null | head -n1)
    [ -n "$smi" ] || smi="card unknown (no nvidia-smi, or it printed nothing)"
    echo "$smi" | tee "$OUT/gpu.txt"
    echo "measured $when, $build" >>"$OUT/gpu.txt" # table.py's header: the card, then this line
    row gpu "$(head -n1 "$OUT/gpu.txt")"
    row date "$when"
    row build "$build"
    [ -n "$next_note" ] && row "next call" "$next_note"
    tar -xzf .gpu/bundle.tar.gz -C "$G" || { echo "no .gpu/bundle.tar.gz: run ../shared/device/bundle.sh first"; exit 1; }
    # the goldens, when they travelled packed (tests/gpu/pack_goldens.sh: the tree was sent without them)
    if [ -f .gpu/goldens.tar.gz ]; then
        tar -xzf .gpu/goldens.tar.gz || { echo "cannot unpack .gpu/goldens.tar.gz"; exit 1; }
        row goldens "unpacked from .gpu/goldens.tar.gz: $(find tests/golden -type f | wc -l) files"
    fi

    # Libraries the bundle does not carry: cuBLAS (toolkit or the venv's wheels), cuDNN, NVRTC.
    find1() { find /usr/local /opt /usr/lib -name "$1" -print -quit 2>/dev/null | xargs -r dirname; }
    cublas=$(for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -e "$d/libcublas.so.13" ] && echo "$d" && break; done)
    [ -n "$cublas" ] || cublas=$(find1 libcublas.so.13)
    cudnn=$(find1 libcudnn.so.9)
    nvrtc=$(find1 libnvrtc.so.13)
    # the machine's own library path, for the programs that are not ours (python3 and torch, curl): the
    # bundle's Debian libraries (libgomp, libz, gnutls …) and the toolkit's cuBLAS must not stand in for theirs —
    # the reference runs as it is (e2e.sh and live.sh read SF_LD0 too)
    export SF_LD0="${LD_LIBRARY_PATH:-}"
    export LD_LIBRARY_PATH="$G/lib${cublas:+:$cublas}${cudnn:+:$cudnn}${nvrtc:+:$nvrtc}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PATH="$G/bin:$PATH" SF_ROOT="$ROOT" SF_GOLDEN="$ROOT/tests/golden" SF_TEST_DEVICE=cuda:0
    row libraries "cublas ${cublas:-MISSING}; cudnn ${cudnn:-MISSING}; nvrtc ${nvrtc:-MISSING}"
    if [[ " $chosen " == *" ref "* ]] && [ ! -f .ref/ref_bench.py ] && [ "${SF_SKIP_REF:-0}" != 1 ]; then
        echo "== NO .ref: the reference bench cannot run (tests/gpu/prepare_ref.sh, then carry [\".gpu\", \".ref\"])"
        row "bench reference" "MISSING .ref (run tests/gpu/prepare_ref.sh and carry .ref)"
        fail=1
    fi
}
[ "$DRY" = 1 ] || setup_device

# step LABEL SECONDS CMD... : run, keep the log in the report, summarise TAP counts.
step() {
    local label=$1 t=$2 log=/tmp/sf-$1.log rc p f k
    shift 2
    echo "== $label: $*"
    timeout "$t" "$@" >"$log" 2>&1
    rc=$?
    cat "$log"
    # a SKIP on the GPU is a failure, but for the emulator's self-tests (test_cuda_glue runs every case)
    p=$(grep -c '^ok' "$log") f=$(grep -c '^not ok' "$log") k=$(grep -i '^ok.*# skip' "$log" | grep -vc 'emulator self-test')
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$k" -ne 0 ] || [ "$p" -eq 0 ]; then
        fail=1 # (no case run at all is a failure too: a case name that no longer exists is exit 2, sf_test.h)
        row "$label" "FAILED: exit $rc, $((p - k)) ok, $f not ok, $k skipped (a SKIP on the GPU is a failure)"
    else
        row "$label" "$p ok, exit 0"
    fi
}

# sanitize "TOOL TEST [CASE]"... : compute-sanitizer on each, its summary in the report and the table.
cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n1)
sanitize() {
    local spec rc sum log
    [ -n "$cs" ] || { row compute-sanitizer "not found"; return 0; }
    for spec in "$@"; do
        set -- $spec
        log=/tmp/sf-san-$1-$2-${3:-all}.log # one per run: all of them go into logs.tar.gz
        # no mbarrier hang guard under the sanitizer (tma.cuh: it slows the kernels tens of times, and a wait
        # past the 3 s bound would trap as if the kernel hung); the timeout stands in for it
        SF_MBAR_TIMEOUT_NS=0 timeout 120 "$cs" --tool "$1" --error-exitcode 99 "$G/tests/$2" ${3:-} >"$log" 2>&1
        rc=$?
        sum=$(grep -m1 -oE '(ERROR|RACECHECK) SUMMARY: [0-9]+ [a-z]+' "$log")
        echo "== sanitizer $1 on $2 ${3:-}: exit $rc, $sum"
        grep -m8 -E '^=+ +(Invalid|Race|Error|.*hazard|Uninitialized)|^=+ +at ' "$log"
        tail -n 3 "$log"
        row "sanitizer $1" "exit $rc; ${sum:-no summary} ($2 ${3:-})"
        [ "$rc" -eq 0 ] || fail=1
    done
}

# ---- the units ----

u_dit_paths() { # the DiT's attention paths and CUDA graphs on the goldens (graphs: forwards as graphs = without)
    step attn_dit 180 "$G/tests/test_dit_cuda" attention_paths taps_probs_cross graphs
    step fp8 60 env SF_TEST_VERBOSE=1 "$G/tests/test_fp8_cuda" # --fp8: quantization = CPU bits, FP8 GEMM, fp8 golden
}

# procs_with FIELD VALUE: the processes whose /proc/PID/stat field FIELD, counted after "(comm) " (1 state,
# 2 ppid, 3 pgrp, 4 session), is VALUE (the device image may have no pgrep)
procs_with() {
    local p
    for p in /proc/[0-9]*; do [ "$(sed 's/.*) //' "$p/stat" 2>/dev/null | cut -d' ' -f"$1")" = "$2" ] && echo "${p#/proc/}"; done
}

# ab_run PREFIX PATTERN CMD... : an A/B or profiled run (120 s at most): its figure lines (PATTERN) and any error
# into bench.txt prefixed "PREFIX: ", its whole log in /tmp/sf-ab-*.log (logs.tar.gz). A run that fails is a row
# and a failure: an alternative path that crashed must not read as "no figures".
ab_n=0
ab_run() {
    local pre=$1 pat=$2 rc log
    shift 2
    ab_n=$((ab_n + 1))
    log=/tmp/sf-ab-$ab_n-${pre// /_}.log
    timeout -k 10 120 "$@" >"$log" 2>&1
    rc=$?
    grep -E "$pat|[Ee]rror|FAIL|[Ff]ault" "$log" | sed "s/^/$pre: /" | tee -a "$OUT/bench.txt"
    [ "$rc" -eq 0 ] || { row "$pre run" "FAILED: exit $rc; $(tail -n 1 "$log")"; fail=1; }
}

# the plain DiT video's line in bench.txt: unprefixed and untagged (no "[taps: …]" / "[attention: …]")
DIT_PLAIN='^denoise 1\.3b gpu video: [^[]*$'

u_bench() { # the headline figures: the DiT video (then profiled: GEMM / attention TFLOP/s), the VAE, umT5
    local rc
    echo "== bench: sf-denoise --bench 1.3b --device cuda (random weights, 832x480, 21 latent frames)"
    timeout 150 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 | tee -a "$OUT/bench.txt"
    rc=${PIPESTATUS[0]}
    row "bench sfpipe" "exit $rc; $(grep -m1 -E "$DIT_PLAIN" "$OUT/bench.txt" | sed 's/^denoise 1.3b gpu video: //')"
    # a process's first video: first-use costs, and captures a library's first use broke (at most one per shape)
    row "bench first video" "$(grep -m1 '^denoise 1.3b gpu warm-up video:' "$OUT/bench.txt" | sed 's/^denoise 1.3b gpu warm-up video: //')"
    [ "$rc" -eq 0 ] || fail=1
    echo "== bench again with SF_CUDA_PROFILE=1 (events around every op: where the time goes)"
    ab_run profiled 'gpu (video|profile)' env SF_CUDA_PROFILE=1 sf-denoise --bench 1.3b --device cuda:0 --progress none
    echo "== bench: sf-decode --bench 1.3b --device cuda (random weights, 21 latent frames -> 81 frames at 832x480)"
    timeout 150 sf-decode --bench 1.3b --device cuda:0 2>&1 | tee -a "$OUT/bench.txt"
    rc=${PIPESTATUS[0]}
    row "bench sf-decode" "exit $rc; $(grep -m1 '^decode 1.3b gpu video:' "$OUT/bench.txt" | sed 's/^decode 1.3b gpu video: //')"
    [ "$rc" -eq 0 ] || fail=1
    echo "== bench: sf-decode --bench taehv --device cuda (the TAEHV tiny decoder, taew2_1 shapes, random weights, the same video)"
    timeout 45 sf-decode --bench taehv --device cuda:0 2>&1 | tee -a "$OUT/bench.txt" # ~5 s: within the unit's 100
    rc=${PIPESTATUS[0]}
    row "bench sf-decode taehv" "exit $rc; $(grep -m1 '^decode taehv gpu video:' "$OUT/bench.txt" | sed 's/^decode taehv gpu video: //')"
    [ "$rc" -eq 0 ] || fail=1
    echo "== bench: sf-encode --bench xxl --device cuda (umT5-XXL, random bf16 weights, one 512-token prompt)"
    rm -f /tmp/sf-t5bench.log # this call's figure, not a warm machine's earlier one
    timeout 120 sf-encode --bench xxl --device cuda:0 2>&1 | tee -a "$OUT/bench.txt" | tee /tmp/sf-t5bench.log
    rc=${PIPESTATUS[0]}
    row "bench umT5-XXL" "exit $rc; $(grep -m1 'per 512-token prompt' /tmp/sf-t5bench.log | sed 's/^encode xxl gpu: //'); $(grep -m1 -o 'device used [0-9.]* of [0-9.]* GiB' /tmp/sf-t5bench.log)"
    [ "$rc" -eq 0 ] || fail=1
}

u_e2e() { # the three stages as one sf-run pipeline on the GPU: tiny (GPU vs CPU), full size timed, live
    local rc
    local lim=$(($(left) - 10))
    [ "$BUDGET" -eq 0 ] || [ "$lim" -lt 60 ] && lim=$((BUDGET == 0 ? 2400 : 60))
    # bounded by what the budget leaves (its own timeouts add up to ~25 min): a hang costs the rest of this call's
    # budget (the units after it go to the next call), not the figures already in. In a session of its own:
    # e2e.sh's nested timeouts put what they run in process groups of their own, which a stop at the budget (a
    # signal to e2e.sh's group) does not reach; whatever is left in the session is ended here, so that no
    # pipeline keeps the GPU busy while the next units are timed
    local sid p ss=()
    command -v setsid >/dev/null && ss=(setsid -w) # util-linux; without it, only e2e.sh's own group is stopped
    rm -f /tmp/sf-e2e.sid
    timeout -k 10 "$lim" "${ss[@]}" bash -c 'echo $$ >/tmp/sf-e2e.sid; exec bash tests/gpu/e2e.sh "$1"' _ "$G"
    rc=$?
    sid=$(cat /tmp/sf-e2e.sid 2>/dev/null)
    if [ -n "$sid" ]; then
        for p in $(procs_with 4 "$sid"); do kill -KILL "$p" 2>/dev/null; done
    fi
    # an MPS daemon daemonises out of that session: one e2e.sh stopped during its MPS run left up is told to quit
    [ -d /tmp/sf-e2e/mps-pipe ] && command -v nvidia-cuda-mps-control >/dev/null &&
        echo quit | CUDA_MPS_PIPE_DIRECTORY=/tmp/sf-e2e/mps-pipe timeout 10 nvidia-cuda-mps-control >/dev/null 2>&1
    { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && row "e2e" "stopped at the budget ($lim s): the lines above are what finished"
    while IFS= read -r l; do row "e2e" "$l"; done </tmp/sf-e2e/summary.txt
    [ "$rc" -eq 0 ] || { fail=1; row "e2e" "FAILED: exit $rc"; }
}

u_ref() { # the reference PyTorch bench, same call, same card; its deadline is what the budget leaves
    local rc dl extra=()
    [ "${SF_SKIP_REF:-0}" = 1 ] && { row "bench reference" "skipped (SF_SKIP_REF=1)"; return 0; }
    [ -f .ref/ref_bench.py ] || { fail=1; return 0; } # said at the start (setup_device)
    dl=$(ref_deadline "$(left)")
    [ "$dl" -lt 200 ] && extra=(--reserve-s 60 --t5-reserve-s 25) # its DiT extras leave the VAE and umT5 their turn
    echo "== reference PyTorch bench (same call, same card; deadline $dl s)"
    rm -rf /tmp/ref # a failure must not bring an earlier call's JSON
    # a stage that overruns the deadline is stopped (SIGINT: the JSON so far is written) 40 s after it, 15 s
    # when e2e follows (ref_deadline left e2e its share, which a longer grace would eat), killed 10 s later:
    # always before the unit's watchdog (left + 40 s)
    local grace=40
    [[ " $rest " == *" e2e "* ]] && grace=15
    PYTHONUNBUFFERED=1 LD_LIBRARY_PATH="$SF_LD0" timeout -s INT -k 10 $((dl + grace)) python3 .ref/ref_bench.py --ref .ref --out /tmp/ref \
        --stages "${SF_REF_STAGES:-dit,vae,t5,kprof}" --deadline-s "$dl" "${extra[@]}" >/tmp/sf-ref.log 2>&1
    rc=$?
    tail -n 25 /tmp/sf-ref.log
    [ "$rc" -eq 0 ] || fail=1
    row "bench reference" "exit $rc; $(LD_LIBRARY_PATH="$SF_LD0" python3 -c 'import json,sys;d=json.load(open("/tmp/ref/ref_bench.json"));s=d.get("summary",{});print({k:s[k] for k in list(s)[:6]})' 2>/dev/null)"
    row "reference stages" "$(LD_LIBRARY_PATH="$SF_LD0" python3 -c 'import json;s=json.load(open("/tmp/ref/ref_bench.json")).get("summary",{});print({k:s.get(k) for k in ("dit_total_s","vae_decode_s","t5_encode_ms","fps","fps_incl_t5","vae_peak_gib","t5_peak_gib")})' 2>/dev/null)"
}

# tv MODE: the 1.3b video with every layer tapped in MODE (SF_BENCH_TAPS); prints its seconds
# (a tapped run's lines go into bench.txt prefixed "taps MODE: ", so that its memory and graph lines are never
# read as the plain video's; the plain run, MODE empty, is a default figure and goes in as it is)
# (its exit in /tmp/sf-tv.rc: tv runs in a command substitution, which cannot set fail; tap_row reads it)
tv() {
    SF_BENCH_TAPS=$1 timeout 200 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 |
        sed "${1:+s/^/taps $1: /}" | tee -a "$OUT/bench.txt" | awk '/gpu video:/ && !x { sub(/.*gpu video: /, ""); print $1; x = 1 }'
    echo "${PIPESTATUS[0]}" >/tmp/sf-tv.rc
}
# the plain video's seconds: part bench's in this call (the first untagged line), else one run now
t_plain() {
    local t
    t=$(grep -m1 -E "$DIT_PLAIN" "$OUT/bench.txt" 2>/dev/null | awk '{print $5}')
    [ -n "$t" ] || t=$(tv "")
    echo "$t"
}
tap_row() { # NAME PLAIN_S TAPPED_S, right after the tapped run (its exit: /tmp/sf-tv.rc)
    local r rc
    rc=$(cat /tmp/sf-tv.rc 2>/dev/null)
    r=$(awk -v a="$2" -v b="$3" 'BEGIN { if (a > 0 && b > 0) printf "%.3f s vs %.3f s: +%.1f%%", b, a, 100 * (b / a - 1); else print "failed" }')
    [ "${rc:-0}" = 0 ] || r="$r (exit $rc)"
    row "taps $1 overhead" "$r"
    [ "$r" != failed ] && [ "${rc:-0}" = 0 ] || fail=1
}

u_taps() { # issue 14: every layer tapped, every forward kept, then the CLI's default selection (+seed)
    local t0 m
    echo "== taps: sf-denoise --bench 1.3b with SF_BENCH_TAPS=frames / probs / tokens vs no taps"
    # the plain video timed again here, beside the tapped ones (bench's was minutes and other units ago)
    t0=$(tv "")
    # tokens (sf-denoise --tap-mode tokens: the sink frame's per-token mass, the explicit attention's logits for the
    # tapped forwards) has no target in the issue: its figure says what the mode costs (within the 135 s estimate)
    for m in frames probs frames+seed probs+seed tokens+seed; do tap_row "$m" "$t0" "$(tv $m)"; done
}

u_probes() { # sfpipe's Hopper building blocks and fused attention kernels, exact / against the CPU
    step hopper 60 "$G/tests/test_hopper_gpu" # wgmma operand forms, TMA ring, named barriers: exact, one at a time
    step tap_mass 90 "$G/tests/test_tap_mass_gpu" # the probability taps' kernels vs kernels/tap_mass.h
}

u_bench_attn() { # every attention path at full size beside cuDNN on the same inputs; the glue kernels' TB/s
    local rc mism
    echo "== the attention paths alone at full size (sf-denoise --bench attn)"
    timeout 150 sf-denoise --bench attn --device cuda:0 2>&1 | tee -a "$OUT/bench.txt"
    rc=${PIPESTATUS[0]}
    mism=$(grep -c '^attention gpu .*MISMATCH' "$OUT/bench.txt")
    row "bench attn" "exit $rc; $(grep -c '^attention gpu .* ms, ' "$OUT/bench.txt") paths timed, $(grep -c '^attention gpu .*not run' "$OUT/bench.txt") not run, $(grep -c '^attention gpu .*FAILED' "$OUT/bench.txt") failed, $mism wrong at full size (O vs cuDNN, masses vs the first mass path and their row sums)"
    [ "$rc" -eq 0 ] && [ "$mism" -eq 0 ] || fail=1
    echo "== the DiT's glue kernels alone at full size (sf-denoise --bench glue: TB/s against a device copy)"
    timeout 60 sf-denoise --bench glue --device cuda:0 2>&1 | tee -a "$OUT/bench.txt"
    rc=${PIPESTATUS[0]}
    row "bench glue" "exit $rc; $(grep -m1 'glue gpu per forward' "$OUT/bench.txt" | sed 's/^glue gpu //')"
    [ "$rc" -eq 0 ] || fail=1
    echo "== one --kv-compress eviction at full size (sf-denoise --bench kvc: per part, x30 layers per block)"
    timeout 60 sf-denoise --bench kvc --device cuda:0 2>&1 | tee -a "$OUT/bench.txt"
    rc=${PIPESTATUS[0]}
    row "bench kvc" "exit $rc; $(grep -m1 'kvc gpu per eviction' "$OUT/bench.txt" | sed 's/^kvc gpu //')"
    [ "$rc" -eq 0 ] || fail=1
}

# vae_alt PREFIX VAR=VALUE: the VAE bench again under VAR, its figure lines prefixed into bench.txt
vae_alt() { ab_run "$1" 'gpu (video|seconds|memory)' env "$2" sf-decode --bench 1.3b --device cuda:0; }
# ab_vs STAGE PREFIX A B [EXTRA]: "A<default s>EXTRA vs B<alternative s>: ±x%" — STAGE's (denoise, decode)
# default video against the one whose line is prefixed PREFIX in bench.txt
ab_vs() {
    awk -v st="$1 1.3b gpu video:" -v pre="$2: $1 1.3b gpu video:" -v na="$3" -v nb="$4" -v ex="${5:-}" '
        index($0, st) == 1 && !a { a = $5 } index($0, pre) == 1 { b = $7 }
        END { if (a > 0 && b > 0) printf "%s%.3f s%s vs %s%.3f s: %+.1f%%", na, a, ex, nb, b, 100 * (a / b - 1); else print "no figures" }' "$OUT/bench.txt"
}

u_ab() { # each optimisation against its absence (kept only if it pays: RESULTS.md)
    local g
    echo "== VAE bench with one cuDNN call per output frame (SF_VAE_FRAME_CONVS=1: the batched convolutions must pay against it)"
    vae_alt "per-frame convs" SF_VAE_FRAME_CONVS=1
    echo "== VAE bench with cuDNN's first-choice conv plans (SF_CUDNN_AUTOTUNE=0: the autotuned plans must pay against them)"
    vae_alt "no autotune" SF_CUDNN_AUTOTUNE=0
    row "VAE conv autotune" "$(ab_vs decode "no autotune" "tuned " "first choices "); $(grep -m1 -o '[0-9]* conv shapes autotuned in [0-9.]* s' "$OUT/bench.txt")"
    echo "== VAE bench with the norm as it was (SF_VAE_NORM_PLAIN=1: a warp per pixel, SiLU in fp64; the lane groups and fp32 SiLU must pay against it)"
    vae_alt "plain norm" SF_VAE_NORM_PLAIN=1
    row "VAE norm groups + fp32 SiLU" "$(ab_vs decode "plain norm" "" "plain ")"
    echo "== VAE bench again with SF_CUDA_PROFILE=1 (per latent frame: convs, 1x1 GEMMs, norms, attention, upsampling, caches, I/O)"
    ab_run profiled 'gpu (video|profile)' env SF_CUDA_PROFILE=1 sf-decode --bench 1.3b --device cuda:0
    echo "== DiT bench with the FFN's GELU as its own kernel (SF_CUDA_GELU_UNFUSED=1: the cuBLASLt GELU epilogue must pay against it)"
    ab_run "gelu unfused" 'gpu video' env SF_CUDA_GELU_UNFUSED=1 sf-denoise --bench 1.3b --device cuda:0 --progress none
    row "GELU epilogue" "$(ab_vs denoise "gelu unfused" "fused " "unfused ")"
    echo "== DiT bench with --fp8 (the block linears in float8 e4m3, per-tensor dynamic scales: the reference demo's FP8 switch; opt-in, other numbers)"
    ab_run fp8 'gpu (video|profile)|fp8|fall' sf-denoise --bench 1.3b --device cuda:0 --progress none --fp8
    row "--fp8 (opt-in)" "$(ab_vs denoise fp8 "bf16 " "fp8 ")"
    echo "== DiT bench without CUDA graphs (SF_CUDA_GRAPHS=0: each forward's ~600 launches one by one; the graphs must pay against it)"
    ab_run "no graphs" 'gpu (video|block|CUDA graphs)' env SF_CUDA_GRAPHS=0 sf-denoise --bench 1.3b --device cuda:0 --progress none
    g=$(awk '/^denoise 1.3b gpu CUDA graphs:/ { print $6 " of " $8 " forwards"; exit }' "$OUT/bench.txt")
    row "CUDA graphs" "$(ab_vs denoise "no graphs" "graphs " "none " " ($g)")"
    ab_run profiled 'per 512|profile' env SF_CUDA_PROFILE=1 sf-encode --bench xxl --device cuda:0
}
u_attn_videos() { # sfpipe's fused attention in cuDNN's place (TFLOP/s beside cuDNN's), and probs taps on each kernel
    local t0 v rc
    echo "== sfpipe's fused attention instead of cuDNN (SF_NO_CUDNN=1, profiled): mma.sync, wgmma, warp-specialised"
    # each run's lines prefixed "no cudnn: " in bench.txt (its memory and graph lines are not the default's)
    for v in "" SF_ATTN_WGMMA=1 SF_ATTN_WS=1 SF_ATTN_WS=2; do
        env ${v:+"$v"} SF_NO_CUDNN=1 SF_CUDA_PROFILE=1 timeout 200 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 |
            sed 's/^/no cudnn: /' | tee -a "$OUT/bench.txt" | grep -E 'gpu video:|gpu profile|error'
        rc=${PIPESTATUS[0]}
        row "video without cuDNN ${v:-(mma.sync)}" "exit $rc"
        [ "$rc" -eq 0 ] || fail=1
    done
    # probs on the explicit path the fused kernel replaced (A/B), then on the wgmma and warp-specialised kernels
    t0=$(t_plain)
    tap_row probs-explicit "$t0" "$(SF_TAP_PROBS_EXPLICIT=1 tv probs)"
    tap_row probs-wgmma "$t0" "$(SF_ATTN_WGMMA=1 tv probs)"
    tap_row probs-ws "$t0" "$(SF_ATTN_WS=1 tv probs)"
    tap_row probs-ws2 "$t0" "$(SF_ATTN_WS=2 tv probs)"
}

u_tests() { # every CUDA test against its CPU reference / the goldens
    local d M rg rc rd
    step kernels 60 "$G/tests/test_cuda_kernels"
    step glue 60 "$G/tests/test_cuda_glue" # every case of test_cuda_emu.c on the GPU (its emulator self-tests SKIP)
    step graphs 30 "$G/tests/test_cuda_graphs_gpu" # capture / launch / update / invalidation (its emulator self-test SKIPs)
    step sdpa 120 env SF_CUDNN_DEBUG=1 "$G/tests/test_sdpa_plans" forward_gpu # deviceless_plans: CPU machine only
    step dit_cuda 180 "$G/tests/test_dit_cuda"
    step dit_shapes 150 "$G/tests/test_dit_cuda_shapes" # other model shapes (head dims 20-384, odd tokens a frame) vs the CPU DiT; 27 cases (--pc-budget two), never yet timed on a card
    step kv_compress 30 "$G/tests/test_kv_compress_gpu" # --kv-compress's importance (cuBLASLt logits + glue), gather, --pc-budget's ring, sums, scores, both selections (radix select) vs kernels/kv_compress.h
    step t5_glue 60 "$G/tests/test_t5_glue_gpu"
    step t5_cuda 120 "$G/tests/test_t5_cuda"
    step t5_shapes 90 "$G/tests/test_t5_cuda_shapes" # other model shapes (head dims 8-128, dim_attn != dim, odd dims, dtypes) vs the CPU encoder
    step vae_glue 60 "$G/tests/test_vae_glue" # the VAE's own kernels vs kernels/vae_ops.h
    step taehv_glue 30 "$G/tests/test_taehv_glue" # the TAEHV decoder's kernels vs kernels/taehv_ops.h
    step conv 120 env SF_CUDNN_DEBUG=1 "$G/tests/test_conv_plans" forward_gpu # the VAE's cuDNN conv3d vs sf_conv3d_cpu
    step vae_cuda 180 env SF_TEST_VERBOSE=1 "$G/tests/test_vae_cuda" # GPU VAE decoder vs the vae golden, streamed = one-shot
    step vae_shapes 180 env SF_TEST_VERBOSE=1 "$G/tests/test_vae_cuda_shapes" # other widths / z dims / odd latent sizes vs the CPU decoder; refusals
    step vae_encode 120 env SF_TEST_VERBOSE=1 "$G/tests/test_vae_encode_cuda" # GPU VAE encoder vs the vae_encode golden, streamed = at once, other widths vs the CPU encoder
    step taehv_cuda 60 env SF_TEST_VERBOSE=1 "$G/tests/test_taehv_cuda" # GPU TAEHV decoder vs the taehv golden (2 checkpoints), streamed = pipelined = one-shot, other widths vs the CPU decoder

    echo "== the reference's noise stream: torch.randn on this card (tests/gpu/torch_noise.py) vs sf-denoise --noise-rng torch-cuda"
    rm -rf /tmp/sf-torch-noise
    if env LD_LIBRARY_PATH="$SF_LD0" timeout 120 python3 tests/gpu/torch_noise.py /tmp/sf-torch-noise >/tmp/sf-torch-noise.log 2>&1; then
        step torch_noise 60 env SF_TORCH_NOISE_DIR=/tmp/sf-torch-noise "$G/tests/test_rng_torch" device_compare
    else
        cat /tmp/sf-torch-noise.log
        row torch_noise "FAILED: torch_noise.py: $(tail -n 1 /tmp/sf-torch-noise.log)"
        fail=1
    fi

    echo "== sf-decode --device cuda vs --device cpu on the vae golden latents (video: max abs diff <= 0.1, the bound of SF_TOL_VAE_BF16)"
    local rdec=""
    rm -f /tmp/sf-vae-cuda.* /tmp/sf-vae-cpu.* # never an earlier call's files
    for d in cuda cpu; do
        timeout 120 sf-decode --latents tests/golden/expect/vae.safetensors:z --vae tests/golden/model/Wan2.1_VAE.pth \
            --device $d --save-video /tmp/sf-vae-$d.safetensors -o /tmp/sf-vae-$d.y4m 2>&1 | tail -n 2
        rdec="$rdec $d exit ${PIPESTATUS[0]},"
    done
    sf-tensor diff /tmp/sf-vae-cpu.safetensors /tmp/sf-vae-cuda.safetensors --rtol 0 --atol 0.1 -q 2>&1 | tail -n 3
    rd=${PIPESTATUS[0]}
    row "sf-decode --device cuda" "${rdec# } diff vs cpu exit $rd"
    [[ "$rdec" != *"exit "[1-9]* ]] && [ "$rd" -eq 0 ] || fail=1

    echo "== sf-vae-encode --device cuda vs --device cpu on the CPU's decoded video (latents: max abs diff <= 0.1, as above)"
    local renc=""
    rm -f /tmp/sf-venc-cuda.* /tmp/sf-venc-cpu.*
    for d in cuda cpu; do
        timeout 120 sf-vae-encode --video /tmp/sf-vae-cpu.safetensors --vae tests/golden/model/Wan2.1_VAE.pth \
            --device $d --out /tmp/sf-venc-$d.safetensors 2>&1 | tail -n 2
        renc="$renc $d exit ${PIPESTATUS[0]},"
    done
    sf-tensor diff /tmp/sf-venc-cpu.safetensors /tmp/sf-venc-cuda.safetensors --rtol 0 --atol 0.1 -q 2>&1 | tail -n 3
    rd=${PIPESTATUS[0]}
    row "sf-vae-encode --device cuda" "${renc# } diff vs cpu exit $rd"
    [[ "$renc" != *"exit "[1-9]* ]] && [ "$rd" -eq 0 ] || fail=1

    echo "== figure4.sh --gpu_id 0 (the reference command on the GPU) vs the same on the CPU, tiny model"
    M=/tmp/sf-tiny
    rm -rf "$M" /tmp/f4 && mkdir -p /tmp/f4
    if sf-mkmodel tiny "$M" --seed 5 --checkpoint "$M/ckpt.pt" >/tmp/sf-mk.log 2>&1; then
        f4() { timeout 120 pipelines/figure4.sh --config_path configs/self_forcing_dmd.yaml --checkpoint_path "$M/ckpt.pt" \
            --prompt "A red fox trotting through fresh snow" --num_frames 9 --layer_indices 0 2 --use_ema --seed 42 \
            --model-dir "$M" --height 64 --width 96 --cache-dir /tmp/f4/cache "$@"; }
        f4 --output_path /tmp/f4/gpu.pt --gpu_id 0 >/tmp/f4/gpu.log 2>&1
        rg=$?
        f4 --output_path /tmp/f4/cpu.pt >/tmp/f4/cpu.log 2>&1
        rc=$?
        tail -n 3 /tmp/f4/gpu.log
        sf-tensor ls /tmp/f4/gpu.pt 2>&1 | head -n 6
        # bf16 GPU logits vs the f32 CPU run: the tolerance of the GPU golden taps (5e-2 of the logits' scale)
        sf-tensor diff /tmp/f4/cpu.pt /tmp/f4/gpu.pt --rtol 0.05 --atol 0.5 -q 2>&1 | tail -n 4
        rd=${PIPESTATUS[0]}
        row "figure4.sh --gpu_id 0" "gpu exit $rg, cpu exit $rc, diff exit $rd"
        [ "$rg" -eq 0 ] && [ "$rc" -eq 0 ] && [ "$rd" -eq 0 ] || fail=1
    else
        row "figure4.sh --gpu_id 0" "sf-mkmodel failed: $(tail -n1 /tmp/sf-mk.log)"
        fail=1
    fi
}

u_san_attn() { # the warp-specialised modes share their memory traffic (memcheck on one), differ in register-level
    # overlap (racecheck on the overlapped one) and barriers (synccheck on the one with all of them)
    sanitize "racecheck test_tap_mass_gpu attn_mass_frames" "memcheck test_tap_mass_gpu attn_mass_small_groups" \
        "memcheck test_tap_mass_gpu attn_mass_wgmma" "memcheck test_tap_mass_gpu attn_mass_ws" \
        "racecheck test_tap_mass_gpu attn_mass_ws2" "synccheck test_tap_mass_gpu attn_mass_ws3" \
        "memcheck test_tap_mass_gpu attn_ws_split"
}

u_san_tests() {
    sanitize "memcheck test_dit_cuda forward" "racecheck test_cuda_kernels" "memcheck test_t5_cuda all_prompts" \
        "racecheck test_t5_glue_gpu" "memcheck test_vae_cuda vae_cuda_golden" "memcheck test_kv_compress_gpu" \
        "racecheck test_kv_compress_gpu gpu_select"
}

# issue 13's table (tests/gpu/table.py) from what has run so far: rewritten after every unit
table() {
    env LD_LIBRARY_PATH="$SF_LD0" python3 tests/gpu/table.py "$OUT/bench.txt" /tmp/sf-e2e/summary.txt \
        "$OUT/ref_bench.json" "$OUT/gpu.txt" >"$OUT/table.md" 2>/tmp/sf-table.err ||
        { echo "table.py failed:"; tail -n 5 /tmp/sf-table.err; }
}

# bench.txt starts with the card and the date (several calls' bench.txt may be put together for table.py)
[ "$DRY" = 1 ] || { rm -f /tmp/sf-e2e/summary.txt "$OUT/ref_bench.json"; echo "# $(head -n1 "$OUT/gpu.txt"); $(sed -n 2p "$OUT/gpu.txt")" >"$OUT/bench.txt"; }
skipped="" ran="" done_units=""
# What a next call must run: the units left so far and those not reached yet ($1; a call killed at its limit
# leaves them too), with our bench again when the reference is among them (its figures stand beside ours
# only when measured in the same call). Kept in NEXT_FILE before each unit, so SF_CHECK_UNITS=next goes on
# from wherever this call ended.
next_units() {
    local u n="" todo="$skipped $1"
    for u in $prev_next; do [[ " $done_units " == *" $u "* ]] || todo="$todo $u"; done # an earlier call's, not run here
    [[ " $todo " == *" ref "* ]] && [[ " $ran " == *" bench "* ]] && todo="$todo bench"
    for u in $UNITS_ALL; do [[ " $todo " == *" $u "* ]] && n="$n,$u"; done
    echo "${n#,}"
}
# whether the next call's bench is there only as the baseline of its ab / ref ($1: as for next_units): not
# when this call wanted bench for its own figures and did not get to it
bench_only_baseline() {
    local u todo="$skipped $1"
    for u in $prev_next; do [[ " $done_units " == *" $u "* ]] || todo="$todo $u"; done
    [[ " $todo " == *" bench "* ]] && [ "$pair_bench" = 0 ] && return 1
    return 0
}
save_next() {
    local n
    [ "$DRY" = 1 ] && return 0
    n=$(next_units "$1")
    if [ -n "$n" ]; then
        mkdir -p "$(dirname "$NEXT_FILE")" && echo "$n" >"$NEXT_FILE"
        [[ ",$n," == *",bench,"* ]] && bench_only_baseline "$1" && echo "bench: baseline only" >>"$NEXT_FILE"
    else
        rm -f "$NEXT_FILE"
    fi
}
# the partners of a bench that is only their baseline, still to run in this call, and the least time bench
# and one of them need together
pair_need() {
    local u n=0 m=0 e
    for u in ab ref; do
        [[ " $rest " == *" $u "* ]] || continue
        e=$(est_of "$u")
        [ "$m" -eq 0 ] || [ "$e" -lt "$m" ] && m=$e
        n=1
    done
    [ "$n" = 1 ] && echo $(($(est_of bench) + m)) || echo 0
}
# run_unit U: u_U under a watchdog — the budget is checked between units, and a unit that hangs past what is
# left of it (+ 40 s: the 600 s call still ends with its table and summary) is stopped with everything it
# started, and counts as failed
# (each process stopped before its children are listed, so that none forks a new one meanwhile)
killtree() { local c; kill -STOP "$1" 2>/dev/null; for c in $(procs_with 2 "$1"); do killtree "$c"; done; kill -KILL "$1" 2>/dev/null; }
run_unit() {
    local cap pid t0=$SECONDS
    cap=$(($(left) + 40))
    rm -f /tmp/sf-unit.fail
    ( "u_$1"; echo "$fail" >/tmp/sf-unit.fail ) &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$BUDGET" -ne 0 ] && [ $((SECONDS - t0)) -gt "$cap" ]; then
            killtree "$pid"
            row "unit $1" "STOPPED by the watchdog after $cap s (what it left at its end is lost; its log is above)"
            echo 1 >/tmp/sf-unit.fail
            break
        fi
        sleep 1
    done
    wait "$pid" 2>/dev/null
    [ "$(cat /tmp/sf-unit.fail 2>/dev/null)" = 0 ] || fail=1
    # what the reference saved before any stop (ref_bench.py rewrites its JSON after every stage)
    [ "$1" = ref ] && [ -s /tmp/ref/ref_bench.json ] && cp /tmp/ref/ref_bench.json "$OUT/" 2>/dev/null
    return 0
}
# every log this call wrote (newer than its start: a warm machine keeps an earlier call's), whole up to its
# last 2 MiB (the report has most of them only in part), as one file that comes back; the archive is
# replaced only by a complete one
logs() {
    local d=/tmp/sf-logs-stage f
    rm -rf "$d" && mkdir -p "$d/sf-e2e" "$d/f4"
    for f in /tmp/sf-*.log /tmp/sf-e2e/*.log /tmp/sf-e2e/trace-* /tmp/sf-e2e/mem-*.txt /tmp/sf-e2e/summary.txt \
        /tmp/sf-e2e/live.err /tmp/f4/*.log; do
        [ -f "$f" ] && [ "$f" -nt "$MARK" ] && tail -c 2M "$f" >"$d/${f#/tmp/}"
    done
    tar -czf /tmp/sf-logs.tgz -C "$d" . 2>/dev/null && mv /tmp/sf-logs.tgz "$OUT/logs.tar.gz"
}
rest=$chosen
for u in $chosen; do
    rest=${rest# }
    rest=${rest#"$u"}
    e=$(plan_of "$u")
    if { [ "$u" = ab ] || [ "$u" = ref ]; } && [[ " $skipped " == *" bench "* ]]; then
        [ "$DRY" = 1 ] && echo "next $u (its baseline, bench, is left for the next call)"
        row "unit $u" "not run: its baseline, bench, is left for the next call"
        skipped="$skipped $u"
        continue
    fi
    if [ "$u" = bench ] && [ "$pair_bench" = 1 ] && [ "$BUDGET" -ne 0 ] && [ "$(pair_need)" -gt "$(left)" ]; then
        [ "$DRY" = 1 ] && echo "next bench (only the baseline of$(for x in ab ref; do [[ " $rest " == *" $x "* ]] && printf ' %s' $x; done): ~$(pair_need) s with one of them, $(left) s left)"
        row "unit bench" "not run: only a baseline, and ~$(pair_need) s with its A/B or reference, $(left) s left"
        skipped="$skipped bench"
        continue
    fi
    if [ "$BUDGET" -ne 0 ] && [ "$e" -gt "$(left)" ]; then
        [ "$DRY" = 1 ] && echo "next $u (~$e s: $(left) s of the budget left)"
        row "unit $u" "not run: ~$e s, $(left) s of the $BUDGET s budget left"
        skipped="$skipped $u"
        continue
    fi
    ran="$ran $u"
    if [ "$DRY" = 1 ]; then
        echo "run  $u (~$e s)"
        T_DRY=$((T_DRY + e))
        continue
    fi
    save_next "$u $rest"
    a=$SECONDS
    run_unit "$u"
    row "unit $u" "$((SECONDS - a)) s (estimate $e s)"
    done_units="$done_units $u"
    table
    logs
done
save_next ""
next=$(next_units "")
sk=0
for u in ${next//,/ }; do sk=$((sk + $(est_of "$u"))); done
if [ "$DRY" = 1 ]; then
    [ "$BUDGET" -eq 0 ] && echo "this call: ~$T_DRY s (no budget)" || echo "this call: ~$T_DRY s of a $BUDGET s budget"
    [ -n "$next" ] && echo "next call: SF_CHECK_UNITS=$next bash tests/gpu/check.sh (~$sk s)"
    exit 0
fi
[ -n "$next" ] && row "next call" "SF_CHECK_UNITS=$next bash tests/gpu/check.sh (~$sk s of estimates; or SF_CHECK_UNITS=next on this machine)"
row "this call" "$SECONDS s"
table
logs
echo "== the real-time table (tests/gpu/table.py)"
cat "$OUT/table.md"
echo "== summary (logs in $OUT)"
cat "$S"
[ -n "$ran" ] || { fail=1; echo "no unit fitted the budget: nothing was checked"; }
[ $fail -eq 0 ] && echo "GPU CHECK PASSED" || echo "GPU CHECK FAILED"
# report.txt is written by a tee of this script's output: close it and let the tee finish before $OUT is taken
# (at most 10 s: a leftover process still holding the output must not hold the call)
exec >/dev/null 2>&1
for _ in $(seq 100); do kill -0 "$TEE_PID" 2>/dev/null || break; sleep 0.1; done
exit $((fail ? 1 : 0))
