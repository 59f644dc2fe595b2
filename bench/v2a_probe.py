"""What a V2A pipeline's video features know of (colour, shape) pairs they never heard: linear probes.

On synth-av clips with one object, a multinomial logistic regression (scikit-learn, a dependency of librosa) is
fitted on the time-averaged features of clips from the training manifest and scored on clips of the held-out
pairs, for the object's colour (which sets its note) and its shape (which sets its timbre):

    clip    the pipeline's CLIP frame features (8 per second)
    sync    the trained sync encoder's features (25 per second)
    head    the transformer's sync envelope head (when it has one): its predicted log-mel band profile, read
            by nearest centroid (correlation with each colour's mean training profile)
    harmonic the transformer's harmonic head (when it has one), read by rule with no fit: colour = the note
            nearest its f0 (the mean f0 distribution's peak over its voiced frames), shape = the timbre whose
            template is nearest its mean amplitudes of harmonics 2..5 (eval-audio's classify_timbre)
With a timbre branch, "sync" is the main channels and "timbre" the branch's. `--checkpoint` probes a
train-v2a checkpoint (its EMA weights in the pipeline's transformer and sync encoder) during a run.

A probe that generalises (held-out accuracy near the training one) says the feature keeps the attribute apart
from the pair; one far below chance says it learnt the pairs. Chance: 1/6 for colour, 1/3 for shape.

    python bench/v2a_probe.py --data runs/v2a_demo/data [--model DIR] [--checkpoint RUN/checkpoints/step_N] [--n 250]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from lumina_video.data.video_io import read_video
from lumina_video.encoders.clips import frame_times
from lumina_video.pipeline.v2a import LuminaV2APipeline
from lumina_video.training.audio_data import read_records


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="runs/v2a_demo/data", help="a synth-av folder with manifest.jsonl and "
                    "heldout.jsonl")
    ap.add_argument("--model", default=None, help="a V2A pipeline folder (default: the bundled V2A demo model)")
    ap.add_argument("--checkpoint", default=None, help="a train-v2a checkpoint folder: its EMA weights replace the "
                    "pipeline's transformer and sync encoder (shapes from the run's config.yaml)")
    ap.add_argument("--raw", action="store_true", help="with --checkpoint: its raw weights instead of the EMA's")
    ap.add_argument("--n", type=int, default=250, help="single-object clips of each set (the first N)")
    ap.add_argument("--threads", type=int, default=2)
    return ap.parse_args(argv)


def single_object_records(path: Path, n: int) -> list[dict]:
    return [r for r in read_records(path) if len(r["objects"]) == 1][:n]


@torch.no_grad()
def clip_features(pipe, root: Path, records: list[dict], seconds: int = 2) -> dict:
    """{"clip": (n, Dv), "sync": (n, Ds), "timbre": (n, Dt) or None, "head": (n, B) or None, "harmonic":
    [(colour, shape)] or None, "colour": [...], "shape": [...]}: means over the first `seconds` of each clip."""
    out = {"clip": [], "sync": [], "timbre": [], "head": [], "harmonic": [], "colour": [], "shape": []}
    model = pipe.transformer
    head = getattr(model, "sync_envelope", None)
    main = model.cfg.sync_feat_dim
    for r in records:
        frames, fps = read_video(root / r["path"])
        times = frame_times(len(frames), fps)
        visual, _ = pipe.clip.encode_video(frames, times, rate=pipe.defaults["clip_rate"], duration=seconds)
        sync, _ = pipe.sync_encoder.encode(frames, times, duration=seconds)
        out["clip"].append(visual.float().mean(0).numpy())
        out["sync"].append(sync.float()[:, :main].mean(0).numpy())
        if model.cfg.sync_timbre_dim:
            out["timbre"].append(sync.float()[:, main:].mean(0).numpy())
        if head is not None:
            out["head"].append(head(sync[:, :main].to(head.weight.dtype)).float()[:, 2:].mean(0).numpy())
        if model.cfg.sync_harmonics:
            out["harmonic"].append(harmonic_reading(model, sync))
        out["colour"].append(r["objects"][0]["colour"])
        out["shape"].append(r["objects"][0]["shape"])
    return {k: (np.stack(v) if v and k in ("clip", "sync", "timbre", "head") else v or None) for k, v in out.items()}


def harmonic_reading(model, sync) -> tuple[str, str]:
    """(colour, shape) the harmonic head says for one clip's sync features (module docstring)."""
    from lumina_video.data import sound
    from lumina_video.eval.audio_metrics import classify_timbre
    from lumina_video.model.v2a_harmonics import f0_grid, split_outputs

    parts = split_outputs(model.sync_heads(sync.to(model.dtype)).float(), model.cfg.sync_envelope_bands,
                          model.cfg.sync_harmonics)
    voiced = torch.sigmoid(parts["voicing_logit"]) > 0.5
    keep = voiced if bool(voiced.any()) else torch.ones_like(voiced)
    f0 = float(f0_grid()[int(torch.softmax(parts["f0_logits"][keep], -1).mean(0).argmax())])
    colour = min(sound.NOTES, key=lambda c: abs(np.log2(sound.NOTES[c] / f0)))
    timbre = classify_timbre(parts["ratios"][keep].mean(0).numpy()[:4])
    shape = {v: k for k, v in sound.TIMBRES.items()}[timbre]
    return colour, shape


