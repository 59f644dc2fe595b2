"""lumina_video: Lumina-Video (Multi-scale Next-DiT) text-to-video in plain PyTorch."""
__version__ = "0.1.0"
