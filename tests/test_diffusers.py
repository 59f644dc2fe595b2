"""lumina_video as diffusers classes: DiffusionPipeline loading (in this process and a fresh one), the
bundled model's pinned output through diffusers, format-1 folders, offloading hooks, dtypes, callbacks."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, ModelMixin

import lumina_video
from lumina_video import LuminaVideoPipeline
from lumina_video.pipeline import DEFAULT_MODEL_DIR, upgrade_folder
from lumina_video.testing import make_tiny_pipeline

PINNED = Path(__file__).parent / "data" / "demo_model_pinned.npz"
PROMPT = "a red circle moving to the right"
FAST = dict(seed=3, steps=3, progress=False)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diffusers") / "tiny"
    make_tiny_pipeline(folder, seed=0)
    return folder


@pytest.fixture(scope="module")
def reference(tiny_dir):
    """The tiny pipeline's frames before any offloading: loaded by diffusers, run once."""
    return DiffusionPipeline.from_pretrained(tiny_dir)(PROMPT, **FAST).frames


def test_diffusion_pipeline_loads_the_bundled_model_with_the_pinned_output():
    """DiffusionPipeline.from_pretrained(bundled folder) is our pipeline, in float32, and gives the
    latents recorded before the diffusers port (tests/test_demo_model_pinned.py's multi-scale case)."""
    pipe = DiffusionPipeline.from_pretrained(DEFAULT_MODEL_DIR)
    assert type(pipe) is LuminaVideoPipeline and pipe.transformer.dtype == torch.float32
    assert set(pipe.components) == {"transformer", "vae", "text_encoder"}
    prompts = ["a red circle moving to the right", "a blue square staying still on a white background"]
    latent = pipe(prompts, seed=11, steps=8, num_frames=16, progress=False, output_type="latent").frames
    np.testing.assert_allclose(latent.numpy(), np.load(PINNED)["multiscale_latent"], rtol=0, atol=1e-4)
    ours = LuminaVideoPipeline.from_pretrained()
    assert np.array_equal(pipe(PROMPT, **FAST).frames, ours(PROMPT, **FAST).frames)


@pytest.mark.parametrize("order", ["lumina_video first", "diffusers first"])
def test_a_fresh_interpreter_finds_the_pipeline_after_import_lumina_video(order):
    imports = ["import lumina_video", "from diffusers import DiffusionPipeline"]
    code = "; ".join(imports if order == "lumina_video first" else imports[::-1]) + \
        f"; print(type(DiffusionPipeline.from_pretrained({str(DEFAULT_MODEL_DIR)!r})).__name__)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "LuminaVideoPipeline"


def test_model_index_names_lumina_video_classes(tiny_dir):
    index = json.loads((tiny_dir / "model_index.json").read_text())
    assert index["_class_name"] == "LuminaVideoPipeline" and index["_format_version"] == 2
    for name, cls in (("transformer", "MultiScaleNextDiT"), ("vae", "VideoVAE"), ("text_encoder", "TextEncoder")):
        assert index[name] == ["lumina_video", cls]
        assert issubclass(getattr(lumina_video, cls), lumina_video.ModelMixin)  # how diffusers finds from_pretrained
    assert "tokenizer" not in index and "format_version" not in index  # keys that diffusers would warn about
    assert json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())["_format_version"] == 2


def test_format_1_folder_loads_and_upgrades_once(tmp_path, tiny_dir, reference):
    old = tmp_path / "old"
    shutil.copytree(tiny_dir, old)
    index = json.loads((old / "model_index.json").read_text())
    for key in ("_format_version", "_diffusers_version"):
        index.pop(key)
    index.update(format_version=1, vae=["diffusers", "AutoencoderKLCogVideoX"],
                 text_encoder=["transformers", "BertModel"], tokenizer=["transformers", "BertTokenizer"])
    (old / "model_index.json").write_text(json.dumps(index))
    weights = (old / "transformer" / "model.safetensors").read_bytes()
    assert np.array_equal(LuminaVideoPipeline.from_pretrained(old)(PROMPT, **FAST).frames, reference)
    with pytest.raises(OSError, match="no file named model.safetensors"):  # diffusers reads the old entries as
        # they are: BertModel.from_pretrained finds no weights in the reference folder of the bundled MiniLM
        DiffusionPipeline.from_pretrained(old)
    assert upgrade_folder(old) and not upgrade_folder(old)
    assert np.array_equal(DiffusionPipeline.from_pretrained(old)(PROMPT, **FAST).frames, reference)
    assert (old / "transformer" / "model.safetensors").read_bytes() == weights


