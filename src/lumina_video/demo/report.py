"""The demo results as README-ready Markdown tables and PNG charts (experiments.py gives the numbers).

All files are written atomically (lumina_video.files).
"""
from __future__ import annotations

from pathlib import Path

from ..eval.format import num, pct, pyplot, save_figure
from ..eval.report import DIMENSION_KIND
from ..files import write_json, write_text
from .experiments import PAPER_TIME_RATIO

ATTRIBUTE_NAMES = {"color": "colour", "shape": "shape", "motion": "moving / still", "direction": "direction",
                   "speed": "speed word"}


def time_aware_text(value) -> str:
    """An official time-aware value as words: 20 -> "20"; (2, (0.05, 6)) -> "2, 6 from t = 0.05"."""
    if not isinstance(value, (list, tuple)) or isinstance(value, str):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = [time_aware_text(value[0])]
    text += [f"{time_aware_text(v)} from t = {th:g}" for th, v in value[1:]]
    return ", ".join(text)


def sampling_text(o: dict) -> str:
    """A sampling setting in the official format (SamplingConfig.to_official) in one line of words."""
    return (f"patches {time_aware_text(o['P'])}; shift {o['ts']:g}; guidance {time_aware_text(o['cfg'])}; "
            f"renorm {time_aware_text(float(o['renorm'])) if o['renorm'] else 'off'}; "
            f"motion {time_aware_text(o['motion'])}; "
            f"negative motion {time_aware_text(o['negMotion'])}")


def _threshold_cells(c: dict) -> tuple[str, str]:
    if c["name"].endswith("accuracy"):
        return f"{c['op']} {100 * c['threshold']:.0f}%", f"{pct(c['value'], 1)}%"
    return f"{c['op']} {c['threshold']:g}", num(c["value"], 3)


def checks_table(checks: list[dict]) -> list[str]:
    lines = ["| claim | measured | must be | |", "|---|---:|---:|---|"]
    for c in checks:
        want, got = _threshold_cells(c)
        lines.append(f"| {c['what']} | {got} | {want} | {'PASS' if c['passed'] else 'FAIL'} |")
    return lines


def _attribute_rows(acc: dict, checked: dict) -> list[str]:
    return [f"| {label} | {pct(acc.get(k), 1)} | {checked.get(k, 0)} |" for k, label in ATTRIBUTE_NAMES.items()]


def _intro(setup: dict) -> list[str]:
    """The section heading and the paragraph on how the numbers were measured."""
    workers = f", {setup['workers']} processes" if setup.get("workers", 1) > 1 else ""
    sampling = "set by --sampling" if setup.get("sampling_override") else "the model's default"
    return ["## Results of the demo model", "",
            f"Measured with `{setup['command']}` ({setup['videos_generated']} videos generated in "
            f"{setup['runtime_s'] / 60:.1f} min on {setup['device']}, {setup['threads']} torch thread(s){workers}). "
            f"Prompts pair a colour with a shape the model never saw in training "
            f"({', '.join(setup['holdout'])}), each moving right / left / up / down or staying still. "
            f"Sampling: {sampling}, {setup['steps']} steps ({sampling_text(setup['default_sampling'])}).", ""]


def _heldout_section(held: dict, setup: dict) -> list[str]:
    """Attribute accuracy of the default arm on the held-out prompts."""
    return [f"### Attribute accuracy on held-out prompts ({held['n']} videos: {setup['n_prompts']} prompts x "
            f"{setup['n_seeds']} seed(s), {held['arm']}-scale default sampling)", "",
            "| attribute | accuracy (%) | videos checked |", "|---|---:|---:|",
            *_attribute_rows(held.get("accuracy", {}), held.get("checked", {})), ""]


def _sweep_section(sweep: dict, setup: dict) -> list[str]:
    """The motion score sweep: one row per level, then the rank correlations."""
    lines = [f"### Motion control: motion score sweep (negative motion = positive; {sweep['n']} videos, "
             f"{setup['n_motion_prompts']} moving prompts x {setup['n_motion_seeds']} seed(s) per level)", "",
             f"Motion scores span 0 to {setup['motion_max']:g} ({setup['motion_max_source']}).", "",
             "The measured motion score is the training data's own measure (`lumina-video motion`: mean "
             "optical-flow magnitude, the same tool and protocol) on the generated clip; the speed is the object's "
             "centroid track.", "",
             "| motion score | videos | measured motion score (mean ± sd) | measured speed (px/frame, mean ± sd) "
             "| dynamic degree (%) |", "|---:|---:|---:|---:|---:|"]
    for g in sweep["levels"]:
        lines.append(f"| {g['motion_score']:g} | {g['n']} | {num(g['motion_mean'])} ± {num(g['motion_sd'])} | "
                     f"{num(g['speed_mean'])} ± {num(g['speed_sd'])} | {pct(g['dynamic_degree'], 1)} |")
    rm, rs = sweep["spearman_motion"], sweep["spearman_speed"]
    return lines + [
        "", "Spearman rank correlation of the requested motion score with:", "",
        "| measured | pooled over all videos | over the level means | median over (prompt, seed) sweeps |",
        "|---|---:|---:|---:|",
        f"| motion score (the claim) | **{num(rm['pooled'], 3)}** ({sweep['n']} videos) | "
        f"{num(rm['of_means'], 3)} | {num(rm['per_prompt_median'], 3)} ({rm['per_prompt_n']}) |",
        f"| object speed | {num(rs['pooled'], 3)} | {num(rs['of_means'], 3)} | "
        f"{num(rs['per_prompt_median'], 3)} ({rs['per_prompt_n']}) |", ""]


