"""Every Python block marked runnable (a fence opened with ```python runnable) in README.md and
docs/python_snippets.md runs as written, each in a fresh namespace and an empty working folder, with
the bundled demo model; the mp4 files a block writes are real videos."""
import re
from pathlib import Path

import pytest

from lumina_video.data.video_io import probe_video

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "python_snippets.md"]
FENCE = re.compile(r"^```python runnable[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def runnable_blocks(path: Path) -> list[tuple[str, int, str]]:
    """(file name, line of the fence, code) of every runnable block of a Markdown file."""
    text = path.read_text() if path.is_file() else ""
    return [(path.name, text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = [block for doc in DOCS for block in runnable_blocks(doc)]


def test_the_snippets_file_has_runnable_blocks():
    assert len(runnable_blocks(ROOT / "docs" / "python_snippets.md")) >= 4


@pytest.mark.parametrize("name, line, code", BLOCKS, ids=[f"{n}:{line}" for n, line, _ in BLOCKS])
def test_runnable_block_runs(name, line, code, tmp_path, monkeypatch):
    if "cpu_offload" in code:  # diffusers' CPU offloading is accelerate's hooks
        pytest.importorskip("accelerate")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{name}:{line}", "exec"), {"__name__": "__main__"})  # our own docs, run as a reader would
    for video in tmp_path.glob("*.mp4"):
        info = probe_video(video)
        assert info["frames"] >= 1 and info["width"] > 0, video.name
