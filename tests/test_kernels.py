"""The speed paths compute what the plain ones do: GQA without repeated kv heads, the fused RMSNorm, the
in-place RoPE, the caption key/value cache, compiled blocks; and the generation dtype rules."""
import pytest
import torch

from lumina_video import devices
from lumina_video.model import MultiScaleNextDiT_Tiny
from lumina_video.model import attention as attn
from lumina_video.model.blocks import RMSNorm
from lumina_video.model.rope import apply_rope
from lumina_video.testing import make_tiny_pipeline

PROMPTS = ["a red circle moving to the right", "a blue square staying still"]


def tiny():
    model = MultiScaleNextDiT_Tiny(in_channels=4, cap_feat_dim=32, multiple_of=16).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def repeated_reference(q, k, v, key_mask):
    """SDPA with the kv heads repeated by hand: the definition of GQA's contiguous groups."""
    n_rep = q.shape[2] // k.shape[2]
    k, v = (t.repeat_interleave(n_rep, dim=2) for t in (k, v))
    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = torch.nn.functional.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)), attn_mask=mask)
    return out.transpose(1, 2)


@pytest.mark.parametrize("masked", [False, True])
def test_cpu_gqa_reads_kv_heads_in_place(monkeypatch, masked):
    q, k, v = torch.randn(2, 7, 4, 8), torch.randn(2, 5, 2, 8), torch.randn(2, 5, 2, 8)
    key_mask = (torch.arange(5)[None] < torch.tensor([5, 3])[:, None]) if masked else None
    assert attn.gqa_in_place(q, masked)
    monkeypatch.setattr(attn, "_repeat_kv", lambda *a: pytest.fail("kv heads were repeated"))
    torch.testing.assert_close(attn.sdpa_attention(q, k, v, key_mask), repeated_reference(q, k, v, key_mask),
                               atol=1e-6, rtol=1e-6)


def test_rmsnorm_fused_path_equals_the_formula():
    norm = RMSNorm(16, 1e-5)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 5, 16)
    formula = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), formula, atol=1e-6, rtol=1e-6)
    scale = 1 + torch.randn(3, 1, 16)
    torch.testing.assert_close(norm(x, scale), formula * scale, atol=1e-6, rtol=1e-6)
    # half precision: fp32 statistic, (weight * scale) folded; within bf16 rounding of the fp32 result
    half = RMSNorm(16, 1e-5).bfloat16()
    with torch.no_grad():
        half.weight.copy_(norm.weight)
    xb, sb = x.bfloat16(), scale.bfloat16()
    exact = xb.float() * torch.rsqrt(xb.float().pow(2).mean(-1, keepdim=True) + 1e-5) * half.weight.float() * sb.float()
    got = half(xb, sb)
    assert got.dtype == torch.bfloat16
    assert float((got.float() - exact).norm() / exact.norm()) < 8e-3
    # training's bf16 autocast over fp32 weights: the unfused formula, promoted to fp32 as before
    mixed = norm(x.bfloat16())
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, formula, atol=0.05, rtol=0.02)


def test_bf16_rope_rotates_its_own_copy():
    x = torch.randn(2, 6, 3, 8)
    angles = torch.rand(6, 4) * 6
    freqs = torch.polar(torch.ones_like(angles), angles)[None]  # (1, L, D/2), broadcast over the batch
    xb = x.bfloat16()
    before = xb.clone()
    out = apply_rope(xb, freqs)
    assert out.dtype == torch.bfloat16 and torch.equal(xb, before)  # the input is untouched
    torch.testing.assert_close(out.float(), apply_rope(xb.float(), freqs), atol=0.03, rtol=0.01)
    # a rotation keeps each pair's length
    pairs = lambda t: t.float().unflatten(-1, (-1, 2)).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(pairs(apply_rope(x, freqs)), pairs(x), atol=1e-5, rtol=1e-5)


def test_caption_cache_gives_identical_outputs_and_keeps_batches_apart():
    model = tiny()
    x, t = torch.randn(2, 4, 4, 8, 8), torch.rand(2)
    cap, mask = torch.randn(2, 6, 32), torch.ones(2, 6, dtype=torch.bool)
    other = torch.randn(2, 6, 32)
    with torch.no_grad():
        plain = [model(x, t, c, mask, patch_size=p, f_patch_size=pt)
                 for c in (cap, other) for pt, p in ((1, 2), (2, 4))]
        plain_b1 = model(x[:1], t[:1], cap[:1], mask[:1], patch_size=2, f_patch_size=1)
        with model.caption_cache():
            for _ in range(2):  # the second round reads every entry back
                cached = [model(x, t, c, mask, patch_size=p, f_patch_size=pt)
                          for c in (cap, other) for pt, p in ((1, 2), (2, 4))]
                cached_b1 = model(x[:1], t[:1], cap[:1], mask[:1], patch_size=2, f_patch_size=1)
            assert len(model._caption_cache) == 3  # 2B rows of cap, of the other prompt, B rows of cap
    assert model._caption_cache is None  # dropped at the end
    for a, b in zip(plain, cached):
        assert torch.equal(a, b)
    assert torch.equal(plain_b1, cached_b1)


