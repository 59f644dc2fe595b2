"""lumina_video: Lumina-Video (Multi-scale Next-DiT) text-to-video in plain PyTorch, as diffusers classes.

`import lumina_video` stays light (no torch, no diffusers): the classes below are imported on first use,
and the pipeline is registered with diffusers when diffusers' `DiffusionPipeline` is imported, so that
after `import lumina_video`, `DiffusionPipeline.from_pretrained(folder)` returns a LuminaVideoPipeline.

diffusers' loader takes a component named ["lumina_video", "MultiScaleNextDiT"] in model_index.json
from this module, and picks its loading method by the base classes this module names (ModelMixin).
"""
import importlib.abc
import importlib.util
import logging
import sys

__version__ = "0.1.0"

_LAZY = {
    "LuminaVideoPipeline": "pipeline", "LuminaVideoPipelineOutput": "pipeline",
    "MultiScaleNextDiT": "model", "V2ANextDiT": "model", "VideoVAE": "encoders", "TextEncoder": "encoders",
}
# The module whose import makes DiffusionPipeline exist; the registration follows it.
_DIFFUSERS_PIPELINES = "diffusers.pipelines.pipeline_utils"


def __getattr__(name):  # the classes are imported on first use, so `import lumina_video` stays light
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    if name == "ModelMixin":  # the base class diffusers' loader looks up in a component's library
        from diffusers import ModelMixin

        return ModelMixin
    raise AttributeError(f"module 'lumina_video' has no attribute {name!r}")


def _register_pipeline() -> None:
    """Import lumina_video.pipeline, which registers LuminaVideoPipeline with diffusers at its end
    (nothing to do when it is being imported right now: it registers itself when done)."""
    if f"{__name__}.pipeline" not in sys.modules:
        importlib.import_module(".pipeline", __name__)


class _AfterDiffusersPipelines(importlib.abc.MetaPathFinder):
    """A one-time import hook: finds diffusers' pipeline_utils as usual, and once it has run, registers
    the pipeline. A failure to register is logged, never raised into the user's diffusers import."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _DIFFUSERS_PIPELINES:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_then_register(module):
            run(module)
            try:
                _register_pipeline()
            except Exception as e:  # diffusers itself must keep importing
                logging.getLogger(__name__).warning("lumina_video: not registered with diffusers: %s", e)

        spec.loader.exec_module = exec_then_register
        return spec


def _drop_empty_float32_warning(record: logging.LogRecord) -> bool:
    """diffusers 0.42's ModelMixin.to(dtype) warns that modules "should be kept in float32: []" even
    when the list is empty (`_keep_in_fp32_modules or []` is never None); drop exactly that message."""
    return "should be kept in float32: []" not in record.getMessage()


logging.getLogger("diffusers.models.modeling_utils").addFilter(_drop_empty_float32_warning)
if _DIFFUSERS_PIPELINES in sys.modules:
    _register_pipeline()
elif not any(isinstance(f, _AfterDiffusersPipelines) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterDiffusersPipelines())
