"""Markdown and CSV renderings of :class:`~mmgcn.bench.results.BenchResults`.

Both are pure functions of the results object (no clock, no file system), so the tables
``mmgcn report`` rebuilds from ``results.json`` are byte-identical to the ones the
benchmark wrote. Dict contents are always visited in a canonical order (JSON sorts keys).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from mmgcn.bench.results import (
    RESOURCE_COLUMNS,
    BenchResults,
    ModelSummary,
    metric_sort_key,
)
from mmgcn.eval.significance import SeedComparison

# metric families shown in the Markdown "all metrics" table (every metric is in the CSV)
TABLE_FAMILIES = ("recall", "ndcg", "precision", "hit_rate")


def metric_label(name: str) -> str:
    """``"recall@20"`` -> ``"Recall@20"``; ``"cold/ndcg@10"`` -> ``"cold NDCG@10"``."""
    group, _, base = name.rpartition("/")
    family, _, k = base.partition("@")
    pretty = {"recall": "Recall", "ndcg": "NDCG", "precision": "Precision", "hit_rate": "HitRate",
              "map": "MAP", "mrr": "MRR", "coverage": "Coverage"}.get(family, family)
    label = f"{pretty}@{k}" if k else pretty
    return f"{group} {label}" if group else label


def _mean_std(summary: ModelSummary, key: str, fmt: str = "{:.4f}") -> str:
    mean = summary.mean.get(key)
    if mean is None:
        return "–"
    std = summary.std.get(key)
    text = fmt.format(mean)
    return f"{text} ± {fmt.format(std)}" if std is not None else text


def _p_value(p: float | None, n_boot: int | None = None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    if n_boot and p < 2.0 / n_boot:
        # a bootstrap p-value cannot resolve below its replicate count
        return f"<{2.0 / n_boot:.0e}".replace("e-0", "e-")
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def difference_cell(c: SeedComparison | None) -> str:
    """``+0.0123 [+0.0040, +0.0201] *`` (the star: Holm-adjusted p < 0.05)."""
    if c is None:
        return "–"
    star = " *" if c.significant else ""
    return f"{_signed(c.diff)} [{_signed(c.ci_low)}, {_signed(c.ci_high)}]{star}"


def comparisons_note(results: BenchResults) -> str:
    n = len(results.comparisons)
    return (
        f"Δ = model minus reference, mean over seeds and users, with its 95% seed-aware bootstrap "
        f"interval (training runs resampled per model, then users, paired); p: two-sided, "
        f"Holm-adjusted over the {n} comparisons of this page; * = significant (Holm p < 0.05). "
        f"An interval rests on as many training runs per model as its seeds column shows: one "
        f"resting on 3 or fewer is provisional."
    )


def header_lines(header: dict[str, Any]) -> list[str]:
    """The run description every table and figure carries, one ``key: value`` per line."""
    keys = (
        ("dataset", "dataset"),
        ("split", "split"),
        ("protocol", "protocol"),
        ("masking", "masking"),
        ("selection", "selection"),
        ("seeds", "seeds"),
        ("modalities", "modalities"),
        ("significance", "significance"),
        ("selected_for_comparison", "selected for comparison"),
        ("memory", "memory"),
        ("mode", "run"),
        ("budget_note", "budget"),
    )
    lines = []
    for key, label in keys:
        value = header.get(key)
        if value in (None, "", [], {}):
            continue
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        elif isinstance(value, dict):
            value = "; ".join(f"{k} -> {v}" for k, v in value.items())
        lines.append(f"{label}: {value}")
    return lines


def _table(rows: list[list[str]]) -> list[str]:
    head, *body = rows
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in body]
    return out


def to_markdown(results: BenchResults) -> str:
    """The Markdown page of a benchmark folder: header block, main table, all metrics, failures."""
    header = results.header
    title = f"# Benchmark: {header.get('dataset', '?')}"
    if header.get("protocol_name", "standard") != "standard":
        title += f" ({header['protocol_name']})"
    lines = [title, ""]
    lines += [f"> {line}  " for line in header_lines(header)]
    lines.append("")
    baseline = header.get("baseline")
    primary = results.primary_metrics

    head = ["model", "seeds"] + [metric_label(m) for m in primary]
    for m in primary:
        head += [f"Δ {metric_label(m)} vs {baseline} [95% CI]", f"p Holm {metric_label(m)}"]
    head += [label for _, label, _ in RESOURCE_COLUMNS]
    rows = [head]
    for s in results.summaries:
        row = [s.model + (" (ref)" if s.model == baseline else ""), str(len(s.seeds))]
        row += [_mean_std(s, m) for m in primary]
        for m in primary:
            c = results.comparison(s.model, m)
            row += [difference_cell(c), _p_value(c.p_holm if c else None, c.n_boot if c else None)]
        row += [_mean_std(s, key, fmt) for key, _, fmt in RESOURCE_COLUMNS]
        rows.append(row)
    lines += ["## Main results (test, mean ± std over seeds)", ""] + _table(rows) + [""]
    if results.comparisons:
        lines += [comparisons_note(results), ""]
    extra = [c for c in results.comparisons if c.reference != baseline]
    if extra:
        rows = [["model", "reference", "metric", "model mean", "reference mean", "Δ [95% CI]", "p", "p Holm"]]
        rows += [[c.model, c.reference, metric_label(c.metric), f"{c.mean_model:.4f}", f"{c.mean_reference:.4f}",
                  difference_cell(c), _p_value(c.p, c.n_boot), _p_value(c.p_holm, c.n_boot)] for c in extra]
        lines += ["## Further comparisons (same family)", ""] + _table(rows) + [""]

    names = [m for m in results.metric_names if "/" not in m and m.split("@")[0] in TABLE_FAMILIES]
    if names:
        rows = [["model"] + [metric_label(m) for m in names]]
        rows += [[s.model] + [_mean_std(s, m) for m in names] for s in results.summaries]
        lines += ["## All test metrics (mean ± std over seeds; MAP, MRR, coverage in the CSV)", ""]
        lines += _table(rows) + [""]
    lines += _warm_cold_section(results, primary)
    lines += _degree_section(results)
    lines += _calibration_section(results)

    if results.grids:
        lines += ["## Grids (selected on validation)", ""]
        order = [s.model for s in results.summaries if s.model in results.grids]
        order += sorted(set(results.grids) - set(order))
        for model in order:
            for point in results.grids[model]:
                mark = " **selected**" if point.get("selected") else ""
                value = point.get("valid")
                shown = "failed" if value is None else f"{value:.4f}"
                lines.append(f"- {model} {json.dumps(point.get('params'), sort_keys=True)}: valid {shown}{mark}")
        lines.append("")

    failed = [c for c in results.cells if c.status != "ok"]
    if failed:
        lines += ["## Failed cells", ""]
        lines += [f"- {c.model} seed {c.seed}: {c.error}" for c in failed]
        lines.append("")
    return "\n".join(lines)


def _calibration_section(results: BenchResults) -> list[str]:
    """One row per cell whose model calibrated itself after training (e.g. MMGCN+'s scale and
    offset of new items' scores): the values chosen on validation, and validation before / after."""
    order = {s.model: k for k, s in enumerate(results.summaries)}
    cells = sorted((c for c in results.cells if c.status == "ok" and c.calibration),
                   key=lambda c: (order.get(c.model, len(order)), c.model, c.seed))
    if not cells:
        return []
    explore = any("tolerance" in c.calibration for c in cells)  # type: ignore[operator]
    head = ["model", "seed", "chosen", "candidates", "valid before", "valid after"]
    head += ["tolerance", "valid on cold items"] if explore else []
    rows = [head]
    for c in cells:
        record = c.calibration or {}
        chosen = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in sorted(record.get("values", {}).items()))
        before = record.get("valid_uncalibrated")
        row = [c.model, str(c.seed), chosen, str(record.get("candidates", "")),
               "–" if before is None else f"{before:.4f}", f"{record['valid']:.4f}"]
        if explore:
            tolerance = record.get("tolerance")
            row += ["–", "–"] if tolerance is None else [f"{tolerance:.0%}", f"{record['valid_cold']:.4f}"]
        rows.append(row)
    note = ("After training, a model with a calibration tries its candidates on the validation split "
            "and keeps the best (with a tolerance t: the candidate with the most validation hits on "
            "cold items among those within (1 - t) of the best); test is evaluated once, calibrated. "
            "valid before: the uncalibrated model (the first, neutral candidate); the metric is the "
            "selection metric.")
    return ["## Post-training calibration (chosen on validation)", "", note, ""] + _table(rows) + [""]


