"""Convert an official Lumina-Video checkpoint folder to this project's format (model/folder.py): a
model folder that `MultiScaleNextDiT.from_pretrained` (and so diffusers' pipeline loader) reads.

Official folder: `consolidated.00-of-01.safetensors` (or `.pth`) + `model_args.pth`, a pickled
SimpleNamespace of training arguments. Pickles are read with torch's weights-only unpickler and an
allow-list of the few trusted types needed, so no arbitrary code runs.

Sizes come from the tensor shapes (so fine-tuned or other-size checkpoints convert too); the few
settings that shapes cannot tell (rope_theta, t_scale, motion_scale, norm_eps) come from model_args,
with the official loader's defaults where absent.
"""
from __future__ import annotations

import argparse
import pickle
import re
import types
from pathlib import Path

import torch

from . import files
from .devices import SHORT_NAMES, parse_dtype
from .model.blocks import ffn_hidden_dim
from .model.nextdit import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    MultiScaleNextDiT,
    clean_state_dict,
    config_file_dict,
    load_state_dict_checked,
)

WEIGHT_FILES = ("consolidated.00-of-01.safetensors", "consolidated.00-of-01.pth")
ARGS_FILE = "model_args.pth"
ALLOWED_TYPES = [types.SimpleNamespace, argparse.Namespace]
# What the official generate.py uses when model_args lacks a field.
OFFICIAL_DEFAULTS = dict(rope_theta=10000.0, t_scale=1.0, motion_scale=1.0, norm_eps=1e-5)


def load_trusted_pickle(path: Path):
    """torch.load with weights_only=True plus the allow-listed namespace types."""
    try:
        with torch.serialization.safe_globals(ALLOWED_TYPES):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = found.group(1) if found else str(e).splitlines()[0]
        raise ValueError(
            f"{path.name} holds a type that is not allowed: {what}. Accepted: tensors, plain Python values "
            f"and {', '.join(t.__module__ + '.' + t.__qualname__ for t in ALLOWED_TYPES)}; refusing to run "
            f"arbitrary pickled code"
        ) from None


