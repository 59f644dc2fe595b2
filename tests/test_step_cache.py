"""The schedule-aware step cache (sampling/step_cache.py) and the forward counts (sampling/forwards.py):
stage resets on a three-patch schedule whose guidance switches off, bit-identity at threshold 0, the
last step always computed, forward counts known from the schedule, per-prompt decisions."""
import pytest
import torch

from lumina_video.sampling import ForwardCounts, SamplingConfig, StepCache, parse_step_cache, sample, step_plan

PATCH_SCALE = {(2, 4): 1.0, (2, 2): 1.3, (1, 2): 0.7}


class SmoothField(torch.nn.Module):
    """A row-independent, smooth velocity that depends on the patch, the caption and the motion score (so
    a velocity reused across patches or branches would be wrong):
        v = s(P) (c sin(3 x) - x) / (1.05 - t) + 0.05 motion,   c = cap_feats[:, 0, 0] per row.
    Records every call's patch, rows, input shape and time."""

    patch_shapes = list(PATCH_SCALE)

    def __init__(self):
        super().__init__()
        self.calls = []

    def has_patch(self, patch_size, f_patch_size):
        return (f_patch_size, patch_size) in PATCH_SCALE

    def forward(self, x, t, cap_feats, cap_mask, motion_score, patch_size, f_patch_size):
        patch = (f_patch_size, patch_size)
        self.calls.append(dict(patch=patch, rows=x.shape[0], shape=tuple(x.shape[1:]), t=float(t[0])))
        view = lambda v: v.view(-1, 1, 1, 1, 1)  # noqa: E731
        return PATCH_SCALE[patch] * (view(cap_feats[:, 0, 0]) * torch.sin(3 * x) - x) / view(1.05 - t) \
            + 0.05 * view(motion_score)


def demo_like_schedule(steps=30):
    """Three patch sizes, guidance switching off inside the last one, a negative-motion switch in the first
    (the bundled demo model's default sampling)."""
    return SamplingConfig(steps=steps, shift=4.0, guidance=(4.0, (0.6, 0.0)), renorm=2.0, motion=1.5,
                          neg_motion=(0.5, (0.05, 1.5)), patch=("2x4", (0.2, "2x2"), (0.5, "1x2")))


