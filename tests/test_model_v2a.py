"""The V2A Next-DiT (model/v2a.py): shapes, timeline RoPE, per-token conditioning, empty conditions, gates,
folder round trip, batch = single items, presets, FLOPs and bad input."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lumina_video.model import V2A_PRESETS, V2AConfig, V2ANextDiT, build_v2a_model, count_params, v2a_flops_per_item
from lumina_video.model.blocks import ffn_hidden_dim
from lumina_video.model.embed import FREQ_DIM, patchify, unpatchify
from lumina_video.model.v2a_timeline import token_times, upsample_by_time

DV, DT, DS = 12, 10, 6
SMALL = dict(visual_feat_dim=DV, text_feat_dim=DT, sync_feat_dim=DS)


def tiny(**kw) -> V2ANextDiT:
    torch.manual_seed(0)
    return build_v2a_model("V2A-Tiny", **{**SMALL, **kw})


def perturb(model: V2ANextDiT, seed: int = 1) -> V2ANextDiT:
    """Every parameter random (the zero-initialised gates, adaLN and final layer included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-6) -> bool:
    """Equal up to float32 rounding: max |a - b| <= rel x max |b| (outputs of random weights are large)."""
    return bool((a - b).abs().max() <= rel * b.abs().max())


def inputs(b=2, t_len=12, fv=5, l_len=7, ns=13, seed=0):
    """A batch of (B, 8, T, 16) latents with visual/text/sync features (keyword arguments of forward)."""
    g = torch.Generator().manual_seed(seed)
    return dict(
        x=torch.randn(b, 8, t_len, 16, generator=g), t=torch.rand(b, generator=g),
        visual=torch.randn(b, fv, DV, generator=g), visual_times=torch.arange(fv) * 0.125,
        text=torch.randn(b, l_len, DT, generator=g), text_mask=torch.ones(b, l_len, dtype=torch.bool),
        sync=torch.randn(b, ns, DS, generator=g), sync_times=torch.arange(ns) / 24.0,
    )


def test_output_shape_is_input_shape_and_zero_at_init():
    model = tiny()
    out = model(**inputs())
    assert out.shape == (2, 8, 12, 16)
    assert torch.count_nonzero(out) == 0  # zero-initialised final layer
    assert torch.count_nonzero(perturb(model)(**inputs())) > 0


def test_tokens_are_time_major_patches_with_2d_rope():
    model = tiny(patch_time=2, patch_freq=4)
    x = torch.randn(1, 8, 6, 16)
    tokens = patchify(x[..., None], 2, (4, 1))  # as forward cuts the latent: (1, 3 * 4, 2 * 4 * 8)
    n_rows = 16 // 4
    for k in range(3):
        for m in range(n_rows):
            patch = x[0, :, 2 * k:2 * k + 2, 4 * m:4 * m + 4]  # (C, pt, pf)
            assert torch.equal(tokens[0, k * n_rows + m], patch.permute(1, 2, 0).reshape(-1))
    # token k * n_rows + m: time rotation of column k, frequency rotation of row m (half the channels each)
    angles = model.audio_freqs(3, n_rows).angle()
    half = model.cfg.head_dim // 4
    for k in range(3):
        for m in range(n_rows):
            tok = angles[k * n_rows + m]
            assert math.isclose(tok[0], k, abs_tol=1e-6) and math.isclose(tok[half], m, abs_tol=1e-6)