def degree_rows(results: BenchResults) -> list[list[str]]:
    """Header and one row per model of the user train-degree breakdown (``[]`` if none)."""
    breakdown = results.breakdowns.get("user_degree") or {}
    if not breakdown.get("values"):
        return []
    buckets, counts = breakdown["buckets"], breakdown["n_users"]
    rows = [["model"] + [f"{b} ({n:,} users)" for b, n in zip(buckets, counts)]]
    order = [s.model for s in results.summaries if s.model in breakdown["values"]]
    for model in order:
        rows.append([model] + ["–" if v is None else f"{v:.4f}" for v in breakdown["values"][model]])
    return rows


def _degree_section(results: BenchResults) -> list[str]:
    rows = degree_rows(results)
    if not rows:
        return []
    breakdown = results.breakdowns["user_degree"]
    note = (f"Test {metric_label(breakdown['metric'])} by the user's number of train interactions (mean over "
            f"each bucket's users, then over seeds): where a model gains or loses. Descriptive; the "
            f"comparisons above carry the intervals.")
    return ["## By user train degree (mean over seeds)", "", note, ""] + _table(rows) + [""] + _degree_comparisons(results)


def degree_comparison_rows(results: BenchResults) -> list[list[str]]:
    """Header and one row per pair x bucket of the per-bucket comparisons (``[]`` if none)."""
    breakdown = results.breakdowns.get("user_degree_comparisons") or {}
    if not breakdown.get("rows"):
        return []
    rows = [["model", "reference", "users' train degree", "users", "model mean", "reference mean", "Δ [95% CI]",
             "p Holm"]]
    for row in breakdown["rows"]:
        c = SeedComparison.from_dict({k: v for k, v in row.items() if k != "bucket"})
        rows.append([c.model, c.reference, row["bucket"], f"{c.n_users:,}", f"{c.mean_model:.4f}",
                     f"{c.mean_reference:.4f}", difference_cell(c), _p_value(c.p_holm, c.n_boot)])
    return rows


