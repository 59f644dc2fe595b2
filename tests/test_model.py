"""Model invariants, errors, persistence and the varlen attention path."""
import pytest
import torch

from lumina_video.model import (
    PRESETS,
    MultiScaleNextDiT,
    MultiScaleNextDiT_Tiny,
    NextDiTConfig,
    build_model,
    flops_per_item,
    load_state_dict_checked,
    train_flops_per_item,
)
from lumina_video.model import attention as attn


def tiny(**kw):
    cfg = dict(in_channels=4, cap_feat_dim=32, multiple_of=16)
    cfg.update(kw)
    return MultiScaleNextDiT_Tiny(**cfg).eval()


def randomize(model):
    """Zero-initialised layers make outputs trivial; give every parameter random values."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def cond(b, L=6, d=32):
    cap = torch.randn(b, L, d)
    mask = torch.ones(b, L, dtype=torch.long)
    mask[0, 4:] = 0
    return torch.rand(b), cap, mask, torch.tensor([3.0] + [-1.0] * (b - 1))


def test_fresh_model_outputs_zero():
    """Final layers are zero-initialised (docs/REFERENCE.md §1), so a fresh model predicts exactly 0."""
    model = tiny()
    t, cap, mask, motion = cond(2)
    out = model(torch.randn(2, 4, 4, 8, 8), t, cap, mask, motion, 2, 1)
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("pt,p", [(1, 2), (2, 2), (2, 4)])
def test_ragged_items_do_not_see_each_other(pt, p):
    model = randomize(tiny())
    t, cap, mask, motion = cond(2)
    a, b = torch.randn(4, 4, 8, 16), torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        out = model([a, b], t, cap, mask, motion, p, pt)
        alone_a = model([a], t[:1], cap[:1], mask[:1], motion[:1], p, pt)[0]
        alone_b = model(b[None], t[1:], cap[1:], mask[1:], motion[1:], p, pt)[0]
    assert out[0].shape == a.shape and out[1].shape == b.shape
    torch.testing.assert_close(out[0], alone_a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], alone_b, atol=1e-5, rtol=1e-5)


def test_uniform_list_equals_batch_tensor_and_inputs_untouched():
    model = randomize(tiny())
    t, cap, mask, motion = cond(2)
    x = torch.randn(2, 4, 4, 8, 8)
    copies = [v.clone() for v in (x, t, cap, mask, motion)]
    with torch.no_grad():
        batch = model(x, t, cap, mask, motion, 2, 2)
        listed = model(list(x), t, cap, mask, motion, 2, 2)
    torch.testing.assert_close(torch.stack(listed), batch)
    for before, after in zip(copies, (x, t, cap, mask, motion)):
        assert torch.equal(before, after)


def test_negative_motion_means_absent():
    model = randomize(tiny())
    t, cap, mask, _ = cond(2)
    x = torch.randn(2, 4, 2, 8, 8)
    with torch.no_grad():
        none = model(x, t, cap, mask, None, 2, 1)
        neg1 = model(x, t, cap, mask, torch.tensor([-1.0, -1.0]), 2, 1)
        neg5 = model(x, t, cap, mask, torch.tensor([-5.0, -0.5]), 2, 1)
        pos = model(x, t, cap, mask, torch.tensor([4.0, 4.0]), 2, 1)
    assert torch.equal(none, neg1) and torch.equal(neg1, neg5)
    assert not torch.allclose(pos, none)


def test_padded_caption_tokens_are_ignored():
    model = randomize(tiny())
    t, cap, mask, motion = cond(2)
    x = torch.randn(2, 4, 2, 8, 8)
    cap2 = cap.clone()
    cap2[0, 4:] = 100.0  # masked out in row 0
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, cap, mask, motion, 2, 1), model(x, t, cap2, mask, motion, 2, 1))


def test_save_load_roundtrip(tmp_path):
    model = randomize(tiny())
    model.save_pretrained(tmp_path / "m")
    loaded = MultiScaleNextDiT.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    t, cap, mask, motion = cond(1)
    x = torch.randn(1, 4, 2, 8, 8)
    with torch.no_grad():  # equal up to SIMD differences from the loaded tensors' memory alignment
        torch.testing.assert_close(model(x, t, cap, mask, motion, 4, 2), loaded(x, t, cap, mask, motion, 4, 2),
                                   atol=1e-6, rtol=0)
    assert not list(tmp_path.glob("m/.*.tmp"))  # atomic writes leave no temp files


def test_from_pretrained_bf16(tmp_path):
    model = randomize(tiny())
    model.save_pretrained(tmp_path / "m", dtype=torch.bfloat16)
    loaded = MultiScaleNextDiT.from_pretrained(tmp_path / "m")
    assert loaded.dtype == torch.bfloat16
    t, cap, mask, motion = cond(1)
    out = loaded(torch.randn(1, 4, 2, 8, 8), t, cap, mask, motion, 2, 1)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


# ---- the config, stated once -------------------------------------------------------------------

OFFICIAL_NAMES = ["all_patch_size", "all_f_patch_size", "in_channels", "dim", "n_layers", "n_heads", "n_kv_heads",
                  "multiple_of", "ffn_dim_multiplier", "norm_eps", "qk_norm", "cap_feat_dim", "rope_theta", "t_scale",
                  "motion_scale", "axes_lens"]


def test_config_object_keywords_and_dict_build_the_same_model():
    fields = dict(dim=64, n_layers=2, n_heads=2, n_kv_heads=None, in_channels=4, cap_feat_dim=32, multiple_of=16)
    by_keywords = MultiScaleNextDiT(**fields)
    by_config = MultiScaleNextDiT(NextDiTConfig(**fields))
    assert list(by_keywords.config) == OFFICIAL_NAMES
    assert by_keywords.config == by_config.config == MultiScaleNextDiT(by_config.config).config
    assert by_keywords.config["n_kv_heads"] == 2  # None means n_heads
    assert by_keywords.config["all_patch_size"] == [2, 2, 4] and by_keywords.config["axes_lens"] == [64, 128, 128]
    assert MultiScaleNextDiT.from_config(dict(by_keywords.config, format_version=1)).config == by_keywords.config
    assert MultiScaleNextDiT(by_config.config, n_layers=1).config["n_layers"] == 1  # keywords replace fields
    assert NextDiTConfig.from_dict(by_config.config) == NextDiTConfig(**dict(fields, n_kv_heads=2))


def test_config_errors():
    with pytest.raises(ValueError, match=r"unknown model config keys \['depth'\]"):
        MultiScaleNextDiT.from_config({"depth": 3})
    with pytest.raises(ValueError, match="must be non-empty lists of the same length"):
        NextDiTConfig(all_patch_size=[2, 4], all_f_patch_size=[1])
    with pytest.raises(ValueError, match="n_layers must be a positive integer, got 0"):
        NextDiTConfig(n_layers=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'depth'"):
        MultiScaleNextDiT(depth=3)
    with pytest.raises(TypeError, match="config must be a NextDiTConfig or a dict"):
        MultiScaleNextDiT([2, 2, 4])


def test_presets_fix_their_size():
    model = build_model("Tiny", in_channels=4, cap_feat_dim=32)
    assert {k: model.config[k] for k in PRESETS["Tiny"]} == PRESETS["Tiny"]
    assert MultiScaleNextDiT_Tiny(in_channels=4, cap_feat_dim=32).config == model.config
    with pytest.raises(TypeError, match="multiple values for keyword argument 'dim'"):
        MultiScaleNextDiT_Tiny(dim=32)
    with pytest.raises(ValueError, match="unknown model preset 'Huge'"):
        build_model("Huge")
    assert model.has_patch(patch_size=4, f_patch_size=2) and not model.has_patch(patch_size=4, f_patch_size=1)


def test_flops_per_item_hand_count():
    """dim 64, 2 heads, 1 kv head (kv width 32), FFN 176 (int(8 * 64 / 3) = 170 rounded up to 16s),
    caption width 32, 2 layers; N = 16 tokens, S = 6 caption tokens."""
    config = tiny().config
    n, s = 16, 6
    per_block = (2 * n * 64 * 64  # wq
                 + 2 * 2 * n * 64 * 32  # wk, wv
                 + 2 * n * 64 * 64  # wo
                 + 3 * 2 * n * 64 * 176  # w1, w3, w2
                 + 2 * 2 * s * 32 * 32  # wk_y, wv_y
                 + 2 * 2 * n * n * 64  # self-attention QK^T, AV
                 + 2 * 2 * n * s * 64)  # caption attention QK^T, AV
    assert per_block == 1_589_248
    assert flops_per_item(config, n, s) == 2 * per_block
    patch = 2 * 2 * n * 64 * (1 * 2 * 2 * 4)  # x_embedder and final linear of (pt, p) = (1, 2), C = 4
    assert flops_per_item(NextDiTConfig.from_dict(config), n, s, patch=(1, 2)) == 2 * per_block + patch
    assert train_flops_per_item(config, n, s) == 3 * 2 * per_block


def test_flops_linear_terms_match_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    model = tiny().eval()
    t, cap, mask, _ = cond(1)
    x = torch.randn(1, 4, 4, 8, 8)  # (pt, p) = (1, 2): 4 x 4 x 4 = 64 tokens
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t, cap, mask, None, 2, 1)
    counts = counter.get_flop_counts()
    linears = [f"attention.{w}" for w in ("wq", "wk", "wv", "wo", "wk_y", "wv_y")] + ["feed_forward"]
    block_linear = sum(sum(counts[f"MultiScaleNextDiT.layers.0.{m}"].values()) for m in linears)
    attention = 4 * 64 * 64 * 64 + 4 * 64 * 6 * 64
    assert 2 * (block_linear + attention) == flops_per_item(model.config, 64, 6)


# ---- errors -----------------------------------------------------------------------------------

def test_error_size_not_divisible():
    model = tiny()
    t, cap, mask, motion = cond(1)
    with pytest.raises(ValueError, match=r"height 6 not divisible by the spatial patch 4"):
        model(torch.randn(1, 4, 2, 6, 8), t, cap, mask, motion, 4, 2)
    with pytest.raises(ValueError, match=r"frames 3 not divisible by the temporal patch 2"):
        model(torch.randn(1, 4, 3, 8, 8), t, cap, mask, motion, 2, 2)


def test_error_too_many_tokens_for_rope():
    model = tiny(axes_lens=(4, 8, 8))
    t, cap, mask, motion = cond(1)
    with pytest.raises(ValueError, match=r"9 width tokens but the RoPE table allows at most 8"):
        model(torch.randn(1, 4, 1, 8, 18), t, cap, mask, motion, 2, 1)


def test_error_unknown_patch():
    model = tiny()
    t, cap, mask, motion = cond(1)
    have = r"it has \(pt=1, p=2\), \(pt=2, p=2\), \(pt=2, p=4\)"
    with pytest.raises(ValueError, match=r"no patch shape \(pt=1, p=4\); " + have):
        model(torch.randn(1, 4, 2, 8, 8), t, cap, mask, motion, 4, 1)


def test_error_batch_sizes_disagree():
    model = tiny()
    t, cap, mask, motion = cond(2)
    with pytest.raises(ValueError, match=r"t has shape \(2,\); expected \(3,\)"):
        model(torch.randn(3, 4, 2, 8, 8), t, torch.randn(3, 6, 32), torch.ones(3, 6), None, 2, 1)
    with pytest.raises(ValueError, match=r"cap_feats has shape \(2, 6, 32\); expected \(B=3"):
        model(torch.randn(3, 4, 2, 8, 8), torch.rand(3), cap, mask, None, 2, 1)
    with pytest.raises(ValueError, match=r"every row of cap_mask"):
        model(torch.randn(2, 4, 2, 8, 8), t, cap, torch.zeros(2, 6), None, 2, 1)


def test_error_state_dict_mismatch():
    model = tiny()
    sd = dict(model.state_dict())
    sd["_orig_mod.extra.weight"] = torch.zeros(1)
    del sd["pad_token"]
    sd["layers.0.attention.wq.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError) as e:
        load_state_dict_checked(tiny(), sd)
    msg = str(e.value)
    assert "missing (1): pad_token" in msg
    assert "unexpected (1): extra.weight" in msg
    assert "layers.0.attention.wq.weight: file (3, 3) vs model (64, 64)" in msg


def test_orig_mod_keys_load():
    model = randomize(tiny())
    sd = {k.replace("layers.", "_orig_mod.layers."): v for k, v in model.state_dict().items()}
    other = tiny()
    load_state_dict_checked(other, sd)
    assert torch.equal(other.layers[0].attention.wq.weight, model.layers[0].attention.wq.weight)


def test_missing_folder_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        MultiScaleNextDiT.from_pretrained(tmp_path)


# ---- the varlen (flash-attention style) packing path, checked with a pure-torch kernel ------------

def reference_varlen_kernel(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale):
    """flash_attn_varlen_func's contract on packed (total, H, D) tensors, written plainly."""
    outs = []
    for i in range(len(cu_seqlens_q) - 1):
        qi = q[cu_seqlens_q[i]:cu_seqlens_q[i + 1]].transpose(0, 1)  # (H, Lq, D)
        ki = k[cu_seqlens_k[i]:cu_seqlens_k[i + 1]].transpose(0, 1)
        vi = v[cu_seqlens_k[i]:cu_seqlens_k[i + 1]].transpose(0, 1)
        rep = qi.shape[0] // ki.shape[0]
        ki, vi = ki.repeat_interleave(rep, 0), vi.repeat_interleave(rep, 0)
        w = torch.softmax(qi @ ki.transpose(1, 2) * softmax_scale, dim=-1)
        outs.append((w @ vi).transpose(0, 1))
    return torch.cat(outs)


