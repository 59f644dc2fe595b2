"""The harmonic sync head (model/v2a_harmonics.py, model/v2a.py 1c), its training targets
(training/v2a_data.audio_harmonics) and the sync encoder's colour-blind timbre branch (encoders/sync.py):
known answers on rendered tones, which channels each head reads, and the fine-tuning start."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lumina_video.audio.mel import MelSpectrogram, hz_to_mel, mel_filterbank, mel_to_hz
from lumina_video.data import sound
from lumina_video.encoders.sync import SmallSyncConfig, SmallSyncEncoder, colour_jitter
from lumina_video.model import V2AConfig, V2ANextDiT, build_v2a_model, v2a_flops_per_item
from lumina_video.model.v2a_harmonics import (
    F0_BINS,
    f0_bin,
    f0_grid,
    harmonic_map,
    mel_triangles,
    render_table,
    split_outputs,
)
from lumina_video.model.v2a_timeline import token_times, upsample_by_time
from lumina_video.testing import randomize_zero_init
from lumina_video.training.v2a_data import audio_harmonics

DV, DT, DS, DTB = 12, 10, 6, 4
RNG = np.random.default_rng(0)


def band_of(hz: float) -> int:
    """The mel band (of the 64, 0..8 kHz, Slaney) whose centre is nearest `hz`."""
    centres = mel_to_hz(torch.linspace(0, float(hz_to_mel(torch.tensor(8000.0))), 66))[1:-1]
    return int(torch.argmin((centres - hz).abs()))


def one_note(hz: float, voiced: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.full((F0_BINS,), -30.0)
    logits[f0_bin(torch.tensor(hz))] = 30.0
    return logits, torch.tensor(voiced)


def test_the_f0_grid_is_50_cents_a_bin_and_f0_bin_inverts_it():
    grid = f0_grid()
    assert F0_BINS == 74 and grid[0] == 250.0 and 2050 < float(grid[-1]) <= 2100
    assert torch.allclose(1200 * torch.log2(grid[1:] / grid[:-1]), torch.full((73,), 50.0, dtype=torch.float64))
    assert torch.equal(f0_bin(grid), torch.arange(F0_BINS))
    assert int(f0_bin(torch.tensor(100.0))) == 0 and int(f0_bin(torch.tensor(5000.0))) == F0_BINS - 1


def test_the_render_tables_triangles_are_the_audio_paths_mel_filterbank():
    assert torch.allclose(mel_triangles().float(), mel_filterbank(), rtol=1e-4, atol=1e-7)


def test_the_map_of_a_note_lights_the_bands_of_its_partials_only():
    table = render_table(7)
    assert table.shape == (7, 64, F0_BINS) and float(table.max()) <= 1.0 + 1e-6
    logits, voiced = one_note(783.99)  # G5, the synthetic world's green
    f = float(f0_grid()[f0_bin(torch.tensor(783.99))])
    sine = harmonic_map(logits, voiced, torch.zeros(6), table)
    odd = harmonic_map(logits, voiced, torch.tensor([0, 1 / 3, 0, 1 / 5, 0, 1 / 7]), table)
    assert sine.shape == (64,) and float(sine.min()) >= 0 and float(sine.max()) <= 2 + 1e-6
    assert int(sine.argmax()) in (band_of(f) - 1, band_of(f), band_of(f) + 1)
    lit = lambda m, hz: float(m[band_of(hz)])  # noqa: E731
    assert lit(sine, 3 * f) < 0.05 and lit(odd, 3 * f) > 0.5  # the square's third harmonic, the sine's none
    assert lit(odd, 2 * f) < 0.05 and lit(odd, 4 * f) < 0.05  # the odd timbre has no even partials
    unvoiced = harmonic_map(logits, torch.tensor(-30.0), torch.zeros(6), table)
    assert float(unvoiced.max()) < 1e-6  # silence: the floor everywhere


def test_split_outputs_names_the_parts_and_refuses_a_wrong_width():
    e = torch.randn(3, 2 + 64 + F0_BINS + 7)
    parts = split_outputs(e, 64, 7)
    assert parts["envelope"].shape == (3, 66) and parts["f0_logits"].shape == (3, F0_BINS)
    assert parts["voicing_logit"].shape == (3,) and parts["ratios"].shape == (3, 6)
    assert torch.equal(parts["ratios"], e[:, -6:])
    with pytest.raises(ValueError, match="expected 2 \\+ 64 \\+ 74 \\+ 6"):
        split_outputs(e, 64, 6)


@pytest.mark.parametrize("timbre", ["sine", "odd", "all"])
def test_audio_harmonics_reads_f0_and_the_partials_of_a_rendered_tone(timbre):
    t = np.arange(32000) / sound.SAMPLE_RATE
    wave = 0.1 * sound.tone(659.26, timbre, t) + sound.FLOOR_RMS * RNG.standard_normal(32000)
    h = audio_harmonics(wave, 50, 7, MelSpectrogram()).numpy()  # 2 s = 50 latent frames
    assert h.shape == (50, 3 + 6)
    assert (h[:, 0] == 1).all() and (h[:, 1] == 1).all()  # sounding, one note
    assert np.all(np.abs(1200 * np.log2(h[:, 2] / 659.26)) < 20)  # cents
    truth = [sound.HARMONICS[timbre].get(k, 0.0) for k in range(2, 8)]
    assert np.allclose(h[5:45, 3:], truth, atol=0.02)


def test_audio_harmonics_marks_silence_and_a_two_note_chord_untrained():
    t = np.arange(32000) / sound.SAMPLE_RATE
    floor = sound.FLOOR_RMS * RNG.standard_normal(32000)
    h = audio_harmonics(floor, 50, 7, MelSpectrogram()).numpy()
    assert (h[:, :2] == 0).all()
    chord = 0.1 * sound.tone(523.25, "sine", t) + 0.1 * sound.tone(880.0, "sine", t) + floor
    h = audio_harmonics(chord, 50, 7, MelSpectrogram()).numpy()
    assert (h[:, 0] == 1).all() and h[:, 1].mean() < 0.1  # sounding, but not one note


# -- the model --------------------------------------------------------------------------------------------------
def tiny(**kw) -> V2ANextDiT:
    torch.manual_seed(0)
    return build_v2a_model("V2A-Tiny", visual_feat_dim=DV, text_feat_dim=DT, sync_feat_dim=DS, **kw)


def perturb(model: V2ANextDiT, seed: int = 1) -> V2ANextDiT:
    """Every zero-initialised parameter (token embedder, gates, adaLN, final layer) random."""
    randomize_zero_init(model, torch.Generator().manual_seed(seed), std=0.3)
    return model


def inputs(b=2, width=DS + DTB, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(b, 8, 12, 16, generator=g), t=torch.rand(b, generator=g),
                visual=torch.randn(b, 5, DV, generator=g), visual_times=torch.arange(5) * 0.125,
                text=torch.randn(b, 7, DT, generator=g), text_mask=torch.ones(b, 7, dtype=torch.bool),
                sync=torch.randn(b, 13, width, generator=g), sync_times=torch.arange(13) / 24.0)


HARMONIC = dict(sync_envelope_bands=64, sync_harmonics=7, sync_timbre_dim=DTB)


def test_the_amplitudes_read_only_the_timbre_channels_and_the_rest_only_the_main_ones():
    model = perturb(tiny(**HARMONIC))
    assert model.cfg.sync_width == DS + DTB and model.cfg.envelope_token_width == 3 + 8
    kw = inputs()
    with torch.no_grad():
        _, base = model(**kw, return_envelope=True)
        main_moved = kw["sync"].clone()
        main_moved[..., :DS] += 1.0
        _, a = model(**{**kw, "sync": main_moved}, return_envelope=True)
        timbre_moved = kw["sync"].clone()
        timbre_moved[..., DS:] += 1.0
        _, b = model(**{**kw, "sync": timbre_moved}, return_envelope=True)
    assert base.shape == (2, 13, model.cfg.sync_head_width) == (2, 13, 2 + 64 + F0_BINS + 1 + 6)
    assert torch.equal(a[..., -6:], base[..., -6:]) and not torch.equal(a[..., :-6], base[..., :-6])
    assert torch.equal(b[..., :-6], base[..., :-6]) and not torch.equal(b[..., -6:], base[..., -6:])
    assert float(base[..., -6:].min()) >= 0 and float(base[..., -6:].max()) <= 1  # sigmoid amplitudes


def test_the_tokens_get_the_rendered_map_and_a_dropped_items_timbre_channels_are_zero():
    model = perturb(tiny(**HARMONIC))
    kw = inputs(b=1)
    mask = torch.ones(1, 13, dtype=torch.bool)
    with torch.no_grad():
        tokens = model.envelope_tokens(kw["sync"], kw["sync_times"][None], mask, 12, 8)
        tau = token_times(12, 1, 25.0, torch.device("cpu"))
        parts = split_outputs(model.sync_heads(upsample_by_time(kw["sync"], kw["sync_times"][None], mask, tau)),
                              64, 7)
        m = harmonic_map(parts["f0_logits"], parts["voicing_logit"], parts["ratios"], render_table(7))
        whole = torch.cat([parts["envelope"][..., :2], torch.sigmoid(parts["voicing_logit"])[..., None]], -1)
        feats = torch.cat([whole[..., None, :].expand(-1, -1, 8, -1), m.unflatten(-1, (8, 8))], -1)
        assert torch.allclose(tokens, model.envelope_embedder(feats.flatten(1, 2)), atol=1e-5)
        dropped = model(**inputs(), drop_sync=torch.tensor([True, True]))
        zeroed = inputs()
        zeroed["sync"][..., DS:] = 0.0  # what a dropped item's timbre channels become
        zeroed["sync"][..., :DS] = 123.0  # the main channels are the empty embedding anyway
        assert torch.allclose(dropped, model(**zeroed, drop_sync=torch.tensor([True, True])), atol=1e-6)


def test_the_harmonic_head_is_detached_round_trips_counts_flops_and_checks_its_config(tmp_path):
    model = perturb(tiny(**HARMONIC))
    velocity, heads = model(**inputs(), return_envelope=True)
    velocity.square().mean().backward()
    assert model.sync_pitch.weight.grad is None and model.sync_timbre.weight.grad is None
    heads.square().mean().backward()
    assert torch.count_nonzero(model.sync_pitch.weight.grad) > 0 and torch.count_nonzero(model.sync_timbre.weight.grad)
    model.save_pretrained(tmp_path / "v2a")
    loaded = V2ANextDiT.from_pretrained(tmp_path / "v2a")
    assert (loaded.cfg.sync_harmonics, loaded.cfg.sync_timbre_dim) == (7, DTB)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs()), model(**inputs()))
    bands_only = tiny(sync_envelope_bands=64).cfg
    k, n = 12, 96
    extra = (2 * k * DS * (F0_BINS + 1) + 2 * k * DTB * 6 + 2 * k * 7 * 64 * F0_BINS
             + 2 * n * (model.cfg.envelope_token_width - bands_only.envelope_token_width) * model.cfg.dim)
    assert v2a_flops_per_item(model.cfg, 12, 16, 5, 7) - v2a_flops_per_item(bands_only, 12, 16, 5, 7) == extra
    with pytest.raises(ValueError, match="sync_harmonics 7 needs K >= 2 and sync_envelope_bands = the 64"):
        V2AConfig(sync_envelope_bands=16, sync_harmonics=7)
    with pytest.raises(ValueError, match="sync_timbre_dim > 0 needs the harmonic sync head"):
        V2AConfig(sync_timbre_dim=4)
    with pytest.raises(ValueError, match="sync has shape \\(2, 13, 6\\); expected .*sync_timbre_dim=10"):
        model(**inputs(width=DS))


# -- the sync encoder's timbre branch ---------------------------------------------------------------------------
def test_colour_jitter_permutes_and_inverts_whole_planes_one_draw_per_clip():
    x = torch.rand(16, 3, 3, 4, 4) * 2 - 1
    y = colour_jitter(x, generator=torch.Generator().manual_seed(0))
    seen = set()
    for i in range(16):
        mapping = []
        for c in range(3):  # each output plane is +- one input plane, the same for all frames
            hits = [(s, j) for j in range(3) for s in (1, -1) if torch.equal(y[i, :, c], s * x[i, :, j])]
            assert len(hits) == 1
            mapping.append(hits[0])
        assert sorted(j for _, j in mapping) == [0, 1, 2]
        seen.add(tuple(mapping))
    assert len(seen) > 4  # not one fixed transform


def test_the_timbre_branch_is_appended_jittered_only_in_training_and_added_to_a_trained_encoder(tmp_path):
    plain = SmallSyncEncoder.from_config(SmallSyncConfig(size=32, channels=(8, 16), width=16, dim=8), seed=0)
    branch = plain.with_timbre_branch(4, seed=1)
    assert branch.dim == 12 and branch.config.timbre_dim == 4
    frames = (torch.rand(10, 32, 32, 3) * 255).to(torch.uint8)
    times = np.arange(10) / 25
    with torch.no_grad():
        a, _ = plain.eval().encode(frames, times)
        b, _ = branch.eval().encode(frames, times)
        assert torch.equal(b[:, :8], a)  # the trained encoder's features are kept
        assert torch.equal(branch.encode(frames, times)[0], b)  # eval: no jitter, deterministic
        x, _ = branch.prepare(frames, times)
        torch.manual_seed(3)
        train_out = branch.train()(x[None])
        assert torch.equal(train_out[..., :8], b[None, :, :8]) and not torch.equal(train_out[..., 8:], b[None, :, 8:])
    branch.save_pretrained(tmp_path / "sync")
    assert SmallSyncEncoder.from_pretrained(tmp_path / "sync").config.timbre_dim == 4
    with pytest.raises(ValueError, match="already has a timbre branch"):
        branch.with_timbre_branch(4)


def test_the_voicing_scales_the_log_map_so_a_few_per_cent_is_nearly_silence():
    table = render_table(7)
    logits, _ = one_note(659.26)
    ratios = torch.tensor([0.5, 1 / 3, 0.25, 0, 0, 0])
    full = harmonic_map(logits, torch.tensor(30.0), ratios, table)
    for p in (0.05, 0.5):
        m = harmonic_map(logits, torch.logit(torch.tensor(p)), ratios, table)
        assert torch.allclose(m, p * full, atol=1e-5)  # 5% voicing: 5% of the map (0.1 at most), not a quiet note
    assert float(harmonic_map(logits, torch.logit(torch.tensor(0.05)), ratios, table).max()) <= 0.1 + 1e-5


def test_the_timbre_branch_alone_is_the_features_last_channels():
    enc = SmallSyncEncoder.from_config(SmallSyncConfig(size=32, channels=(8, 16), width=16, dim=8, timbre_dim=4),
                                       seed=0).eval()
    x = torch.rand(2, 10, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(enc.timbre(x), enc(x)[..., 8:])
    plain = SmallSyncEncoder.from_config(SmallSyncConfig(size=32, channels=(8, 16), width=16, dim=8), seed=0)
    with pytest.raises(ValueError, match="no timbre branch"):
        plain.timbre(x)
