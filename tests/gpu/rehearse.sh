#!/usr/bin/env bash
# tests/gpu/rehearse.sh — before spending device minutes: the bundle ../shared/device/bundle.sh made
# (.gpu/bundle.tar.gz), unpacked as check.sh unpacks it, tried HERE on the CPU with the carried
# libraries first on LD_LIBRARY_PATH, as on the device (first slimmed: libsf.so's debug info, which
# bundle.sh leaves, stripped and the bundle repacked, ~1 MiB less to carry):
#   1. every carried program and test resolves each library it needs from the bundle (or from what
#      every CUDA image has: glibc, libstdc++, libgcc_s, the CUDA / cuDNN libraries) — on the device
#      nothing else is there;
#   2. every program runs (--help) and the CUDA tests start and SKIP cleanly without a GPU;
#   3. what e2e.sh runs with the carried programs works on the tiny model on the CPU: the t2v
#      pipeline through sf-run with its SF_TRACE timeline (timeline.sh), the live pipeline (live.sh:
#      sf-view, a prompt switch over HTTP without curl, Ctrl-C);
#   4. table.py reads the fixtures of tests/bats/fixtures/gpu-table;
#   5. check.sh itself with this bundle (a stand-in nvidia-smi; the GPU tests SKIP, which check.sh counts
#      as failures): a unit runs and is timed in the summary, table.md is written, and a budget too small
#      for a unit leaves it to the next call's command line;
#   5b. regcheck.sh: every CUDA kernel over 64 registers a thread declares __launch_bounds__ (a launch the
#      device would refuse for its registers, which the emulation cannot see);
#   5c. carry.sh: the working tree, .gpu and .ref within the 64 MiB a call may carry (fails above 63, unless
#       tests/golden packed by pack_goldens.sh, ~13 MiB less, brings it under: then it says to pack);
#   6. .gpu/BUILD_INFO (the commit, the bundle's sha256) for check.sh to print beside the figures —
#      written only when no tracked source is newer than the bundle (step 0).
# One line per check, then REHEARSAL PASSED (exit 0) or REHEARSAL FAILED (exit 1). The sf-view that
# e2e part 3 needed and the bundle left out would have failed check 1 and 3 here.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
[ -f .gpu/bundle.tar.gz ] || { echo "no .gpu/bundle.tar.gz: run ../shared/device/bundle.sh first"; exit 2; }
G=$(mktemp -d /tmp/sf-rehearse.XXXXXX)
trap 'rm -rf "$G"' EXIT
tar -xzf .gpu/bundle.tar.gz -C "$G" || { echo "cannot unpack .gpu/bundle.tar.gz"; exit 1; }
export LD_LIBRARY_PATH="$G/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PATH="$G/bin:$PATH"
fail=0
say() { printf '%-28s %s\n' "$1" "$2"; }
bad() { say "$1" "FAILED: $2"; fail=1; }

# 0. the bundle was built from these sources (BUILD_INFO below names this commit): no source is newer
newer=$(git ls-files -- '*.c' '*.cc' '*.cu' '*.h' '*.cuh' Makefile 2>/dev/null |
    while read -r f; do [ "$f" -nt .gpu/bundle.tar.gz ] && echo "$f"; done | head -n 3 | tr '\n' ' ')
[ -z "$newer" ] && say "bundle" "built after every source was last changed" ||
    bad "bundle" "older than ${newer% }: rerun ../shared/device/bundle.sh"

# 0b. slim: bundle.sh strips the programs' debug info but not libsf.so's (~2.4 MiB of DWARF, ~1 MiB packed);
# the device needs none of it (compute-sanitizer's source lines are the kernels' -lineinfo, inside the
# fatbin, which --strip-debug keeps). Repacked in place, gzip -9, the same entries, the same mtime (step 0
# still sees a stale build next time); idempotent.
if [ -f "$G/lib/libsf.so" ] && readelf -S "$G/lib/libsf.so" 2>/dev/null | grep -q '\.debug_info'; then
    before=$(stat -c %s .gpu/bundle.tar.gz)
    mapfile -t tops < <(tar -tzf .gpu/bundle.tar.gz | cut -d/ -f1 | sort -u)
    if strip --strip-debug "$G/lib/libsf.so" && tar -cf - -C "$G" "${tops[@]}" | gzip -9 >.gpu/bundle.tar.gz.tmp &&
        touch -r .gpu/bundle.tar.gz .gpu/bundle.tar.gz.tmp && mv .gpu/bundle.tar.gz.tmp .gpu/bundle.tar.gz; then
        say "bundle slimmed" "libsf.so's debug info stripped: $(awk -v a="$before" -v b="$(stat -c %s .gpu/bundle.tar.gz)" 'BEGIN {printf "%.2f -> %.2f MiB", a / 1048576, b / 1048576}')"
    else
        rm -f .gpu/bundle.tar.gz.tmp
        bad "bundle slimmed" "could not strip and repack libsf.so"
    fi