def test_varlen_path_equals_sdpa():
    b, n, s, hq, hkv, d = 3, 10, 7, 4, 2, 8
    q, k, v = torch.randn(b, n, hq, d), torch.randn(b, s, hkv, d), torch.randn(b, s, hkv, d)
    q_mask = torch.arange(n)[None] < torch.tensor([10, 6, 3])[:, None]
    k_mask = torch.arange(s)[None] < torch.tensor([7, 2, 5])[:, None]
    packed = attn.varlen_attention(q, k, v, q_mask, k_mask, reference_varlen_kernel)
    dense = attn.sdpa_attention(q, k, v, k_mask)
    torch.testing.assert_close(packed[q_mask], dense[q_mask], atol=1e-5, rtol=1e-5)
    assert torch.equal(packed[~q_mask], torch.zeros_like(packed[~q_mask]))


def test_flash_backend_request_without_flash_is_clear():
    with pytest.raises(RuntimeError, match="needs flash-attn installed and half-precision CUDA"):
        attn.attend(torch.randn(1, 2, 2, 8), torch.randn(1, 2, 2, 8), torch.randn(1, 2, 2, 8), None, None,
                    backend="flash")
    model = tiny()
    model.set_attention_backend("flash")
    t, cap, mask, motion = cond(1)
    with pytest.raises(RuntimeError, match="needs flash-attn installed and half-precision CUDA"):
        model(torch.randn(1, 4, 2, 8, 8), t, cap, mask, motion, 2, 1)