def test_visual_frame_at_tau_gets_the_time_rotation_of_the_audio_token_at_tau():
    model = tiny()
    cfg = model.cfg
    n_cols, n_rows = 12, 8
    tau = token_times(n_cols, cfg.patch_time, cfg.latent_rate)  # (k + 0.5) / 25 s
    audio = model.audio_freqs(n_cols, n_rows).view(n_cols, n_rows, -1)
    cols = torch.tensor([0, 3, 7, 11])
    ctx = model.context_freqs(tau[cols][None], text_len=4)[0]  # (4 visual + 4 text, head_dim/2)
    half = cfg.head_dim // 4  # complex channels of the time axis
    for i, k in enumerate(cols.tolist()):
        assert torch.allclose(ctx[i, :half], audio[k, 3, :half], atol=1e-6)  # time part: as column k, any row
        assert torch.allclose(ctx[i], audio[k, 0], atol=1e-6)  # frequency part: identity, as mel row 0
        assert torch.equal(ctx[i, half:], torch.ones_like(ctx[i, half:]))
    assert torch.equal(ctx[4:], torch.ones_like(ctx[4:]))  # text keys: no rotation
    mid = model.context_freqs(((tau[3] + tau[4]) / 2)[None, None], 0)[0, 0]  # between columns 3 and 4
    assert torch.allclose(mid[:half] ** 2, audio[3, 0, :half] * audio[4, 0, :half], atol=1e-5)  # half-way angle


def test_constant_sync_makes_the_per_token_condition_the_per_item_one():
    model = perturb(tiny())
    kw = inputs()
    kw["sync"] = kw["sync"][:, :1].expand(-1, 13, -1).contiguous()  # one sync vector at every time
    b, n_cols, n_rows = 2, 12, 8
    mask = torch.ones(b, 13, dtype=torch.bool)
    c = model.conditions(kw["t"], kw["visual"], torch.ones(b, 5, dtype=torch.bool), kw["text"], kw["text_mask"],
                         kw["sync"], kw["sync_times"][None].expand(b, -1).double(), mask, n_cols, n_rows)
    assert c.shape == (b, n_cols * n_rows, model.cfg.cond_dim)
    assert torch.equal(c, c[:, :1].expand_as(c))  # constant over tokens
    captured = {}
    model.denoise_tokens = _spy(model.denoise_tokens, captured)
    with torch.no_grad():
        out = model(**kw)
        h, freqs, ctx, ctx_mask, ctx_freqs, c_used = captured["args"]
        assert torch.equal(c_used, c)
        ref = V2ANextDiT.denoise_tokens(model, h, freqs, ctx, ctx_mask, ctx_freqs, c[:, 0])  # the (B, D') path
    ref = unpatchify(ref, (8, 12, 16, 1), 1, (2, 1))[..., 0]
    assert close(out, ref)  # equal up to float rounding of the matmuls
    kw["sync"] = torch.randn_like(kw["sync"])  # a varying sync feature varies the condition over time
    with torch.no_grad():
        assert not torch.allclose(model(**kw), out, atol=1e-3)


def _spy(fn, store):
    def wrapped(*args):
        store["args"] = args
        return fn(*args)
    return wrapped


def test_sync_upsampling_interpolates_linearly_and_holds_the_ends():
    feats = torch.tensor([[[0.0], [2.0], [4.0], [99.0]]])  # last entry is padding
    times = torch.tensor([[0.0, 1.0, 2.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False]])
    out = upsample_by_time(feats, times, mask, torch.tensor([-1.0, 0.25, 1.0, 1.5, 3.0], dtype=torch.float64))
    assert torch.allclose(out[0, :, 0], torch.tensor([0.0, 0.5, 2.0, 3.0, 4.0]))


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = perturb(tiny())
    model.save_pretrained(tmp_path / "v2a")
    loaded = V2ANextDiT.from_pretrained(tmp_path / "v2a")
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(**inputs()), model(**inputs()))
    assert V2AConfig.from_dict(dict(model.config)) == model.cfg
    with pytest.raises(ValueError, match="unknown V2A model config keys"):
        V2AConfig.from_dict({"dim": 64, "colour": 1})


