"""The bundled demo model and its experiment: everything that knows about the demo lives here; the
general library never imports this package.

    bundle.py        install a trained pipeline as lumina_video/demo_model (a V2A one, `--v2a`, as
                     lumina_video/demo_v2a_model), verify them against demo_model.sha256 /
                     demo_v2a_model.sha256 (shipped beside them as package data), MAX_BYTES, V2A_MAX_BYTES
    experiments.py   the held-out experiment: HOLDOUT pairs, jobs, summaries, THRESHOLDS, the paper's numbers
    report.py        the results section (docs/RESULTS.md, "Results of the demo model") and its charts
    run.py           `lumina-video demo results`, the experiment's driver
    cli.py           `lumina-video demo install|verify|holdout|results`

The names below are imported on first use, so `lumina-video demo holdout` does not load torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"CHECKSUMS": "bundle", "MAX_BYTES": "bundle", "install": "bundle", "verify": "bundle",
            "install_v2a": "bundle", "V2A_CHECKSUMS": "bundle", "V2A_MAX_BYTES": "bundle",
            "file_digests": "bundle", "HOLDOUT": "experiments", "THRESHOLDS": "experiments"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
