#!/usr/bin/env bash
# tests/gpu/prepare_ref.sh [MIRROR] — .ref/ for check.sh's unit ref: the reference PyTorch code that
# ../shared/refbench/ref_bench.py imports (the Self-Forcing fork's Python sources and configs, ~2 MiB of
# its 165: the carry to the GPU machine is 64 MiB with the tree and the bundle) and ref_bench.py itself.
#   MIRROR: the fork's git directory, as the fetch tool gives it for github:winbeau/Self-Forcing-fork
#           (default /work/.mirror/winbeau+Self-Forcing-fork/repo)
# Then, where torch is installed (Debian's python3-torch), the bench's tiny CPU run (~10 s) proves the
# reference imports from .ref. .ref/ stays out of git (.git/info/exclude). Exit 1 with one line on failure,
# leaving the previous .ref/ as it was.
#   SF_REF_OUT: where to put it instead of .ref (tests/bats/gpu-tools.bats); SF_REF_SMOKE=0: no tiny run
set -euo pipefail
cd "$(dirname "$0")/../.."
M=${1:-/work/.mirror/winbeau+Self-Forcing-fork/repo}
B=${SF_REFBENCH:-../shared/refbench/ref_bench.py}
R=${SF_REF_OUT:-.ref}
git --git-dir="$M" rev-parse -q --verify HEAD >/dev/null 2>&1 || { echo "prepare_ref: $M is not the fork's git directory (fetch github:winbeau/Self-Forcing-fork)" >&2; exit 1; }
[ -f "$B" ] || { echo "prepare_ref: no $B" >&2; exit 1; }
rm -rf "$R.tmp" && mkdir -p "$R.tmp"
# the sources and configs only (the fork also holds images, videos and notebooks)
mapfile -t files < <(git --git-dir="$M" ls-tree -r --name-only HEAD | grep -E '\.(py|yaml|yml)$')
# (the mirror may lack the blobs of large binary files: git names them on stderr, harmlessly — the
# files needed are checked below)
git --git-dir="$M" archive --format=tar HEAD -- "${files[@]}" 2>/dev/null | tar -x -C "$R.tmp"
cp "$B" "$R.tmp/ref_bench.py"
git --git-dir="$M" rev-parse HEAD >"$R.tmp/COMMIT"
for need in wan/modules/causal_model.py pipeline/causal_inference.py utils/wan_wrapper.py configs/self_forcing_dmd.yaml; do
    [ -f "$R.tmp/$need" ] || { echo "prepare_ref: the fork has no $need" >&2; rm -rf "$R.tmp"; exit 1; }
done
kb=$(du -sk "$R.tmp" | cut -f1)
[ "$kb" -le 6144 ] || { echo "prepare_ref: $R would be $kb KiB (> 6 MiB of carry)" >&2; rm -rf "$R.tmp"; exit 1; }
# the tiny CPU run, where torch is, before the old .ref/ is replaced
py=
[ "${SF_REF_SMOKE:-1}" = 0 ] ||
    for p in python3 /usr/bin/python3; do "$p" -c 'import torch' 2>/dev/null && py=$p && break; done
if [ -n "$py" ]; then
    out=$(mktemp -d)
    if ! PYTHONDONTWRITEBYTECODE=1 timeout 300 "$py" "$R.tmp/ref_bench.py" --ref "$R.tmp" --out "$out" --tiny --device cpu >"$out/log" 2>&1; then
        echo "prepare_ref: ref_bench.py --tiny failed: $(tail -n 1 "$out/log")" >&2
        rm -rf "$R.tmp" "$out"
        exit 1
    fi
    rm -rf "$out"
else # said: the reference's import path under the shims is then first tried on the device
    echo "prepare_ref: NOT smoke-tested (no python3 with torch here${SF_REF_SMOKE:+, or SF_REF_SMOKE=$SF_REF_SMOKE}): apt-get install python3-torch to try it before the device" >&2
fi
rm -rf "$R" && mv "$R.tmp" "$R"
if [ "$R" = .ref ]; then
    ex=$(git rev-parse --git-path info/exclude)
    grep -qxF /.ref/ "$ex" 2>/dev/null || echo /.ref/ >>"$ex"
fi
echo "prepare_ref: $R/ $kb KiB from $(cut -c1-12 "$R/COMMIT")${py:+; the reference imports and runs from it (tiny, CPU)}"
