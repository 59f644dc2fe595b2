"""lumina_video: Lumina-Video (Multi-scale Next-DiT) text-to-video in plain PyTorch."""
__version__ = "0.1.0"


def __getattr__(name):  # the pipeline is imported on first use, so `import lumina_video` stays light
    if name in ("LuminaVideoPipeline", "LuminaVideoPipelineOutput"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'lumina_video' has no attribute {name!r}")
