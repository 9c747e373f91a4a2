"""How training and evaluation scale with the graph: seconds, peak memory, growth exponents.

    python benchmarks/scale.py                         # TikTok size .. 1M users x 100k items x 20M, then 40M
    python benchmarks/scale.py --sizes tiktok 1m       # some sizes
    python benchmarks/scale.py --report                # reprint the table from the saved JSON

On the synthetic generator (:mod:`mmgcn.data.synthetic`: Zipf item popularity, planted
tastes, two 128-d modalities as TikTok's visual + acoustic; random 8:1:1 split with 5% of
the items held out cold), for each size:

* **data**: generate, split and build the :class:`~mmgcn.data.Dataset` (time, peak RSS);
  cached under ``--cache`` (outside the repository) so every other cell loads it;
* **train** LightGCN (3 layers, 64-d) and MMGCN (TikTok's: 3 layers, visual projected to
  256-d, acoustic raw, 64-d), each **full-graph** (every step propagates over every edge)
  and **sampled** (``train.num_neighbors``: the batch's 3-hop neighbourhood, ``--fanout``
  neighbours per node and hop; MMGCN also with ``[-1, k, k]``, every neighbour on the batch's
  own hop, the setting that keeps its quality): build the model, draw one epoch of BPR
  triples, time ``--steps`` Adam steps of batch ``--batch-size`` after one warm-up step;
  seconds per epoch = the epoch's draw + steps per epoch x the mean step (an extrapolation
  from the timed steps, printed as such); peak RSS of the process;
* **evaluate** LightGCN's full ranking of the valid split (all items, train masked) in
  user blocks: the full-graph ``embed()`` plus scoring, ranking and metrics of
  ``--eval-users`` users (all when fewer), extrapolated to every valid user; the peak RSS
  above the model's shows that evaluation memory does not grow with the number of users.

Each cell runs in its own process (so each peak RSS is that cell's) under an address-space
limit (``--memory-limit``, default: the memory available at start less 2 GiB), so a size
that does not fit fails with a memory error naming the phase instead of waking the
kernel's OOM killer; failed cells are printed with the phase and the error. The table ends
with the fitted growth exponent ``b`` of ``y = a * edges^b`` (least squares on log-log over
the sizes where the cell ran) for every column. Results accumulate in
``--out/scale.json``: a cell measured once is reused (``--force`` re-measures). Timings are
wall-clock on whatever else the machine is running: the load average at each cell's start
and end is recorded with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: name -> generator arguments; "edges" in the table are the train edges the graph holds
SIZES: dict[str, dict[str, Any]] = {
    "tiktok": {"users": 9_308, "items": 6_710, "per_user": 8.0},
    "1m": {"users": 100_000, "items": 20_000, "per_user": 12.5},
    "4m": {"users": 300_000, "items": 50_000, "per_user": 16.7},
    "20m": {"users": 1_000_000, "items": 100_000, "per_user": 20.0},
    "40m": {"users": 2_000_000, "items": 200_000, "per_user": 20.0},
}
DEFAULT_SIZES = ("tiktok", "1m", "4m", "20m", "40m")
MODALITIES = {"image": 128, "audio": 128}
MODELS: dict[str, dict[str, Any]] = {
    "lightgcn": {"num_layers": 3, "dim": 64},
    "mmgcn": {"num_layers": 3, "dim": 64, "latent_dim": 256, "project_modalities": ["image"]},
}
GIB = 2**30


# ---------------------------------------------------------------------- child side
def _peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # KiB on Linux


def _current_rss() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _dataset_path(cache: Path, size: str) -> Path:
    return cache / f"synthetic-{size}"


def _make_data(size: str, cache: Path) -> dict[str, Any]:
    import scipy.sparse as sp

    from mmgcn.data.synthetic import make_synthetic

    spec = SIZES[size]
    started = time.perf_counter()
    dataset = make_synthetic(spec["users"], spec["items"], interactions_per_user=spec["per_user"],
                             modalities=MODALITIES, seed=0, progress=False, keep_planted=False)
    seconds = time.perf_counter() - started
    folder = _dataset_path(cache, size)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        sp.save_npz(folder / f"{split}.npz", dataset.split(split), compressed=False)
    for modality, values in dataset.features.items():
        np.save(folder / f"{modality}.npy", values.numpy())
    (folder / "DONE").write_text(json.dumps({"users": dataset.n_users, "items": dataset.n_items}))
    return {"seconds": seconds, "train_edges": int(dataset.train.nnz), "n_users": dataset.n_users,
            "n_items": dataset.n_items, "interactions": int(sum(dataset.split(s).nnz for s in ("train", "valid", "test")))}


def _load_data(size: str, cache: Path):
    import scipy.sparse as sp

    from mmgcn.data.dataset import Dataset

    folder = _dataset_path(cache, size)
    shape = json.loads((folder / "DONE").read_text())
    splits = {s: sp.load_npz(folder / f"{s}.npz").tocsr() for s in ("train", "valid", "test")}
    features = {m: np.load(folder / f"{m}.npy") for m in MODALITIES}
    return Dataset(f"synthetic-{size}", shape["users"], shape["items"], features=features, **splits)


def _train_cell(size: str, model_name: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from mmgcn.models.base import build_model
    from mmgcn.train.sampling import BPRSampler
    from mmgcn.train.subgraph import SubgraphTraining
    from mmgcn.train.trainer import run_epoch
    from mmgcn.utils.seed import seed_everything

    out: dict[str, Any] = {}
    phase = "load"
    try:
        dataset = _load_data(size, args.cache)
        phase = "build model"
        seed_everything(0)
        started = time.perf_counter()
        model = build_model(model_name, dataset, MODELS[model_name])
        step = SubgraphTraining(model, SAMPLED_MODES[mode](args.fanout)) if mode in SAMPLED_MODES else model
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        out["build_s"] = time.perf_counter() - started
        phase = "draw the epoch"
        sampler = BPRSampler(dataset.train, seed=0)
        started = time.perf_counter()
        batches = sampler.batches(args.batch_size)
        first = [next(batches)]
        out["epoch_draw_s"] = time.perf_counter() - started
        timed = [next(batches) for _ in range(args.steps)]
        phase = "train steps"
        warm = run_epoch(step, optimizer, _Fixed(first), args.batch_size)  # warm-up
        seconds = []
        edges = []
        if warm["seconds"] > args.step_budget / 4:  # a long step: warm-up effects are noise; it counts
            seconds.append(warm["seconds"])
            edges.append(getattr(step, "last_subgraph_edges", 2 * dataset.train.nnz))
        for batch in timed:
            if sum(seconds) > args.step_budget:
                break
            stats = run_epoch(step, optimizer, _Fixed([batch]), args.batch_size)
            seconds.append(stats["seconds"])
            edges.append(getattr(step, "last_subgraph_edges", 2 * dataset.train.nnz))
        out["step_s"] = float(np.mean(seconds))
        out["steps_timed"] = len(seconds)
        out["steps_per_epoch"] = sampler.n_batches(args.batch_size)
        out["epoch_s"] = out["epoch_draw_s"] + out["step_s"] * out["steps_per_epoch"]
        out["edges_per_step"] = float(np.mean(edges))
        out["params"] = int(model.num_parameters())
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "alloc" not in str(exc).lower() and "memory" not in str(exc).lower():
            raise
        out["failed"] = {"phase": phase, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    out["peak_rss"] = _peak_rss()
    return out


class _Fixed:
    """A sampler stand-in that yields the given batches (what run_epoch iterates)."""

    def __init__(self, batches: list) -> None:
        self._batches = batches

    def n_batches(self, batch_size: int) -> int:
        return len(self._batches)

    def batches(self, batch_size: int):
        yield from self._batches


def _eval_cell(size: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from mmgcn.eval.evaluator import evaluate
    from mmgcn.models.base import build_model
    from mmgcn.utils.seed import seed_everything

    out: dict[str, Any] = {}
    phase = "load"
    try:
        dataset = _load_data(size, args.cache)
        phase = "build model"
        seed_everything(0)
        model = build_model("lightgcn", dataset, MODELS["lightgcn"])
        model.eval()
        out["rss_before_eval"] = _current_rss()
        out["peak_before_eval"] = _peak_rss()
        phase = "embed"
        started = time.perf_counter()
        with torch.no_grad():
            emb = model.ranking_embed()
        out["embed_s"] = time.perf_counter() - started
        phase = "rank"
        valid_users = np.flatnonzero(np.diff(dataset.valid.indptr) > 0)
        users = valid_users[: args.eval_users] if args.eval_users else valid_users
        result = evaluate(model, dataset, split="valid", ks=(10, 20, 50), emb=emb, users=users)
        out["rank_s_measured"] = result.seconds
        out["users_ranked"] = int(result.n_users)
        out["valid_users"] = int(valid_users.size)
        out["rank_s"] = result.seconds * valid_users.size / max(result.n_users, 1)
        out["eval_s"] = out["embed_s"] + out["rank_s"]
        out["extrapolated"] = result.n_users < valid_users.size
        out["peak_rss"] = _peak_rss()
        out["eval_extra_rss"] = max(0.0, out["peak_rss"] - out["peak_before_eval"])
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "alloc" not in str(exc).lower() and "memory" not in str(exc).lower():
            raise
        out["failed"] = {"phase": phase, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        out["peak_rss"] = _peak_rss()
    return out


def child(spec: dict[str, Any], args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    kind = spec["kind"]
    load = os.getloadavg()
    if kind == "data":
        try:
            out = _make_data(spec["size"], args.cache)
        except MemoryError as exc:
            out = {"failed": {"phase": "generate + split", "error": f"MemoryError: {exc}"}}
        out["peak_rss"] = _peak_rss()
    elif kind == "train":
        out = _train_cell(spec["size"], spec["model"], spec["mode"], args)
    else:
        out = _eval_cell(spec["size"], args)
    out["load_avg"] = [load[0], os.getloadavg()[0]]
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------------- parent side
def _key(spec: dict[str, Any]) -> str:
    return "/".join(str(spec[k]) for k in ("size", "kind", "model", "mode") if k in spec)


def _memory_limit(args: argparse.Namespace) -> int:
    if args.memory_limit:
        return int(args.memory_limit * GIB)
    with open("/proc/meminfo") as handle:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle}
    return int(info["MemAvailable"] - 2 * GIB)


def run_child(spec: dict[str, Any], args: argparse.Namespace, limit: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", json.dumps(spec), "--cache", str(args.cache),
               "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
               "--fanout", str(args.fanout), "--eval-users", str(args.eval_users),
               "--step-budget", str(args.step_budget)]

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit_memory)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if lines:
        out = json.loads(lines[-1][len("RESULT "):])
    else:  # killed or crashed without a result: name what we know
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        out = {"failed": {"phase": "process", "error": f"exit code {done.returncode}: {tail}"}}
    out["wall_s"] = time.perf_counter() - started
    out["memory_limit"] = limit
    return out


def fit_exponent(edges: list[float], values: list[float]) -> float | None:
    """Slope ``b`` of ``log(value) = log(a) + b log(edges)`` by least squares (None under 2 points)."""
    pairs = [(e, v) for e, v in zip(edges, values) if v and v > 0]
    if len(pairs) < 2:
        return None
    x, y = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(np.polyfit(x, y, 1)[0])


# sampled modes: fan-outs from the batch outwards, for --fanout k. MMGCN keeps its quality only
# with the batch's own hop whole (benchmarks/sampled_quality.py), so that mode is timed too
SAMPLED_MODES = {"sampled": lambda k: [k], "sampled-whole-batch-hop": lambda k: [-1, k, k]}
TRAIN_MODES = {"lightgcn": ("full", "sampled"), "mmgcn": ("full", "sampled", "sampled-whole-batch-hop")}

COLUMNS = [  # (label, cell key, value key, scale, format)
    ("LightGCN full s/epoch", "train/lightgcn/full", "epoch_s", 1, "{:.0f}"),
    ("LightGCN sampled s/epoch", "train/lightgcn/sampled", "epoch_s", 1, "{:.0f}"),
    ("MMGCN full s/epoch", "train/mmgcn/full", "epoch_s", 1, "{:.0f}"),
    ("MMGCN sampled s/epoch", "train/mmgcn/sampled", "epoch_s", 1, "{:.0f}"),
    ("MMGCN sampled [-1,k,k] s/epoch", "train/mmgcn/sampled-whole-batch-hop", "epoch_s", 1, "{:.0f}"),
    ("LightGCN full s/step", "train/lightgcn/full", "step_s", 1, "{:.2f}"),
    ("LightGCN sampled s/step", "train/lightgcn/sampled", "step_s", 1, "{:.2f}"),
    ("MMGCN full s/step", "train/mmgcn/full", "step_s", 1, "{:.2f}"),
    ("MMGCN sampled s/step", "train/mmgcn/sampled", "step_s", 1, "{:.2f}"),
    ("MMGCN sampled [-1,k,k] s/step", "train/mmgcn/sampled-whole-batch-hop", "step_s", 1, "{:.2f}"),
    ("eval s (valid, all items)", "eval", "eval_s", 1, "{:.1f}"),
    ("data peak GiB", "data", "peak_rss", GIB, "{:.2f}"),
    ("LightGCN full peak GiB", "train/lightgcn/full", "peak_rss", GIB, "{:.2f}"),
    ("LightGCN sampled peak GiB", "train/lightgcn/sampled", "peak_rss", GIB, "{:.2f}"),
    ("MMGCN full peak GiB", "train/mmgcn/full", "peak_rss", GIB, "{:.2f}"),
    ("MMGCN sampled peak GiB", "train/mmgcn/sampled", "peak_rss", GIB, "{:.2f}"),
    ("MMGCN sampled [-1,k,k] peak GiB", "train/mmgcn/sampled-whole-batch-hop", "peak_rss", GIB, "{:.2f}"),
    ("eval peak GiB", "eval", "peak_rss", GIB, "{:.2f}"),
    ("eval extra GiB", "eval", "eval_extra_rss", GIB, "{:.3f}"),
]


def print_table(results: dict[str, Any], sizes: list[str], meta: dict[str, Any]) -> dict[str, Any]:
    """Print one row per measured figure and one column per size, the fitted exponent last."""
    rows = [s for s in sizes if s in results and "data" in results[s] and "train_edges" in results[s]["data"]]
    print(f"Scale on the synthetic generator ({meta['host']}, {meta['cpus']} CPUs, {meta['threads']} torch threads, "
          f"batch {meta['batch_size']}, sampled = {meta['fanout']} neighbours per node and hop, 3 hops; "
          f"[-1,k,k]: every neighbour on the batch's own hop, k on the two beyond).")
    print("Epoch seconds = one epoch's BPR draw + steps/epoch x mean of the timed steps (extrapolated); eval = "
          "full-graph embed + full ranking of every valid user (extrapolated from the users ranked).")
    print("At a fixed batch an epoch has edges/batch steps, so its exponent is 1 + the step's: the work of one "
          "step (s/step) is what should grow linearly with the edges; with the trainer's automatic batch size "
          "(128 steps per epoch beyond 262,144 train interactions) an epoch costs about 128 steps.")
    edges = {s: results[s]["data"]["train_edges"] for s in rows}
    width = max([12] + [len(f"{edges[s]:,}") + 1 for s in rows])
    label_width = max(len(label) for label, *_ in COLUMNS)
    print(f"{'':<{label_width}} " + "".join(f"{s:>{width}}" for s in rows) + f"{'b':>8}")
    for name, key in (("users", "n_users"), ("items", "n_items"), ("train edges", "train_edges")):
        print(f"{name:<{label_width}} " + "".join(f"{results[s]['data'][key]:>{width},}" for s in rows))
    exponents = {}
    for label, key, field, scale, fmt in COLUMNS:
        values = []
        for size in rows:
            cell = results[size].get(key, {})
            if "failed" in cell and field not in cell:
                values.append("FAIL")
            elif field in cell:
                values.append(fmt.format(cell[field] / scale))
            else:
                values.append("-")
        ok = [s for s in rows if field in results[s].get(key, {}) and "failed" not in results[s].get(key, {})]
        b = fit_exponent([edges[s] for s in ok], [results[s][key][field] for s in ok])
        exponents[label] = {"b": b, "sizes": ok}
        print(f"{label:<{label_width}} " + "".join(f"{v:>{width}}" for v in values)
              + f"{('-' if b is None else f'{b:.2f}'):>8}")
    loads = []
    for size in rows:
        values = [v for cell in results[size].values() if isinstance(cell, dict)
                  for v in cell.get("load_avg", [])]
        loads.append(f"{np.mean(values):.1f}" if values else "-")
    load_label = f"load average ({meta['cpus']} CPUs)"
    print(f"{load_label:<{label_width}} " + "".join(f"{v:>{width}}" for v in loads))
    print("b: least-squares slope of log(figure) on log(train edges) over the sizes measured; - = not measured; "
          "load average: the 1-minute load at the cells' start and end, averaged (above the CPU count, "
          "other jobs shared the cores and every time is inflated)")
    failures = [(s, key, cell["failed"]) for s in rows for key, cell in results[s].items()
                if isinstance(cell, dict) and "failed" in cell]
    failures += [(s, "data", results[s]["data"]["failed"]) for s in sizes
                 if s in results and "failed" in results[s].get("data", {})]
    for size, key, failure in failures:
        limit = results[size].get(key, {}).get("memory_limit")
        print(f"does not fit: {size} {key}: in phase '{failure['phase']}': {failure['error']}"
              + (f" (address-space limit {limit / GIB:.1f} GiB)" if limit else ""))
    details = []
    for size in rows:
        cell = results[size].get("eval", {})
        if "users_ranked" in cell:
            details.append(f"{size}: ranked {cell['users_ranked']:,} of {cell['valid_users']:,} valid users in "
                           f"{cell['rank_s_measured']:.1f} s, embed {cell['embed_s']:.1f} s")
        for key in ("train/lightgcn/sampled", "train/mmgcn/sampled", "train/mmgcn/sampled-whole-batch-hop",
                    "train/lightgcn/full"):
            c = results[size].get(key, {})
            if "edges_per_step" in c:
                details.append(f"{size} {key}: {c['steps_per_epoch']} steps/epoch, {c['steps_timed']} timed at "
                               f"{c['step_s']:.2f} s, {c['edges_per_step']:,.0f} edges per step")
    for line in details:
        print("  " + line)
    return exponents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), choices=sorted(SIZES))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale"))
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "mmgcn-scale")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per cell (default 1: on a shared, loaded machine more threads spin)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per cell (after one warm-up)")
    parser.add_argument("--step-budget", type=float, default=240.0, help="stop timing steps after this many seconds")
    parser.add_argument("--fanout", type=int, default=10, help="neighbours per node and hop in the sampled mode")
    parser.add_argument("--eval-users", type=int, default=100_000, help="users ranked (0: all), then extrapolated")
    parser.add_argument("--memory-limit", type=float, default=None, help="GiB of address space per cell")
    parser.add_argument("--force", action="store_true", help="re-measure cells already in the JSON")
    parser.add_argument("--report", action="store_true", help="print the table from the JSON only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child), args)
        return
    path = args.out / "scale.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    results: dict[str, Any] = saved.get("results", {})
    meta = saved.get("meta") or {"host": platform.node(), "cpus": os.cpu_count(), "threads": args.threads,
                                 "batch_size": args.batch_size, "fanout": args.fanout, "steps": args.steps,
                                 "eval_users": args.eval_users, "torch": None}
    if not args.report:
        import torch

        from mmgcn.utils.io import atomic_write_json

        meta.update(torch=torch.__version__, threads=args.threads, batch_size=args.batch_size, fanout=args.fanout)
        limit = _memory_limit(args)
        args.cache.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            cells = results.setdefault(size, {})
            specs = [{"size": size, "kind": "data"}]
            specs += [{"size": size, "kind": "train", "model": m, "mode": mode} for m in MODELS
                      for mode in TRAIN_MODES[m]]
            specs += [{"size": size, "kind": "eval"}]
            for spec in specs:
                key = _key(spec).split("/", 1)[1]
                have_data = (_dataset_path(args.cache, size) / "DONE").is_file()
                if key in cells and not args.force and (spec["kind"] != "data" or have_data):
                    continue
                if spec["kind"] != "data" and "failed" in cells.get("data", {"failed": 1}):
                    continue
                print(f"[{time.strftime('%H:%M:%S')}] {size} {key} ...", flush=True)
                cells[key] = run_child(spec, args, limit)
                print(f"    {json.dumps({k: v for k, v in cells[key].items() if k != 'memory_limit'})}", flush=True)
                atomic_write_json(path, {"meta": meta, "results": results})
    exponents = print_table(results, [s for s in DEFAULT_SIZES if s in results], meta)
    if not args.report:
        from mmgcn.utils.io import atomic_write_json

        atomic_write_json(path, {"meta": meta, "results": results, "exponents": exponents})


if __name__ == "__main__":
    main()
