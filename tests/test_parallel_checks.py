"""The parallel layouts refuse what cannot run, in one line, before any compute (one process, no group)."""
import pytest

from lumina_video.configs import ConfigError
from lumina_video.parallel import start_parallel
from lumina_video.parallel.ulysses import kv_repeats
from lumina_video.training.config import check_config
from lumina_video.training.distributed import DistEnv, with_sequence_parallel
from train_support import tiny_config, write_latent_manifest


def test_sequence_parallel_config_must_be_positive_and_divide_the_processes(tmp_path):
    cfg = tiny_config(tmp_path / "run", {"video-1x2": write_latent_manifest(tmp_path, 2)})
    cfg.distributed.sequence_parallel = 0
    with pytest.raises(ConfigError, match="distributed.sequence_parallel"):
        check_config(cfg)
    assert with_sequence_parallel(DistEnv(), 1) == DistEnv()
    with pytest.raises(ValueError, match="must divide the number of processes"):
        with_sequence_parallel(DistEnv(world=3, rank=1), 2)


def test_dp_and_sp_ranks_are_row_major():
    env = DistEnv(rank=5, world=8, sp=4)
    assert (env.dp_rank, env.dp_world, env.sp_rank) == (1, 2, 1)


def test_parallel_generation_needs_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert start_parallel("none").world == 1 and start_parallel(None).is_main
    with pytest.raises(ValueError, match="torchrun"):
        start_parallel("cfg")
    with pytest.raises(ValueError, match="parallel mode"):
        start_parallel("pipeline")


@pytest.mark.parametrize("n_kv, world, want", [(8, 4, 1), (8, 16, 2), (1, 2, 2), (2, 4, 2), (3, 2, 2), (4, 6, 3)])
def test_kv_heads_are_repeated_to_a_multiple_of_the_ranks(n_kv, world, want):
    assert kv_repeats(n_kv, world) == want and (n_kv * want) % world == 0
