"""LoRA files in the community's layouts <-> wanjax: export the adapters we train, fold others' into a DiT.

Written: diffusers' Wan LoRA layout (what `WanPipeline.save_lora_weights` writes and `load_lora_weights` reads):
`transformer.blocks.{i}.attn1.to_q.lora_A.weight` [r, in] and `...lora_B.weight` [out, r], with alpha / r folded
into B (diffusers reads a file without alphas at scale 1). Read, with alphas from `.alpha` tensors or diffusers'
`lora_adapter_metadata` (PEFT's lora_alpha, alpha_pattern, rsLoRA), besides that layout: kohya / ai-toolkit
`lora_down` / `lora_up` (+ `.alpha`) and the original Wan module names (`diffusion_model.blocks.{i}.self_attn.q`,
ComfyUI and DiffSynth-Studio files), mapped to diffusers' names as diffusers does.

The layer names come from the checkpoint conversion table (wanjax.io.dit_params.dit_table): every Linear the
table maps is a LoRA target, under the reference name the table gives it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from wanjax.config import ModelConfig
from wanjax.errors import WanjaxError
from wanjax.io.convert import LINEAR, flat_params, load_flat_params
from wanjax.io.dit_params import dit_table
from wanjax.io.export import atomic_write

PREFIXES = ("transformer.", "diffusion_model.", "model.diffusion_model.")
# (A, B) suffixes: PEFT / diffusers, kohya / ai-toolkit
SUFFIXES = ((".lora_A.weight", ".lora_B.weight"), (".lora_down.weight", ".lora_up.weight"))
# The original Wan module names -> diffusers' (diffusers' _convert_non_diffusers_wan_lora_to_diffusers)
WAN_NAMES = [
    (r"\.self_attn\.([qkv])$", r".attn1.to_\1"),
    (r"\.self_attn\.o$", r".attn1.to_out.0"),
    (r"\.cross_attn\.([qkv])$", r".attn2.to_\1"),
    (r"\.cross_attn\.o$", r".attn2.to_out.0"),
    (r"\.cross_attn\.([kv])_img$", r".attn2.add_\1_proj"),
    (r"\.ffn\.0$", r".ffn.net.0.proj"),
    (r"\.ffn\.2$", r".ffn.net.2"),
    (r"^head\.head$", "proj_out"),
]


def lora_layers(cfg: ModelConfig) -> list[tuple[re.Pattern, str, str]]:
    """(reference module pattern, reference template, our layer path) of every Linear the conversion table maps;
    the pattern's `i` group is the block index of a stacked (scanned) layer."""
    out = []
    for rule in dit_table(cfg):
        if rule.transform is LINEAR and rule.ours.endswith("/kernel"):
            template = rule.ref.removesuffix(".weight")
            pattern = re.compile(re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)") + "$")
            out.append((pattern, template, rule.ours.removesuffix("/kernel")))
    return out


def export_lora(adapters: dict, cfg: ModelConfig, path: str | Path) -> int:
    """Write `adapters` ({our layer path: (A [L, in, r] or [in, r], B [.., r, out], scale)}, model.lora.adapters)
    as a diffusers Wan LoRA file, atomically. Returns the number of tensors written."""
    from safetensors.numpy import save_file

    names = {ours: template for _, template, ours in lora_layers(cfg)}
    tensors = {}
    for layer, (a, b, scale) in adapters.items():
        if layer not in names:
            raise WanjaxError(f"adapter on {layer}: the diffusers Wan layout has no name for it (train.lora_targets)")
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32) * scale
        stacked = "{i}" in names[layer]
        for i, (ai, bi) in enumerate(zip(a, b, strict=True) if stacked else [(a, b)]):
            key = "transformer." + names[layer].format(i=i)
            tensors[f"{key}.lora_A.weight"] = np.ascontiguousarray(ai.T)
            tensors[f"{key}.lora_B.weight"] = np.ascontiguousarray(bi.T)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    return len(tensors)


def _module_name(key: str) -> tuple[str, str] | None:
    """A LoRA key -> (diffusers module name, "A" | "B" | "alpha"), or None when it is not a LoRA tensor."""
    for prefix in PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    if key.endswith(".alpha"):
        part, name = "alpha", key[: -len(".alpha")]
    else:
        for suffix_a, suffix_b in SUFFIXES:
            if key.endswith(suffix_a) or key.endswith(suffix_b):
                part = "A" if key.endswith(suffix_a) else "B"
                name = key[: -len(suffix_a if part == "A" else suffix_b)]
                break
        else:
            return None
    for pattern, repl in WAN_NAMES:
        name = re.sub(pattern, repl, name)
    return name, part


