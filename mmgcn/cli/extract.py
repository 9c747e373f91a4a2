"""``mmgcn extract``: encode a dataset's item content into cached ``<modality>_feat.npy``.

Example::

    mmgcn extract ml-100k --modality image --encoder efficientnet-lite0
    mmgcn extract ml-100k --modality text --dtype float16
    mmgcn extract shop --modality image        # a dataset made by `mmgcn datasets import`
    mmgcn extract --list-encoders

Items without content (no image file, an empty text, a file the encoder cannot read) are
recorded as missing in ``<modality>_mask.npy`` (False) and the manifest; their feature row
is a fill (zeros or the mean), never an encoding of nothing.
"""

from __future__ import annotations

import argparse

from mmgcn.errors import ConfigError
from mmgcn.features.base import DEFAULT_ENCODERS, MODALITIES, available_encoders


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "extract",
        help="encode item content (posters, texts, audio) into cached features",
        description=(
            "Encode one modality of a dataset's item content with a pretrained encoder and write "
            "<modality>_feat.npy, <modality>_mask.npy and the manifest <modality>_feat.json into the "
            "dataset's feature cache. Resumable: re-running continues an interrupted extraction. "
            f"Offline defaults: {', '.join(f'{m}={e}' for m, e in DEFAULT_ENCODERS.items())}."
        ),
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="dataset name, e.g. ml-100k or one you imported")
    parser.add_argument("--dataset", help="dataset name (the same as NAME)")
    parser.add_argument("--modality", choices=MODALITIES, help="which content to encode")
    parser.add_argument("--encoder", help="encoder name (see --list-encoders) or, for text, a transformers model id / folder; default: the modality's offline default")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per forward pass (default 32)")
    parser.add_argument("--chunk-size", type=int, default=None, help="rows per resumable chunk (default 8 x batch size)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="feature file dtype (default float32)")
    parser.add_argument("--missing", choices=("zeros", "mean"), default="zeros",
                        help="feature row of items without readable content (default zeros); either way the mask "
                             "file <modality>_mask.npy marks them as missing")
    parser.add_argument("--data-dir", default=None, help="raw data root (default $MMGCN_DATA)")
    parser.add_argument("--cache-dir", default=None, help="cache root (default $MMGCN_CACHE or the user cache)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=None, help="encode only the first N items (written to a limit-N subfolder)")
    parser.add_argument("--restart", action="store_true", help="ignore partial or cached results and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list-encoders", action="store_true", help="list registered encoders and exit")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.list_encoders:
        for modality in MODALITIES:
            for name, summary in available_encoders(modality).items():
                default = " (default)" if DEFAULT_ENCODERS[modality] == name else ""
                print(f"{modality:6s} {name:20s} {summary}{default}")
        return 0
    if args.name and args.dataset and args.name != args.dataset:
        raise ValueError(f"mmgcn extract: NAME {args.name!r} and --dataset {args.dataset!r} differ; give one")
    args.dataset = args.dataset or args.name
    if not args.dataset or not args.modality:
        raise ConfigError("mmgcn extract needs a dataset NAME and --modality (or --list-encoders)")
    import torch

    from mmgcn.features.extract import extract_features
    from mmgcn.features.manifest import read_manifest

    if args.threads:
        torch.set_num_threads(args.threads)
    path = extract_features(
        args.dataset,
        args.modality,
        args.encoder,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        dtype=args.dtype,
        missing=args.missing,
        resume=not args.restart,
        limit=args.limit,
        device=args.device,
        progress=not args.no_progress,
    )
    manifest = read_manifest(path.with_suffix(".json"))
    missing = manifest["missing"]
    rate = manifest.get("items_per_second")
    print(f"wrote {path}")
    print(
        f"  {manifest['dataset']} {manifest['modality']}: {manifest['n_items']} items x {manifest['dim']} "
        f"({manifest['dtype']}), encoder {manifest['encoder']}"
    )
    print(
        f"  encoded {manifest['has_content_count']}, missing {missing['count']} "
        f"(no content {missing['no_content']}, unreadable {len(missing['failed'])}), filled with {missing['fill']}"
    )
    if manifest.get("truncated_count"):
        print(f"  truncated to the model's max length: {manifest['truncated_count']}")
    print(f"  speed: {rate:.2f} items/s over {manifest['encode_seconds']:.1f} s of encoding" if rate else "  speed: n/a")
    return 0