def _pairs_section(rows: list[dict], setup: dict) -> list[str]:
    """The paper's Table 3 rows scaled to the model's motion range."""
    lines = ["### Positive / negative motion (the paper's Table 3)", "",
             f"Rows are the paper's motion scores times {setup['motion_max'] / 8.0:g} (the model's top motion "
             f"score / 8); \"a→b\": negative motion a, then b after t = 0.05.", "",
             "| positive / negative (paper) | positive | negative | videos | measured motion score | "
             "measured speed (px/frame) | dynamic degree (%) | paper dynamic degree (%) |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        neg = f"{r['neg']:g}" + (f" → {r['pos']:g} after t = {r['switch']:g}" if r["switch"] else "")
        lines.append(f"| {r['label']} | {r['pos']:g} | {neg} | {r['n']} | {num(r['motion_mean'])} | "
                     f"{num(r['speed_mean'])} | {pct(r['dynamic_degree'], 1)} | {num(r['paper_dynamic_degree'])} |")
    if not setup.get("guided", True):
        lines += ["", "The model's default sampling has no guidance, so the negative branch (and its motion) is "
                  "never used."]
    return lines + [""]


def _ablation_section(abl: dict, setup: dict) -> list[str]:
    """Multi-scale vs single-scale inference: time and the same metrics."""
    lines = [f"### Multi-scale vs single-scale inference (the paper's Table 2; {abl['n']} prompt-seed pairs)", "",
             "| inference | denoising s / video | relative time | colour (%) | shape (%) | direction (%) | "
             "temporal flickering (%) | motion smoothness (%) | dynamic degree (%) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    arms = (("single-scale (1,2,2)", abl["single"], 1.0 if abl["n"] else None),
            (f"multi-scale ({time_aware_text(setup['multiscale_schedule'])})", abl["multi"], abl["time_ratio"]))
    for name, arm, rel in arms:
        acc, dims = arm["attributes"].get("accuracy", {}), arm["dimensions"]
        lines.append(f"| {name} | {num(arm['denoise_s_mean'], 3)} | {num(rel)} | {pct(acc.get('color'), 1)} | "
                     f"{pct(acc.get('shape'), 1)} | {pct(acc.get('direction'), 1)} | "
                     f"{pct(dims['temporal_flickering'])} | {pct(dims['motion_smoothness'])} | "
                     f"{pct(dims['dynamic_degree'], 1)} |")
    return lines + ["", f"Relative time = total multi-scale / total single-scale denoising time (median per pair "
                    f"{num(abl['time_ratio_median_pair'])}); the paper's combined schedule: {PAPER_TIME_RATIO}, "
                    f"VBench total 82.94 vs 82.99.", ""]


def _quality_section(qual: dict, errors: list) -> list[str]:
    """Generated held-out clips next to ground-truth clips of the same prompts, and unscored clips."""
    lines = [f"### Quality next to the ground truth ({qual['n_generated']} generated held-out clips, "
             f"{qual['n_ground_truth']} ground-truth clips of the same prompts)", "",
             "| dimension | generated (%) | ground truth (%) | how |", "|---|---:|---:|---|"]
    for d, kind in DIMENSION_KIND.items():
        gen, gt = pct(qual["generated"][d]), pct(qual["ground_truth"][d])
        lines.append(f"| {d.replace('_', ' ')} | {gen} | {gt} | {kind} |")
    gt_acc = qual["ground_truth_attributes"].get("accuracy", {})
    lines += ["", "Attribute checks on the ground-truth clips (the checker's own ceiling): " +
              ", ".join(f"{ATTRIBUTE_NAMES[k]} {pct(v, 1)}%" for k, v in gt_acc.items() if v is not None) + "."]
    if errors:
        lines += ["", f"{len(errors)} generated clips could not be scored (listed in results.json)."]
    return lines


def markdown_results(results: dict) -> str:
    """The results section (docs/RESULTS.md) "Results of the demo model": how it was measured, the claims (must-show
    checks), then one table per experiment."""
    s, setup = results["summary"], results["setup"]
    lines = [*_intro(setup), "### Claims", "", *checks_table(results["checks"]), ""]
    lines += _heldout_section(s["heldout"], setup)
    lines += _sweep_section(s["sweep"], setup)
    lines += _pairs_section(s["pairs"], setup)
    lines += _ablation_section(s["ablation"], setup)
    lines += _quality_section(s["quality"], s["errors"])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------------


def motion_chart(results: dict, path) -> None:
    """Requested vs measured motion score (every video, the level means and y = x), and the dynamic degree."""
    plt = pyplot()
    sweep = results["summary"]["sweep"]
    pts = [(r["motion_score"], float(r["measured_motion"]))
           for r in results["records"] if r["part"] == "sweep" and not r.get("error")]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if pts:
        x, y = zip(*pts)
        ax.scatter(x, y, s=12, alpha=0.4, color="tab:orange", label="one video")
    levels = [g for g in sweep["levels"] if g["n"]]
    if levels:
        xs = [g["motion_score"] for g in levels]
        ax.plot(xs, [g["motion_mean"] for g in levels], "o-", color="tab:red", label="mean")
        ax.plot([0, max(xs)], [0, max(xs)], ":", color="grey", label="measured = requested")
        ax2 = ax.twinx()
        ax2.plot(xs, [100 * g["dynamic_degree"] for g in levels], "s--", color="tab:blue", label="dynamic degree")
        ax2.set_ylabel("dynamic degree (%)", color="tab:blue")
        ax2.set_ylim(-2, 102)
    ax.set_xlabel("requested motion score")
    ax.set_ylabel("measured motion score (lumina-video motion)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"motion control, Spearman {num(sweep['spearman_motion']['pooled'], 3)} (pooled)")
    save_figure(fig, Path(path))
    plt.close(fig)


def pairs_chart(results: dict, path) -> None:
    """Dynamic degree per positive / negative motion row, ours next to the paper's."""
    plt = pyplot()
    rows = results["summary"]["pairs"]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = list(range(len(rows)))
    ours = [100 * (r["dynamic_degree"] or 0.0) for r in rows]
    ax.bar([x - 0.2 for x in xs], ours, width=0.4, color="tab:blue", label="demo model")
    ax.bar([x + 0.2 for x in xs], [r["paper_dynamic_degree"] or 0.0 for r in rows], width=0.4, color="tab:grey",
           label="paper (Table 3)")
    for x, r, v in zip(xs, rows, ours):
        ax.text(x - 0.2, v + 1, f"{num(r['speed_mean'], 1)}px", ha="center", fontsize=7)
    ax.set_xticks(xs, [r["label"] for r in rows])
    ax.set_xlabel("positive / negative motion (paper's scale; text: measured speed per frame)")
    ax.set_ylabel("dynamic degree (%)")
    ax.set_ylim(0, 125)
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    save_figure(fig, Path(path))
    plt.close(fig)


def ablation_chart(results: dict, path) -> None:
    """Multi-scale vs single-scale: denoising time per video, and attribute accuracy."""
    plt = pyplot()
    abl = results["summary"]["ablation"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.5), gridspec_kw={"width_ratios": [1, 2]},
                                   constrained_layout=True)
    arms = [("single", "tab:grey"), ("multi", "tab:blue")]
    ax1.bar([a for a, _ in arms], [abl[a]["denoise_s_mean"] or 0.0 for a, _ in arms], color=[c for _, c in arms])
    ax1.set_ylabel("denoising s / video")
    ax1.set_title(f"time ratio {num(abl['time_ratio'])}")
    keys = ["color", "shape", "direction"]
    for i, (a, c) in enumerate(arms):
        acc = abl[a]["attributes"].get("accuracy", {})
        ax2.bar([k + (i - 0.5) * 0.4 for k in range(len(keys))], [100 * (acc.get(k) or 0.0) for k in keys], width=0.4,
                color=c, label=f"{a}-scale")
    ax2.set_xticks(range(len(keys)), [ATTRIBUTE_NAMES[k] for k in keys])
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(0, 125)
    ax2.legend(fontsize=8, loc="upper center", ncol=2)
    save_figure(fig, Path(path))
    plt.close(fig)


def write_results(results: dict, out_dir) -> dict:
    """results.json (every number, every video), results.md and three charts. Returns {kind: path}."""
    out = Path(out_dir)
    paths = {"json": out / "results.json", "markdown": out / "results.md", "motion_chart": out / "motion_sweep.png",
             "pairs_chart": out / "motion_pairs.png", "ablation_chart": out / "multiscale.png"}
    write_json(paths["json"], results)
    write_text(paths["markdown"], markdown_results(results))
    motion_chart(results, paths["motion_chart"])
    pairs_chart(results, paths["pairs_chart"])
    ablation_chart(results, paths["ablation_chart"])
    return {k: str(v) for k, v in paths.items()}