def test_a_batch_equals_single_items_with_padding_masked():
    model = perturb(tiny())
    kw = inputs(b=3, fv=6, l_len=9, ns=14)
    lens_v, lens_t, lens_s = [6, 4, 5], [9, 3, 6], [14, 10, 12]
    kw["visual_times"] = torch.rand(3, 6).sort(dim=1).values * 0.5
    kw["visual_mask"] = torch.arange(6)[None] < torch.tensor(lens_v)[:, None]
    kw["text_mask"] = torch.arange(9)[None] < torch.tensor(lens_t)[:, None]
    kw["sync_mask"] = torch.arange(14)[None] < torch.tensor(lens_s)[:, None]
    kw["drop_text"] = torch.tensor([False, True, False])
    with torch.no_grad():
        batch = model(**kw)
        for i in range(3):
            one = dict(x=kw["x"][i:i + 1], t=kw["t"][i:i + 1], visual=kw["visual"][i:i + 1, :lens_v[i]],
                       visual_times=kw["visual_times"][i, :lens_v[i]], text=kw["text"][i:i + 1, :lens_t[i]],
                       text_mask=torch.ones(1, lens_t[i]), sync=kw["sync"][i:i + 1, :lens_s[i]],
                       sync_times=kw["sync_times"][:lens_s[i]], drop_text=kw["drop_text"][i:i + 1])
            single = model(**one)[0]
            assert close(single, batch[i]), (i, (single - batch[i]).abs().max())


@pytest.mark.parametrize("name", ["visual", "text", "sync"])
def test_dropping_a_condition_uses_its_empty_embedding(name):
    model = perturb(tiny())
    kw = inputs()
    drop = {f"drop_{name}": torch.tensor([True, False])}
    with torch.no_grad():
        full, dropped = model(**kw), model(**kw, **drop)
        other = model(**{**kw, name: torch.randn_like(kw[name])}, **drop)  # new features, still dropped
    assert not torch.allclose(full[0], dropped[0], atol=1e-4)
    assert torch.equal(full[1], dropped[1])  # the other item keeps its condition
    assert torch.allclose(other[0], dropped[0], atol=1e-6)  # a dropped item's features are not read


def test_gates_start_at_zero_and_then_the_co_attention_contributes_nothing():
    assert all(torch.count_nonzero(block.attention.gate) == 0 for block in tiny().layers)
    model = perturb(tiny())
    kw = inputs()
    for block in model.layers:
        block.attention.gate.data.zero_()
    with torch.no_grad():
        ref = model(**kw)
        moved = model(**{**kw, "visual_times": kw["visual_times"] + 0.3})  # visual keys at other times
        for block in model.layers:  # other context keys and values
            block.attention.wk_y.weight.mul_(-2.0)
            block.attention.wv_y.weight.mul_(3.0)
        changed = model(**kw)
        for block in model.layers:
            block.attention.gate.fill_(0.5)
        gated = model(**kw)
    assert torch.equal(ref, moved) and torch.equal(ref, changed)
    assert not torch.allclose(gated, changed, atol=1e-4)


def _hand_param_count(cfg: V2AConfig) -> int:
    d, dc, kv = cfg.dim, cfg.cond_dim, cfg.n_kv_heads * cfg.head_dim
    h = ffn_hidden_dim(d, cfg.multiple_of, cfg.ffn_dim_multiplier)
    w = cfg.patch_time * cfg.patch_freq * cfg.in_channels
    attention = 2 * d * d + 4 * d * kv + cfg.n_heads + 2 * d + 4 * kv  # wq wo, wk wv wk_y wv_y, gate, LNs
    block = attention + 3 * d * h + 5 * d + (dc * 4 * d + 4 * d)  # FFN, 5 RMSNorms, adaLN
    feats = (cfg.visual_feat_dim, cfg.text_feat_dim)
    embed = (w * d + d) + (FREQ_DIM * dc + dc + dc * dc + dc)  # patch embedder, time MLP
    embed += sum(2 * f + f * dc + dc for f in (*feats, cfg.sync_feat_dim))  # pooled and sync embedders
    embed += sum(2 * f + f * d + d for f in feats) + sum(feats) + cfg.sync_feat_dim  # projections, empties
    final = d * w + w + dc * d + d
    return cfg.n_layers * block + embed + final


def test_full_size_preset_builds_on_meta_with_its_hand_counted_size():
    with torch.device("meta"):
        model = build_v2a_model("V2A-L")
    n = count_params(model)
    print(f"V2A-L parameters: {n:,} ({n / 1e9:.3f}B)")
    assert n == _hand_param_count(model.cfg)
    assert 157e6 < n < 1.03e9  # between MMAudio-S and -L
    assert set(V2A_PRESETS) == {"V2A-L", "V2A-S", "V2A-Tiny"}
    assert count_params(tiny()) == _hand_param_count(tiny().cfg)


