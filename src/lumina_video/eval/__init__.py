"""Evaluation: VBench-protocol dimensions that run offline (metrics), VBench's aggregation
(aggregate), attribute checks for the synthetic vocabulary (attributes), reports (report) and the
`lumina-video eval` command (run)."""
from .aggregate import vbench_scores
from .run import evaluate

__all__ = ["evaluate", "vbench_scores"]
