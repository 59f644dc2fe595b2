"""Training config: YAML + overrides, REFERENCE.md §5 defaults, clear errors at start naming the key or file."""
from pathlib import Path

import pytest
import yaml

from lumina_video.cli import main as cli_main
from lumina_video.training.config import ConfigError, dump_config, load_config
from lumina_video.training.trainer import train
from train_support import text_encoder, tiny_config, write_latent_manifest

CONFIGS = Path(__file__).parents[1] / "configs"


def write_yaml(path, manifest, **extra):
    data = {
        "run_dir": str(path.parent / "run"),
        "model": {"preset": "Tiny", "args": {"in_channels": 4, "cap_feat_dim": 384}},
        "optim": {"lr": "1e-4"},  # YAML 1.1 reads this as a string; it means a number
        "stages": [{"steps": 2, "tasks": [
            {"media": "video", "pt": 2, "p": 2, "sources": [{"manifest": str(manifest)}], "latents": "extracted"},
            {"media": "image", "sources": [{"manifest": str(manifest), "system_prompt": "Make an image: "}]},
        ]}],
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_overrides_and_round_trip(tmp_path):
    cfg = load_config(write_yaml(tmp_path / "c.yaml", "m.jsonl"),
                      ["stages.0.tasks.0.global_batch=4", "ema.every=5", "distributed.compile=true"])
    # REFERENCE.md §5 recipe defaults
    optim = cfg.optim
    assert (optim.weight_decay, optim.betas, optim.eps, optim.grad_clip) == (0.0, (0.9, 0.95), 1e-15, 2.0)
    assert (cfg.ema.decay, cfg.caption_dropout, cfg.vd_weight, cfg.t_sampling) == (0.99, 0.2, 1.0, "uniform")
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.ema.every == 5 and cfg.distributed.compile is True
    video, image = cfg.stages[0].tasks
    assert video.global_batch == 4 and video.name == "video-2x2" and video.shift == 4.0  # recipe shift
    assert image.name == "image-1x2" and image.shift == 1.0 and image.num_frames == 1
    assert cfg.stages[0].name == "stage0"
    # the resolved config reads back to the same config
    again = tmp_path / "resolved.yaml"
    again.write_text(dump_config(cfg))
    assert load_config(again) == cfg


@pytest.mark.parametrize("override, key", [
    ("optim.lrr=1", "optim.lrr"),
    ("stages.0.tasks.1.sizee=64", "stages.0.tasks.1.sizee"),
    ("stages.0.tasks.0.sources.0.promt=x", "stages.0.tasks.0.sources.0.promt"),
    ("learning_rate=1", "learning_rate"),
])
def test_unknown_key_is_named(tmp_path, override, key):
    with pytest.raises(ConfigError, match=rf"unknown config key '{key}'"):
        load_config(write_yaml(tmp_path / "c.yaml", "m.jsonl"), [override])


@pytest.mark.parametrize("override, message", [
    ("optim.lr=fast", "'optim.lr' must be float"),
    ("stages.0.tasks.0.media=audio", "'stages.0.tasks.0.media' is 'audio'"),
    ("stages.0.tasks.0.size=100", "'stages.0.tasks.0.size' must be a positive multiple of 32"),
    ("stages.0.tasks.1.p=4", "no recipe time shift for image with \\(pt=1, p=4\\)"),
    ("stages.5.steps=3", "'stages.5' needs a list index below 1"),
    ("t_sampling=cosine", "'t_sampling' is 'cosine'"),
])
def test_bad_values_are_named(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_yaml(tmp_path / "c.yaml", "m.jsonl"), [override])


def test_patch_size_the_model_lacks_fails_at_start(tmp_path):
    manifest = write_latent_manifest(tmp_path, 2, media="video")
    cfg = tiny_config(tmp_path / "run", {"video-2x4": manifest})
    cfg.model.args.update(all_patch_size=[2, 2], all_f_patch_size=[1, 2])
    with pytest.raises(ConfigError, match=r"task 'video-2x4' .*patch size \(pt=2, p=4\), which the model lacks"):
        train(cfg, text_encoder=text_encoder(), progress=False)
    assert not (tmp_path / "run").exists()  # nothing written


def test_missing_data_file_fails_at_start(tmp_path):
    manifest = write_latent_manifest(tmp_path, 2, media="video")
    cfg = tiny_config(tmp_path / "run", {"video-1x2": manifest})
    second = tiny_config(tmp_path / "run", {"video-2x2": tmp_path / "nowhere/later.jsonl"}).stages[0]
    cfg.stages.append(second)  # a missing file in a *later* stage also fails before step 1
    with pytest.raises(FileNotFoundError, match=r"data file .*nowhere/later.jsonl does not exist \(stages.1.tasks.0"):
        train(cfg, text_encoder=text_encoder(), progress=False)
    assert not (tmp_path / "run").exists()  # nothing written


def test_batch_that_does_not_split_fails_at_start(tmp_path):
    manifest = write_latent_manifest(tmp_path, 4, media="video")
    cfg = tiny_config(tmp_path / "run", {"video-1x2": manifest})
    cfg.stages[0].tasks[0].global_batch, cfg.stages[0].tasks[0].micro_batch = 3, 2
    with pytest.raises(ConfigError, match="not divisible by micro_batch=2"):
        train(cfg, text_encoder=text_encoder(), progress=False)
    cfg.stages[0].tasks[0].global_batch, cfg.stages[0].tasks[0].micro_batch = 8, 1
    with pytest.raises(ConfigError, match="no batching group .* holds global_batch=8"):
        train(cfg, text_encoder=text_encoder(), progress=False)


def test_cli_reports_config_errors(tmp_path, capsys):
    path = write_yaml(tmp_path / "c.yaml", "m.jsonl")
    assert cli_main(["train", str(path), "optim.lrr=1"]) == 2
    assert "unknown config key 'optim.lrr'" in capsys.readouterr().err
    assert cli_main(["train", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml does not exist" in capsys.readouterr().err


def config_class(path):
    """The training command a shipped config is for, by its name: (dataclass, None) or (None, loader)."""
    from lumina_video.training.audio_vae_trainer import AudioVAETrainConfig
    from lumina_video.training.v2a_trainer import V2ATrainConfig
    from lumina_video.training.vae_trainer import VAETrainConfig
    from lumina_video.training.vocoder_trainer import VocoderTrainConfig

    name = path.name
    for key, cls in (("v2a", V2ATrainConfig), ("audio_vae", AudioVAETrainConfig), ("vocoder", VocoderTrainConfig),
                     ("vae", VAETrainConfig)):
        if key in name:
            return cls
    return None


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.rglob("*.yaml") if config_class(p) is None),
                         ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.stages and all(t.sources for s in cfg.stages for t in s.tasks)


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.rglob("*.yaml") if config_class(p) is not None),
                         ids=lambda p: p.name)