def test_flops_hand_count_for_a_tiny_config():
    cfg = V2AConfig(dim=8, n_layers=1, n_heads=2, n_kv_heads=1, multiple_of=4, visual_feat_dim=3,
                    text_feat_dim=5, sync_feat_dim=2, in_channels=1, patch_time=1, patch_freq=2)
    # T=2, M=4 -> K=2 columns, N=4 tokens; Fv=1, L=2 -> S=3; kv=4, h=int(64/3)=21 -> 24, D'=8
    block = 2 * 4 * (2 * 64 + 2 * 8 * 4 + 3 * 8 * 24) + 2 * 3 * 8 * 2 * 4 + 4 * 16 * 8 + 4 * 4 * 3 * 8 + 2 * 4 * 8 * 32
    once = 4 * 4 * 8 * 2 + 2 * 4 * 8 * 8 + 2 * 1 * 3 * 8 + 2 * 2 * 5 * 8 + 2 * 2 * 2 * 8
    assert v2a_flops_per_item(cfg, 2, 4, 1, 2) == block + once


def test_flops_match_torch_flop_counter_on_the_model():
    model = tiny()
    kw = inputs(b=1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(**kw)
    cfg = model.cfg
    per_item = 2 * (FREQ_DIM * cfg.cond_dim + cfg.cond_dim ** 2) + 2 * (DV + DT) * cfg.cond_dim  # t, pooled
    n, s = 12 * 8, 5 + 7
    attention = cfg.n_layers * 4 * n * (n + s) * cfg.dim  # the counter has no formula for CPU SDPA kernels
    assert counter.get_total_flops() + attention == v2a_flops_per_item(cfg, 12, 16, 5, 7) + per_item


def test_report_numbers_for_an_8_second_clip():
    cfg = V2AConfig(**V2A_PRESETS["V2A-L"])
    tokens = cfg.audio_tokens(8.0)
    flops = v2a_flops_per_item(cfg, 8 * 25, 16, 8 * 8, 77)  # 64 CLIP frames, 77 text tokens
    per_pass = flops / (0.4 * 989e12)
    print(f"8 s clip: {tokens} audio tokens, {flops / 1e12:.2f} TFLOPs per pass, H100 at 40%: "
          f"{per_pass * 1e3:.1f} ms per pass, {2 * per_pass * 1e3:.1f} ms per guided step, "
          f"{50 * per_pass:.2f} s per clip (25 steps x 2 passes)")
    assert tokens == 1600
    assert math.isclose(flops, v2a_flops_per_item(cfg, 200, 16, 64, 77))


@pytest.mark.parametrize("change, message", [
    (dict(x=torch.randn(2, 8, 12, 15)), r"mel size 15 is not a positive multiple of the frequency patch 2"),
    (dict(visual=torch.randn(2, 5, DV + 1)), r"visual has shape \(2, 5, 13\); expected .*visual_feat_dim=12"),
    (dict(text=torch.randn(2, 7, DT - 1)), r"text_feat_dim=10"),
    (dict(visual_times=torch.arange(4) * 0.1), r"visual_times has shape \(4,\); expected \(5,\) or \(2, 5\)"),
    (dict(sync_times=torch.arange(13).flip(0) / 24.0), r"sync_times must be non-decreasing"),
    (dict(t=torch.rand(3)), r"t has shape \(3,\)"),
])
def test_bad_input_is_a_one_line_value_error(change, message):
    with pytest.raises(ValueError, match=message) as err:
        tiny()(**{**inputs(), **change})
    assert "\n" not in str(err.value)


def test_a_latent_time_not_a_multiple_of_the_time_patch_is_refused():
    with pytest.raises(ValueError, match=r"time 5 is not a positive multiple of the time patch 2"):
        tiny(patch_time=2)(**inputs(t_len=5))


def test_gradients_reach_every_parameter():
    model = perturb(tiny())
    drop = torch.tensor([True, False])
    out = model(**inputs(), drop_visual=drop, drop_text=drop, drop_sync=drop)
    out.square().mean().backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or torch.count_nonzero(p.grad) == 0]
    assert silent == []


