"""One micro-batch of one task: dataset items -> model inputs -> flow-matching loss per item.

For item i with data latent x1 (REFERENCE.md §2, §5):
    caption  <- ""  with probability caption_dropout   (the text is then the system prompt alone)
    t        ~ U(0, 1) or logit-normal, then t <- t / (t + a - a t)   (a: the task's time shift)
    x0       ~ N(0, I)
    x_t      = t x1 + (1 - t) x0,   target u = x1 - x0
    loss_i   = MSE(v, u) + vd_weight (1 - cos(v, u)),   v = model(x_t, t, caption, motion, patch)
All four draws come from the item's own generator, keyed by (seed, step, task, slot).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from .. import flow
from ..model.embed import token_grid
from .config import TaskConfig, TrainConfig
from .data import item_generator, video_latent_window


@dataclass
class MicroBatch:
    x1: list[torch.Tensor]       # data latents, each (C, F, H, W), on the device
    cap_feats: torch.Tensor      # (B, L, D)
    cap_mask: torch.Tensor       # (B, L) bool
    motion: torch.Tensor         # (B,), -1 = no motion condition
    generators: list[torch.Generator]
    tokens: int                  # model tokens of the whole micro-batch (for tokens/s)
    item_tokens: list[int] = field(default_factory=list)  # per item (the FLOPs count needs N^2 per item)


class CaptionEncoder:
    """Text features for (caption, system prompt) pairs, optionally cached.

    Without a cache, each distinct system prompt of a micro-batch is one encoder call. With
    `cache_size` > 0 the features of up to that many pairs are kept (least recently used dropped)
    and a pair not in the cache is encoded on its own, so its features never depend on which other
    captions shared its batch: a resumed run sees exactly the features of an uninterrupted one.
    Worth it when captions repeat (small or synthetic datasets); wasteful when they never do.
    """

    def __init__(self, text_encoder, cache_size: int = 0):
        self.text_encoder = text_encoder
        self.cache_size = cache_size
        self.cache: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    @torch.no_grad()
    def _rows_uncached(self, captions, system_prompts):
        rows = [None] * len(captions)
        for sp in dict.fromkeys(system_prompts):  # one encoder call per distinct system prompt
            idx = [i for i, s in enumerate(system_prompts) if s == sp]
            f, m = self.text_encoder.encode([captions[i] for i in idx], system_prompt=sp)
            for j, i in enumerate(idx):
                rows[i] = (f[j].float().cpu(), m[j].bool().cpu())
        return rows

    @torch.no_grad()
    def _row_cached(self, caption, system_prompt):
        key = (system_prompt, caption)
        if key in self.cache:
            self.hits += 1
            self.cache.move_to_end(key)
            return self.cache[key]
        self.misses += 1
        f, m = self.text_encoder.encode([caption], system_prompt=system_prompt)
        n = int(m[0].bool().sum())  # keep the real tokens only (right padding)
        row = (f[0, :n].float().cpu(), m[0, :n].bool().cpu())
        self.cache[key] = row
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return row

    def __call__(self, captions: list[str], system_prompts: list[str], device) -> tuple:
        """-> cap_feats (B, L, D) fp32, cap_mask (B, L) bool; rows right-padded to one length L."""
        if self.cache_size > 0:
            rows = [self._row_cached(c, s) for c, s in zip(captions, system_prompts)]
        else:
            rows = self._rows_uncached(captions, system_prompts)
        length = max(f.shape[0] for f, _ in rows)
        cap_feats = torch.stack([torch.nn.functional.pad(f, (0, 0, 0, length - f.shape[0])) for f, _ in rows])
        cap_mask = torch.stack([torch.nn.functional.pad(m, (0, length - m.shape[0])) for _, m in rows])
        return cap_feats.to(device), cap_mask.to(device)  # (B, L, D), (B, L)


@torch.no_grad()
def data_latents(items: list[dict], task: TaskConfig, vae, generators, device) -> list[torch.Tensor]:
    """Each item's training latent (C, F, H, W): pre-extracted, or encoded now by the VAE; videos get
    the REFERENCE.md §5 temporal window."""
    if all("latent" in it for it in items):
        raw = [it["latent"].float() for it in items]
    else:
        if vae is None:
            raise RuntimeError(f"task '{task.name}' trains from pixels but no VAE was given (set encoders.vae)")
        pixels = [it["pixels"] for it in items]
        if len({tuple(p.shape) for p in pixels}) == 1:
            z = vae.encode(torch.stack(pixels).to(vae.device, vae.dtype))  # (B, C, F', H', W')
            raw = list(z.float().unbind(0))
        else:
            raw = [vae.encode(p[None].to(vae.device, vae.dtype))[0].float() for p in pixels]
    out = []
    for z, it, g in zip(raw, items, generators):
        if task.media == "video" and it.get("media", "video") == "video":
            z = video_latent_window(z, task.num_frames, task.pt, g)
        out.append(z.to(device))
    return out


def prepare(items: list[dict], slots: list[int], *, task: TaskConfig, cfg: TrainConfig, step: int,
            captions: CaptionEncoder, vae, device) -> MicroBatch:
    gens = [item_generator(cfg.seed, step, task.name, s) for s in slots]
    # caption dropout first, so that an item's draws come in a fixed order
    drop = [bool(torch.rand((), generator=g) < cfg.caption_dropout) for g in gens]
    texts = ["" if d else it["caption"] for it, d in zip(items, drop)]
    prompts = [it.get("system_prompt", cfg.default_system_prompt) for it in items]
    x1 = data_latents(items, task, vae, gens, device)
    cap_feats, cap_mask = captions(texts, prompts, device)
    motion = torch.tensor([float(it.get("motion_score", -1.0)) for it in items], device=device)
    item_tokens = [int(torch.tensor(token_grid(tuple(z.shape), task.pt, task.p)).prod()) for z in x1]
    return MicroBatch(x1, cap_feats, cap_mask, motion, gens, sum(item_tokens), item_tokens)


def flow_loss(model, mb: MicroBatch, task: TaskConfig, cfg: TrainConfig) -> torch.Tensor:
    """Per-item flow-matching losses (B,) in fp32."""
    device = mb.x1[0].device
    t = torch.cat([flow.sample_t(1, cfg.t_sampling, mean=cfg.logit_mean, std=cfg.logit_std, generator=g)
                   for g in mb.generators])
    t = flow.time_shift(t, task.shift).to(device)  # (B,)
    x0 = [torch.randn(z.shape, generator=g).to(device) for z, g in zip(mb.x1, mb.generators)]
    same_shape = len({tuple(z.shape) for z in mb.x1}) == 1
    if same_shape:  # one batch tensor (B, C, F, H, W): the fast path
        x1, x0 = torch.stack(mb.x1), torch.stack(x0)
        xt, u = flow.interpolate(x0, x1, t), flow.target_velocity(x0, x1)
        pred = model(xt, t, mb.cap_feats, mb.cap_mask, mb.motion, patch_size=task.p, f_patch_size=task.pt)
        return flow.item_loss(pred, u, cfg.vd_weight)
    # ragged: a list of (C, F, H, W); items never attend to each other
    xt = [flow.interpolate(a[None], b[None], ti[None])[0] for a, b, ti in zip(x0, mb.x1, t)]
    pred = model(xt, t, mb.cap_feats, mb.cap_mask, mb.motion, patch_size=task.p, f_patch_size=task.pt)
    return torch.cat([flow.item_loss(v[None], (b - a)[None], cfg.vd_weight) for v, a, b in zip(pred, x0, mb.x1)])
