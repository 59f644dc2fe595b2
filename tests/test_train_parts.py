"""The pieces of the trainer: temporal window, batch order and rank shares, source ratios, item
randomness, caption cache, EMA arithmetic, config overrides."""
import pytest
import torch

from lumina_video.configs import ConfigError, apply_override
from lumina_video.training.config import TaskConfig
from lumina_video.training.data import (
    GlobalBatchOrder,
    TaskStream,
    apply_ratio,
    item_generator,
    stable_seed,
    video_latent_window,
)
from lumina_video.training.ema import EMA
from lumina_video.training.step import CaptionEncoder
from train_support import text_encoder


def test_video_latent_window_drops_first_frame_and_crops():
    z = torch.arange(25.0).view(1, 25, 1, 1).expand(2, 25, 3, 3)  # frame index as value
    for seed in range(5):
        w = video_latent_window(z, max_frames=64, pt=2, generator=torch.Generator().manual_seed(seed))
        assert w.shape == (2, 16, 3, 3)  # 64 / 4 latent frames
        first = int(w[0, 0, 0, 0])
        assert first >= 1  # frame 0 (the lone first pixel frame) is never used
        assert torch.equal(w[0, :, 0, 0], torch.arange(first, first + 16.0))  # contiguous
    starts = {int(video_latent_window(z, 64, 2, torch.Generator().manual_seed(s))[0, 0, 0, 0]) for s in range(40)}
    assert starts == set(range(1, 10))  # every window start 1..9 of 24 - 16 + 1 positions
    # shorter than the window: all frames after the first, truncated to a multiple of pt
    short = z[:, :8]
    assert torch.equal(video_latent_window(short, 96, 2, None)[0, :, 0, 0], torch.arange(1.0, 7.0))
    assert video_latent_window(short, 96, 1, None).shape[1] == 7
    with pytest.raises(ValueError, match="fewer than the temporal patch size 2"):
        video_latent_window(z[:, :2], 16, 2, None)


def test_global_batches_are_deterministic_and_split_across_ranks():
    keys = ["a"] * 10 + ["b"] * 7 + [None] * 3  # None: unusable items never drawn
    order = GlobalBatchOrder(keys, 4, seed=7)
    assert order.per_epoch == 2 + 1
    batches = [order.batch(n) for n in range(9)]
    assert batches == [GlobalBatchOrder(keys, 4, seed=7).batch(n) for n in range(9)]  # pure function
    for _epoch, idx in batches:
        assert len(set(idx)) == 4 and len({keys[i] for i in idx}) == 1 and None not in {keys[i] for i in idx}
    assert [e for e, _ in batches] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sorted(map(tuple, (b for _, b in batches[:3]))) != sorted(map(tuple, (b for _, b in batches[3:6])))
    with pytest.raises(ConfigError, match="no batching group .* holds global_batch=11"):
        GlobalBatchOrder(keys, 11, seed=0, name="t")


def test_rank_shares_partition_the_global_batch():
    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return {"i": i}

    task = TaskConfig(name="t", global_batch=6, micro_batch=1)
    order = GlobalBatchOrder(["k"] * 12, 6, seed=1)
    single = TaskStream(task, Items(), order, rank=0, world=1, consumed=0)
    ranks = [TaskStream(task, Items(), order, rank=r, world=3, consumed=0) for r in range(3)]
    for _ in range(4):
        whole = single.next()
        parts = [s.next() for s in ranks]
        assert [it["i"] for it in whole.items] == [it["i"] for p in parts for it in p.items]
        assert whole.slots == [s for p in parts for s in p.slots] == list(range(6))
    later = TaskStream(task, Items(), order, rank=0, world=1, consumed=3)  # resume position
    assert [it["i"] for it in later.next().items] == [order.batch(3)[1][k] for k in range(6)]
    with pytest.raises(ConfigError, match="not divisible by the 4 processes"):
        TaskStream(task, Items(), order, rank=0, world=4)