def test_newer_format_is_refused(tmp_path, tiny_dir):
    new = tmp_path / "new"
    shutil.copytree(tiny_dir, new)
    index = json.loads((new / "model_index.json").read_text())
    (new / "model_index.json").write_text(json.dumps(dict(index, _format_version=99)))
    with pytest.raises(ValueError, match="format 99 is newer than this package reads"):
        LuminaVideoPipeline.from_pretrained(new)


def _hook_calls(monkeypatch, cls, method, record):
    """Wrap cls.method so that every call appends record(self, *args) to the returned list."""
    calls, original = [], getattr(cls, method)

    def wrapped(self, *args, **kwargs):
        calls.append(record(self, *args))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, wrapped)
    return calls


def _owner(pipe, module) -> str:
    return next(name for name, part in pipe.components.items() if any(m is module for m in part.modules()))


def test_model_cpu_offload_hooks_fire_for_every_part(tiny_dir, reference, monkeypatch):
    """accelerate's CpuOffload hooks (here with the CPU as the "accelerator") move each part while it
    runs: the text encoder, the transformer and the VAE each pass through their hook."""
    hooks = pytest.importorskip("accelerate.hooks")  # a dependency of diffusers' offloading

    pipe = DiffusionPipeline.from_pretrained(tiny_dir)
    assert pipe.enable_model_cpu_offload(device="cpu") is pipe
    calls = _hook_calls(monkeypatch, hooks.CpuOffload, "pre_forward", lambda hook, module, *a: type(module).__name__)
    assert np.array_equal(pipe(PROMPT, **FAST).frames, reference)
    assert {"TextEncoder", "MultiScaleNextDiT", "VideoVAE"} <= set(calls)
    assert pipe._execution_device.type == "cpu"


def test_sequential_cpu_offload_runs(tiny_dir, reference):
    """accelerate's per-module hooks: the weights wait on the meta device and come in for each forward."""
    pytest.importorskip("accelerate")
    pipe = DiffusionPipeline.from_pretrained(tiny_dir)
    pipe.enable_sequential_cpu_offload(device="cpu")
    assert pipe.transformer.pad_token.device.type == "meta"  # the weights live in accelerate's CPU map
    # diffusers names the device "cpu:0" (on a GPU "cuda:0"); accelerate 1.15 puts a parameter it brought
    # to "cpu:0" back as a plain tensor and then fails to re-offload it, while plain "cpu" works.
    hooks = [m._hf_hook for part in pipe.components.values() for m in part.modules() if hasattr(m, "_hf_hook")]
    for hook in hooks:
        for inner in getattr(hook, "hooks", [hook]):  # a SequentialHook holds several
            inner.execution_device = torch.device("cpu")
    frames = pipe(PROMPT, **FAST).frames
    assert len(hooks) > 50 and np.abs(frames.astype(int) - reference).max() <= 1


@pytest.mark.parametrize("offload_type", ["block_level", "leaf_level"])
def test_group_offload_onloads_every_part(tiny_dir, reference, monkeypatch, offload_type):
    """diffusers' group offloading (onload device = CPU here): every part's groups are onloaded while
    it runs, encode/decode included (they go through forward), and the frames do not change."""
    from diffusers.hooks.group_offloading import ModuleGroup

    pipe = DiffusionPipeline.from_pretrained(tiny_dir)
    pipe.enable_group_offload(onload_device=torch.device("cpu"), offload_type=offload_type, num_blocks_per_group=1)
    groups = _hook_calls(monkeypatch, ModuleGroup, "onload_", lambda group: group)
    frames = pipe(PROMPT, **FAST).frames
    assert np.abs(frames.astype(int) - reference).max() <= 1
    owners = {_owner(pipe, g.modules[0] if g.modules else g.onload_leader) for g in groups}
    assert owners == {"transformer", "vae", "text_encoder"}


