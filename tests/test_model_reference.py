"""The model and the sampler compute the official function (tests/data, from the official code)."""
import pytest
import torch

from lumina_video.model import MultiScaleNextDiT_2B_GQA, count_params
from lumina_video.sampling import SamplingConfig, sample

MODEL_CASES = ["video_p2_pf1", "video_p2_pf2", "video_p4_pf2", "ragged_p2_pf1", "ragged_p2_pf2", "ragged_p4_pf2"]


def common(ref):
    return [ref[f"in/common/{k}"] for k in ("t", "cap_feats", "cap_mask", "motion_score")]


@pytest.mark.parametrize("name", MODEL_CASES)
def test_model_matches_official(reference, official_tiny, name):
    meta, ref = reference
    case = meta["cases"][name]
    t, cap_feats, cap_mask, motion = common(ref)
    x = ref[case["x"]] if case["batched_tensor"] else [ref[k] for k in case["x"]]
    with torch.no_grad():
        out = official_tiny(x, t, cap_feats, cap_mask, motion, case["patch_size"], case["f_patch_size"])
    if case["batched_tensor"]:
        assert out.shape == x.shape
        assert (out - ref[f"out/{name}"]).abs().max() < 1e-4
    else:
        assert isinstance(out, list) and len(out) == 2
        for i, item in enumerate(out):
            assert item.shape == x[i].shape
            assert (item - ref[f"out/{name}/{i}"]).abs().max() < 1e-4


def test_sampler_matches_official(reference, official_tiny):
    meta, ref = reference
    config = SamplingConfig.from_official(meta["cases"]["sample"]["preset"])
    out = sample(official_tiny, ref["in/sample/z"], ref["in/sample/cap_feats"], ref["in/sample/cap_mask"], config)
    assert out.shape == ref["out/sample"].shape
    assert (out - ref["out/sample"]).abs().max() < 1e-3


def test_param_count_matches_reference(reference, official_tiny):
    meta, _ = reference
    assert count_params(official_tiny) == meta["n_params"]


def test_2b_preset_has_official_keys_and_size():
    with torch.device("meta"):
        model = MultiScaleNextDiT_2B_GQA()
    assert count_params(model) == 1_771_364_672
    keys = set(model.state_dict())
    assert len(keys) == 583
    assert list(model.buffers()) == []
    expected = {"pad_token", "cap_embedder.0.weight", "cap_embedder.0.bias", "cap_embedder.1.weight",
                "cap_embedder.1.bias"}
    for emb in ("t_embedder", "motion_embedder"):
        expected |= {f"{emb}.mlp.{i}.{w}" for i in (0, 2) for w in ("weight", "bias")}
    for k in ("2-1", "2-2", "4-2"):
        expected |= {f"all_x_embedder.{k}.{w}" for w in ("weight", "bias")}
        expected |= {f"all_final_layer.{k}.{m}.{w}" for m in ("linear", "adaLN_modulation.1")
                     for w in ("weight", "bias")}
    for i in range(24):
        a = f"layers.{i}.attention."
        expected |= {a + "gate"} | {a + f"{w}.weight" for w in ("wq", "wk", "wv", "wo", "wk_y", "wv_y")}
        expected |= {a + f"{n}.{w}" for n in ("q_norm", "k_norm", "ky_norm") for w in ("weight", "bias")}
        expected |= {f"layers.{i}.feed_forward.{w}.weight" for w in ("w1", "w2", "w3")}
        expected |= {f"layers.{i}.{n}.weight" for n in ("attention_norm1", "attention_norm2", "ffn_norm1",
                                                          "ffn_norm2", "attention_y_norm")}
        expected |= {f"layers.{i}.adaLN_modulation.1.{w}" for w in ("weight", "bias")}
    assert keys == expected
    sd = model.state_dict()
    assert sd["layers.0.attention.wk.weight"].shape == (8 * 144, 2304)
    assert sd["layers.0.attention.wk_y.weight"].shape == (8 * 144, 2304)
    assert sd["layers.0.feed_forward.w1.weight"].shape == (6144, 2304)
    assert sd["all_x_embedder.4-2.weight"].shape == (2304, 2 * 4 * 4 * 16)
    assert sd["all_final_layer.2-1.adaLN_modulation.1.weight"].shape == (2304, 1024)
    assert sd["layers.0.adaLN_modulation.1.weight"].shape == (4 * 2304, 1024)
