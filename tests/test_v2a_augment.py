"""The sync frames' augmentations of train-v2a (training/v2a_augment.py): the mirror, the flicker's amplitude and
block structure, the clamp, the draws, and the config keys."""
import pytest
import torch

from lumina_video.configs import ConfigError
from lumina_video.training.v2a_augment import BLOCK, augment_sync, flicker
from lumina_video.training.v2a_config import load_v2a_config


def frames(n=6, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


def test_both_off_returns_the_frames_and_draws_nothing():
    x, g = frames(), torch.Generator().manual_seed(3)
    state = g.get_state()
    assert augment_sync(x, g) is x
    assert torch.equal(g.get_state(), state)


def test_flip_one_mirrors_left_right_and_flip_zero_never():
    x = frames()
    out = augment_sync(x, torch.Generator().manual_seed(0), flip=1.0)
    assert torch.equal(out, torch.flip(x, dims=[-1]))
    assert torch.equal(out[..., 0], x[..., -1])
    mirrored = sum(not torch.equal(augment_sync(x, torch.Generator().manual_seed(s), flip=0.5), x) for s in range(200))
    assert 70 < mirrored < 130  # about half of 200 draws
    assert torch.equal(augment_sync(x, torch.Generator().manual_seed(0), flip=0.0, sigma=0.0), x)


def test_flicker_amplitude_block_structure_and_per_frame_independence():
    a, size = 0.05, 64
    x = torch.zeros(40, 3, size, size)
    noise = flicker(x, a, torch.Generator().manual_seed(1))
    # each pixel: a * (block value + pixel value / 4): std a * sqrt(1 + 1/16)
    assert float(noise.std()) == pytest.approx(a * (1 + 1 / 16) ** 0.5, rel=0.03)
    # neighbours inside a 4 x 4 block share the block value: correlation 1 / (1 + 1/16); across blocks none
    inside = torch.corrcoef(torch.stack([noise[..., 0].flatten(), noise[..., 1].flatten()]))[0, 1]
    across = torch.corrcoef(torch.stack([noise[..., BLOCK - 1].flatten(), noise[..., BLOCK].flatten()]))[0, 1]
    assert float(inside) == pytest.approx(16 / 17, abs=0.02) and abs(float(across)) < 0.1
    # a new draw for every frame
    frame_corr = torch.corrcoef(torch.stack([noise[:-1].flatten(), noise[1:].flatten()]))[0, 1]
    assert abs(float(frame_corr)) < 0.03
    assert torch.equal(flicker(x, 0.0, torch.Generator().manual_seed(1)), x)


def test_flicker_clamps_keeps_the_dtype_and_is_reproducible():
    x = torch.ones(4, 3, 8, 8, dtype=torch.float16)
    out = flicker(x, 0.5, torch.Generator().manual_seed(2))
    assert out.dtype == torch.float16 and float(out.max()) <= 1 and float(out.min()) >= -1 and float(out.min()) < 1
    amp = [augment_sync(frames(), torch.Generator().manual_seed(s), sigma=0.1) for s in (5, 5, 6)]
    assert torch.equal(amp[0], amp[1]) and not torch.equal(amp[0], amp[2])
    # the amplitude is drawn from U(0, sigma): never above sigma
    spreads = [float((augment_sync(torch.zeros(8, 3, 16, 16), torch.Generator().manual_seed(s), sigma=0.1)).std())
               for s in range(50)]
    assert max(spreads) < 0.1 * 1.1 and min(spreads) < 0.03


def test_config_keys_are_checked(tmp_path):
    (tmp_path / "manifest.jsonl").write_text("")
    base = [f"encoders.audio_vae={tmp_path}", f"data.manifest={tmp_path / 'manifest.jsonl'}"]
    cfg = load_v2a_config(None, base + ["sync_flip=0.5", "sync_flicker=0.06"])
    assert (cfg.sync_flip, cfg.sync_flicker) == (0.5, 0.06)
    with pytest.raises(ConfigError, match="'sync_flip' must be a probability"):
        load_v2a_config(None, base + ["sync_flip=2"])
    with pytest.raises(ConfigError, match="'sync_flicker' must be an amplitude"):
        load_v2a_config(None, base + ["sync_flicker=-0.1"])
    with pytest.raises(ConfigError, match="need a trained sync encoder"):
        load_v2a_config(None, base + ["sync_flip=0.5", "encoders.train_sync=false", "sync_target_weight=0"])
