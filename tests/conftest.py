"""Shared fixtures: the official reference vectors, a fixed torch seed per test, a free local port and
the options of a headless Chromium for the browser tests."""
import json
import os
import shutil
import socket
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


# -- a local port and a headless browser, for the web-server tests ---------------------------------
# Chromium without a sandbox (containers) or GPU, and without its background traffic (updates, sync)
HEADLESS_CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run")


def find_chromium() -> str | None:
    """A Chromium binary: $LUMINA_CHROMIUM, /usr/bin/chromium (Debian) or chromium on PATH; else None."""
    for cand in (os.environ.get("LUMINA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """free_port() -> a port on 127.0.0.1 that was free a moment ago."""
    return _free_port


@pytest.fixture(scope="session")
def chromium_launch_options():
    """Keyword arguments for Playwright's `chromium.launch` (a headless Chromium), or None when no
    Chromium binary is found (find_chromium)."""
    path = find_chromium()
    return None if path is None else dict(executable_path=path, args=list(HEADLESS_CHROMIUM_ARGS))


@pytest.fixture
def single_thread():
    """Tiny models train faster on one thread (and the test machine's cores are shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
