"""Reference (diffusers-layout safetensors) <-> wanjax parameters, driven by declarative tables.

A table is a list of `Rule(ref, ours, transform)`: `ref` is a reference key pattern and `ours` a
'/'-joined path into the module's parameter tree; `{name}` placeholders match integers. A placeholder
that appears in `ref` but not in `ours` is a *stacked* axis: those tensors are stacked along axis 0 of one
leaf (scanned layers). Transforms map the reference layout to ours and back.

Folders follow diffusers: `config.json` + `diffusion_pytorch_model.safetensors`, or shards named in
`diffusion_pytorch_model.safetensors.index.json`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wanjax.errors import WanjaxError

WEIGHTS = "diffusion_pytorch_model.safetensors"


@dataclasses.dataclass(frozen=True)
class Transform:
    """Reference array -> our array (`to_ours`) and back (`to_ref`)."""

    to_ours: Callable[[np.ndarray], np.ndarray]
    to_ref: Callable[[np.ndarray], np.ndarray]


IDENTITY = Transform(lambda a: a, lambda a: a)
LINEAR = Transform(lambda a: a.T, lambda a: a.T)  # torch [out, in] <-> [in, out]
# [O, I, T, H, W] <-> [T, H, W, I, O]
CONV3D = Transform(lambda a: a.transpose(2, 3, 4, 1, 0), lambda a: a.transpose(4, 3, 0, 1, 2))
CONV2D = Transform(lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1))  # [O,I,H,W] <-> [H,W,I,O]


@dataclasses.dataclass(frozen=True)
class Rule:
    ref: str
    ours: str
    transform: Transform = IDENTITY


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>\\d+)" for i, p in enumerate(parts))
    return re.compile(regex + "$")


def _stacked_name(rule: Rule) -> str | None:
    names = set(re.findall(r"\{(\w+)\}", rule.ref)) - set(re.findall(r"\{(\w+)\}", rule.ours))
    if len(names) > 1:
        raise ValueError(f"rule {rule} stacks more than one axis")
    return names.pop() if names else None


def to_ours(tensors: dict[str, np.ndarray], table: list[Rule], expected: dict[str, tuple[int, ...]], what: str):
    """Reference tensors -> {our path: array}, checked against `expected` shapes.

    Raises WanjaxError listing every unexpected key, missing path and shape mismatch at once.
    """
    compiled = [(r, _pattern(r.ref), _stacked_name(r)) for r in table]
    out: dict[str, np.ndarray] = {}
    stacks: dict[str, dict[int, np.ndarray]] = {}
    unexpected = []
    for key, value in tensors.items():
        for rule, pat, stacked in compiled:
            m = pat.match(key)
            if m:
                path = rule.ours.format(**m.groupdict())
                value = rule.transform.to_ours(np.asarray(value))
                if stacked is None:
                    out[path] = value
                else:
                    stacks.setdefault(path, {})[int(m.group(stacked))] = value
                break
        else:
            unexpected.append(key)
    for path, layers in stacks.items():
        n = max(layers) + 1
        if sorted(layers) != list(range(n)):
            missing_layers = sorted(set(range(n)) - set(layers))
            raise WanjaxError(f"{what}: layers {missing_layers} of {path} are missing from the checkpoint")
        out[path] = np.stack([layers[i] for i in range(n)])
    check_params(out, expected, what, unexpected)
    return out


def check_params(arrays: dict[str, np.ndarray], expected: dict, what: str, unexpected: list[str] = ()) -> None:
    """Raise one WanjaxError listing unexpected reference keys, missing/extra paths and shape mismatches."""
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    bad = [
        f"{p}: checkpoint {tuple(arrays[p].shape)} vs model {tuple(expected[p])}"
        for p in expected
        if p in arrays and tuple(arrays[p].shape) != tuple(expected[p])
    ]
    problems = [
        f"{title} ({len(items)}): {'; '.join(items[:20])}"
        for title, items in (
            ("unexpected keys", sorted(unexpected)),
            ("missing parameters", missing),
            ("parameters the model lacks", extra),
            ("shape mismatches", bad),
        )
        if items
    ]
    if problems:
        raise WanjaxError(f"{what} does not match the model config:\n  " + "\n  ".join(problems))


def to_ref(ours: dict[str, np.ndarray], table: list[Rule]) -> dict[str, np.ndarray]:
    """{our path: array} -> reference tensors (the inverse of `to_ours`)."""
    compiled = [(r, _pattern(r.ours), _stacked_name(r)) for r in table]
    out: dict[str, np.ndarray] = {}
    for path, value in ours.items():
        for rule, pat, stacked in compiled:
            m = pat.match(path)
            if m:
                value = np.asarray(value)
                layers = [(None, value)] if stacked is None else list(enumerate(value))
                for i, v in layers:
                    fields = dict(m.groupdict(), **({stacked: i} if stacked else {}))
                    out[rule.ref.format(**fields)] = np.ascontiguousarray(rule.transform.to_ref(v))
                break
        else:
            raise ValueError(f"no conversion rule for parameter {path}")
    return out


def read_folder(folder: str | Path, weights: str = WEIGHTS) -> tuple[dict, dict[str, np.ndarray]]:
    """(config.json as dict, all tensors) of a diffusers / Hugging Face model folder: config.json + `weights`, or
    shards named in `weights`.index.json."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder, index = Path(folder), weights + ".index.json"
    if not folder.is_dir():
        raise WanjaxError(f"{folder} is not a folder (expected config.json + {weights} or {index})")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise WanjaxError(f"{folder} has no config.json: is it a diffusers / Hugging Face model folder?")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise WanjaxError(f"{config_path} is not valid JSON: {e}") from None
    if (folder / index).is_file():
        weight_map = json.loads((folder / index).read_text())["weight_map"]
        files = sorted(set(weight_map.values()))
    elif (folder / weights).is_file():
        weight_map, files = None, [weights]
    else:
        raise WanjaxError(f"{folder} has neither {weights} nor {index}")
    tensors: dict[str, np.ndarray] = {}
    for name in files:
        path = folder / name
        if not path.is_file():
            raise WanjaxError(f"{path} is listed in {index} but missing")
        try:
            tensors.update(load_file(str(path)))
        except (SafetensorError, OSError, ValueError, TypeError) as e:
            raise WanjaxError(f"{path} is not a readable safetensors file ({e}); re-download or re-convert it") from e
    if weight_map is not None:
        absent = sorted(set(weight_map) - set(tensors))
        if absent:
            raise WanjaxError(f"{folder}: {len(absent)} tensors named in {index} are in no shard: {absent[:10]}")
    return config, tensors


