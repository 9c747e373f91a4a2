"""README tables generated from the results JSON: no figure in them is typed by hand.

A Markdown file marks each generated block with an opening and a closing comment::

    <!-- mmgcn:results tiktok -->
    ...generated table...
    <!-- /mmgcn:results -->

    <!-- mmgcn:cold-start tiktok-cold-start -->
    ...
    <!-- /mmgcn:cold-start -->

    <!-- mmgcn:comparisons tiktok -->       the comparisons beyond the reference column
    <!-- /mmgcn:comparisons -->
    <!-- mmgcn:degrees tiktok -->           test metric by user train-degree bucket
    <!-- /mmgcn:degrees -->
    <!-- mmgcn:degree-comparisons tiktok -->  the comparisons within each degree bucket
    <!-- /mmgcn:degree-comparisons -->
    <!-- mmgcn:cold-only-comparisons tiktok-cold-start -->  the comparisons on the cold-only ranking
    <!-- /mmgcn:cold-only-comparisons -->
    <!-- mmgcn:output scale/output.txt -->  a benchmark script's committed printed output
    <!-- /mmgcn:output -->

``mmgcn report benchmarks/results --readme README.md`` rewrites every block from
``<results root>/<folder>/results.json``: the main table (test Recall@20 / NDCG@20 mean ±
std over seeds, the seed-aware difference to the reference with its 95% interval, a star
where the Holm-adjusted p is below 0.05) with a column of published figures on the same
files where ``benchmarks/published.yaml`` has them; the cold-start block shows each
model's cold-only, warm and cold (all-items ranking) Recall@20; the comparisons block lists
the configured pairs beyond the reference (the ``best:`` choices resolved on validation)
with their seed-aware interval, Holm-adjusted p and a verdict that says "unresolved" unless
the interval excludes zero; the degrees block the breakdown by user train degree, and the
degree-comparisons block those comparisons within each degree bucket, and the
cold-only-comparisons block the configured pairs on the cold-start protocol's ranking among
the cold test items only (Holm over their own family); an output
block quotes a file under the results root verbatim (the printed table of a script such as
``benchmarks/scale.py``, committed beside its JSON).
``check_readme`` tells
whether a file's blocks are what the JSON gives (a test keeps the README honest with it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mmgcn.bench.results import BenchResults, read_results
from mmgcn.bench.tables import (
    FLOOR_LABELS,
    UNABLE,
    _mean_std,
    _p_value,
    cold_only_comparison_rows,
    degree_comparison_rows,
    degree_rows,
    difference_cell,
    metric_label,
)
from mmgcn.eval.significance import SeedComparison

_BLOCK = re.compile(
    r"(?P<open><!-- mmgcn:(?P<kind>results|cold-start|comparisons|degrees|degree-comparisons|cold-only-comparisons|output) (?P<folder>[A-Za-z0-9_./-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- /mmgcn:(?P=kind) -->)",
    re.DOTALL,
)


def load_published(path: str | Path | None) -> dict[str, dict[str, str]]:
    """``{results folder: {model: "R@20 / N@20 [source]"}}`` from a YAML file (``{}`` if none)."""
    if path is None or not Path(path).is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of results folder -> {{model: text}}")
    return {str(folder): {str(m): str(v) for m, v in (models or {}).items()} for folder, models in data.items()}


def _markdown(rows: list[list[str]]) -> str:
    """Rows (header and separator included) as Markdown table lines."""
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def results_table(results: BenchResults, published: Mapping[str, str] | None = None) -> str:
    """The README's main table of one benchmark folder."""
    baseline = results.header.get("baseline")
    primary = results.primary_metrics
    head = ["model", "seeds", *(metric_label(m) for m in primary)]
    head += [f"Δ {metric_label(m)} vs `{baseline}` [95% CI]" for m in primary]
    if published:
        head.append("published on these files")
    rows = [head, ["---"] * len(head)]
    for s in results.summaries:
        name = f"`{s.model}`" + (" (ref)" if s.model == baseline else "")
        row = [name, str(len(s.seeds)), *(_mean_std(s, m) for m in primary)]
        row += ["–" if s.model == baseline else difference_cell(results.comparison(s.model, m)) for m in primary]
        if published:
            row.append(published.get(s.model, ""))
        rows.append(row)
    return _markdown(rows)


def cold_start_table(results: BenchResults) -> str:
    """Cold-only, overall, warm and cold (all-items ranking) Recall@K per model, then the
    cold-only floors (:func:`mmgcn.eval.floors.cold_only_floors`) where the results have them."""
    metric = results.header.get("metric", "recall@20")
    uses = {c.model: c.uses_content for c in results.cells if c.status == "ok"}
    groups = (("cold-only", "cold-only"), ("", "all items"), ("warm", "warm (all items)"),
              ("cold", "cold (all items)"))
    head = ["model", "seeds", *(f"{label} {metric_label(metric)}" for _, label in groups)]
    rows = [head, ["---"] * len(head)]
    for s in results.summaries:
        row = [f"`{s.model}`", str(len(s.seeds))]
        for group, _ in groups:
            unable = group in ("cold-only", "cold") and uses.get(s.model) is False
            row.append(UNABLE if unable else _mean_std(s, f"{group}/{metric}" if group else metric))
        rows.append(row)
    floors = results.breakdowns.get("cold_only_floors")
    if floors is not None:
        rows += [[f"*{label}*", "–", f"{floors[key][metric]:.4f}", "–", "–", "–"]
                 for key, label in FLOOR_LABELS.items() if metric in floors[key]]
    return _markdown(rows)


