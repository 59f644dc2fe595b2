"""Official checkpoint folder -> this project's format."""
import subprocess
import sys
import types

import pytest
import torch

from lumina_video.convert import convert, infer_config
from lumina_video.model import MultiScaleNextDiT
from lumina_video.model.blocks import ffn_hidden_dim


class NotAllowed:
    pass


def official_folder(tmp_path, reference, fmt="pth", args=None):
    meta, ref = reference
    sd = {k[3:]: v for k, v in ref.items() if k.startswith("sd/")}
    d = tmp_path / "official"
    d.mkdir()
    if fmt == "pth":  # as saved from a compiled model
        compiled = {k.replace("layers.", "_orig_mod.layers."): v for k, v in sd.items()}
        torch.save(compiled, d / "consolidated.00-of-01.pth")
    else:
        from safetensors.torch import save_file
        save_file(sd, str(d / "consolidated.00-of-01.safetensors"))
    cfg = meta["model_config"]
    ns = types.SimpleNamespace(model="NextDiT_tiny", qk_norm=True, patch_sizes=cfg["all_patch_size"],
                               f_patch_sizes=cfg["all_f_patch_size"], rope_theta=cfg["rope_theta"],
                               t_scale=cfg["t_scale"], motion_scale=cfg["motion_scale"], precision="bf16")
    torch.save(args if args is not None else ns, d / "model_args.pth")
    return d


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_convert_roundtrip_gives_official_outputs(tmp_path, reference, fmt):
    meta, ref = reference
    src = official_folder(tmp_path, reference, fmt)
    cfg = convert(src, tmp_path / "out")
    for k, v in meta["model_config"].items():
        assert cfg[k] == v, k
    model = MultiScaleNextDiT.from_pretrained(tmp_path / "out")
    t, cap, mask, motion = (ref[f"in/common/{k}"] for k in ("t", "cap_feats", "cap_mask", "motion_score"))
    with torch.no_grad():
        out = model(ref["in/video/x"], t, cap, mask, motion, 4, 2)
    assert (out - ref["out/video_p4_pf2"]).abs().max() < 1e-4


def test_convert_cli_bf16(tmp_path, reference):
    src = official_folder(tmp_path, reference)
    r = subprocess.run([sys.executable, "-m", "lumina_video.cli", "convert", str(src), str(tmp_path / "o"),
                        "--dtype", "bf16"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "converted: dim 128, 2 layers" in r.stdout
    assert MultiScaleNextDiT.from_pretrained(tmp_path / "o").dtype == torch.bfloat16


def test_model_args_with_disallowed_type_is_refused(tmp_path, reference):
    src = official_folder(tmp_path, reference, args=types.SimpleNamespace(model=NotAllowed()))
    with pytest.raises(ValueError, match=r"model_args.pth holds a type that is not allowed: .*NotAllowed"):
        convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_pieces_are_named(tmp_path, reference):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="expected one of consolidated.00-of-01.safetensors"):
        convert(tmp_path / "empty", tmp_path / "out")


def test_infer_config_other_sizes_and_defaults():
    model = MultiScaleNextDiT(all_patch_size=[2, 4], all_f_patch_size=[1, 2], in_channels=8, dim=96, n_layers=3,
                              n_heads=6, n_kv_heads=3, multiple_of=48, cap_feat_dim=40, qk_norm=False)
    cfg = infer_config(model.state_dict(), {})
    assert (cfg["dim"], cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"], cfg["in_channels"]) == (96, 3, 6, 3, 8)
    assert cfg["all_patch_size"] == [2, 4] and cfg["all_f_patch_size"] == [1, 2] and cfg["qk_norm"] is False
    assert ffn_hidden_dim(96, cfg["multiple_of"], cfg["ffn_dim_multiplier"]) == ffn_hidden_dim(96, 48, None)
    assert cfg["rope_theta"] == 10000.0 and cfg["t_scale"] == 1.0  # the official loader's defaults
    MultiScaleNextDiT.from_config(cfg, device="meta").load_state_dict(model.state_dict(), assign=True)
    # a narrower FFN than the default formula gives is reproduced through the multiplier
    narrow = MultiScaleNextDiT(dim=96, n_layers=1, n_heads=6, n_kv_heads=6, multiple_of=1, ffn_dim_multiplier=0.37,
                               cap_feat_dim=40, in_channels=4)
    cfg = infer_config(narrow.state_dict(), {})
    width = narrow.layers[0].feed_forward.w1.out_features
    assert ffn_hidden_dim(96, cfg["multiple_of"], cfg["ffn_dim_multiplier"]) == width