def cold_only_comparison_rows(results: BenchResults) -> list[list[str]]:
    """Header and one row per pair x metric of the cold-only comparisons (``[]`` if none)."""
    rows = (results.breakdowns.get("cold_only_comparisons") or {}).get("rows") or []
    if not rows:
        return []
    out = [["model", "reference", "metric", "users", "model mean", "reference mean", "Δ [95% CI]", "p Holm"]]
    for row in rows:
        c = SeedComparison.from_dict(row)
        out.append([c.model, c.reference, metric_label(c.metric), f"{c.n_users:,}", f"{c.mean_model:.4f}",
                    f"{c.mean_reference:.4f}", difference_cell(c), _p_value(c.p_holm, c.n_boot)])
    return out


def _degree_comparisons(results: BenchResults) -> list[str]:
    rows = degree_comparison_rows(results)
    if not rows:
        return []
    breakdown = results.breakdowns["user_degree_comparisons"]
    note = (f"The configured comparisons within each bucket of at least {breakdown['min_users']} test users: "
            f"{metric_label(breakdown['metric'])} difference with its 95% seed-aware interval; p Holm-adjusted "
            f"over the {len(rows) - 1} rows of this table (a family of its own); * = Holm p < 0.05.")
    return ["### Comparisons by user train degree", "", note, ""] + _table(rows) + [""]


# result groups of the cold-start protocol, in table order
COLD_START_GROUPS = ("warm", "cold", "cold-only")
# groups an ID-only model cannot be measured on: it has no representation of those items
CONTENT_ONLY_GROUPS = ("cold", "cold-only")
UNABLE = "unable (ID only)"
#: the cold-only floors' rows (``breakdowns["cold_only_floors"]``), as the tables name them
FLOOR_LABELS = {"random": "random ranking (expected)", "item_order": "item-id order (no model)"}


