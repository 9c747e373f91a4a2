"""The figures are written, are valid PNGs, and survive awkward results (one seed, no curve, failures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mmgcn.bench.plots import validation_curves, write_plots
from mmgcn.bench.results import BenchResults, CellResult, ModelSummary
from mmgcn.bench.tables import to_markdown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sample_results() -> BenchResults:
    header = {
        "dataset": "tiny (4 users x 5 items)",
        "split": "hand-made",
        "protocol": "full ranking",
        "masking": "train masked",
        "selection": "early stopping on validation recall@20 (patience 2)",
        "seeds": "0, 1 (2 per model)",
        "metric": "recall@20",
        "significance_metrics": ["recall@20", "ndcg@20"],
        "baseline": "mmgcn",
    }
    cells = [
        CellResult("mmgcn", 0, test={"recall@20": 0.3, "ndcg@20": 0.1}, valid_curve=[[1, 0.1], [2, 0.2]],
                   train_s_per_epoch=2.0, epochs=2),
        CellResult("mmgcn", 1, test={"recall@20": 0.4, "ndcg@20": 0.2}, valid_curve=[[1, 0.15], [2, 0.25], [3, 0.2]],
                   train_s_per_epoch=2.2, epochs=3),
        CellResult("popular", 0, test={"recall@20": 0.2, "ndcg@20": 0.05}, train_s_per_epoch=0.0, epochs=0),
        CellResult("bpr", 0, status="failed", error="boom"),
    ]
    summaries = [
        ModelSummary("mmgcn", seeds=[0, 1], mean={"recall@20": 0.35, "ndcg@20": 0.15, "train_s_per_epoch": 2.1},
                     std={"recall@20": 0.07, "ndcg@20": 0.07, "train_s_per_epoch": 0.14}),
        ModelSummary("popular", seeds=[0], mean={"recall@20": 0.2, "ndcg@20": 0.05, "train_s_per_epoch": 0.0},
                     std={"recall@20": None, "ndcg@20": None, "train_s_per_epoch": None}),
        ModelSummary("bpr", failed_seeds=[0]),
    ]
    return BenchResults(header=header, summaries=summaries, cells=cells)


def test_plots_are_valid_pngs(tmp_path: Path) -> None:
    files = write_plots(sample_results(), tmp_path)
    assert set(files) == {"bar_chart", "validation_curves", "time_vs_quality"}
    for path in files.values():
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            width, height = image.size
            assert width > 300 and height > 200
            # not a blank canvas: more than a handful of distinct colours
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 10
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temporary files


def test_markdown_marks_reference_and_single_seed() -> None:
    markdown = to_markdown(sample_results())
    assert "| mmgcn (ref) | 2 | 0.3500 ± 0.0700 |" in markdown
    assert "| popular | 1 | 0.2000 |" in markdown  # no ± with a single seed
    assert "bpr seed 0: boom" in markdown


@pytest.mark.parametrize("empty_cells", [True, False])
def test_validation_plot_without_curves(tmp_path: Path, empty_cells: bool) -> None:
    results = sample_results()
    if empty_cells:
        results.cells = []
    path = validation_curves(results, tmp_path / "curves.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