@contextlib.contextmanager
def atomic_folder(folder: str | Path):
    """Yield a temporary folder beside `folder`; on success it replaces `folder` whole, on error it vanishes.

    Readers never see a half-written folder under the final name.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_folder(
    folder: str | Path, config: dict, tensors: dict[str, np.ndarray], shard_bytes: int = 5 << 30, weights: str = WEIGHTS
):
    """Write a diffusers / Hugging Face model folder atomically: config.json + `weights`, sharded (with
    `weights`.index.json) past `shard_bytes`."""
    from safetensors.numpy import save_file

    with atomic_folder(folder) as tmp:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        shards: list[dict[str, np.ndarray]] = [{}]
        size = 0
        for key in sorted(tensors):
            nbytes = tensors[key].nbytes
            if shards[-1] and size + nbytes > shard_bytes:
                shards.append({})
                size = 0
            shards[-1][key] = tensors[key]
            size += nbytes
        if len(shards) == 1:
            save_file(shards[0], str(tmp / weights), metadata={"format": "pt"})
            return
        weight_map = {}
        for i, shard in enumerate(shards):
            name = f"{weights.removesuffix('.safetensors')}-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(tmp / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in shard})
        total = sum(int(t.nbytes) for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (tmp / f"{weights}.index.json").write_text(json.dumps(index, indent=2))


def flat_params(module) -> dict[str, object]:
    """{'a/0/kernel': array} of a module's nnx.Params (arrays or ShapeDtypeStructs for abstract modules)."""
    from flax import nnx

    return {"/".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def load_flat_params(module, arrays: dict[str, np.ndarray]) -> None:
    """Set a module's nnx.Params in place from `flat_params`-style paths (cast to each param's dtype)."""
    import jax.numpy as jnp
    from flax import nnx

    flat = nnx.to_flat_state(nnx.state(module, nnx.Param))
    new = [(p, v.replace(jnp.asarray(arrays["/".join(map(str, p))], dtype=v.get_value().dtype))) for p, v in flat]
    nnx.update(module, nnx.from_flat_state(new))


def load_reference(make_module: Callable, tensors: dict[str, np.ndarray], table: list[Rule], what: str):
    """Build `make_module()` abstractly (no random init of a big model) and fill it from reference tensors."""
    from flax import nnx

    module = nnx.eval_shape(make_module)
    expected = {k: v.shape for k, v in flat_params(module).items()}
    load_flat_params(module, to_ours(tensors, table, expected, what))
    return module


def reference_tensors(module, table: list[Rule]) -> dict[str, np.ndarray]:
    """A module's parameters as reference-layout tensors (the inverse of `load_reference`)."""
    return to_ref({k: np.asarray(v) for k, v in flat_params(module).items()}, table)
