"""Evaluation reports: JSON (every number), Markdown (tables people read), PNG charts.

All files are written atomically (lumina_video.files).
"""
from __future__ import annotations

from pathlib import Path

from ..files import write_json, write_text
from .format import ATTRIBUTES, num, pct, pyplot, save_figure

# How each dimension is computed here, shown beside its number.
DIMENSION_KIND: dict[str, str] = {
    "subject_consistency": "proxy (pixel feature, not DINO)",
    "background_consistency": "proxy (pixel feature, not CLIP)",
    "temporal_flickering": "exact",
    "motion_smoothness": "approximate (flow midpoint, not AMT)",
    "dynamic_degree": "approximate (OpenCV DIS flow, not RAFT)",
}


def markdown_report(report: dict) -> str:
    """The report as Markdown: set-level dimensions, VBench aggregation, attribute accuracy,
    per-video table, failures."""
    lines = [f"# Evaluation report ({report['counts']['scored']} of {report['counts']['videos']} videos scored)", ""]
    lines += ["## VBench dimensions (set, %)", "", "| dimension | score | how |", "|---|---:|---|"]
    for dim, value in report["dimensions"].items():
        lines.append(f"| {dim.replace('_', ' ')} | {pct(value)} | {DIMENSION_KIND.get(dim, '')} |")
    agg = report["vbench"]
    lines += ["", "## VBench aggregation (%)", ""]
    lines.append(f"- Quality: {pct(agg['quality'])}, Semantic: {pct(agg['semantic'])}, Total: {pct(agg['total'])}")
    lines.append(f"- Quality over the {len(agg['given'])} given dimensions only (not VBench's Quality): "
                 f"{pct(agg['quality_partial'])}")
    lines.append(f"- Missing dimensions (not computed, not counted): {', '.join(agg['missing']) or 'none'}")
    attrs = report.get("attributes")
    if attrs:
        lines += ["", f"## Attribute checks ({attrs['n']} videos with a vocabulary prompt)", "",
                  "| attribute | accuracy (%) | checked |", "|---|---:|---:|"]
        for name in ATTRIBUTES:
            lines.append(f"| {name} | {pct(attrs['accuracy'][name])} | {attrs['checked'][name]} |")
        lines.append(f"| motion rank correlation (Spearman, requested vs measured px/frame) | "
                     f"{num(attrs['spearman_motion'], 3)} | {attrs['checked']['motion']} |")
    lines += ["", "## Per video", ""]
    dims = list(report["dimensions"])
    header = ["video", *[d.replace("_", " ") for d in dims], "prompt check"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for v in report["videos"]:
        if v.get("error"):
            continue
        cells = [Path(v["video"]).name]
        for d in dims:
            x = v["scores"].get(d)
            cells.append("yes" if x is True else "no" if x is False else pct(x))
        cells.append(_attribute_cell(v.get("attributes")))
        lines.append("| " + " | ".join(cells) + " |")
    failed = [v for v in report["videos"] if v.get("error")]
    if failed:
        lines += ["", f"## Not scored ({len(failed)})", "", "| video | reason |", "|---|---|"]
        lines += [f"| {v['video']} | {v['error']} |" for v in failed]
    return "\n".join(lines) + "\n"


def _attribute_cell(attrs: dict | None) -> str:
    if not attrs:
        return "-"
    ok = [k for k in ATTRIBUTES if attrs["correct"].get(k) is True]
    bad = [k for k in ATTRIBUTES if attrs["correct"].get(k) is False]
    return f"{len(ok)}/{len(ok) + len(bad)}" + (f" (wrong: {', '.join(bad)})" if bad else "")




def dimension_chart(report: dict, path) -> None:
    """Horizontal bars, one per dimension, in %."""
    plt = pyplot()
    dims = {k: v for k, v in report["dimensions"].items() if v is not None}
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * max(1, len(dims))))
    names = [d.replace("_", " ") for d in dims]
    values = [100 * v for v in dims.values()]
    ax.barh(names, values, color="tab:blue")
    for y, v in enumerate(values):
        ax.text(min(v, 98), y, f"{v:.2f}", va="center", ha="right", color="white", fontsize=8)
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.set_xlabel("score (%)")
    ax.set_title(f"VBench-style dimensions, {report['counts']['scored']} videos")
    save_figure(fig, path)
    plt.close(fig)


def motion_chart(report: dict, path) -> None:
    """Scatter of requested vs measured object speed (px/frame), one point per checked video."""
    plt = pyplot()
    pts = [(v["attributes"]["requested_speed_px"], v["attributes"]["measured"]["speed_px"])
           for v in report["videos"] if v.get("attributes") and v["attributes"]["measured"]["speed_px"] is not None]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if pts:
        req, mea = zip(*pts)
        hi = max(max(req), max(mea)) * 1.1 + 0.1
        ax.plot([0, hi], [0, hi], color="grey", lw=1, ls="--", label="measured = requested")
        ax.scatter(req, mea, s=14, alpha=0.6, color="tab:orange")
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        ax.legend(loc="upper left", fontsize=8)
    rho = report["attributes"]["spearman_motion"] if report.get("attributes") else None
    ax.set_title(f"object speed, Spearman {num(rho, 3)}")
    ax.set_xlabel("requested (px/frame)")
    ax.set_ylabel("measured (px/frame)")
    save_figure(fig, path)
    plt.close(fig)


def write_report(report: dict, out_dir) -> dict:
    """Write report.json, report.md, dimensions.png and (with attribute checks) motion.png.
    Returns {kind: path}."""
    out = Path(out_dir)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "dimensions_chart": out / "dimensions.png"}
    write_json(paths["json"], report)
    write_text(paths["markdown"], markdown_report(report))
    dimension_chart(report, paths["dimensions_chart"])
    if report.get("attributes"):
        paths["motion_chart"] = out / "motion.png"
        motion_chart(report, paths["motion_chart"])
    return {k: str(v) for k, v in paths.items()}
