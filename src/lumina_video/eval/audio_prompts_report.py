"""Tallies and tables of `lumina-video eval-audio-prompts` (audio_prompts.py): pure functions of its rows.

A tally of a check is {"n": prompts the check applies to, "passed": those that pass, "rate": passed / n (None
for n = 0)}; a check that does not apply to a prompt (pitch of a still prompt, silence of a moving one) is
None there and not counted. Tallies are kept per soundtrack (value, ceiling, shuffled), overall and per
colour named in the prompt.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import sound, vocab
from ..files import write_json, write_text
from .format import pct

# check -> what it asks (every check is eval-audio's rule, audio_metrics.py)
CHECKS = {"pitch": "moving prompts: median pyin f0 within 50 cents of the colour's note",
          "timbre": "moving prompts: harmonic profile nearest the shape's timbre",
          "silence": "still prompts: no 10 ms window above -40 dBFS"}


def tally(values) -> dict:
    """{"n", "passed", "rate"} of a list of True / False / None (None not counted)."""
    counted = [bool(v) for v in values if v is not None]
    return {"n": len(counted), "passed": sum(counted), "rate": sum(counted) / len(counted) if counted else None}


def _checks(rows: list[dict], conditions) -> dict:
    """{condition: {check: tally}} over `rows`."""
    return {c: {k: tally([r["scores"][c][k] for r in rows if r["scores"].get(c)]) for k in CHECKS}
            for c in conditions}


def _median_abs_cents(rows: list[dict], condition: str) -> float | None:
    cents = [abs(s["notes"]["cents"]) for r in rows if (s := r["scores"].get(condition)) and s["notes"]
             and s["notes"]["cents"] is not None]
    return float(np.median(cents)) if cents else None


def summarize(rows: list[dict], conditions) -> dict:
    """Counts, tallies per soundtrack and check (overall and per colour), the video checks, and the pitch of
    the value soundtracks whose video shows the prompt's colour."""
    by_colour = {}
    for colour in vocab.COLORS:
        mine = [r for r in rows if r["color"] == colour]
        if mine:
            by_colour[colour] = {"prompts": len(mine), "note_hz": sound.NOTES[colour],
                                 "video_color": tally([r["video"]["color"] for r in mine]),
                                 **_checks(mine, conditions)}
    right_colour = [r for r in rows if r["video"]["color"]]
    return {"prompts": len(rows), "moving": sum(r["direction"] is not None for r in rows),
            "still": sum(r["direction"] is None for r in rows),
            "same_colour_partners": sum(bool(r.get("same_colour")) for r in rows),
            "checks": _checks(rows, conditions),
            "pitch_video_colour_right": tally([r["scores"]["value"]["pitch"] for r in right_colour]),
            "median_abs_cents": {c: _median_abs_cents(rows, c) for c in conditions},
            "video": {k: tally([r["video"][k] for r in rows]) for k in ("color", "motion")},
            "by_colour": by_colour}


def cell(t: dict | None) -> str:
    """"passed/n (rate %)", "-" when the check applies to no prompt."""
    return "-" if not t or not t["n"] else f"{t['passed']}/{t['n']} ({pct(t['rate'], 1)}%)"


