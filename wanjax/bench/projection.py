"""Projected sampling and training times of the real Wan2.1 configs on TPU slices: a FLOP model, not a measurement.

Time = analytic FLOPs (wanjax.model.flops) / (chips x bf16 peak x MFU). Ring attention over `chips` devices
overlaps passing a K/V block to the next device with the attention on the block it holds; `ring_hidden` says
whether the pass (2 x L/N x D bf16 values over one link) takes less time than that block's attention
(4 x (L/N)^2 x D FLOPs at the same MFU). Assumptions, all stated in the output: the vendor's bf16 peak and
aggregate ICI bandwidth per chip, a quarter of it per neighbour link, MFU 40 %, Wan's 50 UniPC steps with text
CFG (2 forwards per step), 512 text tokens, 16 fps video through the 4x8x8 VAE and 1x2x2 patches.
"""

from __future__ import annotations

from wanjax.config import ModelConfig
from wanjax.model.flops import dit_flops, tokens

# bf16 dense peak FLOP/s, HBM bytes, aggregate ICI bytes/s per chip (vendor figures).
CHIPS = {
    "v5p": {"peak": 459e12, "hbm": 95e9, "ici": 4800e9 / 8},
    "v6e": {"peak": 918e12, "hbm": 32e9, "ici": 3584e9 / 8},
    "v7x": {"peak": 2307e12, "hbm": 192e9, "ici": 9600e9 / 8},
}
MODELS = {"1.3B": ModelConfig.wan21_t2v_1_3b(), "14B": ModelConfig.wan21_t2v_14b()}
VIDEOS = {"480p": (480, 832), "720p": (720, 1280)}
SECONDS = (5, 60)
ASSUME = {"mfu": 0.40, "steps": 50, "cfg_forwards": 2, "text_tokens": 512, "fps": 16, "link_share": 0.25}


def project(chips: int = 64) -> list[dict]:
    """One row per (model, resolution, duration): tokens, FLOPs and projected times on `chips` of each kind."""
    rows = []
    a = ASSUME
    for name, cfg in MODELS.items():
        for res, (h, w) in VIDEOS.items():
            for seconds in SECONDS:
                frames = (seconds * a["fps"]) // 4 + 1  # latent frames of 16·s + 1 video frames
                lat = (frames, h // 8, w // 8)
                flops = dit_flops(cfg, *lat, a["text_tokens"])
                L = tokens(cfg, *lat)
                row = {"model": name, "video": res, "seconds": seconds, "latent": list(lat), "tokens": L,
                       "forward_tflop": flops["forward"] / 1e12, "chips": chips}  # fmt: skip
                for kind, chip in CHIPS.items():
                    rate = chips * chip["peak"] * a["mfu"]
                    block = L / chips
                    attn_s = 4 * block * block * cfg.dim / (chip["peak"] * a["mfu"])
                    pass_s = 2 * block * cfg.dim * 2 / (chip["ici"] * a["link_share"])
                    row[kind] = {
                        "sample_s": a["steps"] * a["cfg_forwards"] * flops["forward"] / rate,
                        "train_step_s": flops["step"] / rate,  # one clip
                        "ring_hidden": pass_s <= attn_s,
                    }
                rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    kinds = list(CHIPS)
    head = ["model", "video", "s", "tokens", "TFLOP/forward"]
    head += [f"{k}-{rows[0]['chips']} sample s" for k in kinds] + [f"{k} train step s" for k in kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], r["video"], str(r["seconds"]), f"{r['tokens']:,}", f"{r['forward_tflop']:,.0f}"]
        cells += [_num(r[k]["sample_s"]) + ("" if r[k]["ring_hidden"] else "*") for k in kinds]
        cells += [_num(r[k]["train_step_s"]) for k in kinds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"