def verdict(c: Any) -> str:
    """``"model better"`` / ``"reference better"`` where the Holm-adjusted p is below 0.05,
    else ``"unresolved"`` (the interval includes zero, or the family correction keeps it)."""
    if not c.significant:
        return "unresolved"
    return f"`{c.model}` better" if c.diff > 0 else f"`{c.reference}` better"


def comparisons_table(results: BenchResults) -> str:
    """The comparisons whose reference is not the table's reference model."""
    baseline = results.header.get("baseline")
    chosen = results.header.get("selected_for_comparison") or {}
    head = ["model", "reference", "metric", "model mean", "reference mean", "Δ [95% CI]", "p Holm", "verdict"]
    rows = [head, ["---"] * len(head)]
    for c in results.comparisons:
        if c.reference == baseline:
            continue
        rows.append([f"`{c.model}`", f"`{c.reference}`", metric_label(c.metric), f"{c.mean_model:.4f}",
                     f"{c.mean_reference:.4f}", difference_cell(c), _p_value(c.p_holm, c.n_boot), verdict(c)])
    text = _markdown(rows)
    if chosen:
        text += "\n" + "; ".join(f"`{k}` -> {v}" for k, v in sorted(chosen.items())) + "\n"
    return text


def degrees_table(results: BenchResults) -> str:
    """Test metric per user train-degree bucket (descriptive)."""
    rows = degree_rows(results)
    if not rows:
        return "(no per-user breakdown in this results folder)\n"
    table = [rows[0], ["---"] * len(rows[0])] + [[f"`{r[0]}`", *r[1:]] for r in rows[1:]]
    return _markdown(table)


def output_block(root: Path, name: str) -> str:
    """A benchmark script's committed printed output (``<root>/<name>``), verbatim in a
    fenced block: the README quotes the measured table, it never retypes it."""
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts or len(parts) < 2:
        raise ValueError(f"README output block: {name!r} must name a file inside a results folder (FOLDER/FILE)")
    text = (root / name).read_text(encoding="utf-8").rstrip("\n")
    return f"```text\n{text}\n```\n"


def degree_comparisons_table(results: BenchResults) -> str:
    """The configured comparisons within each user train-degree bucket (Holm over its rows)."""
    rows = degree_comparison_rows(results)
    if not rows:
        return "(no per-bucket comparisons in this results folder)\n"
    table = [rows[0], ["---"] * len(rows[0])] + [[f"`{r[0]}`", f"`{r[1]}`", *r[2:]] for r in rows[1:]]
    return _markdown(table)


def cold_only_comparisons_table(results: BenchResults) -> str:
    """The configured comparisons on the cold-only ranking (Holm over its own rows), with verdicts."""
    rows = cold_only_comparison_rows(results)
    if not rows:
        return "(no cold-only comparisons in this results folder)\n"
    compared = [SeedComparison.from_dict(row) for row in results.breakdowns["cold_only_comparisons"]["rows"]]
    table = [[*rows[0], "verdict"], ["---"] * (len(rows[0]) + 1)]
    table += [[f"`{r[0]}`", f"`{r[1]}`", *r[2:], verdict(c)] for r, c in zip(rows[1:], compared, strict=True)]
    return _markdown(table)


_RENDER = {"results": None, "cold-start": cold_start_table, "comparisons": comparisons_table, "degrees": degrees_table,
           "degree-comparisons": degree_comparisons_table, "cold-only-comparisons": cold_only_comparisons_table}


def render_blocks(text: str, results_root: str | Path, published: Mapping[str, Mapping[str, str]]) -> str:
    """``text`` with every marked block regenerated from ``results_root``."""
    root = Path(results_root)

    def replace(match: re.Match[str]) -> str:
        folder = match["folder"]
        kind = match["kind"]
        if kind == "output":
            return match["open"] + output_block(root, folder) + match["close"]
        results = read_results(root / folder)
        body = results_table(results, published.get(folder)) if kind == "results" else _RENDER[kind](results)
        return match["open"] + body + match["close"]

    return _BLOCK.sub(replace, text)


def update_readme(path: str | Path, results_root: str | Path, published: str | Path | None = None) -> bool:
    """Rewrite the generated blocks of ``path``; returns whether anything changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    new = render_blocks(text, results_root, load_published(published))
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def check_readme(path: str | Path, results_root: str | Path, published: str | Path | None = None) -> list[str]:
    """The folders whose README block differs from what their ``results.json`` gives."""
    text = Path(path).read_text(encoding="utf-8")
    stale: list[Any] = []
    pub = load_published(published)
    for match in _BLOCK.finditer(text):
        expected = render_blocks(match.group(0), results_root, pub)
        if expected != match.group(0):
            stale.append(match["folder"])
    return stale


__all__ = ["check_readme", "cold_start_table", "comparisons_table", "degrees_table", "load_published",
           "output_block", "render_blocks", "results_table", "update_readme", "verdict"]
