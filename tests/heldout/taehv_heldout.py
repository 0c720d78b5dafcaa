#!/usr/bin/env python3
"""sf-decode's TAEHV decoder against the reference's (demo_utils/taehv.py) on checkpoints and latents the
goldens never used; run by tests/heldout/run_heldout.sh (make heldout).

    /usr/bin/python3 tests/heldout/taehv_heldout.py OUTDIR --bin build/bin [--device cuda:0] [--ref DIR | --mirror GITDIR]

Each case: a TAEHV built from the reference's modules with other widths, temporal strides, MemBlocks a stage,
latent sizes and lengths, saved with torch.save as a whole TAEHV state dict (the encoder's tensors too, as
taew2_1.pth holds them), one case in float16 (the reference then decodes the rounded weights in float32); the
reference's decode_video(parallel=True) on seeded-random latents, trimmed and mapped as sf-decode's frames
(2x - 1, clamped); sf-decode --save-video on the same file and latents. Pass: max|d| / max|ref| <= 1e-4
(--device: 5e-2, bf16). Prints a line per case; exit 1 on any failure.
"""
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_heldout as mh  # noqa: E402
import make_taehv_golden as tg  # noqa: E402

CASES = [
    dict(name="w24", n_f=[24, 16, 8, 8], time_up=(True, True), n_mem=3, T=4, h=5, w=3, seed=41),
    dict(name="w32_t10", n_f=[32, 16, 16, 8], time_up=(True, False), n_mem=3, T=3, h=2, w=7, seed=42),
    dict(name="mem2_f16", n_f=[16, 8, 8, 8], time_up=(True, True), n_mem=2, T=6, h=3, w=4, seed=43, half=True),
    dict(name="t1", n_f=[8, 8, 8, 8], time_up=(False, False), n_mem=1, T=2, h=4, w=4, seed=44),
]


def main():
    def own(ap):
        ap.add_argument("out")
        ap.add_argument("--bin", default="build/bin")
        ap.add_argument("--device")

    a, torch = mh.reference_cli(__doc__, golden=False, add=own)
    tol = 5e-2 if a.device else 1e-4
    bad = 0
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ref, _ = mh.find_ref(a, tmp)
        T = tg.load_taehv(ref)
        for c in CASES:
            torch.manual_seed(c["seed"])
            dec, trim = tg.tiny_decoder(T, c["n_f"], c["time_up"], n_mem=c["n_mem"])
            with torch.no_grad():
                for p in dec.parameters():
                    p.normal_(0, (tg.GAIN / max(1, p[0].numel())) ** 0.5)
                dec[-1].bias.add_(0.5)
            model = T.TAEHV(checkpoint_path=None, decoder_time_upscale=c["time_up"])
            model.decoder = dec
            if c.get("half"):
                model = model.half().float()  # the file holds float16; both sides decode the rounded weights
            sd = {k: (v.half() if c.get("half") else v).contiguous() for k, v in model.state_dict().items()}
            ck = os.path.join(a.out, c["name"] + ".pth")
            torch.save(sd, ck)
            g = torch.Generator().manual_seed(c["seed"] + 100)
            lat = torch.randn([1, c["T"], 16, c["h"], c["w"]], generator=g) * 1.5
            with torch.no_grad():
                out = model.decode_video(lat, parallel=True)
            want = out[:, trim:].mul(2).sub(1).clamp(-1, 1)
            lp, vp = os.path.join(a.out, c["name"] + ".latents.safetensors"), os.path.join(a.out, c["name"] + ".video.safetensors")
            mh.st_write(lp, {"latents": mh.npf(lat)})
            cmd = [os.path.join(a.bin, "sf-decode"), "--latents", lp, "--vae", ck, "--save-video", vp, "--progress", "none",
                   "--log-level", "warn"] + (["--device", a.device] if a.device else [])
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"taehv_heldout: {c['name']}: sf-decode failed: {r.stderr.strip()}")
                bad += 1
                continue
            got = torch.from_numpy(mh.st_read(vp)["video"])
            if list(got.shape) != list(want.shape):
                print(f"taehv_heldout: {c['name']}: video {list(got.shape)}, reference {list(want.shape)}")
                bad += 1
                continue
            d = ((got - want).abs().max() / want.abs().max()).item()
            ok = d <= tol
            bad += not ok
            print(f"taehv_heldout: {c['name']}: widths {c['n_f']}, {c['n_mem']} MemBlocks a stage, strides "
                  f"{[1] + [2 if u else 1 for u in c['time_up']]}, {c['T']} latents of {c['h']}x{c['w']} -> "
                  f"{want.shape[1]} frames: max|d|/max|ref| {d:.2e} {'ok' if ok else 'FAIL'} (<= {tol:g})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