def test_caption_cache_sees_in_place_changes():
    model = tiny()
    x, t = torch.randn(1, 4, 4, 8, 8), torch.rand(1)
    cap, mask = torch.randn(1, 6, 32), torch.ones(1, 6, dtype=torch.bool)
    with torch.no_grad(), model.caption_cache():
        model(x, t, cap, mask)
        cap.mul_(2)  # the same tensor with new values
        changed = model(x, t, cap, mask)
    with torch.no_grad():
        assert torch.equal(changed, model(x, t, cap, mask))


@pytest.fixture(scope="module")
def pipe():
    return make_tiny_pipeline(seed=0)


GUIDED_SWITCH = dict(height=32, width=32, num_frames=8, steps=6, seed=3, output_type="latent", progress=False)


def test_pipeline_caption_cache_is_exact(pipe):
    """The default multi-scale sampling (three patch sizes, guidance switching off) with and without the cache."""
    assert len(pipe.default_sampling.patch_shapes()) == 3 and pipe.default_sampling.is_guided()
    cached = pipe(PROMPTS, **GUIDED_SWITCH).frames
    pipe.cache_caption_kv = False
    try:
        plain = pipe(PROMPTS, **GUIDED_SWITCH).frames
    finally:
        pipe.cache_caption_kv = True
    assert torch.equal(cached, plain)


@pytest.mark.slow
def test_compiled_generation_agrees_with_eager_in_two_graphs():
    """torch.compile (inductor) of the blocks: the latent within 1e-4 of eager, and a multi-scale run with
    guidance switching off compiles 2 graphs (guided and unguided batch), not one per patch size.
    Slow: inductor's two C++ compilations take 40-80 s on a shared 2-core CPU."""
    from torch._dynamo.utils import counters

    pipe = make_tiny_pipeline(seed=0)
    eager = pipe(PROMPTS[:1], **GUIDED_SWITCH).frames
    torch._dynamo.reset()
    counters.clear()
    pipe.compile_transformer()
    compiled = pipe(PROMPTS[:1], **GUIDED_SWITCH).frames
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=0)
    assert counters["stats"]["unique_graphs"] == 2
    torch._dynamo.reset()


def test_generation_dtypes(monkeypatch):
    monkeypatch.setenv(devices.CPU_BF16_ENV, "1")
    assert devices.generation_dtypes("cpu") == dict(transformer=torch.bfloat16, text_encoder=torch.bfloat16,
                                                    vae=torch.bfloat16)
    assert devices.dtypes_name(devices.generation_dtypes("cpu")) == "bf16"
    assert devices.dtypes_name(devices.generation_dtypes("cuda")) == "transformer bf16, text_encoder bf16, vae fp32"
    monkeypatch.setenv(devices.CPU_BF16_ENV, "0")
    assert not devices.cpu_has_native_bf16()
    assert devices.dtypes_name(devices.generation_dtypes("cpu")) == "fp32"
    assert devices.generation_dtypes("cuda")["transformer"] == torch.bfloat16
    assert devices.default_dtype("cpu") == torch.float32  # training's compute dtype is unchanged
    monkeypatch.setenv(devices.CPU_BF16_ENV, "maybe")
    with pytest.raises(ValueError, match="use 1 or 0"):
        devices.cpu_has_native_bf16()


def test_cpu_bf16_detection_reads_the_flags(monkeypatch, tmp_path):
    monkeypatch.delenv(devices.CPU_BF16_ENV, raising=False)
    for flags, want in (("fpu sse avx512f amx_bf16 amx_tile", True), ("fpu avx512f avx512_bf16", True),
                        ("fpu sse avx2 avx512f", False)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(devices, "_cpuinfo_flags", lambda path=str(info), f=devices._cpuinfo_flags: f(path))
        assert devices.cpu_has_native_bf16() is (want and torch.backends.mkldnn.is_available())
        monkeypatch.undo()
        monkeypatch.delenv(devices.CPU_BF16_ENV, raising=False)


def test_info_says_what_generation_runs_here(monkeypatch):
    from lumina_video import info
    from lumina_video.pipeline import DEFAULT_MODEL_DIR

    monkeypatch.setattr(devices, "default_device", lambda: "cpu")
    for flag, transformer in (("1", "bf16"), ("0", "fp32")):
        monkeypatch.setenv(devices.CPU_BF16_ENV, flag)
        d = info.describe(DEFAULT_MODEL_DIR)
        assert d["generation"]["dtypes"]["transformer"] == transformer
        assert f"generation here (default): cpu, transformer {transformer}," in info.format_info(d)
