"""Evaluation: VBench-protocol dimensions that run offline (metrics), VBench's aggregation
(aggregate), attribute checks for the synthetic vocabulary (attributes), reports (report) and the
`lumina-video eval` command (run)."""
