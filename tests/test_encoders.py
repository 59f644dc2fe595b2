"""Text encoder and video VAE wrappers (docs/REFERENCE.md §6)."""
import warnings

import pytest
import torch

from lumina_video.encoders import (
    LATENT_SCALE,
    RELEASED_SYSTEM_PROMPT,
    PromptTruncatedWarning,
    TextEncoder,
    VideoVAE,
    minilm_path,
    tiny_config,
)

PROMPTS = ["a red circle moving to the right", "",
           "a small blue triangle drifts slowly upwards on a plain grey background"]


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder.from_pretrained()


@pytest.fixture(scope="module")
def direct():
    """The same MiniLM loaded straight through transformers, without the wrapper."""
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(path, local_files_only=True)


# ---------------------------------------------------------------------------------------------
# text encoder
def test_features_equal_direct_call_per_prompt(minilm, direct):
    """Each prompt alone through the plain transformers model (no padding at all) gives the same
    features as the padded batch at the real tokens, from the chosen layer."""
    model, tok = direct
    feats, mask = minilm.encode(PROMPTS)
    assert feats.shape == (3, mask.shape[1], 384) and minilm.dim == 384
    for i, p in enumerate(PROMPTS):
        ids = tok(minilm.system_prompt + p, return_tensors="pt")
        with torch.no_grad():
            ref = model(**ids, output_hidden_states=True).hidden_states[minilm.settings.layer][0]  # (n, D)
        n = ref.shape[0]
        assert int(mask[i].sum()) == n
        torch.testing.assert_close(feats[i, :n], ref, atol=1e-5, rtol=1e-5)