def inputs(b=2, shape=(4, 4, 16, 16), seed=0):
    """(noise, caption features, caption mask) of b prompts and their negative prompts."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, *shape, generator=g), torch.randn(2 * b, 3, 5, generator=g), torch.ones(2 * b, 3)


def stage_of(step):
    return (tuple(step.patch), step.guidance != 0)


@pytest.mark.parametrize("forced", [1, 2])
def test_cache_resets_at_every_stage_switch_and_never_reuses_across_shapes_or_stages(forced):
    cfg = demo_like_schedule()
    plan = step_plan(cfg)
    assert [stage_of(s) for s in plan[14:16]] == [((2, 4), True), ((2, 2), True)]  # the switches are in the plan
    assert len({stage_of(s) for s in plan}) == 4 and {s.patch for s in plan} == set(PATCH_SCALE)
    noise, caps, mask = inputs()
    # a threshold that reuses wherever allowed, at every patch
    model, cache = SmoothField(), StepCache(10.0, forced=forced, stage_scale={})
    out = sample(model, noise, caps, mask, cfg, step_cache=cache)
    assert out.shape == noise.shape and torch.isfinite(out).all()
    assert all(c["shape"] == tuple(noise.shape[1:]) for c in model.calls)
    firsts = [k for k, s in enumerate(plan) if k == 0 or stage_of(s) != stage_of(plan[k - 1])]
    assert firsts == [0, 15, 24, 26]
    by_step = {e.step: e for e in cache.events}
    for k in firsts:  # a forced full step at the start of each stage; with forced=2 the next one too
        assert by_step[k].computed == (0, 1)
        assert (by_step[k + 1].computed == (0, 1)) == (forced == 2 or k == 0)  # step 1: no rate to carry yet
    for e in cache.events:
        assert e.stage == stage_of(plan[e.step])
        for _, source, source_stage in e.reused:  # only a velocity of this stage, from an earlier step
            assert source_stage == e.stage and stage_of(plan[source]) == e.stage and source < e.step
    reused_by_stage = {}
    for e in cache.events:
        reused_by_stage[e.stage] = reused_by_stage.get(e.stage, 0) + len(e.reused)
    assert reused_by_stage[((2, 4), True)] > 0 and reused_by_stage[((2, 2), True)] > 0
    assert reused_by_stage[((1, 2), False)] > 0
    assert reused_by_stage[((1, 2), True)] == (0 if forced == 2 else 2)  # 2 steps: both forced, or the 2nd reused
    neg_switch = next(k for k, s in enumerate(plan) if s.neg_motion != plan[0].neg_motion)
    assert by_step[neg_switch].computed == (0, 1)  # a settings change inside a stage forces a step


def test_a_latent_of_another_shape_is_never_given_a_cached_velocity():
    step = step_plan(demo_like_schedule())[3]
    cache = StepCache(10.0, stage_scale={})
    cache.begin(step_plan(demo_like_schedule()))
    for shape in ((2, 4, 4, 8, 8), (2, 4, 4, 8, 8), (2, 4, 4, 8, 8), (2, 4, 4, 16, 16)):
        x = torch.randn(shape)
        v = cache.velocity(step._replace(index=len(cache.events) + 3), x, lambda rows, x=x: -x)
        assert v.shape == x.shape
    assert [len(e.computed) for e in cache.events] == [2, 2, 0, 2]  # reused once, then a new shape: computed


def test_threshold_zero_is_bit_identical_to_no_cache(official_tiny):
    cfg = SamplingConfig.preset("f24F96R960-MultiScale").replace(steps=12)
    assert len({(s.patch, s.guidance != 0) for s in step_plan(cfg)}) >= 3
    g = torch.Generator().manual_seed(1)
    noise, caps, mask = torch.randn(2, 4, 4, 16, 16, generator=g), torch.randn(4, 8, 48, generator=g), torch.ones(4, 8)
    plain = sample(official_tiny, noise, caps, mask, cfg)
    cache = StepCache(0.0)
    assert torch.equal(sample(official_tiny, noise, caps, mask, cfg, step_cache=cache), plain)
    assert cache.reused_steps() == 0
    cached = StepCache(1.0)
    assert not torch.equal(sample(official_tiny, noise, caps, mask, cfg, step_cache=cached), plain)
    assert cached.reused_steps() > 0


def test_last_step_is_never_skipped():
    cfg = SamplingConfig(steps=12, shift=1.0, guidance=0.0, patch="1x2")
    noise, caps, mask = inputs()
    model, cache = SmoothField(), StepCache(1e9)
    sample(model, noise, caps[:2], mask[:2], cfg, step_cache=cache)
    assert [e.step for e in cache.events if e.computed] == [0, 1, 11]  # only the forced ones ran
    assert model.calls[-1]["t"] == pytest.approx(step_plan(cfg)[-1].t)


def test_forward_counts_known_answer_from_the_schedule():
    """10 steps on t = 0, 0.1, ..., 0.9: 2x4 at t 0-0.2, 2x2 at 0.3-0.5, 1x2 at 0.6-0.9, guided while
    t < 0.45, two prompts, constant motion scores. No cache: 2x4 3 calls of 4 rows; 2x2 two of 4 rows
    and one of 2; 1x2 four of 2.
    With a cache that reuses whenever allowed: 2x4 reuses step 2, 2x2 has stages of 2 and 1 steps (all
    forced), 1x2 reuses step 8 (6, 7 forced, 9 the last)."""
    cfg = SamplingConfig(steps=10, shift=1.0, guidance=(4.0, (0.45, 0.0)), renorm=None, motion=6.0, neg_motion=2.0,
                         patch=("2x4", (0.25, "2x2"), (0.55, "1x2")))
    noise, caps, mask = inputs()
    counts = ForwardCounts()
    sample(SmoothField(), noise, caps, mask, cfg, counts=counts)
    assert counts.to_json() == {"calls": {"2x4": 3, "2x2": 3, "1x2": 4}, "items": {"2x4": 12, "2x2": 10, "1x2": 8},
                                "reused": {}, "total_calls": 10, "total_items": 30}
    model, counts = SmoothField(), ForwardCounts()
    sample(model, noise, caps, mask, cfg, step_cache=StepCache(1e9, forced=2, stage_scale={}), counts=counts)
    assert counts.to_json() == {"calls": {"2x4": 2, "2x2": 3, "1x2": 3}, "items": {"2x4": 8, "2x2": 10, "1x2": 6},
                                "reused": {"2x4": 2, "1x2": 2}, "total_calls": 8, "total_items": 24}
    assert len(model.calls) == 8 and sum(c["rows"] for c in model.calls) == 24
    # forced=1 (default): the rate measured at 2x4 is carried on, so each later stage reuses from its 2nd step:
    # 2x2 guided computes step 3 and reuses 4, 2x2 unguided computes 5, 1x2 computes 6 and 9, reuses 7, 8
    counts = ForwardCounts()
    sample(SmoothField(), noise, caps, mask, cfg, step_cache=StepCache(1e9, forced=1, stage_scale={}), counts=counts)
    assert counts.to_json() == {"calls": {"2x4": 2, "2x2": 2, "1x2": 2}, "items": {"2x4": 8, "2x2": 6, "1x2": 4},
                                "reused": {"2x4": 2, "2x2": 2, "1x2": 4}, "total_calls": 6, "total_items": 18}


class LinearInTime(torch.nn.Module):
    """v = c (1 + 2 t) + 0 x, c = cap_feats[:, 0, 0] per row: linear in t, so the linear forecast is exact."""

    def forward(self, x, t, cap_feats, cap_mask, motion_score, patch_size, f_patch_size):
        return (cap_feats[:, 0, 0] * (1 + 2 * t)).view(-1, 1, 1, 1, 1) + 0 * x


def test_linear_forecast_is_exact_for_a_velocity_linear_in_t_and_reuse_is_not():
    """v1 + (t - t1)(v1 - v0)/(t1 - t0) is v(t) when v is linear in t: reusing every allowed step then
    changes nothing; reusing the last velocity lags by (t - t1) dv/dt at each reused step."""
    cfg = SamplingConfig(steps=12, shift=3.0, guidance=0.0, patch="1x2")
    noise, caps, mask = inputs()
    plain = sample(LinearInTime(), noise, caps[:2], mask[:2], cfg)
    linear, reuse = StepCache(1e9, forecast="linear"), StepCache(1e9, forecast="reuse")
    torch.testing.assert_close(sample(LinearInTime(), noise, caps[:2], mask[:2], cfg, step_cache=linear), plain,
                               rtol=1e-5, atol=1e-5)
    assert linear.reused_steps() == 2 * 9  # steps 2-10 of both prompts: 0, 1 forced, 11 the last
    lagged = sample(LinearInTime(), noise, caps[:2], mask[:2], cfg, step_cache=reuse)
    assert reuse.reused_steps() == 18 and (lagged - plain).abs().max() > 1e-2


def test_stage_scale_sets_a_threshold_per_patch():
    """stage_scale {"1x2": 0}: threshold 0 there, so 1x2 never reuses while the other patches still do."""
    cfg = demo_like_schedule()
    noise, caps, mask = inputs()
    cache = StepCache(10.0, stage_scale={"1x2": 0.0})
    sample(SmoothField(), noise, caps, mask, cfg, step_cache=cache)
    reused = {}
    for e in cache.events:
        reused[e.stage[0]] = reused.get(e.stage[0], 0) + len(e.reused)
    assert reused[(1, 2)] == 0 and reused[(2, 4)] > 0 and reused[(2, 2)] > 0


def test_default_stage_scale_never_reuses_at_the_coarsest_patch_even_at_an_infinite_threshold():
    cache = StepCache(float("inf"))
    sample(SmoothField(), *inputs(), demo_like_schedule(), step_cache=cache)
    assert all(not e.reused for e in cache.events if e.stage[0] == (2, 4))
    assert sum(len(e.reused) for e in cache.events if e.stage[0] == (2, 2)) > 0


@pytest.mark.parametrize("kwargs", [dict(forecast="quadratic"), dict(forced=0), dict(forced=3)])
def test_bad_cache_options_are_one_line_errors(kwargs):
    with pytest.raises(ValueError, match="step cache forecast must be one of"):
        StepCache(0.1, **kwargs)


@pytest.mark.parametrize("forecast", ["linear", "reuse"])
def test_decisions_are_per_prompt_so_a_batch_equals_single_runs(forecast):
    cfg = demo_like_schedule(steps=20)
    noise, caps, mask = inputs(b=2)
    caps[[1, 3]] *= 5.0  # the second prompt's velocity changes faster: different reuse decisions
    make = lambda: StepCache(0.2, forecast=forecast, stage_scale={})  # noqa: E731
    batch_cache = make()
    both = sample(SmoothField(), noise, caps, mask, cfg, step_cache=batch_cache)
    assert any(len(e.computed) == 1 for e in batch_cache.events)  # the batch ran the model on one prompt only
    for i in range(2):
        rows = [i, 2 + i]
        one = sample(SmoothField(), noise[i:i + 1], caps[rows], mask[rows], cfg, step_cache=make())
        torch.testing.assert_close(both[i:i + 1], one, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("value,expected", [(None, None), ("off", None), ("OFF", None), (False, None),
                                            ("auto", 0.25), ("0", 0.0), ("0.15", 0.15), (0.3, 0.3)])
def test_parse_step_cache(value, expected):
    assert parse_step_cache(value, auto=0.25) == expected


@pytest.mark.parametrize("value", ["fast", "-0.1", -1, float("nan"), "inf"])
def test_bad_step_cache_values_are_one_line_errors(value):
    with pytest.raises(ValueError, match=r"step cache must be 'off', 'auto' or a threshold >= 0"):
        parse_step_cache(value)