def _peft_scale(metadata: dict | None, path: str | Path):
    """The scale of each module from diffusers' `lora_adapter_metadata` (PEFT's LoraConfig: lora_alpha / r, or
    / sqrt(r) with rsLoRA; alpha_pattern overrides per module): module name, rank -> scale, or None without one."""
    raw = (metadata or {}).get("lora_adapter_metadata")
    if raw is None:
        return None
    config = {k.removeprefix("transformer."): v for k, v in json.loads(raw).items()}
    if config.get("use_dora"):
        raise WanjaxError(f"--lora {path} is a DoRA adapter (use_dora): wanjax folds plain LoRA only")
    alpha, patterns, rs = config.get("lora_alpha"), config.get("alpha_pattern") or {}, config.get("use_rslora")

    def scale(module: str, rank: int) -> float:
        a = next((v for k, v in patterns.items() if re.match(rf"(.*\.)?({k})$", module)), alpha)
        return 1.0 if a is None else a / (rank**0.5 if rs else rank)

    return scale


def read_lora(path: str | Path, cfg: ModelConfig) -> dict[str, list[tuple[int | None, np.ndarray]]]:
    """A LoRA file -> {our layer path: [(block index or None, delta kernel [in, out] at scale 1)]}, each adapter at
    its own alpha / r (per-key `.alpha` tensors, or diffusers' adapter metadata; neither: 1). Any key that is not a
    LoRA tensor of a layer of this model is an error."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "np") as f:
            tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118
    except (SafetensorError, OSError) as e:
        raise WanjaxError(f"--lora {path} is not a readable safetensors file ({e})") from None
    peft = _peft_scale(metadata, path)
    parts: dict[str, dict[str, np.ndarray]] = {}
    unknown = []
    for key, value in tensors.items():
        named = _module_name(key)
        if named is None:
            unknown.append(key)
        else:
            parts.setdefault(named[0], {})[named[1]] = value
    layers = lora_layers(cfg)
    deltas: dict[str, list] = {}
    for name, ab in sorted(parts.items()):
        match = next(((m, ours) for pattern, _, ours in layers if (m := pattern.match(name))), None)
        if match is None or "A" not in ab or "B" not in ab:
            unknown.append(name if match is None else f"{name} (needs both A and B)")
            continue
        a, b = np.asarray(ab["A"], np.float32), np.asarray(ab["B"], np.float32)  # [r, in], [out, r]
        if "alpha" in ab:
            scale = float(ab["alpha"]) / a.shape[0]
        else:
            scale = 1.0 if peft is None else peft(name, a.shape[0])
        index = int(match[0]["i"]) if "i" in match[0].groupdict() else None
        deltas.setdefault(match[1], []).append((index, scale * (b @ a).T))
    if unknown:
        raise WanjaxError(
            f"--lora {path}: {len(unknown)} keys match no layer of this model ({', '.join(sorted(unknown)[:5])}); "
            "expected Wan LoRA keys such as transformer.blocks.0.attn1.to_q.lora_A.weight"
        )
    if not deltas:
        raise WanjaxError(f"--lora {path} holds no LoRA tensors (lora_A / lora_B or lora_down / lora_up)")
    return deltas


def apply_lora(dit, path: str | Path, scale: float = 1.0) -> int:
    """Fold LoRA file `path` into `dit`'s kernels at `scale` (in place, in fp32, cast back to each kernel's dtype).
    Returns the number of adapted layers; shapes are checked against the model's."""
    params = {k: np.asarray(v) for k, v in flat_params(dit).items()}
    count = 0
    for layer, items in read_lora(path, dit.cfg).items():
        kernel = params[f"{layer}/kernel"]
        new = kernel.astype(np.float32)
        for index, delta in items:
            target = new if index is None else new[index]
            if delta.shape != target.shape:
                raise WanjaxError(
                    f"--lora {path}: {layer} is {tuple(target.shape)} in the model but {tuple(delta.shape)} in the "
                    "file; the LoRA was trained for another model"
                )
            target += scale * delta
            count += 1
        params[f"{layer}/kernel"] = new.astype(kernel.dtype)
    load_flat_params(dit, params)
    return count


def parse_lora_arg(arg: str) -> tuple[str, float]:
    """'FILE[:SCALE]' -> (FILE, SCALE); a path with a colon (gs://...) keeps it unless a number follows the last."""
    head, sep, tail = arg.rpartition(":")
    if sep:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return arg, 1.0


def merge_loras(ckpt: str | Path, loras: list[tuple[str, float]], out: str | Path) -> int:
    """Fold (LoRA file, scale) pairs into checkpoint `ckpt`'s DiT and write a wanjax checkpoint `out` with its other
    parts (VAE, text / image encoders, a second expert as it is). Returns the number of adapted layers."""
    from wanjax.io.weights import load_pipeline, save_checkpoint

    pipe = load_pipeline(ckpt, image_encoder=False)
    count = sum(apply_lora(pipe.dit, path, scale) for path, scale in loras)
    save_checkpoint(out, pipe.cfg, pipe.dit, pipe.vae, text_from=Path(ckpt), expert_2=pipe.expert_2)
    return count