def read_official(folder) -> tuple[dict, dict]:
    """(state dict with clean keys, model_args as a dict) from an official checkpoint folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"official checkpoint folder {folder} does not exist")
    weights = next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{folder} has no official weights: expected one of {', '.join(WEIGHT_FILES)}")
    if weights.suffix == ".safetensors":
        sd = files.load_safetensors(weights)
    else:
        sd = load_trusted_pickle(weights)
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise ValueError(f"{weights.name} is not a state dict of tensors")
    args = {}
    if (folder / ARGS_FILE).is_file():
        ns = load_trusted_pickle(folder / ARGS_FILE)
        if not isinstance(ns, (types.SimpleNamespace, argparse.Namespace, dict)):
            raise ValueError(f"{ARGS_FILE} holds a {type(ns).__name__}; expected a SimpleNamespace of arguments")
        args = dict(ns) if isinstance(ns, dict) else dict(vars(ns))
    return clean_state_dict(sd), args


def _ffn_settings(dim: int, hidden: int, args: dict) -> tuple[int, float | None]:
    """(multiple_of, ffn_dim_multiplier) that reproduce the FFN width found in the weights."""
    # model_args' own values first, then the largest power of two that gives the width found
    candidates = [(args.get("multiple_of"), args.get("ffn_dim_multiplier"))]
    candidates += [(2 ** k, None) for k in range(10, 2, -1)]
    for m, mult in candidates:
        if isinstance(m, int) and m > 0 and ffn_hidden_dim(dim, m, mult) == hidden:
            return m, mult
    base = int(2 * 4 * dim / 3)
    if hidden >= base:
        return hidden, None  # rounding base up to a multiple of `hidden` gives `hidden`
    return 1, (hidden + 0.5) / base  # int((hidden + 0.5) / base * base) == hidden


def infer_config(sd: dict, args: dict | None = None) -> dict:
    """Constructor arguments of MultiScaleNextDiT from tensor shapes (and model_args for the rest)."""
    args = args or {}
    try:
        dim = sd["pad_token"].shape[0]
        n_layers = len({k.split(".")[1] for k in sd if re.match(r"layers\.\d+\.attention\.gate$", k)})
        n_heads = sd["layers.0.attention.gate"].shape[0]
        head_dim = dim // n_heads
        n_kv_heads = sd["layers.0.attention.wk.weight"].shape[0] // head_dim
        cap_feat_dim = sd["layers.0.attention.wk_y.weight"].shape[1]
        hidden = sd["layers.0.feed_forward.w1.weight"].shape[0]
    except KeyError as e:
        raise ValueError(f"not a Multi-scale Next-DiT state dict: key {e} is missing") from None
    patches = {}
    for k, v in sd.items():
        m = re.match(r"all_x_embedder\.(\d+)-(\d+)\.weight$", k)
        if m:
            p, pt = int(m.group(1)), int(m.group(2))
            patches[(p, pt)] = v.shape[1] // (pt * p * p)
    if not patches:
        raise ValueError("not a Multi-scale Next-DiT state dict: no all_x_embedder.{p}-{pt} weights")
    if len(set(patches.values())) != 1:
        raise ValueError(f"patch embedders disagree on the number of input channels: {patches}")
    order = list(zip(args.get("patch_sizes") or (), args.get("f_patch_sizes") or ()))
    if sorted(order) != sorted(patches):
        order = sorted(patches, key=lambda pp: (pp[1] * pp[0] ** 2, pp[1]))
    multiple_of, ffn_mult = _ffn_settings(dim, hidden, args)
    pick = lambda name: float(args.get(name, OFFICIAL_DEFAULTS[name]))  # noqa: E731
    return dict(
        all_patch_size=[p for p, _ in order], all_f_patch_size=[pt for _, pt in order],
        in_channels=next(iter(patches.values())), dim=dim, n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=n_kv_heads, multiple_of=multiple_of, ffn_dim_multiplier=ffn_mult,
        norm_eps=pick("norm_eps"), qk_norm="layers.0.attention.q_norm.weight" in sd, cap_feat_dim=cap_feat_dim,
        rope_theta=pick("rope_theta"), t_scale=pick("t_scale"), motion_scale=pick("motion_scale"),
    )


def convert(official_dir, out_dir, dtype: str | None = None) -> dict:
    """Convert; returns the written config. Checks a strict load before writing anything."""
    sd, args = read_official(official_dir)
    config = infer_config(sd, args)
    if dtype is not None:
        cast = parse_dtype(dtype, SHORT_NAMES)
        sd = {k: v.to(cast) for k, v in sd.items()}
    model = MultiScaleNextDiT.from_config(config, device="meta")
    load_state_dict_checked(model, sd, assign=True)  # keys and shapes, without materialising weights
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files.save_safetensors({k: v.contiguous() for k, v in sd.items()}, out_dir / WEIGHTS_NAME)
    stored = str(next(iter(sd.values())).dtype).removeprefix("torch.")
    missing = sorted(k for k in ("rope_theta", "t_scale", "motion_scale") if k not in args)
    written = config_file_dict(config, stored, converted_from=dict(official_model=args.get("model"),
                                                                   defaults_used_for=missing))
    files.write_json(out_dir / CONFIG_NAME, written)
    return written


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("official_dir", help="folder with consolidated.00-of-01.{safetensors,pth} and model_args.pth")
    p.add_argument("out_dir", help="output folder (config.json + model.safetensors)")
    p.add_argument("--dtype", choices=SHORT_NAMES, default=None, help="cast weights (default: keep)")


def cli_main(args) -> int:
    cfg = convert(args.official_dir, args.out_dir, args.dtype)
    n = cfg["n_layers"]
    print(f"converted: dim {cfg['dim']}, {n} layers, {cfg['n_heads']} heads / {cfg['n_kv_heads']} kv, patches "
          f"{list(zip(cfg['all_f_patch_size'], cfg['all_patch_size']))} (pt, p), {cfg['torch_dtype']} "
          f"-> {args.out_dir}")
    if cfg["converted_from"]["defaults_used_for"]:
        print(f"note: model_args.pth lacked {cfg['converted_from']['defaults_used_for']}; used the official "
              f"loader's defaults {OFFICIAL_DEFAULTS}")
    return 0
