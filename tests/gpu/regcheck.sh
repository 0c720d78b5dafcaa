#!/usr/bin/env bash
# tests/gpu/regcheck.sh [ARCH] — a launch failure only a GPU would show, found by the compiler here: a kernel
# that ptxas gives more than 64 registers a thread cannot run a 1024-thread block (an SM has 64 K registers),
# and any launch whose block times its registers passes 64 K fails on the device with "too many resources
# requested for launch" — which the CPU emulation cannot see (it has no registers). So every kernel over 64
# registers must declare __launch_bounds__(its block), with which ptxas fits its registers to that block.
# Compiles kernels/cuda/*.cu for sm_ARCH (default 90a, the H200's) with -Xptxas -v: one line per kernel over
# 64 registers (the most of its template instances, spills, whether bounded), then "regcheck: N kernels, M over 64 registers, all
# bounded" (exit 0) or the unbounded ones (exit 1). Run by tests/gpu/rehearse.sh before a device session;
# needs nvcc (exit 2 without).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
arch=${1:-90a}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$NVCC" ] || { echo "regcheck: no nvcc (set NVCC)"; exit 2; }
W=$(mktemp -d /tmp/sf-regcheck.XXXXXX)
trap 'rm -rf "$W"' EXIT
n=0 over=0 bad=""
for f in kernels/cuda/*.cu; do
    b=$(basename "$f" .cu)
    if ! "$NVCC" -O2 -std=c++17 "-gencode=arch=compute_$arch,code=sm_$arch" -Icommon -Ikernels -I. -Xptxas -v \
        -c "$f" -o "$W/$b.o" >"$W/$b.log" 2>&1; then
        echo "regcheck: $f does not compile for sm_$arch:"
        tail -n 5 "$W/$b.log"
        exit 1
    fi
    # per kernel (its template instances together): the most registers and spill bytes of an instance
    while read -r regs spill name; do
        n=$((n + 1))
        [ "$regs" -gt 64 ] || continue
        over=$((over + 1))
        # bounded: __launch_bounds__ on the kernel's definition (the line naming it, or the one before)
        if grep -B1 -E "__global__.*[^A-Za-z0-9_]$name[(<]|^[^/]*[^A-Za-z0-9_]$name\(" "$f" | grep -q __launch_bounds__; then
            echo "  $name ($b.cu): $regs registers, $spill spill bytes, bounded"
        else
            echo "  $name ($b.cu): $regs registers, $spill spill bytes, NO __launch_bounds__"
            bad="$bad $name"
        fi
    done < <(awk '/Compiling entry function/ { fn = $0; sub(/.*function .\047?/, "", fn); sub(/\047 for.*/, "", fn); sp = 0 }
                  /bytes spill stores/ { for (i = 1; i <= NF; i++) if ($i == "spill" && $(i + 1) == "stores,") sp = $(i - 2) }
                  /Used [0-9]+ registers/ { for (i = 1; i <= NF; i++) if ($i ~ /^registers,?$/) r = $(i - 1); print r, sp, fn }' "$W/$b.log" |
        while read -r r sp m; do echo "$r $sp $(c++filt "$m" | sed 's/^void //; s/[<(].*//')"; done |
        awk '{ if (!($3 in R) || $1 > R[$3]) R[$3] = $1; if (!($3 in S) || $2 > S[$3]) S[$3] = $2 }
             END { for (k in R) print R[k], S[k], k }' | sort -k3,3)
done
if [ -z "$bad" ]; then
    echo "regcheck: $n kernels (sm_$arch), $over over 64 registers, all bounded"
else
    echo "regcheck: over 64 registers without __launch_bounds__:$bad"
    exit 1
fi