def test_layer_setting_selects_hidden_state(direct):
    model, tok = direct
    enc = TextEncoder(model, tok)  # defaults for BERT: layer -1
    enc2 = TextEncoder.from_pretrained(layer=-3)
    f1, m = enc.encode(PROMPTS[0])
    f3, _ = enc2.encode(PROMPTS[0])
    ids = tok(enc.system_prompt + PROMPTS[0], return_tensors="pt")
    with torch.no_grad():
        hs = model(**ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(f1[0, : m.sum()], hs[-1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(f3[0, : m.sum()], hs[-3][0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(f1, f3)


def test_right_padding_to_multiple_of_8(minilm, direct):
    _, tok = direct
    feats, mask = minilm.encode(PROMPTS)
    lengths = [len(tok(minilm.system_prompt + p)["input_ids"]) for p in PROMPTS]
    assert mask.shape[1] % 8 == 0 and mask.shape[1] - 8 < max(lengths) <= mask.shape[1]
    assert mask.sum(1).tolist() == lengths
    for row, n in zip(mask, lengths):  # ones then zeros: right padding
        assert row[:n].eq(1).all() and row[n:].eq(0).all()


def test_system_prompt_prefix_and_override(minilm, direct):
    _, tok = direct
    _, mask = minilm.encode([""])  # the negative prompt "" is the system prompt alone
    assert int(mask.sum()) == len(tok(minilm.system_prompt)["input_ids"]) > 2
    f_plain, m_plain = minilm.encode(["a red circle"], system_prompt="")
    assert int(m_plain.sum()) == len(tok("a red circle")["input_ids"])
    f_long, m_long = minilm.encode(["a red circle"], system_prompt=RELEASED_SYSTEM_PROMPT)
    assert int(m_long.sum()) == len(tok(RELEASED_SYSTEM_PROMPT + "a red circle")["input_ids"])


def test_truncation_warns_and_names_prompt():
    enc = TextEncoder.from_pretrained(max_length=16)
    long_prompt = "a red circle " * 10
    with pytest.warns(PromptTruncatedWarning, match="a red circle a red circle"):
        feats, mask = enc.encode(["short", long_prompt])
    assert mask.shape[1] == 16 and int(mask[1].sum()) == 16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.encode(["short"])  # no warning when nothing is cut


def test_save_load_round_trip_keeps_features_and_settings(tmp_path):
    enc = TextEncoder.from_pretrained(system_prompt="Make a clip: ", max_length=64)
    # copy_bundled: the weights, not a reference
    enc.save_pretrained(tmp_path / "text_encoder", tmp_path / "tokenizer", copy_bundled=True)
    assert not (tmp_path / "text_encoder" / "tokenizer_config.json").exists()
    assert (tmp_path / "tokenizer" / "tokenizer_config.json").exists()
    back = TextEncoder.from_pretrained(tmp_path / "text_encoder", tokenizer=tmp_path / "tokenizer")
    assert back.settings == enc.settings
    a, ma = enc.encode(PROMPTS)
    b, mb = back.encode(PROMPTS)
    assert torch.equal(ma, mb)
    torch.testing.assert_close(a, b)


def test_gemma2_defaults_follow_spec(tmp_path, direct):
    """A tiny random Gemma-2 gets the released settings: hidden_states[-2], 256 tokens, released prefix."""
    from transformers import Gemma2Config, Gemma2Model

    _, tok = direct
    cfg = Gemma2Config(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512)
    Gemma2Model(cfg).save_pretrained(tmp_path / "g")
    tok.save_pretrained(tmp_path / "g")
    enc = TextEncoder.from_pretrained(tmp_path / "g")
    s = enc.settings
    assert (s.layer, s.max_length, s.pad_to_multiple_of, s.system_prompt) == (-2, 256, 8, RELEASED_SYSTEM_PROMPT)
    feats, mask = enc.encode(["a red circle"])
    ids = tok(RELEASED_SYSTEM_PROMPT + "a red circle", return_tensors="pt")
    with torch.no_grad():
        out = enc.model(**ids, output_hidden_states=True)
    n = ids["input_ids"].shape[1]
    torch.testing.assert_close(feats[0, :n], out.hidden_states[-2][0])
    assert not torch.allclose(feats[0, :n], out.last_hidden_state[0])  # not the final-normed output


def test_bad_settings_and_inputs(direct):
    model, tok = direct
    from lumina_video.encoders import TextEncoderSettings

    with pytest.raises(ValueError, match="hidden-state index"):
        TextEncoder(model, tok, TextEncoderSettings(layer=9))
    with pytest.raises(ValueError, match="512 positions"):
        TextEncoder(model, tok, TextEncoderSettings(max_length=1024))
    enc = TextEncoder(model, tok)
    with pytest.raises(ValueError, match="non-empty list"):
        enc.encode([])
    with pytest.raises(ValueError, match="must be a string"):
        enc.encode(["ok", 3])
    with pytest.raises(TypeError, match="unknown text encoder settings"):
        TextEncoder.from_pretrained(layers=2)


def test_uncached_hub_id_error_says_why(tmp_path):
    with pytest.raises(FileNotFoundError, match="Hugging Face cache"):
        TextEncoder.from_pretrained("nobody-here/no-such-text-model", local_files_only=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a usable text encoder folder"):
        TextEncoder.from_pretrained(tmp_path / "empty")


# ---------------------------------------------------------------------------------------------
# VAE
@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VideoVAE.from_config(tiny_config())


def _pixels(b, f, h=32, w=32):
    return torch.rand(b, 3, f, h, w) * 2 - 1


def test_encode_applies_scale_to_mode(vae):
    x = _pixels(2, 9)
    z = vae.encode(x)
    assert z.shape == (2, 16, 3, 4, 4) and vae.scale == LATENT_SCALE == tiny_config()["scaling_factor"]
    with torch.no_grad():
        raw = vae.vae.encode(x).latent_dist.mode()
    torch.testing.assert_close(z, raw * LATENT_SCALE)
    torch.testing.assert_close(vae.raw_mode(x), raw)


def test_decode_divides_by_scale(vae):
    z = torch.randn(1, 16, 2, 4, 4)
    with torch.no_grad():
        ref = vae.vae.decode(z / LATENT_SCALE).sample.clamp(-1, 1)
    torch.testing.assert_close(vae.decode(z), ref)


@pytest.mark.parametrize("frames", [1, 8, 9])
def test_round_trip_shapes(vae, frames):
    x = _pixels(1, frames, 32, 48)
    z = vae.encode(x)
    assert z.shape == (1, 16, VideoVAE.latent_frames(frames), 4, 6)
    y = vae.decode(z)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= -1 and y.max() <= 1


def test_frame_rules_match_the_model(vae):
    """The documented frame arithmetic is what the diffusers model actually does."""
    for f in (1, 4, 5, 8, 12, 13):
        assert vae.encode(_pixels(1, f, 8, 8)).shape[2] == VideoVAE.encoded_latent_frames(f)
    for t in range(1, 6):
        assert vae.decode(torch.randn(1, 16, t, 1, 1)).shape[2] == VideoVAE.num_frames(t)
    for f in (1, 8, 9, 16, 17, 96, 97):
        assert VideoVAE.num_frames(VideoVAE.latent_frames(f)) == f
    assert VideoVAE.latent_frames(96) == 24  # docs/REFERENCE.md §6
    for f in (2, 5, 10, 12, 95):
        with pytest.raises(ValueError, match="1, 8m or 8m \\+ 1 frames"):
            VideoVAE.latent_frames(f)
    with pytest.raises(ValueError, match="positive integer"):
        VideoVAE.latent_frames(0)


def test_slicing_gives_same_latents(vae):
    x = _pixels(2, 5)
    z = vae.encode(x)
    vae.set_slicing(True)
    try:
        torch.testing.assert_close(vae.encode(x), z, atol=1e-5, rtol=1e-5)
    finally:
        vae.set_slicing(False)


def test_tiling_keeps_shapes():
    v = VideoVAE.from_config(tiny_config(), tiling=True)
    assert v.vae.use_tiling and (v.vae.tile_sample_min_height, v.vae.tile_sample_min_width) == (48, 40)
    for h, w in ((72, 72), (80, 136)):  # larger than one tile: the tiled path runs
        x = _pixels(1, 1, h, w)
        z = v.encode(x)
        assert z.shape == (1, 16, 1, h // 8, w // 8) and v.decode(z).shape == x.shape
    with pytest.raises(ValueError, match="does not tile cleanly"):
        v.set_tiling(True, tile_height=32)  # stride int(32 * 5/6) = 26 px is not a multiple of 8
    assert not v.vae.use_tiling


def test_bad_pixels_are_rejected(vae):
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        vae.encode(torch.rand(1, 3, 1, 16, 16) * 255)
    with pytest.raises(ValueError, match="multiple of the VAE's 8x"):
        vae.encode(_pixels(1, 1, 20, 16))
    with pytest.raises(ValueError, match="1, 4k or 4k \\+ 1"):
        vae.encode(_pixels(1, 6, 16, 16))
    with pytest.raises(ValueError, match="expected \\(B, 3, F, H, W\\)"):
        vae.encode(torch.zeros(1, 16, 16, 3))
    with pytest.raises(ValueError, match="expected \\(B, 16, T, h, w\\)"):
        vae.decode(torch.zeros(1, 4, 1, 2, 2))


def test_vae_save_load_round_trip(vae, tmp_path):
    vae.save_pretrained(tmp_path / "vae")
    back = VideoVAE.from_pretrained(tmp_path / "vae")
    z = torch.randn(1, 16, 1, 2, 2)
    torch.testing.assert_close(back.decode(z), vae.decode(z))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    with pytest.raises(FileNotFoundError, match="is not a VAE folder"):
        VideoVAE.from_pretrained(tmp_path / "missing")


def test_bundled_minilm_is_saved_as_a_reference(tmp_path):
    """The bundled text encoder is written as a few hundred bytes that point at its package, and
    loads back to the same features; copy_bundled writes the weights."""
    from lumina_video.encoders.text import BUNDLED_NAME, TextEncoder

    enc = TextEncoder.from_pretrained(system_prompt="Make: ")
    assert enc.bundled
    enc.save_pretrained(tmp_path / "te", tmp_path / "tok")
    size = sum(f.stat().st_size for f in (tmp_path / "te").iterdir()) + sum(
        f.stat().st_size for f in (tmp_path / "tok").iterdir())
    assert (tmp_path / "te" / BUNDLED_NAME).is_file() and size < 2000
    back = TextEncoder.from_pretrained(tmp_path / "te", tokenizer=tmp_path / "tok")
    assert back.bundled and back.system_prompt == "Make: "
    a, ma = enc.encode(["a red circle"])
    b, mb = back.encode(["a red circle"])
    assert torch.equal(a, b) and torch.equal(ma, mb)
    enc.save_pretrained(tmp_path / "full", copy_bundled=True)
    assert (tmp_path / "full" / "config.json").is_file() and not (tmp_path / "full" / BUNDLED_NAME).exists()
    assert not TextEncoder.from_pretrained(tmp_path / "full").bundled


# ---------------------------------------------------------------------------------------------
# as diffusers components
def test_encode_and_decode_run_through_forward(vae, minilm):
    """Offloading hooks sit on forward: every use of the wrappers must pass there."""
    from diffusers import ModelMixin

    assert isinstance(vae, ModelMixin) and isinstance(minilm, ModelMixin)
    calls = []
    handles = [m.register_forward_pre_hook(lambda mod, args, kwargs: calls.append(type(mod).__name__),
                                           with_kwargs=True) for m in (vae, minilm)]
    try:
        z = vae.encode(_pixels(1, 1, 16, 16), device="cpu")
        vae.raw_mode(_pixels(1, 1, 16, 16))
        vae.decode(z)
        feats, mask = minilm.encode(["a red circle"], device="cpu")
    finally:
        for h in handles:
            h.remove()
    assert calls == ["VideoVAE"] * 3 + ["TextEncoder"]
    assert feats.device.type == mask.device.type == "cpu"


def test_loaders_take_diffusers_keywords(vae, tmp_path):
    vae.save_pretrained(tmp_path / "vae")
    half = VideoVAE.from_pretrained(tmp_path / "vae", torch_dtype=torch.bfloat16, low_cpu_mem_usage=True)
    assert half.dtype == torch.bfloat16
    enc = TextEncoder.from_pretrained(None, torch_dtype=None, device_map={"": "cpu"}, low_cpu_mem_usage=True,
                                      variant=None, use_safetensors=None, disable_mmap=False)
    assert enc.dtype == torch.float32 and enc.bundled
    with pytest.raises(ValueError, match="variant is not supported for the text encoder"):
        TextEncoder.from_pretrained(None, variant="fp16")


def test_pipeline_text_encoder_finds_its_sibling_tokenizer(tmp_path):
    from lumina_video.encoders.text import _pipeline_tokenizer

    enc = TextEncoder.from_pretrained()
    enc.save_pretrained(tmp_path / "text_encoder", tmp_path / "tokenizer", copy_bundled=True)
    assert _pipeline_tokenizer(tmp_path / "text_encoder") is None  # a loose folder: no pipeline around it
    (tmp_path / "model_index.json").write_text("{}")  # inside a pipeline folder: PIPELINE/tokenizer
    assert _pipeline_tokenizer(tmp_path / "text_encoder") == tmp_path / "tokenizer"
    back = TextEncoder.from_pretrained(tmp_path / "text_encoder")
    assert torch.equal(back.encode(["a red circle"])[1], enc.encode(["a red circle"])[1])