def test_attention_backend_is_per_model():
    """Two models in one process can use different kernels; "sdpa" computes what "auto" does on CPU."""
    auto, sdpa = randomize(tiny()), tiny(attention_backend="sdpa")
    sdpa.load_state_dict(auto.state_dict())
    assert auto.attention_backend == "auto" and sdpa.attention_backend == "sdpa"
    assert {m.backend for m in sdpa.modules() if isinstance(m, attn.Attention)} == {"sdpa"}
    assert {m.backend for m in auto.modules() if isinstance(m, attn.Attention)} == {"auto"}
    t, cap, mask, motion = cond(2)
    x = torch.randn(2, 4, 2, 8, 8)
    with torch.no_grad():
        assert torch.equal(auto(x, t, cap, mask, motion, 2, 1), sdpa(x, t, cap, mask, motion, 2, 1))
    with pytest.raises(ValueError, match="attention_backend must be one of"):
        auto.set_attention_backend("xformers")


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os
    import stat

    from lumina_video import files

    umask = os.umask(0o022)
    try:
        files.write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        os.chmod(tmp_path / "a.txt", 0o600)  # a replaced file keeps its mode
        files.write_text(tmp_path / "a.txt", "y")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o600
    finally:
        os.umask(umask)


# ---- a diffusers model -------------------------------------------------------------------------

