"""The audio VAE: diffusers' `AutoencoderKL` (the class of AudioLDM's VAE) run over a log-mel
spectrogram as a one-channel image whose height is time and whose width is the mel bins.

    latents = (mode(q(z | mel)) - shift) * scale          scale = config.scaling_factor (AudioLDM: 0.92279)
    mel     = decoder(latents / scale + shift)             shift = config.shift_factor (AudioLDM: none, 0)

Shapes: mel (B, T, n_mels) -> the image (B, 1, T, n_mels) -> latents (B, C, T / f, n_mels / f), with
f = 2^(down blocks - 1): AudioLDM's VAE has 3 down blocks (f = 4) and C = 8, so 100 mel frames/s x 64
bins become 25 latent frames/s x 16 rows (`latent_rate`). T must be a multiple of f: `encode` raises
otherwise (it never pads behind the caller's back); `pad_frames` pads with silence (the mel's floor,
log 1e-5) for callers that crop after decoding.

Encoding uses the posterior's mode (its mean), as the video VAE does; `posterior` and `forward`
give the distribution and a sampled reconstruction for training. Nothing here runs under
`torch.no_grad` and no weights are frozen: the trainer differentiates through `encode`/`decode`,
and inference callers wrap them in `torch.no_grad()` themselves. `.model` is the AutoencoderKL.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from .. import files
from .._checks import positive_int
from .mel import AUDIOLDM, MelConfig

WEIGHTS_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
AUDIOLDM_SCALING_FACTOR = 0.9227914214134216


def _autoencoder_config(block_out_channels, layers_per_block: int, latent_channels: int, norm_num_groups: int,
                        scaling_factor: float, sample_size: int) -> dict:
    n = len(block_out_channels)
    return dict(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * n,
                up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(block_out_channels),
                layers_per_block=layers_per_block, act_fn="silu", latent_channels=latent_channels,
                norm_num_groups=norm_num_groups, sample_size=sample_size, scaling_factor=scaling_factor)


def tiny_audio_vae_config(block_out_channels=(16, 32, 32), layers_per_block: int = 1, latent_channels: int = 8,
                          norm_num_groups: int = 8, scaling_factor: float = 1.0) -> dict:
    """An AutoencoderKL config with AudioLDM's shape rules (3 down blocks: 4x in time and mel, 8 latent
    channels) and few channels, which trains on a CPU. Its `scaling_factor` is 1 until measured
    (`set_scaling_factor` after training, e.g. 1 / std of the training latents)."""
    return _autoencoder_config(block_out_channels, layers_per_block, latent_channels, norm_num_groups,
                               scaling_factor, sample_size=64)


def audioldm_vae_config() -> dict:
    """The released AudioLDM (audioldm-s-full-v2) VAE config: block_out_channels (128, 256, 512), 2 layers
    per block, 8 latent channels, 32 norm groups, scaling factor 0.92279 (55.4M parameters)."""
    return _autoencoder_config((128, 256, 512), 2, 8, 32, AUDIOLDM_SCALING_FACTOR, sample_size=512)


def _read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder}/config.json is not a readable JSON config: {e}") from e


def resolve_folder(folder, sub: str) -> Path:
    """`folder` itself when it holds config.json, else `folder/sub` (a pipeline folder laid out like
    AudioLDM's: FOLDER/vae/, FOLDER/vocoder/); FileNotFoundError when neither does."""
    folder = Path(folder)
    for cand in (folder, folder / sub):
        if (cand / "config.json").is_file():
            return cand
    raise FileNotFoundError(f"{folder} has no config.json (nor {sub}/config.json)")


def check_vae_config(config: dict, where: str) -> None:
    """One-line ValueError unless `config` is an AutoencoderKL config with one input and output channel."""
    name = config.get("_class_name")
    if name != "AutoencoderKL":
        found = name or config.get("model_type") or "no _class_name"
        raise ValueError(f"{where} is not an AutoencoderKL folder (config.json says {found})")
    for key in ("in_channels", "out_channels"):
        if config.get(key, 3) != 1:
            raise ValueError(f"{where}: the audio VAE takes a one-channel mel image, got {key}={config.get(key, 3)}")


class AudioVAE(nn.Module):
    """Wraps an `AutoencoderKL` (`.model`): mel (B, T, n_mels) <-> scaled latents (B, C, T/f, n_mels/f)."""

    def __init__(self, model, mel: MelConfig = AUDIOLDM):
        super().__init__()
        check_vae_config(dict(model.config, _class_name=type(model).__name__), type(model).__name__)
        self.model = model
        self.mel_config = mel
        if mel.n_mels % self.downsample:
            raise ValueError(f"{mel.n_mels} mel bins are not a multiple of the VAE's {self.downsample}x compression")

    # -- shapes -------------------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return int(self.model.config.latent_channels)

    @property
    def downsample(self) -> int:
        """f = 2^(down blocks - 1): the compression of time and of the mel axis alike (4 for AudioLDM's)."""
        return 2 ** (len(self.model.config.block_out_channels) - 1)

    @property
    def latent_rate(self) -> float:
        """Latent frames per second: mel frames per second / f (100 / 4 = 25)."""
        return self.mel_config.frames_per_second / self.downsample

    @property
    def scaling_factor(self) -> float:
        return float(self.model.config.scaling_factor)

    @property
    def shift_factor(self) -> float:
        return float(self.model.config.get("shift_factor") or 0.0)

    def latent_shape(self, frames: int) -> tuple[int, int, int]:
        """(C, T / f, n_mels / f) for T = `frames` mel frames (a multiple of f)."""
        self._check_frames(positive_int(frames, "frames"))
        return self.latent_channels, frames // self.downsample, self.mel_config.n_mels // self.downsample

    def set_scaling_factor(self, value: float) -> None:
        """Record a measured scaling factor in the config (saved with the folder)."""
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"scaling_factor must be a finite number > 0, got {value!r}")
        self.model.register_to_config(scaling_factor=float(value))

    def _check_frames(self, frames: int) -> None:
        if frames % self.downsample:
            raise ValueError(f"mel frames T={frames} must be a multiple of {self.downsample} (the VAE's time "
                             f"compression); pad with AudioVAE.pad_frames and crop after decoding")

    def pad_frames(self, mel: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(mel padded at the end with the silence floor log(clamp) to a multiple of f frames, original T)."""
        frames = mel.shape[-2]
        extra = -frames % self.downsample
        if extra == 0:
            return mel, frames
        floor = mel.new_full((*mel.shape[:-2], extra, mel.shape[-1]), math.log(self.mel_config.clamp))
        return torch.cat([mel, floor], dim=-2), frames

    # -- encode / decode (differentiable) ---------------------------------------------------------
    def _image(self, mel: torch.Tensor) -> torch.Tensor:
        n = self.mel_config.n_mels
        if mel.dim() != 3 or mel.shape[-1] != n:
            raise ValueError(f"mel has shape {tuple(mel.shape)}; expected (B, T, {n}) log-mel, time first")
        self._check_frames(mel.shape[1])
        p = next(self.model.parameters())
        return mel.to(device=p.device, dtype=p.dtype)[:, None]  # (B, 1, T, n_mels)

    def posterior(self, mel: torch.Tensor):
        """q(z | mel): diffusers' DiagonalGaussianDistribution over unscaled latents (B, C, T/f, n/f)."""
        return self.model.encode(self._image(mel)).latent_dist

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, n_mels) -> latents (B, C, T/f, n_mels/f) = (mode - shift) * scale, fp32."""
        return (self.posterior(mel).mode().float() - self.shift_factor) * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (B, C, t, m) -> mel (B, f t, f m), fp32 (not clamped: the floor is learnt)."""
        if latents.dim() != 4 or latents.shape[1] != self.latent_channels:
            raise ValueError(f"latents have shape {tuple(latents.shape)}; expected (B, {self.latent_channels}, t, m)")
        p = next(self.model.parameters())
        z = latents.to(device=p.device, dtype=p.dtype) / self.scaling_factor + self.shift_factor
        return self.model.decode(z).sample[:, 0].float()

    def forward(self, mel: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None):
        """Training: (reconstruction (B, T, n_mels) of a posterior sample (its mode if not `sample`), posterior);
        the KL term is `posterior.kl()` (B,)."""
        post = self.posterior(mel)
        z = post.sample(generator) if sample else post.mode()
        return self.model.decode(z).sample[:, 0].float(), post

    # -- files --------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict, mel: MelConfig = AUDIOLDM) -> AudioVAE:
        """A randomly initialised VAE of an AutoencoderKL config (`tiny_audio_vae_config()`,
        `audioldm_vae_config()`)."""
        from diffusers import AutoencoderKL

        check_vae_config({"_class_name": "AutoencoderKL", **config}, "the config")
        return cls(AutoencoderKL(**config), mel)

    @classmethod
    def from_pretrained(cls, folder, dtype: torch.dtype | None = None, device="cpu",
                        mel: MelConfig = AUDIOLDM) -> AudioVAE:
        """From a diffusers AutoencoderKL folder (config.json + diffusion_pytorch_model.safetensors), e.g.
        AudioLDM's `vae/`; a folder holding `vae/` is accepted too."""
        from diffusers import AutoencoderKL

        folder = resolve_folder(folder, "vae")
        check_vae_config(_read_config(folder), str(folder))
        if not any((folder / n).is_file() for n in WEIGHTS_FILES):
            raise FileNotFoundError(f"{folder} has no weights: expected {WEIGHTS_FILES[0]}")
        model = AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
        return cls(model.to(device=device, dtype=dtype), mel)

    def save_pretrained(self, folder) -> None:
        """Write the diffusers folder (config.json + diffusion_pytorch_model.safetensors), whole or not at all."""
        with files.atomic_dir(folder) as tmp:
            self.model.save_pretrained(tmp)
