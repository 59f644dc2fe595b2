"""Sampler semantics: time-aware values, presets, guidance, analytic Euler answers, errors."""
from collections import Counter

import pytest
import torch

from lumina_video.sampling import PRESETS, SamplingConfig, TimeAware, guide, sample, step_plan


def test_time_aware_walks_thresholds_in_order():
    v = TimeAware.parse((2, (0.05, 6)))
    assert [v(t) for t in (0.0, 0.049, 0.05, 0.9)] == [2, 2, 6, 6]
    g = TimeAware.parse((20, (0.2, 0)))
    assert g(0.19) == 20 and g(0.2) == 0
    p = TimeAware.parse(("2x4", (0.03, "2x2"), (0.125, "1x2")), lambda s: s)
    assert [p(t) for t in (0.0, 0.03, 0.1, 0.125, 1.0)] == ["2x4", "2x2", "2x2", "1x2", "1x2"]
    assert TimeAware.parse(7.5)(0.3) == 7.5


def test_released_multiscale_step_split():
    """REFERENCE.md §3: the f24 multi-scale preset spends 30 / 24 / 15 of its 69 steps at (2,4,4)/(2,2,2)/(1,2,2)."""
    cfg = SamplingConfig.preset("f24F96R960-MultiScale")
    assert cfg.steps == 69 and cfg.shift == 24 and cfg.renorm == 2
    counts = Counter(step.patch for step in step_plan(cfg))
    assert counts == {(2, 4): 30, (2, 2): 24, (1, 2): 15}
    plan = step_plan(cfg)
    assert plan[0].guidance == 20 and plan[-1].guidance == 0
    assert plan[0].neg_motion == 2 and plan[-1].neg_motion == 6 and plan[0].motion == 6


def test_step_plan_is_typed_and_covers_the_grid():
    cfg = SamplingConfig.preset("f24F96R960").replace(steps=5)
    plan = step_plan(cfg)
    assert [step.index for step in plan] == list(range(5)) and plan[0].t == 0.0 and plan[-1].t_next == 1.0
    assert all(a.t_next == b.t for a, b in zip(plan, plan[1:])) and all(step.dt > 0 for step in plan)
    assert plan[0].patch == (1, 2) and plan[0]._fields == ("index", "t", "t_next", "patch", "guidance", "motion",
                                                           "neg_motion")
    assert cfg.is_guided() and not cfg.replace(guidance=0.0).is_guided()
    assert cfg.replace(guidance=(0.0, (0.5, 3.0))).is_guided()  # guided later in the run


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_roundtrip_official_format(name):
    cfg = SamplingConfig.preset(name)
    assert SamplingConfig.from_official(cfg.to_official()) == cfg
    assert cfg.is_multiscale() == name.endswith("MultiScale")
    if name.startswith("f16"):
        assert cfg.renorm is None and cfg.shift == 8


def test_guide_and_renorm_known_values():
    pos, neg = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 1.0]])
    torch.testing.assert_close(guide(pos, neg, 2.0), torch.tensor([[7.0, 10.0]]))
    capped = guide(pos, neg, 2.0, renorm=2.0)  # ||pos|| = 5: capped at norm 10, same direction
    assert torch.linalg.vector_norm(capped).item() == pytest.approx(10.0, rel=1e-6)
    torch.testing.assert_close(capped / capped.norm(), torch.tensor([[7.0, 10.0]]) / torch.tensor([[7.0, 10.0]]).norm())
    torch.testing.assert_close(guide(pos, neg, 0.5, renorm=2.0), pos + 0.5 * (pos - neg))  # under the cap


class ExactField(torch.nn.Module):
    """The exact velocity of the linear path towards one data point x1: u(x, t) = (x1 - x) / (1 - t)."""

    def __init__(self, x1):
        super().__init__()
        self.x1 = x1
        self.calls = []

    def forward(self, x, t, cap_feats, cap_mask, motion_score, patch_size, f_patch_size):
        self.calls.append(dict(batch=x.shape[0], t=t[0].item(), motion=motion_score.tolist(),
                               patch=(f_patch_size, patch_size), caps=cap_feats[:, 0, 0].tolist()))
        b = x.shape[0] // self.x1.shape[0]
        return (self.x1.repeat(b, 1, 1, 1, 1) - x) / (1 - t).view(-1, 1, 1, 1, 1)


