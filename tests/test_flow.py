"""Flow matching with analytic answers."""
import pytest
import torch

from lumina_video import flow


def test_time_shift_properties():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(flow.time_shift(t, 1.0), t, atol=1e-15, rtol=0)
    for a in (2.0, 4.0, 8.0, 24.0):
        s = flow.time_shift(t, a)
        assert s[0] == 0 and s[-1] == 1
        assert torch.all(s[1:] > s[:-1])  # monotone
        assert torch.all(s[1:-1] < t[1:-1])  # shifted towards noise
        # closed form at t = 1/2: 1 / (1 + a)
        assert flow.time_shift(0.5, a) == pytest.approx(1 / (1 + a))
    with pytest.raises(ValueError, match="time shift must be > 0"):
        flow.time_shift(0.5, 0.0)


def test_path_endpoints_and_velocity():
    x0, x1 = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    assert torch.equal(flow.interpolate(x0, x1, torch.zeros(3)), x0)  # t = 0 is noise
    assert torch.equal(flow.interpolate(x0, x1, torch.ones(3)), x1)   # t = 1 is data
    t = torch.tensor([0.1, 0.5, 0.9])
    h = 1e-3
    numeric = (flow.interpolate(x0, x1, t + h) - flow.interpolate(x0, x1, t - h)) / (2 * h)
    torch.testing.assert_close(numeric, flow.target_velocity(x0, x1), atol=1e-3, rtol=1e-3)


def test_loss_known_values():
    u = torch.randn(4, 10)
    assert torch.allclose(flow.item_loss(u, u), torch.zeros(4), atol=1e-6)
    # pred = -u: mse = 4 mean(u^2), cos = -1 -> + 2 * vd_weight
    expected = 4 * u.pow(2).mean(1) + 2
    torch.testing.assert_close(flow.item_loss(-u, u), expected)
    torch.testing.assert_close(flow.item_loss(-u, u, vd_weight=0), 4 * u.pow(2).mean(1))
    # a scaled prediction has cos = 1: only the MSE remains
    torch.testing.assert_close(flow.item_loss(2 * u, u), u.pow(2).mean(1))


def test_t_sampling():
    g = torch.Generator().manual_seed(0)
    u = flow.sample_t(20000, "uniform", generator=g)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    ln = flow.sample_t(20000, "logit_normal", generator=g)
    logit = torch.log(ln) - torch.log1p(-ln)
    assert abs(logit.mean()) < 0.03 and abs(logit.std() - 1) < 0.03
    with pytest.raises(ValueError, match="accepted: 'uniform', 'logit_normal'"):
        flow.sample_t(2, "beta")


def test_shifted_grid():
    g = flow.shifted_grid(69, 24.0)
    assert g.shape == (70,) and g[0] == 0 and g[-1] == 1
    assert g[35].item() == pytest.approx(flow.time_shift(35 / 69, 24.0), rel=1e-6)
    with pytest.raises(ValueError, match="must be >= 1"):
        flow.shifted_grid(0, 1.0)


def test_training_draw_shift_matches_recipe():
    """The trainer's draw (training/step.flow_loss): t = time_shift(sample_t), x_t = interpolate, u = x1 - x0."""
    assert flow.RECIPE_SHIFTS[("video", (2, 4))] == 8.0
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(5000, 1)
    t = flow.time_shift(flow.sample_t(5000, generator=g), 4.0)
    x0 = torch.randn(x1.shape, generator=g)
    xt, u = flow.interpolate(x0, x1, t), flow.target_velocity(x0, x1)
    # median of shifted U(0,1) is time_shift(0.5, 4) = 0.2
    assert abs(t.median().item() - 0.2) < 0.02
    torch.testing.assert_close(xt, t[:, None] * x1 + (1 - t[:, None]) * (x1 - u))


def test_direction_term_has_a_bounded_gradient_at_a_zero_prediction():
    """The zero-initialised output layer predicts 0 at the first step: the (1 - cos) term's gradient must
    be finite and bounded there (the plain cosine's is ~1/|p|), and equal the plain cosine elsewhere."""
    torch.manual_seed(0)
    u = torch.randn(3, 4096)
    for scale in (0.0, 1e-12, 1e-6):
        p = (scale * torch.randn(3, 4096)).requires_grad_(True)
        flow.item_loss(p, u).sum().backward()
        per_item = p.grad.norm(dim=1)
        assert torch.isfinite(per_item).all()
        # MSE part 2|u|/n plus the direction part 1 / (sqrt(n) * RMS_FLOOR)
        bound = 2 * u.norm(dim=1) / 4096 + 1 / (4096**0.5 * flow.RMS_FLOOR)
        assert (per_item <= 1.01 * bound).all(), (per_item, bound)
    plain = torch.nn.functional.cosine_similarity
    p = 0.1 * torch.randn(3, 4096) + 0.05 * u
    torch.testing.assert_close(flow.safe_cosine(p, u), plain(p, u, dim=1), rtol=1e-4, atol=1e-6)