def test_the_config_is_registered_with_diffusers(tmp_path):
    import json

    from diffusers import ConfigMixin, ModelMixin

    model = randomize(tiny())
    assert isinstance(model, ModelMixin) and isinstance(model, ConfigMixin)
    assert dict(model.config) == NextDiTConfig.from_dict(model.config).to_dict() and model.config.dim == 64
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["_class_name"] == "MultiScaleNextDiT" and saved["format_version"] == 1
    assert MultiScaleNextDiT.load_config(tmp_path / "m")["dim"] == 64  # diffusers reads our config.json
    assert MultiScaleNextDiT.from_config(saved).config == model.config


def test_from_pretrained_takes_diffusers_loading_keywords(tmp_path):
    model = randomize(tiny())
    model.save_pretrained(tmp_path / "m", dtype=torch.bfloat16)
    assert MultiScaleNextDiT.from_pretrained(tmp_path / "m").dtype == torch.bfloat16  # ours: the stored dtype
    loaded = MultiScaleNextDiT.from_pretrained(tmp_path / "m", torch_dtype=None, device_map={"": "cpu"},
                                               low_cpu_mem_usage=True, variant=None, use_safetensors=None)
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"  # diffusers' torch_dtype=None: float32
    with pytest.raises(ValueError, match="disagree"):
        MultiScaleNextDiT.from_pretrained(tmp_path / "m", dtype=torch.float16, torch_dtype=torch.float32)
    with pytest.raises(ValueError, match="quantization_config needs diffusers' folder format"):
        MultiScaleNextDiT.from_pretrained(tmp_path / "m", quantization_config=object())
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['depth'\]"):
        MultiScaleNextDiT.from_pretrained(tmp_path / "m", depth=3)
    with pytest.raises(FileNotFoundError, match="is not a MultiScaleNextDiT folder: config.json is missing"):
        MultiScaleNextDiT.from_pretrained(tmp_path / "nothing")


def test_timestep_embedder_computes_in_the_given_dtype():
    model = randomize(tiny())
    t = torch.rand(3)
    emb = model.t_embedder
    assert torch.equal(emb(t), emb(t, torch.float32))
    emb.to(torch.bfloat16)
    with pytest.raises(RuntimeError):  # float32 features into bfloat16 weights
        emb(t, torch.float32)
