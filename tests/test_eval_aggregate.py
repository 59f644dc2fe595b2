"""VBench aggregation reproduces the paper's Table 4 -> Table 1 numbers (docs/REFERENCE.md §8)."""
import pytest

from lumina_video.eval.aggregate import ALL_DIMS, QUALITY_DIMS, SEMANTIC_DIMS, vbench_scores

# Paper Table 4, in VBench's dimension order (7 quality, then 9 semantic), percent.
SINGLE_SCALE = [96.06, 97.26, 98.63, 98.90, 67.13, 62.27, 64.58,
                91.03, 68.32, 97.67, 90.16, 67.27, 56.08, 23.64, 25.66, 28.22]
MULTI_SCALE = [95.95, 96.99, 98.59, 98.92, 71.76, 62.25, 63.85,
               90.69, 65.27, 97.33, 89.58, 63.68, 57.10, 25.47, 23.42, 28.23]


@pytest.mark.parametrize("row, quality, semantic, total", [
    (SINGLE_SCALE, 83.92, 79.27, 82.99),
    (MULTI_SCALE, 84.08, 78.56, 82.98),
])
def test_paper_numbers(row, quality, semantic, total):
    out = vbench_scores(dict(zip(ALL_DIMS, row)), scale="percent")
    assert out["missing"] == []
    assert round(out["quality"], 2) == quality
    assert round(out["semantic"], 2) == semantic
    assert round(out["total"], 2) == total


def test_fraction_and_percent_agree_and_underscores_are_accepted():
    pct = vbench_scores(dict(zip(ALL_DIMS, SINGLE_SCALE)), scale="percent")
    frac = vbench_scores({d.replace(" ", "_"): v / 100 for d, v in zip(ALL_DIMS, SINGLE_SCALE)}, scale="fraction")
    for key in ("quality", "semantic", "total"):
        assert frac[key] * 100 == pytest.approx(pct[key])


def test_normalisation_and_weights():
    out = vbench_scores({"motion smoothness": 0.9975, "dynamic degree": 1.0, "scene": 0.0}, scale="fraction")
    assert out["normalized"] == pytest.approx({"motion smoothness": 1.0, "dynamic degree": 0.5, "scene": 0.0})


def test_missing_dimensions_are_listed_never_counted():
    given = dict(zip(QUALITY_DIMS[:5], [0.96, 0.97, 0.98, 0.99, 0.5]))
    out = vbench_scores(given, scale="fraction")
    assert out["quality"] is None and out["semantic"] is None and out["total"] is None
    assert out["missing"] == ["aesthetic quality", "imaging quality", *SEMANTIC_DIMS]
    assert out["given"] == list(QUALITY_DIMS[:5])
    # the partial score averages the given dimensions only, weights 1, 1, 1, 1, 0.5
    norm = out["normalized"]
    assert out["quality_partial"] == pytest.approx(sum(norm.values()) / 4.5)
    assert out["semantic_partial"] is None


@pytest.mark.parametrize("scores, scale, msg", [
    ({"subject consistency": 96.0}, "fraction", "scale='percent'"),
    ({"subject consistency": 0.9}, "ratio", "scale must be one of"),
    ({"subjectness": 0.9}, "fraction", "unknown VBench dimension"),
    ({"color": float("nan")}, "fraction", "finite number"),
    ({"color": 0.5, "Color": 0.5}, "fraction", "given twice"),
])
def test_bad_input(scores, scale, msg):
    with pytest.raises(ValueError, match=msg):
        vbench_scores(scores, scale=scale)
