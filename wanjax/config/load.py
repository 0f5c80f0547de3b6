"""Configs from YAML files and `a.b=value` overrides, checked field by field against the section dataclasses.

    cfg = load_config("configs/tiny.yaml", ["model.num_layers=2", "sample.steps=4"])

A YAML file has up to six sections (`model`, `vae`, `mesh`, `train`, `sample`, `data`); `model:` and `vae:` may
name a `preset` (`wanjax.config.architecture.PRESETS`) that the other keys override. Unknown keys and wrong types are
`WanjaxError`s that name the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from wanjax.config.architecture import PRESETS
from wanjax.config.sections import Config
from wanjax.errors import WanjaxError


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Check/convert one YAML value against a dataclass field type; errors name the key."""
    origin = typing.get_origin(typ)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise WanjaxError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(typ)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(args) != len(value):
            raise WanjaxError(f"{key}: expected {len(args)} values, got {len(value)} ({value!r})")
        return tuple(_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        return _coerce(key, value, next(a for a in args if a is not type(None)))
    if typ is bool:
        if not isinstance(value, bool):
            raise WanjaxError(f"{key}: expected true/false, got {value!r}")
        return value
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if typ in (int, float, str) and (not isinstance(value, typ) or isinstance(value, bool)):
        raise WanjaxError(f"{key}: expected {typ.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _build(cls: type, values: dict[str, Any], prefix: str, base: Any = None) -> Any:
    """A dataclass from a (possibly partial) mapping, starting from `base` (or defaults)."""
    if not isinstance(values, dict):
        raise WanjaxError(f"{prefix}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values = dict(values)
    preset = values.pop("preset", None)
    if preset is not None:
        table = PRESETS.get(prefix, {})
        if preset not in table:
            raise WanjaxError(f"{prefix}.preset={preset!r} is unknown; known: {', '.join(table) or 'none'}")
        base = table[preset]()
    base = base if base is not None else cls()
    changes = {}
    for key, value in values.items():
        if key not in names:
            raise WanjaxError(f"unknown config key {prefix}.{key}; known keys: {', '.join(sorted(names))}")
        if dataclasses.is_dataclass(hints[key]):
            changes[key] = _build(hints[key], value, f"{prefix}.{key}" if prefix else key, getattr(base, key))
        else:
            changes[key] = _coerce(f"{prefix}.{key}" if prefix else key, value, hints[key])
    return dataclasses.replace(base, **changes)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """['model.num_layers=2', 'sample.solver=euler'] -> nested dict (values parsed as YAML scalars/lists)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise WanjaxError(f"override {item!r} is not key=value (e.g. model.num_layers=2)")
        key, raw = item.split("=", 1)
        node = tree
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise WanjaxError(f"override {item!r} conflicts with an earlier override of {p}")
        node[leaf] = yaml.safe_load(raw) if raw.strip() else ""
    return tree


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Config from a YAML file (or defaults when `path` is None) plus `key=value` overrides; validated."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise WanjaxError(f"config file {path} not found (see configs/ for the shipped ones)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise WanjaxError(f"config file {path} is not valid YAML: {e}") from None
    return config_from_dict(_merge(data, parse_overrides(list(overrides))))


def config_from_dict(data: dict[str, Any]) -> Config:
    return _build(Config, data, "").validate()


def with_sample(cfg: Config, values: dict[str, Any]) -> Config:
    """cfg with sample settings replaced, through the config machinery (types checked, values validated)."""
    if not values:
        return cfg
    return config_from_dict(config_to_dict(cfg) | {"sample": config_to_dict(cfg.sample) | values})


def settings_help(sections: tuple[str, ...]) -> str:
    """Every `section.key` of `sections` with its default, one per line (the CLI's help epilog)."""
    lines = []
    for name in sections:
        for key, value in config_to_dict(getattr(Config(), name)).items():
            lines.append(f"  {name}.{key}={value}")
    return "\n".join(lines)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON/YAML-ready dict (tuples as lists)."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(cfg))))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