def markdown_report(report: dict) -> str:
    """The tables people read: checks x soundtracks, per colour, then one line per prompt."""
    s, st = report["summary"], report["settings"]
    conds = list(s["checks"])
    lines = [f"# Soundtracks of generated videos ({s['prompts']} prompts: {s['moving']} moving, {s['still']} still)",
             "", f"Text to video: {st['model']}; V2A: {st['v2a']} ({'with' if st['v2a_prompt'] else 'without'} the "
             f"prompt as text); clips {st['clip']['frames']} frames at {st['clip']['fps']:g} fps "
             f"({st['clip']['seconds']:g} s); prompt k uses seed {st['seed']} + k.", "",
             "value: the V2A soundtrack of the prompt's video; ceiling: the synthetic AV dataset's exact sound of "
             "the prompt; shuffled: the V2A soundtrack of another prompt's video "
             f"({s['same_colour_partners']} of {s['prompts']} partners name the same colour). Cells: passed/prompts.",
             "", "| check | applies to | " + " | ".join(conds) + " |", "|---|---|" + "---:|" * len(conds)]
    for key, rule in CHECKS.items():
        lines.append(f"| {key} | {rule} | " + " | ".join(cell(s["checks"][c][key]) for c in conds) + " |")
    dash = " | -" * (len(conds) - 1)
    lines += [f"| pitch, videos of the right colour | moving prompts whose video shows the colour | "
              f"{cell(s['pitch_video_colour_right'])}{dash} |",
              f"| video colour | every prompt (eval/attributes.py) | {cell(s['video']['color'])}{dash} |",
              f"| video moving / still | every prompt | {cell(s['video']['motion'])}{dash} |",
              "", "Median |pitch error| (cents): " + ", ".join(
                  f"{c} {'-' if s['median_abs_cents'][c] is None else round(s['median_abs_cents'][c])}" for c in conds)]
    lines += colour_table(s, conds) + prompt_table(report["prompts"])
    return "\n".join(lines) + "\n"


def colour_table(s: dict, conds: list[str]) -> list[str]:
    head = [f"{k} {c}" for k in ("pitch", "silence") for c in conds]
    lines = ["", "## Per colour named in the prompt", "", "| colour | note (Hz) | prompts | video colour | "
             + " | ".join(head) + " |", "|---|---:|---:|---:|" + "---:|" * len(head)]
    for colour, row in s["by_colour"].items():
        cells = [cell(row[c][k]) for k in ("pitch", "silence") for c in conds]
        lines.append(f"| {colour} | {row['note_hz']:g} | {row['prompts']} | {cell(row['video_color'])} | "
                     + " | ".join(cells) + " |")
    return lines


def _yes(v) -> str:
    return "-" if v is None else "yes" if v else "no"


def prompt_table(rows: list[dict]) -> list[str]:
    lines = ["", "## Prompts", "", "| # | prompt | video colour | f0 (Hz) | cents | pitch | timbre | silent (max dBFS) "
             "| shuffled from |", "|---:|---|---|---:|---:|---|---|---|---:|"]
    for k, r in enumerate(rows):
        v = r["scores"]["value"]
        notes, levels = v["notes"] or {}, v["levels"]
        f0 = "-" if notes.get("f0") is None else f"{notes['f0']:.0f}"
        cents = "-" if notes.get("cents") is None else f"{notes['cents']:+.0f}"
        silent = "-" if levels is None else f"{_yes(v['silence'])} ({levels['max_dbfs']:.0f})"
        lines.append(f"| {k} | {r['prompt']} | {r['video']['measured_color'] or '-'} | {f0} | {cents} | "
                     f"{_yes(v['pitch'])} | {_yes(v['timbre'])} | {silent} | {r['shuffled_from']} |")
    return lines


def _rate(t: dict | None) -> str:
    return "-" if not t or t["rate"] is None else f"{pct(t['rate'], 1)}%"


def summary_line(report: dict) -> str:
    """One line: each check's value rate next to its ceiling and shuffled control, and the video colour rate."""
    s = report["summary"]
    text = f"{s['prompts']} prompts ({s['moving']} moving, {s['still']} still)"
    for key in CHECKS:
        row = {c: s["checks"][c][key] for c in s["checks"]}
        if row["value"]["n"]:
            text += (f"; {key} {_rate(row['value'])} of {row['value']['n']} (ceiling {_rate(row.get('ceiling'))}, "
                     f"shuffled {_rate(row.get('shuffled'))})")
    return text + f"; video colour right {_rate(s['video']['color'])}"


def write_report(report: dict, out_dir) -> dict:
    """report.md and report.json (everything, with the file names) in `out_dir`, atomically."""
    out = Path(out_dir)
    files = {"json": str(out / "report.json"), "markdown": str(out / "report.md")}
    write_text(files["markdown"], markdown_report(report))
    write_json(files["json"], {**report, "files": files})
    return files