def load_checkpoint(pipe, folder: Path, raw: bool = False) -> None:
    """A train-v2a checkpoint's EMA weights into the pipeline's transformer and sync encoder (shapes from the
    run's config.yaml: the harmonic head and timbre branch are added when the run has them)."""
    from dataclasses import replace

    from lumina_video import files
    from lumina_video.encoders.sync import SmallSyncEncoder
    from lumina_video.model.v2a import V2ANextDiT
    from lumina_video.training.v2a_config import load_v2a_config

    arch = load_v2a_config(folder / "config.yaml").arch
    state = files.load_safetensors(folder / ("model.safetensors" if raw else "ema.safetensors"))
    cfg = replace(pipe.transformer.cfg, sync_envelope_bands=arch.sync_envelope_bands,
                  sync_harmonics=arch.sync_harmonics, sync_timbre_dim=arch.sync_timbre_dim)
    model = V2ANextDiT(cfg)
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    sync = SmallSyncEncoder(replace(pipe.sync_encoder.config, timbre_dim=arch.sync_timbre_dim))
    sync.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("sync.")})
    pipe.transformer, pipe.sync_encoder = model.eval(), sync.eval()


def probe(train_x, train_y, test_x, test_y) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(train_x)
    model = LogisticRegression(max_iter=5000).fit(scale.transform(train_x), train_y)
    return model.score(scale.transform(train_x), train_y), model.score(scale.transform(test_x), test_y)


def nearest_centroid(train_x, train_y, test_x, test_y) -> tuple[float, float]:
    names = sorted(set(train_y))
    centroids = np.stack([train_x[[y == c for y in train_y]].mean(0) for c in names])

    def accuracy(x, y):
        corr = [[np.corrcoef(row, c)[0, 1] for c in centroids] for row in x]
        return float(np.mean([names[int(np.argmax(c))] == t for c, t in zip(corr, y)]))

    return accuracy(train_x, train_y), accuracy(test_x, test_y)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    root = Path(args.data)
    pipe = LuminaV2APipeline.from_pretrained(args.model) if args.model else LuminaV2APipeline.from_pretrained()
    if args.checkpoint:
        load_checkpoint(pipe, Path(args.checkpoint), args.raw)
    train = clip_features(pipe, root, single_object_records(root / "manifest.jsonl", args.n))
    test = clip_features(pipe, root, single_object_records(root / "heldout.jsonl", args.n))
    print(f"{len(train['colour'])} training clips, {len(test['colour'])} held-out clips (one object each)\n")
    print("| feature | attribute | read by | training accuracy | held-out accuracy | chance |")
    print("|---|---|---|---:|---:|---:|")
    for feature in ("clip", "sync") + (("timbre",) if train["timbre"] is not None else ()):
        for attribute, chance in (("colour", 1 / 6), ("shape", 1 / 3)):
            tr, te = probe(train[feature], train[attribute], test[feature], test[attribute])
            print(f"| {feature} | {attribute} | logistic regression | {tr:.3f} | {te:.3f} | {chance:.3f} |")
    if train["head"] is not None:
        for attribute, chance in (("colour", 1 / 6), ("shape", 1 / 3)):
            tr, te = nearest_centroid(train["head"], train[attribute], test["head"], test[attribute])
            print(f"| head bands | {attribute} | nearest centroid | {tr:.3f} | {te:.3f} | {chance:.3f} |")
    if train["harmonic"] is not None:
        for k, (attribute, chance) in enumerate((("colour", 1 / 6), ("shape", 1 / 3))):
            tr, te = (float(np.mean([said[k] == truth for said, truth in zip(d["harmonic"], d[attribute])]))
                      for d in (train, test))
            print(f"| harmonic head | {attribute} | its rule (no fit) | {tr:.3f} | {te:.3f} | {chance:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
