"""Throughput of the content encoders: items/s on real ML-100K posters and texts and on
synthetic 10 s audio clips.

    python benchmarks/encoders.py                      # all offline encoders, CPU
    python benchmarks/encoders.py --device cuda --n-images 512 --n-texts 1024
    python benchmarks/encoders.py --encoders efficientnet-lite0 --threads 1

Prints one line per encoder: items, seconds, items/s, output dim. The first batch is a
warm-up and is not timed. Needs the real data (``$MMGCN_DATA`` or ``--data-dir``) for
posters and texts; encoders whose weights are unavailable are reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mmgcn.data.paths import dataset_dir
from mmgcn.features import DEFAULT_ENCODERS, WeightsNotFoundError, available_encoders, get_encoder
from mmgcn.features.base import encoder_modality


def poster_paths(folder: Path, n: int) -> list[Path]:
    paths = sorted((folder / "posters").glob("*.jpg"), key=lambda p: int(p.stem))
    if not paths:
        raise SystemExit(f"no posters under {folder / 'posters'}; set MMGCN_DATA or --data-dir")
    return [paths[i % len(paths)] for i in range(n)]


def movie_texts(folder: Path, n: int) -> list[str]:
    details = {d["movie_id"]: d.get("description") or "" for d in json.loads((folder / "movielens100k_details.json").read_text())}
    lines = (folder / "u.item").read_text(encoding="latin-1").splitlines()
    texts = [f"{line.split('|')[1]}. {details.get(int(line.split('|')[0]), '')}" for line in lines]
    return [texts[i % len(texts)] for i in range(n)]


def audio_clips(n: int, seconds: float = 10.0, rate: int = 16000) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    return [((0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32), rate) for _ in range(n)]


def bench(name: str, inputs: list, batch_size: int, device: str) -> dict | None:
    try:
        encoder = get_encoder(name, device=device)
    except (WeightsNotFoundError, KeyError) as exc:
        print(f"{name:20s} skipped: {str(exc).splitlines()[0][:150]}")
        return None
    encoder.batch_size = batch_size
    encoder.encode_batch(inputs[:batch_size])  # warm-up (lazy init, caches)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = encoder.encode_batch(inputs)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    row = {"encoder": name, "modality": encoder.modality, "items": len(inputs), "seconds": seconds,
           "items_per_second": len(inputs) / seconds, "dim": encoder.dim, "failed": int((~result.ok).sum())}
    print(f"{name:20s} {encoder.modality:6s} {len(inputs):6d} items {seconds:8.2f} s {row['items_per_second']:9.1f} items/s  dim {encoder.dim}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="*", default=None, help="encoder names (default: all registered)")
    parser.add_argument("--n-images", type=int, default=64)
    parser.add_argument("--n-texts", type=int, default=256)
    parser.add_argument("--n-audio", type=int, default=8, help="10 s clips")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = dataset_dir("ml-100k", args.data_dir)
    names = args.encoders or list(available_encoders())
    print(f"# torch {torch.__version__}, {args.device}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; defaults: {DEFAULT_ENCODERS}")
    rows = []
    for name in names:
        modality = encoder_modality(name) if name in available_encoders() else "text"  # else a transformers model
        inputs = {
            "image": lambda: poster_paths(folder, args.n_images),
            "text": lambda: movie_texts(folder, args.n_texts),
            "audio": lambda: audio_clips(args.n_audio),
        }[modality]()
        row = bench(name, inputs, args.batch_size, args.device)
        if row:
            rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
