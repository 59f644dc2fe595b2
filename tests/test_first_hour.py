"""The first hour of a new user, without stumbles: one-line messages instead of tracebacks, hints that
work as printed, the training quick start as written, guard rails before any compute, `info`,
`--version`, progress and thread options, no silent overwrite, no third-party noise."""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lumina_video
from lumina_video import info
from lumina_video.cli import _parser, main
from lumina_video.devices import check_device
from lumina_video.testing import make_tiny_pipeline

REPO = Path(__file__).parents[1]
PROMPT = "a red circle moving to the right"
FAST = ["--steps", "1", "--num-frames", "1", "--single-scale"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A random-weight tiny pipeline (32x32 px, 8 frames) that marks itself as speaking the synthetic vocabulary."""
    folder = tmp_path_factory.mktemp("first_hour") / "tiny"
    make_tiny_pipeline(folder, defaults=dict(vocabulary="synthetic"))
    return folder


def _env(**extra):
    """The environment of a subprocess that imports this checkout's package, without the model variable."""
    paths = [str(Path(lumina_video.__file__).parents[1])] + [p for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p]
    env = {k: v for k, v in os.environ.items() if k != "LUMINA_VIDEO_MODEL"}
    return dict(env, PYTHONPATH=os.pathsep.join(paths), **extra)


def _run(args, cwd, timeout=120, **extra):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(**extra), capture_output=True, text=True,
                          timeout=timeout)


def _one_error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"lumina-video {command}: error: "), err
    return lines[0]


# -- devices ---------------------------------------------------------------------------------------
@pytest.fixture
def no_cuda_build(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)


def test_check_device_says_why_in_one_line(monkeypatch):
    assert check_device(None) == ("cuda" if torch.cuda.is_available() else "cpu") and check_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"^--device cdua: not a device name; accepted: cpu, cuda.*did you mean"):
        check_device("cdua")
    with pytest.raises(ValueError, match=r"not 'meta'"):
        check_device("meta")
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    with pytest.raises(ValueError, match=r"^--device cuda: this torch .* has no CUDA support \(a CPU-only build\); "
                                         r"use --device cpu$"):
        check_device("cuda")
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"CUDA support but sees no GPU"):
        check_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"there is no GPU 3: this machine has 1"):
        check_device("cuda:3")
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: False)
    with pytest.raises(ValueError, match=r"^--device mps: this torch .* has no MPS support"):
        check_device("mps")


@pytest.mark.parametrize("command", ["generate", "serve"])
@pytest.mark.parametrize("device, message", [("cuda", "no CUDA support"), ("mps", "no MPS support"),
                                             ("cdua", "not a device name; accepted: cpu, cuda, cuda:N, mps, xpu "
                                                      "(did you mean --device cuda?)")])
def test_generate_and_serve_refuse_a_device_in_one_line(tiny_dir, tmp_path, capsys, no_cuda_build, monkeypatch,
                                                        command, device, message):
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: False)
    args = [PROMPT, "--out", str(tmp_path / "out")] if command == "generate" else []
    assert main([command, *args, "--model", str(tiny_dir), "--device", device]) == 2
    line = _one_error_line(capsys.readouterr().err, command)
    assert f"error: --device {device}: " in line and message in line
    assert line.endswith("use --device cpu") or line.endswith("?)")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.skipif(torch.backends.cuda.is_built(), reason="this torch has CUDA: the real refusal needs a CPU-only one")
