"""The sound path a generated soundtrack takes, applied to a real one: wave -> log-mel -> (audio VAE
encode / decode) -> vocoder -> wave. Scoring the ground truth through it gives a metric's ceiling for
a model that generates in that latent space (the truth itself is the ceiling of a perfect one).

    reconstruct = RoundTrip(vocoder="griffin-lim" | VOCODER_DIR, audio_vae=None | VAE_DIR)
    wave_out = reconstruct(wave)        numpy (N,) -> numpy (N',), N' = (N // 640) * 640 with a VAE
"""
from __future__ import annotations

import numpy as np
import torch

from .mel import AUDIOLDM, MelSpectrogram
from .vae import AudioVAE
from .vocoder import GRIFFIN_LIM, load_vocoder


class RoundTrip:
    def __init__(self, vocoder: str = GRIFFIN_LIM, audio_vae=None):
        self.mel = MelSpectrogram(AUDIOLDM)
        self.vocoder = load_vocoder(vocoder)
        self.vae = AudioVAE.from_pretrained(audio_vae) if audio_vae else None
        self.__name__ = "mel" + (f" -> audio VAE {audio_vae}" if audio_vae else "") + f" -> {vocoder}"

    @torch.no_grad()
    def __call__(self, wave) -> np.ndarray:
        x = torch.as_tensor(np.asarray(wave, dtype=np.float32))
        mel = self.mel(x[None])                                   # (1, T, 64)
        if self.vae is not None:
            frames = mel.shape[1] - mel.shape[1] % self.vae.downsample
            mel = self.vae.decode(self.vae.encode(mel[:, :frames]))
        return self.vocoder(mel)[0].numpy()