# -- the sync envelope head (model/v2a.py, 1b) ---------------------------------------------------------------------
def test_the_sync_envelope_head_starts_as_the_same_function_and_is_not_trained_by_the_denoiser():
    plain = perturb(tiny())
    with_head = tiny(sync_envelope_bands=16)  # 8 token rows at patch_freq 2: onset, loudness + 2 bands a token
    assert with_head.cfg.envelope_token_width == 4
    missing, unexpected = with_head.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["envelope_embedder.bias", "envelope_embedder.weight", "sync_envelope.bias",
                               "sync_envelope.weight"] and unexpected == []
    kw = inputs()
    with torch.no_grad():
        assert torch.equal(with_head(**kw), plain(**kw))  # zero-initialised token embedder
        velocity, envelope = with_head(**kw, return_envelope=True)
    assert envelope.shape == (2, 13, 2 + 16)  # at the sync features' own times, before any drop
    assert torch.allclose(envelope, with_head.sync_envelope(kw["sync"]))
    perturb(with_head, seed=2)
    velocity, envelope = with_head(**kw, return_envelope=True)
    velocity.square().mean().backward()
    assert with_head.sync_envelope.weight.grad is None  # detached where the denoiser reads it
    assert torch.count_nonzero(with_head.envelope_embedder.weight.grad) > 0
    envelope.square().mean().backward()
    assert torch.count_nonzero(with_head.sync_envelope.weight.grad) > 0


def test_each_token_row_reads_its_own_bands_of_the_predicted_envelope():
    model = perturb(tiny(sync_envelope_bands=16))
    kw = inputs(b=1)
    with torch.no_grad():  # the head's band 15 (the top token row's second band) is all that changes
        base = model.envelope_tokens(kw["sync"], kw["sync_times"][None], torch.ones(1, 13, dtype=torch.bool), 12, 8)
        model.sync_envelope.bias[2 + 15] += 5.0
        moved = model.envelope_tokens(kw["sync"], kw["sync_times"][None], torch.ones(1, 13, dtype=torch.bool), 12, 8)
    changed = (moved - base).abs().amax(-1).view(12, 8) > 0  # (columns, rows), time-major tokens
    assert changed[:, 7].all() and not changed[:, :7].any()
    expected = 5.0 * model.envelope_embedder.weight[:, 3]  # its token feature: [onset, loudness, band 14, band 15]
    assert torch.allclose((moved - base)[0, 7], expected, atol=1e-5)


def test_the_sync_envelope_head_round_trips_counts_its_flops_and_refuses_bad_shapes(tmp_path):
    model = perturb(tiny(sync_envelope_bands=16))
    model.save_pretrained(tmp_path / "v2a")
    loaded = V2ANextDiT.from_pretrained(tmp_path / "v2a")
    assert loaded.cfg.sync_envelope_bands == 16
    with torch.no_grad():
        assert torch.equal(loaded(**inputs()), model(**inputs()))
    cfg = model.cfg
    extra = 2 * 12 * DS * 18 + 2 * 96 * 4 * cfg.dim  # head per column, token embedder per token
    assert v2a_flops_per_item(cfg, 12, 16, 5, 7) - v2a_flops_per_item(tiny().cfg, 12, 16, 5, 7) == extra
    with pytest.raises(ValueError, match="sync_envelope_bands 12 must split evenly over the 16 / patch_freq 2"):
        V2AConfig(sync_envelope_bands=12)
    with pytest.raises(ValueError, match="splits its 16 bands over 8 token rows; this latent has 4"):
        model(**{**inputs(), "x": torch.randn(2, 8, 12, 8)})
    with pytest.raises(ValueError, match="return_envelope needs a model with the sync envelope head"):
        tiny()(**inputs(), return_envelope=True)