def test_cpu_only_torch_refuses_cuda_without_traceback(tmp_path):
    r = _run(["-m", "lumina_video.cli", "generate", PROMPT, "--device", "cuda", "--out", str(tmp_path)], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--device cuda: this torch" in _one_error_line(r.stderr, "generate")


# -- messages and hints ----------------------------------------------------------------------------
def test_bad_model_variable_is_named_with_its_value(tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LUMINA_VIDEO_MODEL", str(tmp_path / "nowhere"))
    assert main(["generate", PROMPT, "--out", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys.readouterr().err, "generate")
    assert f"$LUMINA_VIDEO_MODEL is '{tmp_path / 'nowhere'}'" in line and "not installed" not in line
    (tmp_path / "half").mkdir()
    monkeypatch.setenv("LUMINA_VIDEO_MODEL", str(tmp_path / "half"))
    assert main(["info"]) == 2
    line = _one_error_line(capsys.readouterr().err, "info")
    assert "$LUMINA_VIDEO_MODEL is" in line and "missing: model_index.json" in line
    monkeypatch.setenv("LUMINA_VIDEO_MODEL", str(tiny_dir))  # a good one is used
    assert main(["info", "--json"]) == 0 and json.loads(capsys.readouterr().out)["model"] == str(tiny_dir)


def test_export_hint_parses_as_the_positional_prompt(tmp_path):
    from lumina_video.generate import add_cli_arguments
    from lumina_video.training.export import try_command

    folder = tmp_path / "a run" / "pipeline"
    words = shlex.split(try_command(folder))
    assert words[:2] == ["lumina-video", "generate"]
    parser = _parser("generate")
    add_cli_arguments(parser)
    args = parser.parse_args(words[2:])
    assert (args.prompt, args.prompts, args.model) == (PROMPT, None, str(folder))
    with pytest.raises(SystemExit):  # the old hint's `--prompt` is no longer read as `--prompts FILE`
        parser.parse_args(["--model", str(folder), "--prompt", "..."])


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lumina-video {lumina_video.__version__}"
    with pytest.raises(SystemExit) as e:
        main(["info", "--version"])
    assert e.value.code == 0 and lumina_video.__version__ in capsys.readouterr().out


def test_testing_module_help_writes_no_folder(tmp_path):
    r = _run(["-m", "lumina_video.testing", "--help"], tmp_path)
    assert r.returncode == 0 and "usage:" in r.stdout and "FOLDER" in r.stdout.upper()
    assert list(tmp_path.iterdir()) == []


def test_manifest_json_error_points_at_the_column(tmp_path):
    from lumina_video.data.manifest import read_manifest

    good = '{"path": "a.mp4", "caption": "a red circle", "type": "video"}'
    bad = '{"path": "b.mp4", "caption": oops, "type": "video"}'
    path = tmp_path / "m.jsonl"
    path.write_text("\ufeff" + good + "\n" + bad + "\n", encoding="utf-8")  # a BOM is not an error
    with pytest.raises(ValueError, match=rf"m.jsonl:2: not valid JSON \(Expecting value at column "
                                         rf"{bad.index('oops') + 1}\)$"):
        read_manifest(path)
    path.write_text(good + "\n" + good[:-1] + "\n")  # cut off: the error is at the end of the line, not "column 1"
    with pytest.raises(ValueError, match=r"m.jsonl:2: not valid JSON \(.* at the end of the line\)$"):
        read_manifest(path)
    path.write_text(good + "\r\n" + good + "\r\n")
    assert len(read_manifest(path)) == 2


# -- guard rails -----------------------------------------------------------------------------------
def test_vocabulary_warnings():
    synthetic = dict(vocabulary="synthetic")
    assert info.prompt_warnings([PROMPT, "an orange triangle staying still on a white background"], synthetic) == []
    [w] = info.prompt_warnings("a red dog running to the right", synthetic)
    assert "'dog', 'running' not in the model's synthetic vocabulary" in w
    [w] = info.prompt_warnings("circle red a", synthetic)
    assert "not a caption of the synthetic grammar" in w
    custom = dict(vocabulary=["Cat", "sleeping"])
    assert info.prompt_warnings("cat sleeping", custom) == [] and "'dog'" in info.prompt_warnings("dog", custom)[0]
    assert info.prompt_warnings("anything at all", {}) == []
    many = info.prompt_warnings([f"word{i}" for i in "abcdefg"], synthetic, limit=5)
    assert len(many) == 6 and many[-1] == "... and 2 more prompts outside the vocabulary"
    with pytest.raises(ValueError, match="must be \"synthetic\" or a list of words"):
        info.model_vocabulary(dict(vocabulary=3))


def test_size_warnings_and_the_memory_estimate(tiny_dir):
    from lumina_video.pipeline import LuminaVideoPipeline

    defaults = dict(height=128, width=128, num_frames=16)
    assert info.size_warnings(defaults, 256, 256, 32) == []  # up to twice the trained size: quiet
    [w] = info.size_warnings(defaults, 128, 512, 16)
    assert "128x512 px is 4x the size the model was trained at (128x128)" in w
    assert "48 frames is 3x the frames" in info.size_warnings(defaults, 64, 64, 48)[0]
    pipe = LuminaVideoPipeline.from_pretrained(tiny_dir)
    small, big = (info.memory_estimate(pipe, 1, s, s, 16)["total"] for s in (256, 1024))
    assert 12 < big / small <= 17  # about proportional to the pixels (16x) once the decoder dominates
    one, two = (info.memory_estimate(pipe, b, 256, 256, 16, guided=False)["transformer"] for b in (1, 2))
    assert two == 2 * one and info.memory_estimate(pipe, 1, 256, 256, 16)["transformer"] == two  # guided: 2 rows


def test_generate_warns_outside_the_vocabulary_and_the_trained_size(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "a cat playing the piano", "--model", str(tiny_dir), "--out", str(out),
                 "--height", "96", "--width", "96", "--no-progress", *FAST]) == 0
    err = capsys.readouterr().err
    assert "lumina-video generate: warning: prompt 'a cat playing the piano': 'cat', 'playing', 'piano' not in" in err
    assert "warning: 96x96 px is 3x the size the model was trained at (32x32)" in err
    assert main(["generate", PROMPT, "--model", str(tiny_dir), "--out", str(out), "--no-progress", *FAST]) == 0
    assert "warning" not in capsys.readouterr().err


def test_absurd_sizes_are_refused_before_any_compute(tiny_dir, tmp_path, capsys, monkeypatch):
    from lumina_video.pipeline import LuminaVideoPipeline

    def no_compute(*args, **kwargs):
        raise AssertionError("the pipeline ran")

    monkeypatch.setattr(LuminaVideoPipeline, "__call__", no_compute)
    out = tmp_path / "out"
    # over the RoPE table (the pipeline's own check): 4096 px is 256 height tokens of a 128-long table
    assert main(["generate", PROMPT, "--model", str(tiny_dir), "--out", str(out), "--height", "4096",
                 "--width", "4096"]) == 2
    assert "RoPE table allows at most 128" in _one_error_line(capsys.readouterr().err, "generate")
    # within the table, but over the device's memory (made small here): refused with the estimate
    monkeypatch.setattr("lumina_video.devices.device_memory", lambda device: 2**30)
    assert main(["generate", PROMPT, "--model", str(tiny_dir), "--out", str(out), "--height", "1024",
                 "--width", "1024", "--num-frames", "16"]) == 2
    line = _one_error_line(capsys.readouterr().err, "generate")
    assert "1 x 1024x1024 px x 16 frames needs about" in line and "more than the 1.0 GiB of cpu" in line
    assert "trained at 32x32 px, 8 frames" in line and not any(out.iterdir())


def test_info_lists_defaults_presets_sizes_and_vocabulary(capsys, tiny_dir):
    from lumina_video.sampling import PRESETS

    assert main(["info"]) == 0  # the bundled demo model
    text = capsys.readouterr().out
    index = json.loads((REPO / "src/lumina_video/demo_model/model_index.json").read_text())["defaults"]
    assert "(the bundled demo model)" in text
    assert f"trained at (the defaults): {index['height']}x{index['width']} px, {index['num_frames']} frames" in text
    assert f"warns above {2 * index['height']}x{2 * index['width']} px" in text
    assert all(f"  {name}: for " in text for name in PRESETS)
    assert "colours: red, green, blue" in text and all(p in text for p in index["example_prompts"])
    assert main(["info", str(tiny_dir), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["trained"] == dict(height=32, width=32, num_frames=8, fps=8.0) and not d["bundled_demo_model"]
    assert d["vocabulary"]["name"] == "synthetic" and "triangle" in d["vocabulary"]["words"]
    assert d["rope_max"]["height"] == d["transformer"]["rope_table"][1] * 2 * 8  # finest patch 2, VAE 8x


# -- generate's run options ------------------------------------------------------------------------
def test_random_seed_is_reported_and_repeats(tiny_dir, tmp_path, capsys, monkeypatch):
    import lumina_video.data.video_io as video_io
    from lumina_video.generate import SEED_HELP

    assert "default: a random seed, as in the Python API" in SEED_HELP  # one convention, said in --help
    # the frames handed to the one video writer (H.264 files are not bit-reproducible, the frames are)
    written, write_video = [], video_io.write_video
    monkeypatch.setattr(video_io, "write_video", lambda path, frames, fps: (written.append(frames.copy()),
                                                                             write_video(path, frames, fps)))
    base = ["--model", str(tiny_dir), "--no-progress", "--steps", "2", "--num-frames", "8", "--single-scale"]
    assert main(["generate", PROMPT, "--out", str(tmp_path / "a"), *base]) == 0
    printed = capsys.readouterr().out
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "a").glob("*.json")]
    seed = record["seed"]
    assert isinstance(seed, int) and f"seed {seed} (random; --seed repeats it)" in printed
    assert record["video"] == f"a-red-circle-moving-to-the-right-s{seed}.mp4"
    assert main(["generate", PROMPT, "--out", str(tmp_path / "b"), "--seed", str(seed), *base]) == 0
    again = json.loads((tmp_path / "b" / record["video"].replace(".mp4", ".json")).read_text())
    assert again["seed"] == seed and "(random;" not in capsys.readouterr().out
    assert len(written) == 2 and np.array_equal(written[0], written[1])  # the same noise, the same video


def test_existing_outputs_are_not_overwritten_silently(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    run = ["generate", PROMPT, "--model", str(tiny_dir), "--out", str(out), "--name", "clip", "--seed", "1",
           "--no-progress", *FAST]
    assert main(run) == 0
    first = (out / "clip.json").read_text()
    assert main(run) == 0
    assert f"{out / 'clip'}.mp4 exists: writing clip-1.mp4 instead (--overwrite replaces it)" in capsys.readouterr().out
    assert (out / "clip.json").read_text() == first
    assert main(run + ["--overwrite"]) == 0
    assert f"replacing {out / 'clip'}.mp4 (--overwrite)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["clip-1.json", "clip-1.mp4", "clip.json", "clip.mp4"]


def test_prompt_bar_threads_and_no_progress(tiny_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"{PROMPT}\na blue square moving up\n")
    threads = torch.get_num_threads()
    try:
        assert main(["generate", "--prompts", str(prompts), "--model", str(tiny_dir), "--out", str(tmp_path / "a"),
                     "--threads", "1", *FAST]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "prompt 1/2" in err and "prompt 2/2" in err and "denoising" in err
    assert main(["generate", "--prompts", str(prompts), "--model", str(tiny_dir), "--out", str(tmp_path / "b"),
                 "--no-progress", *FAST]) == 0
    assert capsys.readouterr().err == ""
    assert main(["generate", PROMPT, "--model", str(tiny_dir), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_generate_prints_no_third_party_noise(tmp_path):
    """The real command with the bundled demo model, in a fresh process: stderr holds nothing but our own."""
    r = _run(["-m", "lumina_video.cli", "generate", PROMPT, "--out", str(tmp_path / "out"), "--no-progress",
              "--height", "64", "--width", "64", *FAST], tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    for noise in ("accelerate", "Loading weights", "Warning", "warn(", "site-packages", "it/s]"):
        assert noise not in r.stderr, r.stderr
    assert r.stderr.strip() == "" and "done: 1 video(s)" in r.stdout


# -- the training quick start ----------------------------------------------------------------------
def test_training_quick_start_runs_as_written(tmp_path, monkeypatch, capsys):
    """The quick start's commands with configs/quickstart.yaml as shipped (only its step counts and
    batches made tiny): synth, train, export a checkpoint, then the hint export prints, run as printed."""
    from lumina_video.pipeline import LuminaVideoPipeline

    monkeypatch.chdir(tmp_path)  # a fresh folder standing for the repository's root (the config's paths)
    for name in ("src", "configs"):
        (tmp_path / name).symlink_to(REPO / name)
    assert main(["synth", "data/quickstart", "--n", "6", "--size", "64", "--frames", "17", "--fps", "8",
                 "--image-fraction", "0.34", "--no-progress"]) == 0
    batches = [f"stages.{s}.tasks.{t}.global_batch=1" for s, tasks in ((0, 2), (1, 4)) for t in range(tasks)]
    assert main(["train", "configs/quickstart.yaml", "stages.0.steps=2", "stages.1.steps=1", *batches,
                 "--no-progress"]) == 0
    assert "trained 3 steps; model: runs/quickstart/final" in capsys.readouterr().out
    pipe = LuminaVideoPipeline.from_pretrained(tmp_path / "runs" / "quickstart" / "final")
    assert pipe.transformer.in_channels == pipe.vae.latent_channels == 4 and pipe.text_encoder.dim == 384
    checkpoint = sorted((tmp_path / "runs" / "quickstart" / "checkpoints").glob("step_*"))[-1]
    assert main(["export", str(checkpoint)]) == 0
    hint = shlex.split(capsys.readouterr().out.split("try: ", 1)[1])
    assert hint[:3] == ["lumina-video", "generate", PROMPT]
    assert main([*hint[1:], "--out", "out", "--no-progress", *FAST]) == 0
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 1
