"""LuminaVideoPipeline: folders, determinism, shapes, settings, bad input."""
import json

import numpy as np
import pytest
import torch

from lumina_video import LuminaVideoPipeline
from lumina_video.sampling import SamplingConfig, TimeAware
from lumina_video.sampling.knobs import SamplingKnobs, multiscale_schedule
from lumina_video.testing import make_tiny_pipeline

PROMPT = "a red circle moving to the right"
FAST = dict(steps=4, progress=False)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(the pipeline as made in memory, the folder it was saved to)."""
    folder = tmp_path_factory.mktemp("pipe") / "tiny"
    return make_tiny_pipeline(folder, seed=0), folder


@pytest.fixture(scope="module")
def tiny_dir(made):
    return made[1]


@pytest.fixture(scope="module")
def pipe(tiny_dir):
    return LuminaVideoPipeline.from_pretrained(tiny_dir)


def test_saved_and_loaded_pipeline_gives_same_frames(made, pipe):
    made, folder = made
    loaded = pipe
    a = made(PROMPT, seed=5, **FAST).frames
    b = loaded(PROMPT, seed=5, **FAST).frames
    assert a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, loaded(PROMPT, seed=6, **FAST).frames)  # the seed matters
    assert not np.array_equal(a, loaded("a blue square", seed=5, **FAST).frames)  # so does the prompt
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "LuminaVideoPipeline"
    assert index["transformer"] == ["lumina_video", "MultiScaleNextDiT"]
    assert SamplingConfig.from_official(index["defaults"]["sampling"]) == made.default_sampling


@pytest.mark.parametrize("h, w, f, multiscale", [(32, 64, 8, True), (64, 32, 9, False), (32, 32, 1, True),
                                                 (32, 32, 16, True)])
def test_frame_count_and_size_as_asked(pipe, h, w, f, multiscale):
    out = pipe(PROMPT, height=h, width=w, num_frames=f, multiscale=multiscale, seed=0, **FAST)
    assert out.frames.shape == (1, f, h, w, 3)
    assert out.sampling.is_multiscale() == multiscale
    assert set(out.timings) == {"text_s", "denoise_s", "decode_s"}


def test_batch_equals_single_runs_with_consecutive_seeds(pipe):
    batch = pipe([PROMPT, "a green triangle"], negative_prompt=["", "blurry"], seed=10, **FAST)
    assert batch.seeds == [10, 11]
    one = pipe("a green triangle", negative_prompt="blurry", seed=11, **FAST)
    assert batch.frames.shape[0] == 2
    assert np.abs(batch.frames[1].astype(int) - one.frames[0]).max() <= 1  # padding to a longer caption batch


def test_generator_and_random_seed(pipe):
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = pipe(PROMPT, generator=g1, **FAST)
    assert a.seeds is None and np.array_equal(a.frames, pipe(PROMPT, generator=g2, **FAST).frames)
    r = pipe(PROMPT, **FAST)
    assert isinstance(r.seeds[0], int)
    assert np.array_equal(r.frames, pipe(PROMPT, seed=r.seeds[0], **FAST).frames)  # the reported seed reproduces


def test_output_types_and_callback(pipe):
    steps = []
    lat = pipe(PROMPT, seed=0, output_type="latent", callback=lambda k, t, x: steps.append((k, t, tuple(x.shape))),
               **FAST)
    assert lat.frames.shape == (1, 16, 2, 4, 4) and "decode_s" not in lat.timings
    assert [s[0] for s in steps] == [0, 1, 2, 3] and all(s[2] == (1, 16, 2, 4, 4) for s in steps)
    assert steps[0][1] == 0.0 and all(a[1] < b[1] < 1 for a, b in zip(steps, steps[1:]))
    pil = pipe(PROMPT, seed=0, output_type="pil", **FAST).frames
    npy = pipe(PROMPT, seed=0, **FAST).frames
    assert len(pil) == 1 and len(pil[0]) == 8 and pil[0][0].size == (32, 32)
    assert np.array_equal(np.asarray(pil[0][3]), npy[0, 3])


def test_latents_decode_to_the_frames(pipe):
    lat = pipe(PROMPT, seed=2, output_type="latent", **FAST).frames
    frames = pipe(PROMPT, seed=2, **FAST).frames
    pixels = pipe.vae.decode(lat)
    expect = ((pixels + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()
    assert np.array_equal(frames, expect)


def test_cpu_offload_gives_same_frames(tiny_dir):
    p = LuminaVideoPipeline.from_pretrained(tiny_dir)
    a = p(PROMPT, seed=4, **FAST).frames
    p.enable_model_cpu_offload("cpu")
    assert p.device == torch.device("cpu")
    assert np.array_equal(p(PROMPT, seed=4, **FAST).frames, a)


def test_settings_reach_the_sampler(pipe):
    out = pipe(PROMPT, seed=0, guidance_scale=3.0, guidance_cutoff=0.5, motion_score=8, negative_motion_score=1,
               negative_motion_switch=0.1, shift=4, multiscale=False, **FAST)
    c = out.sampling
    assert (c.steps, c.shift) == (4, 4.0)
    assert c.guidance == TimeAware(3.0, ((0.5, 0.0),))
    assert c.motion == TimeAware(8.0) and c.neg_motion == TimeAware(1.0, ((0.1, 8.0),))
    assert c.patch == TimeAware((1, 2))
    assert pipe(PROMPT, seed=0, preset="f16F64R512", **FAST).sampling.shift == 8.0


# ---------------------------------------------------------------------------------------------
# sampling knobs
def test_overrides_keep_what_is_not_given():
    base = SamplingConfig.preset("f24F96R960")
    assert SamplingKnobs().apply(base) == base
    c = SamplingKnobs(guidance_scale=7).apply(base)
    assert c.guidance == TimeAware(7.0, ((0.2, 0.0),)) and c.replace(guidance=base.guidance) == base
    assert SamplingKnobs(guidance_cutoff=1.0).apply(base).guidance == TimeAware(20.0)
    # negative motion returns to the positive motion after the switch (paper: 8 / "2 then 8")
    assert SamplingKnobs(motion_score=8).apply(base).neg_motion == TimeAware(2.0, ((0.05, 8.0),))


def test_multiscale_switch_uses_the_released_twin():
    single = SamplingConfig.preset("f16F64R512")
    assert multiscale_schedule(single) == SamplingConfig.preset("f16F64R512-MultiScale").patch
    assert SamplingKnobs(multiscale=True).apply(single) == SamplingConfig.preset("f16F64R512-MultiScale")
    assert SamplingKnobs(multiscale=False).apply(SamplingConfig.preset("f24F96R960-MultiScale")) == \
        SamplingConfig.preset("f24F96R960")
    odd = single.replace(steps=5)  # no twin: the f24 schedule
    assert multiscale_schedule(odd) == SamplingConfig.preset("f24F96R960-MultiScale").patch


# ---------------------------------------------------------------------------------------------
# bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(height=48), "height must be a positive multiple of 32"),
    (dict(width=100), "width must be a positive multiple of 32"),
    (dict(num_frames=12), "cannot produce 12 frames"),
    (dict(num_frames=9), "needs an even number"),  # 3 latent frames with the (2, x) patches of multi-scale
    (dict(steps=-1), "steps must be a positive integer"),
    (dict(guidance_cutoff=2.0), "guidance_cutoff"),
    (dict(output_type="gif"), "output_type"),
    (dict(preset="nope"), "unknown sampling preset"),
])
def test_bad_settings_raise_clear_errors(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipe(PROMPT, seed=0, progress=False, **kwargs)


def test_check_inputs_names_the_problem_before_any_work(pipe):
    multi, single = pipe.resolve_sampling(multiscale=True), pipe.resolve_sampling(multiscale=False)
    pipe.check_inputs([PROMPT, "a blue square"], ["", "blurry"], 32, 64, 16, multi)  # fine: returns None
    with pytest.raises(ValueError, match="needs an even number"):
        pipe.check_inputs(PROMPT, "", 32, 32, 9, multi)
    with pytest.raises(ValueError, match="negative_prompt must be a string or a list of 2 strings"):
        pipe.check_inputs([PROMPT, "a blue square"], ["blurry"], 32, 32, 8, multi)
    # 2080 px = 130 height tokens of patch 2: the RoPE table's 128 are checked here, not in the model
    with pytest.raises(ValueError, match="RoPE table allows at most 128"):
        pipe.check_inputs(PROMPT, "", 2080, 32, 1, single)
    assert pipe.latent_shape(2, 32, 64, 16) == (2, 16, 4, 4, 8) and pipe.size_multiple == 32


def test_resolve_sampling_takes_knobs_and_keywords(pipe):
    knobs = SamplingKnobs(steps=3, guidance_scale=0.0)
    assert pipe.resolve_sampling(None, knobs) == pipe.resolve_sampling(steps=3, guidance_scale=0.0)
    assert pipe.resolve_sampling(None, knobs, steps=5).steps == 5  # a keyword wins
    assert not pipe.resolve_sampling(None, knobs).is_guided() and pipe.resolve_sampling().is_guided()
    assert pipe.resolve_size(None, 64) == (32, 64, 8)  # the model's defaults for what is not given


@pytest.mark.parametrize("prompt", ["", "   ", [], [PROMPT, ""], None])
def test_empty_prompt_rejected(pipe, prompt):
    with pytest.raises(ValueError, match="prompt"):
        pipe(prompt, seed=0, **FAST)


def test_missing_or_incomplete_folder(tmp_path, tiny_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LuminaVideoPipeline.from_pretrained(tmp_path / "nothing")
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    (broken / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(broken / "tokenizer")
    with pytest.raises(FileNotFoundError, match="missing: vae/diffusion_pytorch_model.safetensors.*tokenizer/"):
        LuminaVideoPipeline.from_pretrained(broken)


def test_save_refuses_a_foreign_folder_and_replaces_whole(tmp_path, pipe):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a pipeline folder"):
        pipe.save_pretrained(other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_mismatched_components_rejected(pipe):
    from lumina_video.model import MultiScaleNextDiT_Tiny

    with pytest.raises(ValueError, match="caption features of width 32"):
        LuminaVideoPipeline(MultiScaleNextDiT_Tiny(in_channels=16, cap_feat_dim=32), pipe.vae, pipe.text_encoder)
    with pytest.raises(ValueError, match="4 input channels"):
        LuminaVideoPipeline(MultiScaleNextDiT_Tiny(in_channels=4, cap_feat_dim=384), pipe.vae, pipe.text_encoder)


def test_from_components(tmp_path, pipe):
    pipe.transformer.save_pretrained(tmp_path / "t")
    pipe.vae.save_pretrained(tmp_path / "v")
    p = LuminaVideoPipeline.from_components(tmp_path / "t", tmp_path / "v", defaults=pipe.defaults)
    assert np.array_equal(p(PROMPT, seed=1, **FAST).frames, pipe(PROMPT, seed=1, **FAST).frames)


def test_failed_save_leaves_the_old_folder_intact(tmp_path, pipe, monkeypatch):
    folder = tmp_path / "p"
    pipe.save_pretrained(folder)
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))

    def boom(_folder):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipe.vae, "save_pretrained", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        pipe.save_pretrained(folder)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temporary folder left behind