def test_dtypes_follow_diffusers(tiny_dir):
    pipe = DiffusionPipeline.from_pretrained(tiny_dir, dtype=torch.bfloat16)  # diffusers: every part
    assert {p.dtype for p in pipe.components.values()} == {torch.bfloat16}
    pipe = LuminaVideoPipeline.from_pretrained(tiny_dir, dtype=torch.bfloat16)  # ours: the VAE stays float32
    assert (pipe.transformer.dtype, pipe.text_encoder.dtype, pipe.vae.dtype) == (torch.bfloat16,) * 2 + (torch.float32,)
    assert pipe.to(torch.float32) is pipe and pipe.transformer.dtype == torch.float32
    out = pipe.to(torch.bfloat16)(PROMPT, **FAST)
    assert out.frames.shape == (1, 8, 32, 32, 3)


def test_layerwise_fp8_storage_runs_close_to_full_precision(tiny_dir):
    pipe = LuminaVideoPipeline.from_pretrained(tiny_dir)
    full = pipe(PROMPT, output_type="latent", **FAST).frames
    pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    assert pipe.transformer.layers[0].attention.wq.weight.dtype == torch.float8_e4m3fn
    assert pipe.transformer.all_x_embedder["2-1"].weight.dtype == torch.float32  # skipped: patch embedders
    fp8 = pipe(PROMPT, output_type="latent", **FAST).frames
    assert 0 < (fp8 - full).abs().max() < 0.25 * full.abs().max()


def test_diffusers_call_names(tiny_dir):
    pipe = DiffusionPipeline.from_pretrained(tiny_dir)
    seen = []

    def on_step_end(p, step, t, tensors):
        seen.append((p is pipe, step, t, tuple(tensors)))
        return {"latents": torch.zeros_like(tensors["latents"])} if step == 2 else tensors

    gen = [torch.Generator().manual_seed(5)]
    out = pipe(PROMPT, num_inference_steps=3, generator=gen, output_type="latent", progress=False,
               callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"])
    assert [s[:2] for s in seen] == [(True, 0), (True, 1), (True, 2)] and seen[0][3] == ("latents",)
    assert torch.equal(out.frames, torch.zeros_like(out.frames))  # the returned latents replaced the sampler's
    assert out.seeds is None and out.sampling.steps == 3
    (frames,) = pipe(PROMPT, return_dict=False, **FAST)
    assert frames.shape == (1, 8, 32, 32, 3) and out[0] is out.frames
    with pytest.raises(ValueError, match="steps=3 and num_inference_steps=4 disagree"):
        pipe(PROMPT, steps=3, num_inference_steps=4)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs may name"):
        pipe(PROMPT, callback_on_step_end_tensor_inputs=["prompt_embeds"], **FAST)
    with pytest.raises(ValueError, match="a list of 2 generators for 1 prompts"):
        pipe(PROMPT, generator=gen * 2, steps=2, progress=False)


def test_transformer_loads_from_a_pipeline_subfolder_and_diffusers_format(tiny_dir, tmp_path):
    from lumina_video.model import MultiScaleNextDiT

    model = MultiScaleNextDiT.from_pretrained(tiny_dir, subfolder="transformer", torch_dtype=None)
    assert model.dtype == torch.float32
    ModelMixin.save_pretrained(model, tmp_path / "hf")  # diffusers' own format: diffusion_pytorch_model.safetensors
    assert (tmp_path / "hf" / "diffusion_pytorch_model.safetensors").is_file()
    back = MultiScaleNextDiT.from_pretrained(tmp_path / "hf", dtype=torch.bfloat16)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert back.dtype == torch.bfloat16 and public(back.config) == public(model.config)
    assert all(torch.equal(v.to(torch.bfloat16), back.state_dict()[k]) for k, v in model.state_dict().items())