fi

# 1. libraries: bundle.sh's own list of what a CUDA image has (its is_system, read from it: one list)
B=../shared/device/bundle.sh
eval "$(sed -n '/^is_system() {$/,/^}$/p' "$B")"
declare -F is_system >/dev/null || { echo "$B has no is_system() any more: rehearse.sh reads its list of system libraries from it"; exit 2; }
n=0 outside=""
for b in "$G"/bin/* "$G"/tests/* "$G"/lib/*.so*; do
    [ -f "$b" ] || continue
    while read -r name _ path _; do
        [ -n "$name" ] || continue
        is_system "$name" && continue
        case "$path" in "$G"/lib/*) ;; *) outside="$outside $(basename "$b"):$name=>${path:-?}" ;; esac
    done < <(ldd "$b" 2>/dev/null | awk '$2 == "=>" {print $1, $2, $3}')
    n=$((n + 1))
done
[ -z "$outside" ] && say "libraries" "$n files, every library from the bundle" || bad "libraries" "not carried:$outside"

# 2. the programs start; the CUDA tests SKIP without a GPU (no 'not ok')
for p in "$G"/bin/sf-*; do
    "$p" --help >/dev/null 2>&1 || bad "$(basename "$p") --help" "exit $?"
done
[ $fail -eq 0 ] && say "programs" "$(ls "$G"/bin | wc -l) run (--help)"
for t in test_cuda_kernels test_dit_cuda test_vae_cuda test_t5_cuda test_taehv_cuda; do
    out=$(SF_GOLDEN="$PWD/tests/golden" timeout 120 "$G/tests/$t" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || grep -q '^not ok' <<<"$out"; then bad "$t" "exit $rc, $(grep -c '^not ok' <<<"$out") not ok"; else say "$t" "$(grep -c '^ok' <<<"$out") cases, exit 0"; fi
done

# 3. e2e's pipelines with the carried programs, tiny model, CPU
M=$G/tiny
if sf-mkmodel tiny "$M" --seed 5 >"$G/mk.log" 2>&1; then
    SF_TRACE="$G/trace" timeout 120 sf-run pipelines/t2v.yaml model_dir="$M" checkpoint= prompt="A red fox" device=cpu \
        output="$G/tiny.y4m" cache_dir="$G/cache" num_frames=9 height=64 width=96 >"$G/t2v.log" 2>&1
    rc=$?
    tl=$(tests/gpu/timeline.sh "$G/trace" 2>&1)
    [ $rc -eq 0 ] && [[ "$tl" == *"frames=33"* ]] && say "t2v.yaml (sf-run)" "$tl" ||
        bad "t2v.yaml (sf-run)" "exit $rc: $(tail -n 1 "$G/t2v.log") / $tl"
    live=$(SF_LIVE_HTTP=python SF_LIVE_PLAY=1 SF_LIVE_WAIT=60 tests/gpu/live.sh "$M" cpu height=16 width=16 \
        local_attn_size=6 denoise.threads=1 decode.threads=1 2>&1)
    rc=$?
    [ $rc -eq 0 ] && say "live.yaml (live.sh)" "${live#live: }" || bad "live.yaml (live.sh)" "exit $rc: $(tail -n 1 <<<"$live")"
else
    bad "sf-mkmodel tiny" "$(tail -n 1 "$G/mk.log")"
fi

# 4. the table from the fixtures
F=tests/bats/fixtures/gpu-table
rows=$(python3 tests/gpu/table.py "$F/bench.txt" "$F/e2e.txt" "$F/ref_bench.json" 2>&1 | grep -c '^| ')
[ "$rows" -gt 10 ] && say "table.py" "$rows rows" || bad "table.py" "$rows rows"

# 5. check.sh's plumbing on this machine
mkdir -p "$G/fake" "$G/out1" "$G/out2"
printf '#!/bin/sh\necho "rehearsal (no GPU), 0 MiB, -, -"\n' >"$G/fake/nvidia-smi"
chmod +x "$G/fake/nvidia-smi"
# every unit but e2e (its full-size model is 8 GB; step 3 ran its pipelines): each runs to its end here and
# is timed; a shell mistake in a branch (an unset variable, a typo'd command) shows in the report
units=dit_paths,bench,ref,taps,probes,bench_attn,ab,attn_videos,tests,san_attn,san_tests
PATH="$G/fake:$PATH" OUT="$G/out1" SF_GPU_DIR="$G/g1" SF_CHECK_UNITS=$units SF_CHECK_BUDGET=0 timeout 900 \
    bash tests/gpu/check.sh >/dev/null 2>&1
rc=$?
timed=$(grep -c '^unit [a-z_]* .* s (estimate [0-9]* s)' "$G/out1/summary.txt" 2>/dev/null)
shell=$(grep -E 'unbound variable|command not found|syntax error|No such file or directory.*check\.sh|bad substitution' "$G/out1/report.txt" 2>/dev/null | grep -v 'nvidia-smi' | head -n 3)
if [ $rc -eq 1 ] && [ "$timed" -eq 11 ] && [ -s "$G/out1/table.md" ] && grep -q '^hopper .*skipped' "$G/out1/summary.txt" &&
    [ -z "$shell" ]; then
    say "check.sh (11 units)" "each ran and was timed, table.md written, SKIPs counted as failures"
else
    bad "check.sh (11 units)" "exit $rc, $timed units timed; ${shell:-}$(grep '^unit' "$G/out1/summary.txt" 2>/dev/null | tr '\n' ';')"
fi
PATH="$G/fake:$PATH" OUT="$G/out2" SF_GPU_DIR="$G/g2" SF_CHECK_NEXT_FILE="$G/next" SF_CHECK_UNITS=taps,probes SF_CHECK_BUDGET=20 \
    timeout 60 bash tests/gpu/check.sh >/dev/null 2>&1
plan=$(SF_CHECK_NEXT_FILE="$G/next" SF_CHECK_UNITS=next SF_CHECK_DRY=1 SF_CHECK_BUDGET=0 bash tests/gpu/check.sh 2>&1 | head -n 2 | tr '\n' ';')
if grep -q '^next call .*SF_CHECK_UNITS=taps,probes ' "$G/out2/summary.txt" && [ "$plan" = "run  taps (~135 s);run  probes (~30 s);" ]; then
    say "check.sh (budget 20 s)" "nothing fits: the next call's command names both units, SF_CHECK_UNITS=next runs them"
else
    bad "check.sh (budget 20 s)" "$(tr '\n' ';' <"$G/out2/summary.txt" 2>/dev/null) / next: $plan"
fi

# 5b. launches that only a GPU would refuse: a kernel over 64 registers a thread without __launch_bounds__
# (regcheck.sh: ptxas's counts for sm_90a; the emulation has no registers)
if out=$(bash tests/gpu/regcheck.sh 90a 2>&1); then
    say "registers (sm_90a)" "$(tail -n 1 <<<"$out" | sed 's/^regcheck: //')"
else
    bad "registers (sm_90a)" "$(tail -n 1 <<<"$out" | sed 's/^regcheck: //')"
fi

# 5c. what the call carries (the working tree, .gpu, .ref): over the tool's 64 MiB the call is refused
# before it starts; carry.sh fails above 63 MiB, since the tree grows between a rehearsal and the call.
# tests/golden packed (pack_goldens.sh) is ~13 MiB less: over the limit unpacked, the rehearsal passes when
# packed it fits, and says to pack before the call and restore after it
if out=$(bash tests/gpu/carry.sh .gpu .ref 2>&1); then
    say "carry" "${out#carry: }"
else
    sum=$(sed -n 's/.* = \([0-9.]*\) MiB of .*/\1/p' <<<"$out")
    read -r raw gz < <(bash tests/gpu/pack_goldens.sh size)
    packed=$(awk -v s="${sum:-999}" -v r="$raw" -v g="$gz" 'BEGIN {printf "%.2f", s - (r - g) / 1048576}')
    if awk -v p="$packed" -v m="${SF_CARRY_MAX_MIB:-63}" 'BEGIN {exit !(p <= m)}'; then
        say "carry" "${out#carry: }; with tests/golden packed $packed MiB: before the call tests/gpu/pack_goldens.sh pack, after it restore"
    else
        bad "carry" "${out#carry: }; with tests/golden packed still $packed MiB"
    fi
fi

# 6. what the device's figures will have been made by: check.sh prints .gpu/BUILD_INFO (and says so when the
# bundle that travels is not the one rehearsed here); a failed rehearsal leaves none
rm -f .gpu/BUILD_INFO
if [ $fail -eq 0 ]; then
    c=$(git rev-parse --short=12 HEAD 2>/dev/null || echo "no git")
    git diff --quiet HEAD -- 2>/dev/null || c="$c + uncommitted changes"
    echo "build $c, rehearsed $(date -u +%FT%TZ), bundle sha256 $(sha256sum .gpu/bundle.tar.gz | cut -c1-16)" >.gpu/BUILD_INFO
    say "build info" "$(cat .gpu/BUILD_INFO)"
fi
[ $fail -eq 0 ] && echo "REHEARSAL PASSED" || { echo "REHEARSAL FAILED"; exit 1; }