@pytest.mark.parametrize("steps,shift", [(1, 1.0), (5, 3.0), (20, 24.0)])
def test_euler_lands_on_data_for_the_exact_field(steps, shift):
    """Euler integrates the straight path exactly, whatever the grid."""
    x1 = torch.randn(2, 4, 2, 8, 8)
    cfg = SamplingConfig(steps=steps, shift=shift, guidance=0.0, patch="1x2")
    out = sample(ExactField(x1), torch.randn_like(x1), torch.randn(2, 3, 5), torch.ones(2, 3), cfg)
    torch.testing.assert_close(out, x1, atol=1e-4, rtol=1e-4)


def test_identical_branches_make_guidance_a_no_op():
    x1 = torch.randn(1, 4, 2, 8, 8)
    cfg = SamplingConfig(steps=6, shift=2.0, guidance=5.0, renorm=None, motion=3, neg_motion=3)
    caps = torch.ones(2, 3, 5)
    out = sample(ExactField(x1), torch.randn_like(x1), caps, torch.ones(2, 3), cfg)
    torch.testing.assert_close(out, x1, atol=1e-4, rtol=1e-4)


def test_negative_branch_skipped_when_scale_is_zero_and_conditions_follow_schedule():
    x1 = torch.randn(1, 4, 4, 8, 8)
    model = ExactField(x1)
    cfg = SamplingConfig.preset("f24F96R960-MultiScale").replace(steps=30)
    caps = torch.stack([torch.full((3, 5), 1.0), torch.full((3, 5), -1.0)])  # row 0 pos, row 1 neg
    sample(model, torch.randn_like(x1), caps, torch.ones(2, 3), cfg)
    assert len(model.calls) == 30
    for call in model.calls:
        guided = call["t"] < 0.2
        assert call["batch"] == (2 if guided else 1)
        assert call["caps"] == ([1.0, -1.0] if guided else [1.0])
        if guided:
            assert call["motion"] == [6.0, 2.0 if call["t"] < 0.05 else 6.0]
        else:
            assert call["motion"] == [6.0]
        expected_patch = (2, 4) if call["t"] < 0.03 else (2, 2) if call["t"] < 0.125 else (1, 2)
        assert call["patch"] == expected_patch


def test_callback_and_progress():
    x1 = torch.randn(1, 4, 2, 8, 8)
    seen = []
    sample(ExactField(x1), torch.randn_like(x1), torch.ones(1, 3, 5), torch.ones(1, 3),
           SamplingConfig(steps=4, guidance=0, shift=1), progress=True, callback=lambda k, t, x: seen.append((k, t)))
    assert [k for k, _ in seen] == [0, 1, 2, 3] and seen[1][1] == pytest.approx(0.25)


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad,match", [
    (dict(P="1x2", step=70), r"missing keys \['ts'\]"),
    (dict(P="1x2", step=70, ts=8, cfg=4, bogus=1), r"unknown keys \['bogus'\]"),
    (dict(P="3y2", step=70, ts=8), r"bad patch combination '3y2'"),
    (dict(P="1x2", step=1, ts=8), r"integer >= 2"),
    (dict(P="1x2", step=70, ts=8, cfg=(5, 0.3)), r"malformed time-aware guidance"),
    (dict(P="1x2", step=70, ts=8, cfg=(5, (1.5, 0))), r"thresholds are model times in \[0, 1\]"),
    (dict(P="1x2", step=70, ts=-1), r"shift must be a positive number"),
    (dict(P="1x2", step=70, ts=8, renorm="yes"), r"renorm"),
    (["1x2"], r"is a dict"),
])
def test_malformed_official_presets(bad, match):
    with pytest.raises(ValueError, match=match):
        SamplingConfig.from_official(bad)


def test_unknown_preset_and_bad_inputs(official_tiny):
    with pytest.raises(ValueError, match="unknown sampling preset 'nope'; available: f24F96R960"):
        SamplingConfig.preset("nope")
    cfg = SamplingConfig.preset("f24F96R960-MultiScale").replace(steps=2)
    with pytest.raises(ValueError, match=r"frames 3 not divisible by the temporal patch 2"):
        sample(official_tiny, torch.randn(1, 4, 3, 16, 16), torch.randn(2, 8, 48), torch.ones(2, 8), cfg)
    with pytest.raises(ValueError, match=r"expected 2 \(rows \[0:1\] the prompts"):
        sample(official_tiny, torch.randn(1, 4, 4, 16, 16), torch.randn(1, 8, 48), torch.ones(1, 8), cfg)
    with pytest.raises(ValueError, match=r"patch 1x4 .* which the model does not have"):
        sample(official_tiny, torch.randn(1, 4, 4, 16, 16), torch.randn(2, 8, 48), torch.ones(2, 8),
               cfg.replace(patch="1x4"))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        SamplingConfig(steps=-3)
