"""Data: manifests, video I/O, buckets, datasets, motion scores, the synthetic dataset."""
