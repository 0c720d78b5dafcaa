#!/usr/bin/env bash
# tests/gpu/prepare_ref.sh [MIRROR] — .ref/ for check.sh's unit ref: the reference PyTorch code that
# ../shared/refbench/ref_bench.py imports (the Self-Forcing fork's Python sources and configs, ~2 MiB of
# its 165: the carry to the GPU machine is 64 MiB with the tree and the bundle) and ref_bench.py itself.
#   MIRROR: the fork's git directory, as the fetch tool gives it for github:winbeau/Self-Forcing-fork
#           (default /work/.mirror/winbeau+Self-Forcing-fork/repo)
# Then, where torch is installed (Debian's python3-torch), the bench's tiny CPU run (~10 s) proves the
# reference imports from .ref. .ref/ stays out of git (.git/info/exclude). Exit 1 with one line on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
M=${1:-/work/.mirror/winbeau+Self-Forcing-fork/repo}
B=${SF_REFBENCH:-../shared/refbench/ref_bench.py}
git --git-dir="$M" rev-parse -q --verify HEAD >/dev/null 2>&1 || { echo "prepare_ref: $M is not the fork's git directory (fetch github:winbeau/Self-Forcing-fork)" >&2; exit 1; }
[ -f "$B" ] || { echo "prepare_ref: no $B" >&2; exit 1; }
rm -rf .ref.tmp && mkdir -p .ref.tmp
# the sources and configs only (the fork also holds images, videos and notebooks)
mapfile -t files < <(git --git-dir="$M" ls-tree -r --name-only HEAD | grep -E '\.(py|yaml|yml)$')
# (the mirror may lack the blobs of large binary files: git names them on stderr, harmlessly — the
# files needed are checked below)
git --git-dir="$M" archive --format=tar HEAD -- "${files[@]}" 2>/dev/null | tar -x -C .ref.tmp
cp "$B" .ref.tmp/ref_bench.py
git --git-dir="$M" rev-parse HEAD >.ref.tmp/COMMIT
for need in wan/modules/causal_model.py pipeline/causal_inference.py utils/wan_wrapper.py configs/self_forcing_dmd.yaml; do
    [ -f ".ref.tmp/$need" ] || { echo "prepare_ref: the fork has no $need" >&2; rm -rf .ref.tmp; exit 1; }
done
kb=$(du -sk .ref.tmp | cut -f1)
[ "$kb" -le 6144 ] || { echo "prepare_ref: .ref would be $kb KiB (> 6 MiB of carry)" >&2; rm -rf .ref.tmp; exit 1; }
rm -rf .ref && mv .ref.tmp .ref
ex=$(git rev-parse --git-path info/exclude)
grep -qxF /.ref/ "$ex" 2>/dev/null || echo /.ref/ >>"$ex"
echo "prepare_ref: .ref/ $kb KiB from $(cut -c1-12 .ref/COMMIT)"
py=
for p in python3 /usr/bin/python3; do "$p" -c 'import torch' 2>/dev/null && py=$p && break; done
if [ -n "$py" ]; then
    out=$(mktemp -d)
    if timeout 300 "$py" .ref/ref_bench.py --ref .ref --out "$out" --tiny --device cpu >"$out/log" 2>&1; then
        echo "prepare_ref: the reference imports and runs from .ref (tiny, CPU)"
    else
        echo "prepare_ref: ref_bench.py --tiny failed: $(tail -n 1 "$out/log")" >&2
        exit 1
    fi
    rm -rf "$out"
fi