def _warm_cold_section(results: BenchResults, primary: list[str]) -> list[str]:
    groups = [g for g in COLD_START_GROUPS if any(f"{g}/{m}" in s.mean for s in results.summaries for m in primary)]
    if not groups:
        return []
    content = {}
    users: dict[str, dict[str, int]] = {}
    for cell in results.cells:
        if cell.status == "ok":
            content.setdefault(cell.model, cell.uses_content)
            users.setdefault(cell.model, dict(cell.n_test_users))
    head = ["model", "uses content"] + [f"{g} users" for g in groups]
    head += [f"{g} {metric_label(m)}" for m in primary for g in groups]
    rows = [head]
    for s in results.summaries:
        uses = content.get(s.model)
        unable = {g for g in CONTENT_ONLY_GROUPS if uses is False}
        row = [s.model, "–" if uses is None else ("yes" if uses else "no (ID only)")]
        row += [str(users.get(s.model, {}).get(g, "–")) for g in groups]
        row += [UNABLE if g in unable else _mean_std(s, f"{g}/{m}") for m in primary for g in groups]
        rows.append(row)
    note = (
        "Cold items have no train interaction. A model that reads no item content (ID only) has "
        "no representation of them: its cold columns say unable rather than report chance-level "
        "figures. warm / cold: the all-items ranking, each group's metrics over the users holding "
        "test items of that group, counting only that group's items as hits. cold-only: a second "
        "ranking among the cold test items only."
    )
    lines = ["## Warm and cold test items (mean ± std over seeds)", "", note, ""] + _table(rows) + [""]
    compared = cold_only_comparison_rows(results)
    if compared:
        lines += [
            "The configured comparisons on the cold-only ranking: difference with its 95% seed-aware interval "
            f"(training runs resampled, then users); p Holm-adjusted over the {len(compared) - 1} rows of this "
            "table (a family of its own, apart from the all-items comparisons); * = Holm p < 0.05. Pairs with "
            "an ID-only model are left out.",
            "",
        ] + _table(compared) + [""]
    floors = results.breakdowns.get("cold_only_floors")
    if floors is not None:
        lines += [
            f"Cold-only floors ({floors['n_users']} users, {floors['n_candidates']} cold test items; "
            f"masked: {', '.join(floors['mask']) or 'nothing'}): rankings that read no model. Random: the "
            "expected value of a uniformly random order, min(K, n) / n for a user with n candidates. "
            "Item-id order: ascending ids, the order the evaluator gives equal scores; it reads no model, "
            "but scores above random where a dataset's ids track its items' popularity (e.g. ids given in "
            "catalogue order), which a model whose scores of new items tie would inherit.",
            "",
        ]
        ks = [k for k in floors["random"] if k in floors["item_order"]]
        lines += _table([["ranking", *(metric_label(k) for k in ks)],
                         *([FLOOR_LABELS[key], *(f"{floors[key][k]:.4f}" for k in ks)] for key in FLOOR_LABELS)])
        lines += [""]
    return lines


def to_csv(results: BenchResults) -> str:
    """One row per model: seeds, mean and std of every metric and resource, and the
    comparison with the reference (difference, interval, p, Holm p, per-seed Wilcoxon p)."""
    names = results.metric_names
    resources = [key for key, _, _ in RESOURCE_COLUMNS]
    baseline = results.header.get("baseline")
    sig_metrics = sorted({c.metric for c in results.comparisons if c.reference == baseline}, key=metric_sort_key)
    columns = ["model", "n_seeds", "failed_seeds"]
    for key in names + resources:
        columns += [f"{key}_mean", f"{key}_std"]
    for m in sig_metrics:
        columns += [f"{m}_diff", f"{m}_ci_low", f"{m}_ci_high", f"{m}_p", f"{m}_p_holm",
                    f"{m}_per_seed_wilcoxon_p", f"{m}_n_users"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for s in results.summaries:
        row: list[Any] = [s.model, len(s.seeds), " ".join(map(str, s.failed_seeds))]
        for key in names + resources:
            row += [_csv_number(s.mean.get(key)), _csv_number(s.std.get(key))]
        for m in sig_metrics:
            c = results.comparison(s.model, m)
            if c is None:
                row += [""] * 7
            else:
                row += [_csv_number(c.diff), _csv_number(c.ci_low), _csv_number(c.ci_high), _csv_number(c.p),
                        _csv_number(c.p_holm), " ".join(_csv_number(p) for p in c.per_seed_wilcoxon_p), c.n_users]
        writer.writerow(row)
    return buffer.getvalue()


def _csv_number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


