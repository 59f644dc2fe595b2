import json
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def reference():
    """Reference vectors from the official implementation (tests/data/README_reference.md)."""
    from safetensors.torch import load_file

    meta = json.loads((DATA / "nextdit_official_tiny.json").read_text())
    tensors = load_file(str(DATA / "nextdit_official_tiny.safetensors"))
    return meta, tensors


@pytest.fixture(scope="session")
def official_tiny(reference):
    """The tiny model of the reference file, loaded strictly from the official state dict."""
    from lumina_video.model import MultiScaleNextDiT

    meta, ref = reference
    model = MultiScaleNextDiT(**meta["model_config"], norm_eps=meta["norm_eps"])
    sd = {k[len("sd/"):]: v for k, v in ref.items() if k.startswith("sd/")}
    model.load_state_dict(sd, strict=True)
    return model.eval()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