def test_bad_items_keep_the_shape_of_the_step():
    task = TaskConfig(name="t", global_batch=4, micro_batch=2)
    order = GlobalBatchOrder(["k"] * 4, 4, seed=0)
    stream = TaskStream(task, [{"x": 0}] * 4, order, 0, 1)
    from lumina_video.training.data import RankShare

    share = RankShare([None, {"x": 1}, {"x": 2}, None], [0, 1, 2, 3])
    micro = list(stream.micro_batches(share))
    assert [len(items) for items, _, _ in micro] == [2, 2]  # same number and size of forwards
    assert [w for _, _, ws in micro for w in ws] == [0.0, 1.0, 1.0, 0.0]  # bad items weigh nothing


def test_source_ratio_and_seeds():
    recs = list(range(10))
    assert apply_ratio(recs, 1.0, 0) == recs
    assert apply_ratio(recs, 2.0, 0) == recs + recs
    half = apply_ratio(recs, 0.5, 3)
    assert len(half) == 5 and len(set(half)) == 5 and half == apply_ratio(recs, 0.5, 3)
    assert len(apply_ratio(recs, 1.3, 0)) == 13
    assert stable_seed(1, "a", 2) == stable_seed(1, "a", 2) != stable_seed(1, "a", 3)
    a = torch.rand(3, generator=item_generator(0, 5, "video-1x2", 3))
    assert torch.equal(a, torch.rand(3, generator=item_generator(0, 5, "video-1x2", 3)))
    assert not torch.equal(a, torch.rand(3, generator=item_generator(0, 5, "video-1x2", 4)))


def test_caption_cache_gives_the_uncached_features():
    te = text_encoder()
    caps = ["a red circle moving left", "", "a blue square staying still", "a red circle moving left"]
    sps = ["Synthetic: ", "Synthetic: ", "Other: ", "Synthetic: "]
    plain_f, plain_m = CaptionEncoder(te, 0)(caps, sps, "cpu")
    cached = CaptionEncoder(te, 3)
    f, m = cached(caps, sps, "cpu")
    assert (cached.misses, cached.hits, len(cached.cache)) == (3, 1, 3)
    cached(["a green triangle"], ["Other: "], "cpu")  # evicts the least recently used: the empty caption
    assert len(cached.cache) == 3 and ("Synthetic: ", "") not in cached.cache
    for i in range(4):
        n = int(plain_m[i].sum())
        assert int(m[i].sum()) == n and bool(m[i, :n].all())
        torch.testing.assert_close(f[i, :n], plain_f[i, :n], atol=1e-5, rtol=1e-5)
    # the empty caption (caption dropout) is the system prompt alone: fewer tokens than a caption
    assert int(m[1].sum()) < int(m[0].sum())


def test_ema_update_arithmetic():
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.9)
    before = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for name, p in model.named_parameters():
        torch.testing.assert_close(ema.shadow[name], 0.9 * before[name] + 0.1 * p.detach())
    sd = ema.full_state_dict()
    other = EMA(torch.nn.Linear(3, 2))
    other.load_full_state_dict(sd)
    assert all(torch.equal(other.shadow[k], sd[k]) for k in sd)


def test_override_paths():
    data = {"stages": [{"tasks": [{"size": 64}]}]}
    apply_override(data, "stages.0.tasks.0.size=128")
    apply_override(data, "optim.betas=[0.9, 0.99]")
    apply_override(data, "model.args.dim=96")
    assert data["stages"][0]["tasks"][0]["size"] == 128 and data["optim"]["betas"] == [0.9, 0.99]
    assert data["model"]["args"]["dim"] == 96
    with pytest.raises(ConfigError, match="not of the form key.sub=value"):
        apply_override(data, "optim.lr")
    with pytest.raises(ConfigError, match="'stages.0.tasks.0.size' is a value, not a section"):
        apply_override(data, "stages.0.tasks.0.size.x=1")
