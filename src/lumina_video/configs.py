"""One config system for every training command: YAML -> typed dataclasses, `key.sub=value` overrides.

    cfg = load_yaml(TrainConfig, "configs/demo.yaml", ["optim.lr=1e-4", "stages.0.steps=200"])
    text = dump_yaml(cfg)                    # the resolved config, as the run folder records it

Precedence: the dataclass defaults, then the YAML file, then the overrides in the order given (an
override's value is parsed as YAML, so `stages.0.lr=1e-4` is a number and `x=[1, 2]` a list).
Every key is checked against the dataclasses: an unknown key is an error naming its full dotted
path and the keys accepted there; a value of the wrong type names its key and the type wanted.

Loading only converts and checks types. Filling in derived defaults (e.g. a task's time shift from
the recipe) is each app's own, separately named `resolve_*` step, and value checks are read-only
`check_*` functions, so the config a run writes is exactly the config it ran.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from ._checks import is_number


class ConfigError(ValueError):
    """A configuration that cannot be used: the message names the offending key or file."""


# ------------------------------------------------------------------------------------------------
# dict <-> dataclass
# ------------------------------------------------------------------------------------------------

def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce_scalar(value, tp):
    """`value` as the scalar type `tp`, or a `_MISMATCH` marker."""
    number = is_number(value)
    if tp is float:
        if number:
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string: accept the number it means
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is int:
        if number and float(value).is_integer():
            return int(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
        if number:
            return str(value)
    else:
        return value
    return _MISMATCH


_MISMATCH = object()


def _coerce(value, tp, key: str):
    """Check / convert one YAML value to the annotated type `tp`; errors name the dotted key."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}.{i}") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config key '{key}' must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}.{i}") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    out = _coerce_scalar(value, tp)
    if out is _MISMATCH:
        raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
    return out


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a plain dict; unknown keys are rejected by their dotted path."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"'{prefix}'" if prefix else "the top level"
        full = ", ".join(f"'{prefix + '.' if prefix else ''}{k}'" for k in unknown)
        raise ConfigError(f"unknown config key {full} (accepted at {where}: {', '.join(names)})")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    """Plain, YAML-safe dict of a config (tuples become lists)."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


# ------------------------------------------------------------------------------------------------
# YAML + overrides
# ------------------------------------------------------------------------------------------------

def apply_override(data: dict, assignment: str) -> None:
    """Apply one `a.b.0.c=value` to a nested dict/list in place. The value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not of the form key.sub=value")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {assignment!r} has an empty key")
    value = yaml.safe_load(raw) if raw.strip() else ""
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where)]
        else:
            if not isinstance(node.get(part, {}), (dict, list)):
                raise ConfigError(f"override '{key}': '{where}' is a value, not a section")
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
    else:
        node[last] = value


def _list_index(node: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override: '{where}' needs a list index below {len(node)}, got '{part}'")
    return int(part)


def read_yaml(path) -> dict:
    """The top-level mapping of a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping at the top level")
    return data


def load_yaml(cls, path=None, overrides: list[str] | tuple[str, ...] = ()):
    """Dataclass `cls` from a YAML file (None: all defaults) with `key=value` overrides applied."""
    data = read_yaml(path) if path is not None else {}
    for assignment in overrides:
        apply_override(data, assignment)
    return from_dict(cls, data)


def dump_yaml(cfg) -> str:
    """The config as YAML, keys in declaration order (what a run folder's config.yaml holds)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, width=110)


# ------------------------------------------------------------------------------------------------
# comparing two configs (what changed on resume)
# ------------------------------------------------------------------------------------------------

def flatten(data, prefix: str = "") -> dict:
    """{dotted key: leaf value} of a nested dict/list ("stages.0.tasks.1.global_batch": 8)."""
    if isinstance(data, dict) and data:
        out = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, (list, tuple)) and data and any(isinstance(v, (dict, list, tuple)) for v in data):
        out = {}
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix: list(data) if isinstance(data, tuple) else data}


def changes(old: dict, new: dict, ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
    """{dotted key: (old value, new value)} for every leaf that differs (missing: None), keys sorted.
    Keys equal to or under an `ignore` prefix are left out."""
    a, b = flatten(old), flatten(new)
    out = {}
    for key in sorted(set(a) | set(b)):
        if any(key == p or key.startswith(p + ".") for p in ignore):
            continue
        if a.get(key) != b.get(key):
            out[key] = (a.get(key), b.get(key))
    return out


def at_least_one(cfg, keys) -> None:
    """ConfigError naming the first of `keys` (attributes of `cfg`) whose value is below 1."""
    for key in keys:
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {getattr(cfg, key)}")


def one_of(value, accepted, key: str) -> None:
    if value not in accepted:
        raise ConfigError(f"config key '{key}' is {value!r}; accepted: {', '.join(map(repr, accepted))}")


__all__ = ["ConfigError", "from_dict", "to_dict", "apply_override", "read_yaml", "load_yaml", "dump_yaml",
           "flatten", "changes", "one_of", "at_least_one"]
