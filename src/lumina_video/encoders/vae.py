"""Video VAE: the diffusers `AutoencoderKLCogVideoX` with the latent convention of docs/REFERENCE.md §6.

    latents = latent_dist.mode() * scale          scale = 1.15258426, no shift
    pixels  = decoder(latents / scale)            pixels in [-1, 1], (B, 3, F, H, W)

Shapes: 8x spatial (2^(blocks-1)), 4x temporal, 16 latent channels. The frame counts, measured with
this class (diffusers 0.42; the rule follows from its causal time compression, not from weights):

    encode F frames  -> ceil(F / 4) latent frames. Each latent frame summarises one whole group of
                        4 frames (or the lone first frame) only when F = 1, 4k or 4k + 1, so encode
                        accepts just those: 96 -> 24 (the release's frames // 4), 97 -> 25.
    decode T latents -> 4T frames when T is even, 4T - 3 when T is odd (1 -> 1, 2 -> 8, 3 -> 9, 24 -> 96).

So a generated video has 1, 8m or 8m + 1 frames (`latent_frames` / `num_frames` below); the DiT's
temporal patch 2 further needs an even latent count (8m frames) for the (2,2,2) and (2,4,4) patches.
Time is processed in chunks inside diffusers (8 frames per encoder call, 2 latent frames per decoder
call, with a causal conv cache between chunks), so memory does not grow with the video's length;
`slicing` splits the batch, `tiling` splits height and width.

`VideoVAE` is a diffusers `ModelMixin` so that a pipeline folder can name it (["lumina_video",
"VideoVAE"] in model_index.json) and `DiffusionPipeline.from_pretrained` loads it from a plain diffusers
`AutoencoderKLCogVideoX` folder. `encode` and `decode` run through `forward`, so the hooks of
diffusers' offloading (`enable_model_cpu_offload`, `enable_group_offload`) see every use.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from diffusers import ModelMixin

from .. import files
from .._checks import positive_int

LATENT_SCALE = 1.15258426
TEMPORAL_FACTOR = 4
WEIGHTS_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def tiny_config(latent_channels: int = 16, channels: int = 8, layers_per_block: int = 1,
                norm_num_groups: int = 4) -> dict:
    """A CogVideoX-architecture VAE config with few channels but the real compression
    (4 blocks: 8x spatial; 4x temporal) and `latent_channels` latent channels, for tests and demos."""
    return dict(
        block_out_channels=(channels,) * 4, layers_per_block=layers_per_block, latent_channels=latent_channels,
        norm_num_groups=norm_num_groups, temporal_compression_ratio=TEMPORAL_FACTOR,
        scaling_factor=LATENT_SCALE, sample_height=96, sample_width=80,  # tiles 48 x 40 px when tiling
    )


class VideoVAE(ModelMixin):
    """Wraps an `AutoencoderKLCogVideoX`: scaled latents in, pixels in [-1, 1] out."""

    def __init__(self, vae, tiling: bool = False, slicing: bool = False):
        super().__init__()
        cfg = vae.config
        if int(cfg.temporal_compression_ratio) != TEMPORAL_FACTOR:
            raise ValueError(f"only the 4x temporal compression of CogVideoX is supported (its frame rule is "
                             f"measured), got temporal_compression_ratio={cfg.temporal_compression_ratio}")
        self.vae = vae.eval().requires_grad_(False)
        self.scale = float(cfg.scaling_factor)
        self.shift = float(cfg.shift_factor or 0.0)
        self.set_tiling(tiling)
        self.set_slicing(slicing)

    # -- shapes -------------------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @staticmethod
    def num_frames(latent_frames: int) -> int:
        """Frames decoded from `latent_frames` latent frames: 4T (T even) or 4T - 3 (T odd)."""
        t = positive_int(latent_frames, "latent_frames")
        return 4 * t if t % 2 == 0 else 4 * t - 3

    @staticmethod
    def latent_frames(num_frames: int) -> int:
        """Latent frames T that decode to exactly `num_frames` frames (1, 8m or 8m + 1), else ValueError."""
        f = positive_int(num_frames, "num_frames")
        if f == 1 or f % 8 == 0:
            return max(1, f // 4)
        if f % 8 == 1:
            return (f - 1) // 4 + 1
        lo, hi = f - f % 8, f - f % 8 + 8
        raise ValueError(
            f"the VAE cannot produce {f} frames: it decodes T latent frames to 4T frames (T even) or 4T - 3 "
            f"(T odd), so a video has 1, 8m or 8m + 1 frames (8, 9, 16, 17, ..., 96, 97); nearest: "
            f"{', '.join(str(v) for v in sorted({max(lo, 1), lo + 1, hi}) if v >= 1)}"
        )

    @staticmethod
    def encoded_latent_frames(num_frames: int) -> int:
        """Latent frames that `encode` makes from `num_frames` frames (1, 4k or 4k + 1): ceil(F / 4)."""
        f = positive_int(num_frames, "num_frames")
        if f != 1 and f % 4 not in (0, 1):
            raise ValueError(f"the VAE encodes 1, 4k or 4k + 1 frames (each latent frame summarises 4 frames, "
                             f"the first may stand alone); got {f}")
        return math.ceil(f / 4)

    # -- switches -----------------------------------------------------------------------------
    def set_tiling(self, on: bool = True, tile_height: int | None = None, tile_width: int | None = None) -> None:
        """Split height and width into overlapping tiles of tile_height x tile_width pixels (less
        memory for large frames; default: half the config's sample size, 240 x 360 for CogVideoX-2b)."""
        if not on:
            self.vae.use_tiling = False
            return
        self.vae.enable_tiling(tile_sample_min_height=tile_height, tile_sample_min_width=tile_width)
        v, s = self.vae, self.spatial_factor
        for name, tile, overlap in (("height", v.tile_sample_min_height, v.tile_overlap_factor_height),
                                    ("width", v.tile_sample_min_width, v.tile_overlap_factor_width)):
            # diffusers steps tiles by int(tile * (1 - overlap)) pixels and int(tile / s * (1 - overlap))
            # latents; both must describe the same place or the tiles no longer fit together.
            stride = int(tile * (1 - overlap))
            if tile % s or stride % s or int(tile // s * (1 - overlap)) * s != stride:
                self.vae.use_tiling = False
                raise ValueError(f"tile {name} {tile} px does not tile cleanly: the tile ({tile}) and its stride "
                                 f"({stride} = tile x (1 - overlap {overlap:.3g})) must be multiples of {s} and "
                                 f"agree in latent units (e.g. {name} 240 or 48 with overlap 1/6, 360 or 40 with 1/5)")

    def set_slicing(self, on: bool = True) -> None:
        """Encode / decode the batch one video at a time."""
        self.vae.use_slicing = bool(on)

    # -- encode / decode ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor, encode: bool = False, device=None, raw: bool = False) -> torch.Tensor:
        """decode(x), or encode(x) when `encode` (the unscaled mode when `raw`): the one entry point,
        so that offloading hooks on forward fire for both. `device`: where to compute (default: where
        the weights are)."""
        device = self.device if device is None else torch.device(device)
        if encode:
            mode = self._raw_mode(x, device)
            return mode if raw else (mode.float() - self.shift) * self.scale
        if x.dim() != 5 or x.shape[1] != self.latent_channels:
            raise ValueError(f"latents have shape {tuple(x.shape)}; expected (B, {self.latent_channels}, T, h, w)")
        z = x.to(device=device, dtype=self.dtype) / self.scale + self.shift
        return self.vae.decode(z).sample.float().clamp(-1.0, 1.0)

    def _raw_mode(self, pixels: torch.Tensor, device) -> torch.Tensor:
        self._check_pixels(pixels)
        return self.vae.encode(pixels.to(device=device, dtype=self.dtype)).latent_dist.mode()

    @torch.no_grad()
    def raw_mode(self, pixels: torch.Tensor, device=None) -> torch.Tensor:
        """The unscaled posterior mode (B, C_lat, F', H/8, W/8) of pixels (B, 3, F, H, W) in [-1, 1]."""
        return self(pixels, encode=True, device=device, raw=True)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, device=None) -> torch.Tensor:
        """pixels (B, 3, F, H, W) in [-1, 1] -> latents (B, C_lat, ceil(F/4), H/8, W/8), fp32, scaled:
        (mode - shift) * scale."""
        return self(pixels, encode=True, device=device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, device=None) -> torch.Tensor:
        """latents (B, C_lat, T, h, w) -> pixels (B, 3, num_frames(T), 8h, 8w) in [-1, 1], fp32:
        decoder(latents / scale + shift)."""
        return self(latents, device=device)

    def _check_pixels(self, pixels: torch.Tensor) -> None:
        in_ch = int(self.vae.config.in_channels)
        if pixels.dim() != 5 or pixels.shape[1] != in_ch:
            raise ValueError(f"pixels have shape {tuple(pixels.shape)}; expected (B, {in_ch}, F, H, W) in [-1, 1]")
        _, _, f, h, w = pixels.shape
        s = self.spatial_factor
        if h % s or w % s:
            raise ValueError(f"frame size {h}x{w} (HxW) is not a multiple of the VAE's {s}x spatial compression")
        self.encoded_latent_frames(f)
        lo, hi = float(pixels.min()), float(pixels.max())
        if lo < -1.001 or hi > 1.001:
            raise ValueError(f"pixels must be in [-1, 1], got values in [{lo:.3g}, {hi:.3g}] "
                             f"(from uint8 frames: x / 127.5 - 1)")

    # -- files --------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict, **kwargs) -> VideoVAE:
        """A randomly initialised VAE of the given `AutoencoderKLCogVideoX` config (e.g. `tiny_config()`)."""
        from diffusers import AutoencoderKLCogVideoX

        return cls(AutoencoderKLCogVideoX(**config), **kwargs)

    @classmethod
    def from_pretrained(cls, folder, dtype: torch.dtype | None = None, device="cpu", tiling: bool = False,
                        slicing: bool = False, **kwargs) -> VideoVAE:
        """From a diffusers folder (config.json + diffusion_pytorch_model.safetensors), e.g. the `vae/`
        folder of THUDM/CogVideoX-2b. Other keywords are diffusers' loading options (torch_dtype,
        device_map, variant, quantization_config, ...), passed on to `AutoencoderKLCogVideoX.from_pretrained`;
        so DiffusionPipeline.from_pretrained can load this class as a pipeline component."""
        from diffusers import AutoencoderKLCogVideoX

        folder = Path(folder)
        if not (folder / "config.json").is_file() or not any((folder / n).is_file() for n in WEIGHTS_FILES):
            raise FileNotFoundError(f"{folder} is not a VAE folder: expected config.json and {WEIGHTS_FILES[0]} "
                                    f"(the `vae/` folder of a CogVideoX-2b download, or VideoVAE.save_pretrained)")
        if dtype is not None:
            kwargs["torch_dtype"] = dtype
        kwargs.setdefault("local_files_only", True)
        vae = AutoencoderKLCogVideoX.from_pretrained(str(folder), **kwargs)
        if kwargs.get("device_map") is None:
            vae = vae.to(device)
        return cls(vae, tiling=tiling, slicing=slicing)

    def save_pretrained(self, folder) -> None:
        """Write the diffusers folder; it appears whole or not at all."""
        with files.atomic_dir(folder) as tmp:
            self.vae.save_pretrained(tmp)
