"""Spectrogram figure of eval-audio (`spectrograms.png`): a few clips' log-mel spectrograms, one row per
clip and one column per soundtrack (the input next to the ground truth), with the clip's true impact
times and the onsets eval-audio detects in that soundtrack marked on top.

    image     log-mel of lumina_video.audio.mel (AudioLDM settings: 64 Slaney bands 0-8 kHz, hop 10 ms),
              natural log of the magnitude, one colour scale per figure (the ground truth's range)
    impacts   white dashed vertical lines at the manifest's impact times (what should be heard)
    onsets    red triangles on the top edge at audio_metrics.detect_onsets of that soundtrack (what the
              onset metrics found), so a hit is a triangle over a dashed line, a false alarm a lone
              triangle and a miss a lone line
"""
from __future__ import annotations

import numpy as np

from .audio_metrics import SAMPLE_RATE, detect_onsets
from .format import pyplot, save_figure

SPECTRA = 6  # clips in the figure


def log_mel(wave: np.ndarray) -> np.ndarray:
    """(N,) 16 kHz -> (64, N // 160) log-mel, bands first (the image's rows, low bands at the bottom)."""
    import torch

    from ..audio.mel import mel_spectrogram

    with torch.no_grad():
        mel = mel_spectrogram(torch.as_tensor(np.asarray(wave, np.float32))[None])[0]  # (frames, 64)
    return mel.numpy().T


def spectrogram_chart(clips: list[dict], path) -> None:
    """clips: [{"name": str, "impacts": times (s), "waves": {column title: (N,) wave or None}}]; a grid of
    len(clips) rows x the column titles of the first clip (module docstring)."""
    columns = list(clips[0]["waves"]) if clips else []
    if not clips or not columns:
        raise ValueError("a spectrogram chart needs at least one clip with one soundtrack")
    images = [{k: None if w is None else log_mel(w) for k, w in c["waves"].items()} for c in clips]
    ranges = [img for row in images for img in row.values() if img is not None]
    lo, hi = float(min(m.min() for m in ranges)), float(max(m.max() for m in ranges))
    plt = pyplot()
    fig, axes = plt.subplots(len(clips), len(columns), figsize=(3.6 * len(columns), 0.4 + 1.7 * len(clips)),
                             squeeze=False, sharey=True, layout="constrained")
    for r, (clip, row) in enumerate(zip(clips, images)):
        for c, title in enumerate(columns):
            _panel(axes[r, c], row.get(title), clip["waves"].get(title), clip["impacts"], (lo, hi))
            axes[r, c].set_title(f"{clip['name']}: {title}", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("mel band", fontsize=7)
    fig.suptitle("log-mel; dashed: true impacts, triangles: detected onsets", fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


def _panel(ax, image, wave, impacts, scale: tuple[float, float]) -> None:
    """One spectrogram with the impact lines and onset marks; an empty panel when there is no soundtrack."""
    ax.tick_params(labelsize=6)
    if image is None:
        ax.text(0.5, 0.5, "no soundtrack", ha="center", va="center", transform=ax.transAxes, fontsize=7)
        return
    seconds = len(wave) / SAMPLE_RATE
    ax.imshow(image, origin="lower", aspect="auto", extent=(0, seconds, 0, image.shape[0]), vmin=scale[0],
              vmax=scale[1], cmap="magma", interpolation="nearest")
    for t in impacts:
        ax.axvline(float(t), color="white", ls="--", lw=0.9)
    onsets = detect_onsets(wave)
    ax.plot(onsets, np.full(len(onsets), image.shape[0] - 3), "v", color="red", ms=5, mec="white", mew=0.4)
    ax.set_xlim(0, seconds)
    ax.set_ylim(0, image.shape[0])
