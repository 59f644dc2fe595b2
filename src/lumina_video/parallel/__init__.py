"""Parallelism applied from outside the model, on torch.distributed (docs/ARCHITECTURE.md):

    parallelize_sequence(model, group)   Ulysses sequence parallelism (sequence.py, ulysses.py)
    parallelize_batch(model, group)      guidance branches / batch rows on several ranks (batch.py)
    training_mesh, generation_mesh       the ("dp", "sp") and ("cfg", "sp") device meshes (mesh.py)
    parallelize_pipeline(pipe, mode)     sampling under torchrun: "cfg", "sp", "cfg+sp" (generation.py);
    start_parallel(mode).apply(pipe)     the same in two steps (the CUDA device is set before loading)
"""
from .batch import parallelize_batch
from .generation import ParallelRun, parallelize_pipeline, parallelize_transformer, start_parallel
from .mesh import MODES, generation_mesh, start_group, training_mesh
from .sequence import ShardState, parallelize_sequence

__all__ = ["parallelize_sequence", "parallelize_batch", "parallelize_pipeline", "parallelize_transformer",
           "ParallelRun", "start_parallel", "ShardState", "training_mesh", "generation_mesh", "start_group", "MODES"]
