"""Training logs: console lines, `log.jsonl` (one JSON object per logged step), `loss.png`, a progress bar.

Only the main process writes. Files are rewritten atomically (temp file, then rename), so a crash
never leaves a half line; on resume the entries after the checkpoint's step are dropped, so the log
reads as one uninterrupted run.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from tqdm.auto import tqdm

from .. import files


class RunLog:
    """The log of one run; `start(step)` begins it at the step a run starts (or resumes) from."""

    def __init__(self, run_dir, *, enabled: bool, total_steps: int, progress: bool = True, desc: str = "train"):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.jsonl = self.run_dir / "log.jsonl"
        self.total_steps, self.progress, self.desc = total_steps, progress, desc
        self.entries: list[dict] = []
        self.bar = None
        self._window_start = time.perf_counter()
        self._samples = 0
        self._tokens = 0
        self._flops = 0.0

    def start(self, start_step: int) -> None:
        """Keep the entries up to `start_step` (a resumed run's log reads as one run) and open the bar."""
        if not self.enabled:
            return
        self.entries = self._read_previous(start_step)
        if self.progress:
            self.bar = tqdm(total=self.total_steps, initial=start_step, desc=self.desc, unit="step",
                            dynamic_ncols=True)
        self._window_start = time.perf_counter()

    def _read_previous(self, start_step: int) -> list[dict]:
        if not self.jsonl.is_file():
            return []
        out = []
        for line in self.jsonl.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("step", math.inf) <= start_step:
                out.append(entry)
        return out

    # -- throughput window ---------------------------------------------------------------------
    def count(self, samples: int, tokens: int, flops: float = 0.0) -> None:
        self._samples += samples
        self._tokens += tokens
        self._flops += flops

    def rates(self) -> tuple[float, float, float]:
        """(samples/s, tokens/s, model FLOP/s) since the last call, then restart the window."""
        now = time.perf_counter()
        dt = max(now - self._window_start, 1e-9)
        rates = (self._samples / dt, self._tokens / dt, self._flops / dt)
        self._window_start, self._samples, self._tokens, self._flops = now, 0, 0, 0.0
        return rates

    # -- output --------------------------------------------------------------------------------
    def step_done(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}")

    def write(self, entry: dict) -> None:
        if not self.enabled:
            return
        self.entries.append(entry)
        files.write_text(self.jsonl, "".join(json.dumps(e) + "\n" for e in self.entries))
        self.echo(format_entry(entry))

    def echo(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def plot(self) -> Path | None:
        """loss.png: the total and every task's loss against the step (log scale)."""
        if not self.enabled or not self.entries:
            return None
        plt = files.pyplot()

        keys = ["loss"] + sorted({k for e in self.entries for k in e if k.startswith("loss/")})
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        for k in keys:
            pts = [(e["step"], e[k]) for e in self.entries if k in e and math.isfinite(e[k]) and e[k] > 0]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=k.replace("loss/", "") if k != "loss" else "total", lw=2 if k == "loss" else 1)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("flow-matching loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = self.run_dir / "loss.png"
        files.save_figure(fig, path, dpi=110, tight=False)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_entry(e: dict) -> str:
    tasks = " ".join(f"{k[5:]}={v:.4f}" for k, v in e.items() if k.startswith("loss/"))
    return (f"step {e['step']:>6} [{e.get('stage', '')}] loss {e['loss']:.4f} ({tasks}) "
            f"gnorm {e.get('grad_norm', float('nan')):.3f} lr {e.get('lr', 0):.2e} "
            f"{e.get('samples_per_s', 0):.2f} samples/s {e.get('tokens_per_s', 0):.0f} tok/s "
            + (f"{e['tflops_per_s']:.3f} TFLOP/s " if "tflops_per_s" in e else "")
            + (f"MFU {100 * e['mfu']:.1f}% " if "mfu" in e else "")
            + f"mem {e.get('memory_mb', 0):.0f} MiB")