def test_shipped_configs_of_the_other_trainers_have_known_keys(path):
    """VAE, audio VAE, vocoder and V2A configs: every key known and typed (their data is made by a recipe)."""
    import yaml

    from lumina_video.configs import from_dict

    cfg = from_dict(config_class(path), yaml.safe_load(path.read_text()))
    assert cfg.steps > 0


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("demo_vae*.yaml")), ids=lambda p: p.name)
def test_shipped_vae_configs_have_known_keys(path):
    """Video VAE configs (`lumina-video train-vae`): frame counts the VAE round-trips."""
    import yaml

    from lumina_video.configs import from_dict
    from lumina_video.training.vae_trainer import VAETrainConfig

    cfg = from_dict(VAETrainConfig, yaml.safe_load(path.read_text()))
    assert cfg.steps > 0 and (cfg.num_frames - 1) % 8 == 0


def test_default_system_prompt_is_the_text_encoders_own():
    """Training and generation must prefix the same system prompt."""
    from lumina_video.encoders.text import TextEncoder
    from lumina_video.training.config import DEFAULT_SYSTEM_PROMPT, TrainConfig, resolve_system_prompt

    minilm = TextEncoder.from_pretrained()
    cfg = resolve_system_prompt(TrainConfig(), minilm)
    assert cfg.default_system_prompt == minilm.system_prompt != DEFAULT_SYSTEM_PROMPT
    cfg = resolve_system_prompt(TrainConfig(default_system_prompt="Mine: "), minilm)
    assert cfg.default_system_prompt == "Mine: "
    cfg = resolve_system_prompt(TrainConfig(), object())  # a stand-in encoder without one: the released prompt
    assert cfg.default_system_prompt == DEFAULT_SYSTEM_PROMPT
