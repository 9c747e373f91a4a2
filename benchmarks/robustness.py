"""Robustness table: hostile inputs and faults against the toolkit, every outcome classified.

    python benchmarks/robustness.py [--seed 0] [--json benchmarks/robustness/results.json]
                                    [--md benchmarks/robustness/results.md] [--suite]

Runs a catalogue of cases -- bad ``--set`` values and config files, bad bench configs,
mutated interaction / feature / pickle / checkpoint files (truncations and bit flips at
seeded random offsets), malicious pickles and archives, a local HTTP server that
trickles, lies and drops, runs used with other data, damaged benchmark cells, locked
benchmark folders -- each in this process under a hard time limit, and classifies each
outcome:

* **typed error**: refused with one clear line (the CLI's ``mmgcn: error: ...``, exit
  code 2) or a typed :class:`mmgcn.errors.MmgcnError` / file-system error;
* **accepted, correct**: accepted, and the result was checked to equal the right one
  (e.g. the same dataset as before a harmless mutation, the value that was set);
* **traceback**: anything else escaped (an internal error);
* **silently wrong**: accepted with a wrong result, or accepted although it had to be refused;
* **hang**: ran past its time limit;
* **wrongly refused**: a valid input refused.

Targets: 0 tracebacks, 0 silently wrong, 0 hangs, 0 wrongly refused. ``--suite`` also runs
the pytest fault suite (``tests/faults``, without the slow kill tests) and prints its count.
Cases are generated from ``--seed``; everything runs on CPU, on synthetic data and
temporary files only (no real dataset is read).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import multiprocessing
import os
import pickle
import random
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "faults"))  # fault_server.py

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from mmgcn.errors import MmgcnError  # noqa: E402

OUTCOMES = ("typed error", "accepted, correct", "traceback", "silently wrong", "hang", "wrongly refused")


class Refused(Exception):
    """The CLI refused with one clear line and exit code 2."""


class Internal(Exception):
    """The CLI reported an internal error, or printed something other than one clean line."""


class Hang(Exception):
    pass


@dataclasses.dataclass
class Case:
    category: str
    name: str
    run: Callable[[], bool]
    expect: str = "error"  # "error", "ok" or "either"
    limit_s: float = 60.0


# ---------------------------------------------------------------------- running one case
def classify(case: Case) -> tuple[str, str]:
    def expire(signum, frame):
        raise Hang(f"past {case.limit_s:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, case.limit_s)
    try:
        correct = case.run()
    except Hang as exc:
        return "hang", str(exc)
    except (Refused, MmgcnError, OSError) as exc:
        detail = " ".join(str(exc).split())[:160]
        return ("wrongly refused" if case.expect == "ok" else "typed error"), detail
    except Exception as exc:  # noqa: BLE001 - this is what the table counts
        return "traceback", f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if correct is not True:
        return "silently wrong", "accepted with a wrong result" if correct is False else str(correct)
    if case.expect == "error":
        return "silently wrong", "accepted, but it had to be refused"
    return "accepted, correct", ""


def cli(*argv: str, check: Callable[[str], bool] | None = None) -> bool:
    """Run ``mmgcn ARGV`` in-process; exit 2 with one clean line raises :class:`Refused`."""
    from mmgcn.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
            if code == 2:
                raise Refused(err.getvalue().strip().splitlines()[-1]) from None
    text = err.getvalue().strip()
    if code == 2:
        last = text.splitlines()[-1] if text else ""
        if not last.startswith("mmgcn: error: ") or "Traceback" in text:
            raise Internal(f"exit 2 but not one clean line: {text[-300:]!r}")
        raise Refused(last)
    if code != 0:
        raise Internal(f"exit {code}: {text[-300:]}")
    return check(out.getvalue()) if check is not None else True


# ---------------------------------------------------------------------- the world the cases use
class World:
    """Synthetic data, a fake dataset registry for the CLI, and a few trained runs."""

    def __init__(self, root: Path, seed: int) -> None:
        import mmgcn.cli.train as cli_train
        import mmgcn.train.loading as loading
        from mmgcn.data.dataset import Dataset
        from mmgcn.data.synthetic import make_synthetic

        self.root = root
        self.rng = random.Random(seed)
        self.data = make_synthetic(40, 25, modalities={"image": 6, "text": 4}, interactions_per_user=6,
                                   seed=seed, progress=False)
        d = self.data
        self.other = Dataset(d.name, d.n_users, d.n_items, d.train, d.test, d.valid, features=dict(d.features))

        def load(name: str, data_dir: Any = None, **kwargs: Any):
            if name != "synthetic":
                from mmgcn.data.registry import dataset_card

                dataset_card(name)  # unknown names fail as the real loader does
                raise Refused(f"{name}: not part of this benchmark's world")
            return self.other if kwargs.get("split") == "random" or str(data_dir) == "/other" else d

        cli_train.load_dataset = load
        loading.load_dataset = load
        self.counter = 0

    def path(self, stem: str) -> Path:
        self.counter += 1
        path = self.root / f"{self.counter:04d}-{stem}"
        path.mkdir(parents=True)
        return path

    def train(self, run_dir: Path, *extra: str) -> bool:
        return cli("train", "--model", "bpr", "--dataset", "synthetic", "--run-dir", str(run_dir),
                   "--set", "train.epochs=1", "--set", "train.progress=false", "--set", "train.batch_size=64",
                   "--set", "model.dim=8", *extra)

    def trained_run(self, model: str = "bpr") -> Path:
        run_dir = self.path(f"run-{model}") / "run"
        cli("train", "--model", model, "--dataset", "synthetic", "--run-dir", str(run_dir),
            "--set", "train.epochs=2", "--set", "train.progress=false", "--set", "train.batch_size=64",
            "--set", "model.dim=8")
        return run_dir


def _same_dataset(a: Any, b: Any) -> bool:
    """Same interactions in every split, same sizes, same features (names may differ)."""
    from mmgcn.data.fingerprint import dataset_fingerprint

    keys = ("n_users", "n_items", "edges", "interactions_sha256", "features")
    fa, fb = dataset_fingerprint(a), dataset_fingerprint(b)
    return all(fa[k] == fb[k] for k in keys)


def _mutations(raw: bytes, rng: random.Random, n_trunc: int, n_flip: int) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(n_trunc):
        cut = rng.randrange(0, len(raw))
        out.append((f"truncated at byte {cut} of {len(raw)}", raw[:cut]))
    for _ in range(n_flip):
        pos = rng.randrange(0, len(raw))
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << rng.randrange(8)
        out.append((f"bit flip at byte {pos}", bytes(flipped)))
    return out


# ---------------------------------------------------------------------- case catalogue
def config_cases(w: World) -> list[Case]:
    cases = []
    bad = {
        "train.lr": [".inf", "-.inf", ".nan", "0", "-1e-3", "1e12", "abc", "[1]", "{a: 1}", "null", "true", "''"],
        "train.epochs": ["0", "-1", "1.5", "abc", "1e999", "[", "null", "true"],
        "train.batch_size": ["0", "-5", "two", "[2]"],
        "train.patience": ["0", "-1", "x"],
        "train.weight_decay": ["-1", ".inf", ".nan", "x"],
        "train.metric": ["recall@7", "bogus@20", "recall", "''", "5"],
        "train.ks": ["[]", "[0]", "[-1]", "x", "[a]"],
        "train.device": ["tpu", "cuda:x", "''", "7"],
        "train.valid_mask": ["[test]", "[bogus]"],
        "train.test_mask": ["[test]"],
        "train.negatives": ["bogus"],
        "train.eval_block_size": ["0", "-1"],
        "train.min_delta": ["-1", ".inf"],
        "model.dim": ["0", "-8", "x", "1.5"],
        "model.reg_weight": ["-0.1", ".inf", ".nan", "x"],
        "model.bogus": ["1"],
        "train.bogus": ["1"],
        "bogus": ["1"],
        "run.bogus": ["1"],
        "train": ["5"],
    }
    for key, values in bad.items():
        for value in values:
            text = f"{key}={value}"
            cases.append(Case("config: --set", text, lambda t=text: w.train(w.path("set") / "run", "--set", t)))
    for text in ("train.lr", "=3", "train..lr=1", ".x=1", "train.lr=[", "train.lr={", "a.b.c.d=1", "train.lr= : :"):
        cases.append(Case("config: --set", f"malformed {text!r}", lambda t=text: w.train(w.path("set") / "run", "--set", t)))

    def accepted(text: str, key: tuple[str, str], want: Any) -> bool:
        run_dir = w.path("set") / "run"
        w.train(run_dir, "--set", text)
        got = yaml.safe_load((run_dir / "config.yaml").read_text())[key[0]][key[1]]
        return got == want or f"{text} resolved to {got!r}, expected {want!r}"

    good = [("train.lr=5e-3", ("train", "lr"), 0.005), ("train.lr=0.01", ("train", "lr"), 0.01),
            ("train.lr=1", ("train", "lr"), 1.0), ("train.weight_decay=0", ("train", "weight_decay"), 0.0),
            ("train.patience=3", ("train", "patience"), 3), ("train.ks=[5, 20]", ("train", "ks"), [5, 20]),
            ("train.metric=ndcg@20", ("train", "metric"), "ndcg@20"), ("model.reg_weight=0", ("model", "reg_weight"), 0.0),
            ("model.dim=4", ("model", "dim"), 4), ("train.seed=123", ("train", "seed"), 123),
            ("train.batch_size=1000000", ("train", "batch_size"), 1000000), ("train.lr=1.0e-4", ("train", "lr"), 1e-4)]
    for text, key, want in good:
        cases.append(Case("config: --set", f"valid {text}", lambda t=text, k=key, v=want: accepted(t, k, v), expect="ok"))

    files = {
        "empty file": "", "top-level list": "- a\n- b\n", "top-level scalar": "42\n", "unclosed bracket": "train: {epochs: 3\n",
        "tab indentation": "train:\n\tepochs: 3\n", "unknown section": "trainer: {epochs: 3}\n",
        "section not a mapping": "train: 5\n", "duplicate anchors": "a: &x 1\nb: *y\n",
        "binary garbage": "\x00\x01\x02garbage\xff", "deep nesting": "train: " + "[" * 2000 + "]" * 2000 + "\n",
        "python object tag": "train: !!python/object/apply:os.system ['echo PAYLOAD']\n",
        "unknown key": "train: {bogus: 1}\n", "wrong type": "train: {patience: [1, 2]}\n",
        "non-UTF-8": None,
    }
    for name, text in files.items():
        def run_file(name=name, text=text) -> bool:
            folder = w.path("cfg")
            path = folder / "c.yaml"
            if text is None:
                path.write_bytes(b"train: {metric: \xff\xfe}\n")
            else:
                path.write_text(text, encoding="utf-8", errors="surrogateescape")
            return w.train(folder / "run", "--config", str(path))
        expect = "ok" if name == "empty file" else "error"
        cases.append(Case("config: file", name, run_file, expect=expect))
    for name, target in (("missing file", "nope.yaml"), ("a directory", ".")):
        cases.append(Case("config: file", name, lambda t=target: w.train(w.path("cfg") / "run", "--config",
                                                                         str(w.root / t))))
    return cases


def bench_config_cases(w: World) -> list[Case]:
    texts = {
        "empty file": "", "only comments": "# nothing\n", "models: []": "dataset: synthetic\nmodels: []\n",
        "models: null": "dataset: synthetic\nmodels:\n", "bpr[text]": "dataset: synthetic\nmodels: ['bpr[text]']\n",
        "popular[image]": "dataset: synthetic\nmodels: ['popular[image]']\n",
        "lightgcn[image+text]": "dataset: synthetic\nmodels: ['lightgcn[image+text]']\n",
        "unknown model": "dataset: synthetic\nmodels: [nosuch]\n", "bad spec": "dataset: synthetic\nmodels: ['mmgcn[']\n",
        "modality twice": "dataset: synthetic\nmodels: ['mmgcn[image+image]']\n",
        "seeds 0": "dataset: synthetic\nmodels: [bpr]\nseeds: 0\n", "seeds -1": "dataset: synthetic\nmodels: [bpr]\nseeds: -1\n",
        "select_on test": "dataset: synthetic\nmodels: [bpr]\nselect_on: test\n",
        "grid on test": "dataset: synthetic\nmodels: [bpr]\ngrids: {bpr: {params: {dim: [8]}, select_on: test}}\n",
        "empty grid": "dataset: synthetic\nmodels: [bpr]\ngrids: {bpr: {params: {}}}\n",
        "bad protocol": "dataset: synthetic\nmodels: [bpr]\nprotocol: warm\n",
        "bad metric": "dataset: synthetic\nmodels: [bpr]\nmetric: recall\n", "ks empty": "dataset: synthetic\nmodels: [bpr]\nks: []\n",
        "dataset path": "dataset: ../etc\nmodels: [bpr]\n", "mode in file": "dataset: synthetic\nmodels: [bpr]\nmode: full\n",
        "model listed twice": "dataset: synthetic\nmodels: [bpr, bpr]\n", "unknown key": "dataset: synthetic\nmodels: [bpr]\nbogus: 1\n",
        "train sets metric": "dataset: synthetic\nmodels: [bpr]\ntrain: {metric: ndcg@10}\n",
        "full not a mapping": "dataset: synthetic\nmodels: [bpr]\nfull: 3\n",
        "cuda without GPU": "dataset: synthetic\nmodels: [bpr]\ndevice: cuda\n",
    }
    cases = []
    for name, text in texts.items():
        if name == "cuda without GPU" and torch.cuda.is_available():
            continue

        def run(text=text) -> bool:
            folder = w.path("bench")
            (folder / "b.yaml").write_text(text.replace("dataset: synthetic", "dataset: ml-100k"))
            return _bench_validates(folder, "--config", str(folder / "b.yaml"))
        cases.append(Case("bench config", name, run))
    for flags in (["--models", ""], ["--models", ",,"], ["--seeds", "0"], ["--models", "bpr[text]"], ["--protocol", "warm"],
                  ["--dataset", "nosuch"], ["--set", "train.lr=-1"], ["--set", "model_configs={bpr: {dim: -1}}"]):
        def run_flags(flags=flags) -> bool:
            folder = w.path("bench")
            (folder / "b.yaml").write_text("dataset: ml-100k\nmodels: [bpr]\n")
            return _bench_validates(folder, "--config", str(folder / "b.yaml"), *flags)
        cases.append(Case("bench config", f"flags {' '.join(flags)}", run_flags))
    return cases


def _bench_validates(folder: Path, *argv: str) -> bool:
    """``mmgcn bench`` pointed at an empty data folder: a config problem must be refused
    before the dataset is looked for (a "missing files" error means it was accepted)."""
    try:
        return cli("bench", *argv, "--out", str(folder / "out"), "--data-dir", str(folder / "no-data"), "--no-progress")
    except Refused as exc:
        if "is missing" in str(exc):
            return "config accepted: it failed only when the dataset was loaded"
        raise


def inter_cases(w: World) -> list[Case]:
    from mmgcn.data.readers.mmrec import read_mmrec, write_mmrec

    base = w.path("mmrec-base")
    write_mmrec(w.data, base, name="syn")
    raw = (base / "syn.inter").read_bytes()
    cases = []

    def with_inter(content: bytes, sidecar: bool = True, features: bool = True) -> bool:
        folder = w.path("mmrec")
        for f in base.iterdir():
            if (f.suffix == ".json" and not sidecar) or (f.name.endswith("_feat.npy") and not features):
                continue
            (folder / f.name).write_bytes(f.read_bytes())
        (folder / "syn.inter").write_bytes(content)
        loaded = read_mmrec(folder, "syn")
        return _same_dataset(loaded, w.data) or "read a dataset other than the one written"

    for name, content in _mutations(raw, w.rng, 25, 50):
        cases.append(Case("interaction file (.inter + sidecar)", name, lambda c=content: with_inter(c), expect="either"))
    lines = raw.decode().splitlines(keepends=True)
    edits = {
        "header only": lines[0], "empty file": "", "header renamed": "user\titem\trating\ttimestamp\tx_label\n" + "".join(lines[1:]),
        "a line deleted": "".join(lines[:5] + lines[6:]), "a line duplicated": "".join(lines[:5] + [lines[5]] + lines[5:]),
        "blank line inside": "".join(lines[:5] + ["\n"] + lines[5:]), "CRLF endings": "".join(line.replace("\n", "\r\n") for line in lines),
        "x_label 3": "".join(lines[:3] + ["0\t0\t1\t0\t3\n"] + lines[3:]),
        "float id": "".join(lines[:3] + ["0.5\t0\t1\t0\t0\n"] + lines[3:]),
        "negative id": "".join(lines[:3] + ["-1\t0\t1\t0\t0\n"] + lines[3:]),
        "text id": "".join(lines[:3] + ["abc\t0\t1\t0\t0\n"] + lines[3:]),
        "missing field": "".join(lines[:3] + ["0\t0\t1\n"] + lines[3:]),
        "extra field": "".join(lines[:3] + ["0\t0\t1\t0\t0\t9\n"] + lines[3:]),
        "absurd user id 4e9": "".join(lines + ["4000000000\t0\t1\t0\t0\n"]),
        "absurd item id 1e15": "".join(lines + ["0\t1000000000000000\t1\t0\t0\n"]),
        "id 2**63-1": "".join(lines + [f"{2**63 - 1}\t0\t1\t0\t0\n"]),
        "id 2**64": "".join(lines + [f"{2**64}\t0\t1\t0\t0\n"]),
        "NUL bytes": "".join(lines[:3] + ["\x00\x00\n"] + lines[3:]),
    }
    for name, text in edits.items():
        cases.append(Case("interaction file (.inter + sidecar)", name, lambda t=text: with_inter(t.encode("utf-8"))))
    cases.append(Case("interaction file (.inter + sidecar)", "not UTF-8", lambda: with_inter(raw[:100] + b"\xff\xfe" + raw[100:])))
    # without a sidecar: the feature files declare the item catalogue; ids must be dense
    no_side = {
        "item beyond the feature rows": "".join(lines + [f"0\t{w.data.n_items}\t1\t0\t0\n"]),
        "item far beyond the feature rows": "".join(lines + ["0\t999\t1\t0\t0\n"]),
        "sparse user ids (4e6, no catalogue)": "".join(lines + ["4000000\t0\t1\t0\t0\n"]),
        "absurd user id 4e9": "".join(lines + ["4000000000\t0\t1\t0\t0\n"]),
    }
    for name, text in no_side.items():
        cases.append(Case("interaction file (no sidecar)", name, lambda t=text: with_inter(t.encode(), sidecar=False)))
    cases.append(Case("interaction file (no sidecar)", "unchanged files", lambda: with_inter(raw, sidecar=False), expect="ok"))

    def sparse_without_features() -> bool:
        folder = w.path("mmrec")
        (folder / "syn.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n3000000\t1\t0\n")
        read_mmrec(folder, "syn")
        return True
    cases.append(Case("interaction file (no sidecar)", "sparse ids, no features", sparse_without_features))
    return cases


def feature_cases(w: World) -> list[Case]:
    from mmgcn.data.readers.common import load_feature_file

    good = np.random.default_rng(0).normal(size=(25, 6)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, good)
    raw = buffer.getvalue()
    cases = []

    def load_bytes(content: bytes) -> bool:
        path = w.path("feat") / "image_feat.npy"
        path.write_bytes(content)
        got = load_feature_file(path, 25)
        return np.array_equal(got, good) or "loaded features other than the ones written"

    # bit flips only in the header: a flip in the float data is another valid array, which only
    # a checksum can tell (the loaders check the card's pins and the extraction manifest's sha256)
    header_len = raw.index(b"\n") + 1
    for _ in range(20):
        cut = w.rng.randrange(0, len(raw))
        cases.append(Case("feature file (.npy)", f"truncated at byte {cut}", lambda c=raw[:cut]: load_bytes(c), expect="either"))
    for _ in range(20):
        pos = w.rng.randrange(0, header_len)
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << w.rng.randrange(8)
        cases.append(Case("feature file (.npy)", f"header bit flip at byte {pos}", lambda c=bytes(flipped): load_bytes(c), expect="either"))

    def array_case(array: Any, allow_pickle: bool = False) -> Callable[[], bool]:
        def run() -> bool:
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=allow_pickle)
            return load_bytes(buf.getvalue())
        return run

    nan = good.copy()
    nan[3, 2] = np.nan
    inf = good.copy()
    inf[0, 0] = np.inf
    specials = {"NaN value": nan, "inf value": inf, "1-D array": good[:, 0], "3-D array": good[None], "24 rows": good[:24],
                "26 rows": np.vstack([good, good[:1]]), "zero columns": good[:, :0], "complex dtype": good.astype(np.complex64),
                "string dtype": good.astype(str), "bool dtype": good > 0}
    for name, array in specials.items():
        cases.append(Case("feature file (.npy)", name, array_case(array)))
    cases.append(Case("feature file (.npy)", "pickled object array", array_case(np.array([{"a": 1}] * 25, dtype=object), True)))
    cases.append(Case("feature file (.npy)", "float16 (widened exactly)",
                      lambda: np.array_equal(load_feature_file(_save(w, good.astype(np.float16)), 25), good.astype(np.float16).astype(np.float32)), expect="ok"))
    cases.append(Case("feature file (.npy)", "Fortran order", lambda: np.array_equal(load_feature_file(_save(w, np.asfortranarray(good)), 25), good), expect="ok"))
    cases.append(Case("feature file (.npy)", "not an .npy", lambda: load_bytes(b"PK\x03\x04 not numpy at all")))
    cases.append(Case("feature file (.npy)", "missing file", lambda: load_feature_file(w.root / "absent_feat.npy", 25)))
    return cases


def _save(w: World, array: np.ndarray) -> Path:
    path = w.path("feat") / "x_feat.npy"
    np.save(path, array)
    return path


def pickle_cases(w: World) -> list[Case]:
    from mmgcn.data.readers.mmssl import read_mmssl
    from mmgcn.data.safe_pickle import load_sparse_pickle

    base = w.path("mmssl-base")
    for fname, split in (("trnMat.pkl", "train"), ("valMat.pkl", "valid"), ("tstMat.pkl", "test")):
        (base / fname).write_bytes(pickle.dumps(sp.coo_matrix(w.data.split(split)), protocol=3))
    pins = {f.name: __import__("hashlib").sha256(f.read_bytes()).hexdigest() for f in base.iterdir()}
    reference = read_mmssl(base, name="syn", convention="files")
    raw = (base / "trnMat.pkl").read_bytes()
    cases = []

    def with_train(content: bytes, use_pins: bool) -> bool:
        folder = w.path("mmssl")
        for f in base.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        (folder / "trnMat.pkl").write_bytes(content)
        got = read_mmssl(folder, name="syn", convention="files", pins=pins if use_pins else None)
        return _same_dataset(got, reference) or "read a matrix other than the one pickled"

    for name, content in _mutations(raw, w.rng, 20, 30):
        cases.append(Case("pickle (.pkl, card pins)", name, lambda c=content: with_train(c, True), expect="either"))
    for _ in range(15):  # without pins: truncations must still be refused cleanly
        cut = w.rng.randrange(0, len(raw))
        cases.append(Case("pickle (.pkl, no pins)", f"truncated at byte {cut}", lambda c=raw[:cut]: with_train(c, False), expect="either"))

    class Reduce:
        def __init__(self, func: Any, args: tuple) -> None:
            self.func, self.args = func, args

        def __reduce__(self):
            return (self.func, self.args)

    payloads = {
        "os.system": Reduce(os.system, ("echo PAYLOAD",)), "builtins.eval": Reduce(eval, ("1+1",)),
        "builtins.exec": Reduce(exec, ("x=1",)), "subprocess.Popen": Reduce(subprocess.Popen, (["true"],)),
        "builtins.getattr": Reduce(getattr, ("text", "upper")), "builtins.open": Reduce(open, ("/etc/hostname",)),
        "object dtype array": np.array([1, "a"], dtype=object), "plain dict": {"a": 1}, "list": [1, 2, 3],
        "dense matrix": np.eye(3),
    }
    for name, payload in payloads.items():
        def run_payload(payload=payload) -> bool:
            path = w.path("pkl") / "trnMat.pkl"
            path.write_bytes(pickle.dumps(payload, protocol=3))
            load_sparse_pickle(path)
            return True
        cases.append(Case("pickle (malicious / wrong object)", name, run_payload))

    def crafted_shape(shape: tuple, rows: list, cols: list) -> Callable[[], bool]:
        def run() -> bool:
            matrix = object.__new__(sp.coo_matrix)  # a pickle as scipy writes it, with crafted fields
            matrix.__dict__.update({"_shape": shape, "coords": (np.array(rows), np.array(cols)),
                                    "data": np.ones(len(rows)), "has_canonical_format": False, "maxprint": 50})
            path = w.path("pkl") / "trnMat.pkl"
            path.write_bytes(pickle.dumps(matrix, protocol=3))
            load_sparse_pickle(path)
            return True
        return run

    for name, args in {"shape 4e9 x 4e9": ((4_000_000_000, 4_000_000_000), [0], [0]),
                       "index beyond shape": ((3, 3), [5], [0]), "negative shape": ((-1, 3), [0], [0])}.items():
        cases.append(Case("pickle (malicious / wrong object)", name, crafted_shape(*args)))
    return cases


def checkpoint_cases(w: World) -> list[Case]:
    from mmgcn.train.checkpoint import load_checkpoint, save_checkpoint

    run_dir = w.trained_run()
    best = run_dir / "checkpoints" / "best.pt"
    raw = best.read_bytes()
    printed: dict = {}
    cli("evaluate", str(run_dir), "--json", check=lambda out: printed.update(json.loads(out)) or True)
    want = printed["metrics"]
    cases = []

    def evaluate_with(content: bytes) -> bool:
        folder = w.path("ckpt")
        target = folder / "run"
        import shutil

        shutil.copytree(run_dir, target)
        (target / "checkpoints" / "best.pt").write_bytes(content)
        got: dict = {}
        cli("evaluate", str(target), "--json", check=lambda out: got.update(json.loads(out)) or True)
        return got["metrics"] == want or "evaluated other weights"

    for name, content in _mutations(raw, w.rng, 15, 40):
        cases.append(Case("checkpoint", name, lambda c=content: evaluate_with(c), expect="either"))

    def weights(edit: Callable[[dict], None]) -> Callable[[], bool]:
        def run() -> bool:
            state = load_checkpoint(best)
            edit(state)
            folder = w.path("ckpt") / "c.pt"
            save_checkpoint(folder, state)
            return evaluate_with(folder.read_bytes())
        return run

    first = lambda s: next(iter(s["model"]))  # noqa: E731
    cases += [
        Case("checkpoint", "NaN weights", weights(lambda s: s["model"][first(s)].fill_(float("nan")))),
        Case("checkpoint", "inf weights", weights(lambda s: s["model"][first(s)].fill_(float("inf")))),
        Case("checkpoint", "weights of another shape", weights(lambda s: s["model"].__setitem__(first(s), torch.zeros(3, 3)))),
        Case("checkpoint", "missing weights", weights(lambda s: s["model"].pop(first(s)))),
        Case("checkpoint", "extra weights", weights(lambda s: s["model"].__setitem__("bogus", torch.zeros(1)))),
        Case("checkpoint", "another model's name", weights(lambda s: s.__setitem__("model_name", "lightgcn"))),
        Case("checkpoint", "model field not a dict", weights(lambda s: s.__setitem__("model", [1, 2]))),
        Case("checkpoint", "no model field", weights(lambda s: s.pop("model"))),
        Case("checkpoint", "unchanged (re-saved)", weights(lambda s: None), expect="ok"),
    ]

    def format_edit(value: Any) -> Callable[[], bool]:
        def run() -> bool:
            buffer = io.BytesIO()
            torch.save(value, buffer)
            return evaluate_with(buffer.getvalue())
        return run

    cases += [Case("checkpoint", "format 99", format_edit({"format": 99})), Case("checkpoint", "a bare tensor", format_edit(torch.zeros(3))),
              Case("checkpoint", "empty file", lambda: evaluate_with(b"")),
              Case("checkpoint", "plain pickle with a payload", lambda: evaluate_with(pickle.dumps(
                  type("P", (), {"__reduce__": lambda self: (print, ("PAYLOAD",))})())))]
    return cases


def run_binding_cases(w: World) -> list[Case]:
    def fresh() -> Path:
        return w.trained_run()

    def evaluate_override() -> bool:
        run_dir = fresh()
        out: dict = {}
        cli("evaluate", str(run_dir), "--data-dir", "/other", "--json", "--allow-data-change",
            check=lambda text: out.update(json.loads(text)) or True)
        recorded = json.loads((run_dir / "dataset.json").read_text())
        return bool(out.get("data_differences")) and recorded["uses"][-1]["action"] == "evaluate"

    def resume_override() -> bool:
        run_dir = fresh()
        cli("train", "--resume", "--run-dir", str(run_dir), "--set", "dataset.split=random", "--set", "train.epochs=3",
            "--allow-data-change")
        return json.loads((run_dir / "dataset.json").read_text())["overrides"][-1]["action"] == "resume"

    def resume_same() -> bool:
        run_dir = fresh()
        cli("train", "--resume", "--run-dir", str(run_dir), "--set", "train.epochs=3")
        return [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]

    return [
        Case("run bound to its data", "resume with split=random", lambda: cli("train", "--resume", "--run-dir", str(fresh()),
                                                                               "--set", "dataset.split=random")),
        Case("run bound to its data", "resume with model.dim changed", lambda: cli("train", "--resume", "--run-dir", str(fresh()),
                                                                                    "--set", "model.dim=16")),
        Case("run bound to its data", "resume with train.lr changed", lambda: cli("train", "--resume", "--run-dir", str(fresh()),
                                                                                   "--set", "train.lr=0.1")),
        Case("run bound to its data", "resume with another model", lambda: cli("train", "--resume", "--run-dir", str(fresh()),
                                                                                "--model", "lightgcn")),
        Case("run bound to its data", "evaluate on other data", lambda: cli("evaluate", str(fresh()), "--data-dir", "/other")),
        Case("run bound to its data", "recommend on other data", lambda: cli("recommend", str(fresh()), "--user", "1",
                                                                              "--data-dir", "/other")),
        Case("run bound to its data", "evaluate other data with override (recorded)", evaluate_override, expect="ok"),
        Case("run bound to its data", "resume other split with override (recorded)", resume_override, expect="ok"),
        Case("run bound to its data", "resume with its own config", resume_same, expect="ok"),
        Case("run bound to its data", "resume without a run", lambda: cli("train", "--resume", "--run-dir", str(w.path("none")))),
        Case("run bound to its data", "new run into an existing run", lambda: w.train(fresh())),
    ]


def cli_cases(w: World) -> list[Case]:
    run_dir = w.trained_run()
    cases = []
    for argv in (["recommend", str(run_dir), "--user", "-1"], ["recommend", str(run_dir), "--user", "1000000000"],
                 ["recommend", str(run_dir), "--user", "1", "-k", "0"], ["recommend", str(run_dir)],
                 ["recommend", str(run_dir), "--user", "1", "--text", "x"], ["recommend", str(run_dir), "--text", "a film"],
                 ["recommend", str(run_dir), "--new-item", "/no/such.jpg"], ["recommend", str(w.root / "nowhere"), "--user", "1"],
                 ["recommend", str(run_dir), "--user", "1", "--device", "cuda:7"], ["evaluate", str(run_dir), "--ks", "0"],
                 ["evaluate", str(run_dir), "--mask", "test"], ["evaluate", str(w.root / "nowhere")], ["evaluate", str(run_dir), "--split", "train"],
                 ["train", "--model", "nosuch", "--dataset", "synthetic"], ["train", "--model", "bpr"],
                 ["train", "--model", "bpr", "--dataset", "nosuch"], ["extract"], ["extract", "--dataset", "synthetic"],
                 ["extract", "--dataset", "ml-100k", "--modality", "text", "--batch-size", "0"],
                 ["extract", "--dataset", "ml-100k", "--modality", "text", "--limit", "-3"],
                 ["extract", "--dataset", "nosuch", "--modality", "text"],
                 ["extract", "--dataset", "ml-100k", "--modality", "smell"],
                 ["datasets", "info", "nosuch"], ["bench", "--config", str(w.root / "absent.yaml")], ["report", str(w.root / "nothing")],
                 ["nosuchcommand"], ["train", "--seed", "abc"]):
        cases.append(Case("command line", " ".join(a if len(a) < 40 else "..." + a[-20:] for a in argv), lambda a=argv: cli(*a)))
    cases.append(Case("command line", "recommend --user 1 (valid)", lambda: cli("recommend", str(run_dir), "--user", "1",
                                                                                  check=lambda out: "top 10 for user 1" in out), expect="ok"))

    def diverging(lr: str) -> Callable[[], bool]:
        def run() -> bool:
            folder = w.path("diverge") / "run"
            w.train(folder, "--set", f"train.lr={lr}", "--set", "train.epochs=3", "--set", "model.reg_weight=0")
            state = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
            return all(bool(torch.isfinite(v).all()) for v in state["model"].values()) or "non-finite weights saved"
        return run

    for lr in ("10", "5", "1"):
        cases.append(Case("command line", f"training at lr {lr} (diverges or stays finite)", diverging(lr), expect="either"))
    return cases


def download_cases(w: World) -> list[Case]:
    from fault_server import FaultServer

    from mmgcn.data.download import download_file

    body = bytes(range(256)) * 64
    pin = __import__("hashlib").sha256(body).hexdigest()
    cases = []

    def fetch(mode: str, expected: int | None = None, sha: str = pin, deadline: float = 1.5, timeout: float = 1.0) -> bool:
        folder = w.path("dl")
        with FaultServer(trickle_s=0.05) as server:
            server.add("f.bin", body)
            try:
                download_file(server.url(mode, "f.bin"), folder / "f.bin", sha, timeout=timeout,
                              expected_bytes=expected, deadline=deadline)
            finally:
                leftovers = [p.name for p in folder.iterdir() if p.name != "f.bin"]
                if leftovers:
                    raise AssertionError(f"left {leftovers} behind")  # counted as a traceback
        return (folder / "f.bin").read_bytes() == body or "wrote other bytes"

    for mode in ("trickle", "trickle-headers", "stall", "drop", "status-500", "no-length"):
        for expected in (None, len(body)):
            if mode == "no-length" and expected is None:
                continue  # no size known at all: bounded by the global cap, not a fault case
            cases.append(Case("download", f"{mode}, card size {'known' if expected else 'unknown'}",
                              lambda m=mode, e=expected: fetch(m, e), limit_s=20))
    cases.append(Case("download", "lying Content-Length, card size known", lambda: fetch("lie-long", len(body)), limit_s=20))
    cases.append(Case("download", "lying Content-Length, no card size", lambda: fetch("lie-long", deadline=10), limit_s=30))
    cases.append(Case("download", "card size disagrees", lambda: fetch("ok", 100), limit_s=20))
    cases.append(Case("download", "wrong pin", lambda: fetch("ok", sha="0" * 64), limit_s=20))
    cases.append(Case("download", "unknown file (404)", lambda: _fetch_404(w, body), limit_s=20))
    cases.append(Case("download", "closed port", lambda: _closed_port(w), limit_s=20))
    cases.append(Case("download", "good server", lambda: fetch("ok", len(body), deadline=10), expect="ok", limit_s=20))
    cases.append(Case("download", "good server, no card size", lambda: fetch("ok", deadline=10), expect="ok", limit_s=20))
    return cases


def _fetch_404(w: World, body: bytes) -> bool:
    from fault_server import FaultServer

    from mmgcn.data.download import download_file

    with FaultServer() as server:
        download_file(server.url("ok", "missing.bin"), w.path("dl") / "f.bin", None, timeout=2, deadline=5)
    return True


def _closed_port(w: World) -> bool:
    from mmgcn.data.download import download_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    download_file(f"http://127.0.0.1:{port}/f.bin", w.path("dl") / "f.bin", None, timeout=2, deadline=5)
    return True


def archive_cases(w: World) -> list[Case]:
    from mmgcn.utils.archives import safe_extract

    def zip_case(entries: list[tuple[str, bytes, int | None]]) -> Callable[[], bool]:
        def run() -> bool:
            folder = w.path("zip")
            path = folder / "a.zip"
            with zipfile.ZipFile(path, "w") as zf:
                for name, data, mode in entries:
                    info = zipfile.ZipInfo(name)
                    if mode is not None:
                        info.external_attr = mode << 16
                    zf.writestr(info, data)
            files = safe_extract(path, folder / "out")
            return all(p.resolve().is_relative_to((folder / "out").resolve()) for p in files) or "wrote outside"
        return run

    def tar_case(name: str, kind: bytes, data: bytes = b"") -> Callable[[], bool]:
        def run() -> bool:
            folder = w.path("tar")
            path = folder / "a.tar"
            with tarfile.open(path, "w") as tf:
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = "/etc/passwd"
                info.size = len(data) if kind == tarfile.REGTYPE else 0
                tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
            files = safe_extract(path, folder / "out")
            return [p.read_bytes() for p in files] == [data] or "extracted something else"
        return run

    cases = [
        Case("archive", "zip: ../ member", zip_case([("../evil.txt", b"x", None)])),
        Case("archive", "zip: deep ../ member", zip_case([("a/b/../../../evil.txt", b"x", None)])),
        Case("archive", "zip: absolute member", zip_case([("/tmp/evil.txt", b"x", None)])),
        Case("archive", "zip: drive-letter member", zip_case([("C:/evil.txt", b"x", None)])),
        Case("archive", "zip: backslash ../ member", zip_case([("..\\evil.txt", b"x", None)])),
        Case("archive", "zip: symlink member", zip_case([("link", b"/etc/passwd", 0o120777)])),
        Case("archive", "zip: FIFO member", zip_case([("fifo", b"", 0o010644)])),
        Case("archive", "zip: good members", zip_case([("a.txt", b"1", None), ("d/b.txt", b"2", None)]), expect="ok"),
        Case("archive", "tar: ../ member", tar_case("../evil.txt", tarfile.REGTYPE, b"x")),
        Case("archive", "tar: absolute member", tar_case("/tmp/evil.txt", tarfile.REGTYPE, b"x")),
        Case("archive", "tar: symlink", tar_case("link", tarfile.SYMTYPE)),
        Case("archive", "tar: hard link", tar_case("hard", tarfile.LNKTYPE)),
        Case("archive", "tar: device", tar_case("dev", tarfile.CHRTYPE)),
        Case("archive", "tar: FIFO", tar_case("fifo", tarfile.FIFOTYPE)),
        Case("archive", "tar: good member", tar_case("ok.txt", tarfile.REGTYPE, b"fine"), expect="ok"),
    ]

    def truncated_zip(cut: int) -> Callable[[], bool]:
        def run() -> bool:
            folder = w.path("zip")
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("a.txt", b"abc" * 1000)
            raw = buffer.getvalue()
            (folder / "a.zip").write_bytes(raw[: cut % len(raw)])
            files = safe_extract(folder / "a.zip", folder / "out")
            return [p.read_bytes() for p in files] == [b"abc" * 1000] or "extracted other bytes"
        return run

    for _ in range(8):
        cases.append(Case("archive", "truncated zip", truncated_zip(w.rng.randrange(1, 10_000)), expect="either"))
    return cases


def bench_dir_cases(w: World) -> list[Case]:
    from mmgcn.bench.config import BenchConfig
    from mmgcn.bench.harness import run_benchmark
    from mmgcn.bench.lock import LOCK_FILE, BenchLock

    def config(out: Path) -> BenchConfig:
        return BenchConfig(dataset="synthetic", models=("bpr", "popular"), seeds=2, baseline="bpr",
                           train={"epochs": 2, "patience": 2, "batch_size": 128, "progress": False}, out=str(out))

    def stable(folder: Path) -> str:
        data = json.loads((folder / "results.json").read_text())
        data["header"].pop("created_utc", None)
        for cell in data["cells"]:
            for key in ("train_s_per_epoch", "eval_s", "peak_mem_mb"):
                cell.pop(key, None)
        for summary in data["summaries"]:
            for table in ("mean", "std"):
                for key in ("train_s_per_epoch", "eval_s", "peak_mem_mb"):
                    summary[table].pop(key, None)
        return json.dumps(data, sort_keys=True)

    reference_dir = w.path("bench-ref")
    run_benchmark(config(reference_dir), dataset=w.data, progress=False, plots=False)
    reference = stable(reference_dir / "synthetic-quick")
    cases = []

    def damaged(name: str, how: str) -> Callable[[], bool]:
        def run() -> bool:
            out = w.path("bench")
            run_benchmark(config(out), dataset=w.data, progress=False, plots=False)
            path = out / "synthetic-quick" / "cells" / "bpr" / "seed-1" / name
            if how == "delete":
                path.unlink()
            elif how == "truncate":
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            elif how == "flip":
                raw = bytearray(path.read_bytes())
                raw[w.rng.randrange(len(raw))] ^= 1 << w.rng.randrange(8)
                path.write_bytes(bytes(raw))
            elif how == "empty":
                path.write_bytes(b"")
            again = run_benchmark(config(out), dataset=w.data, progress=False, plots=False)
            if again.ran < 1 and how != "flip":
                return "the damaged cell was trusted"
            return stable(out / "synthetic-quick") == reference or "results differ after the re-run"
        return run

    for name in ("per_user.npz", "cell.json", "DONE.json", "run/metrics.jsonl", "run/test_metrics.json"):
        for how in ("delete", "truncate", "flip", "empty"):
            cases.append(Case("bench folder", f"damaged {name}: {how}", damaged(name, how), expect="ok", limit_s=120))

    def locked() -> bool:
        out = w.path("bench")
        folder = out / "synthetic-quick"
        ctx = multiprocessing.get_context("fork")
        ready, release = ctx.Event(), ctx.Event()
        holder = ctx.Process(target=_hold, args=(str(folder), ready, release))
        holder.start()
        try:
            ready.wait(30)
            run_benchmark(config(out), dataset=w.data, progress=False, plots=False)
            return True
        finally:
            release.set()
            holder.join(30)

    def stale() -> bool:
        out = w.path("bench")
        folder = out / "synthetic-quick"
        folder.mkdir(parents=True)
        child = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
        child.start()
        child.join()
        (folder / LOCK_FILE).write_text(json.dumps({"pid": child.pid, "host": socket.gethostname(), "released": False}))
        run_benchmark(config(out), dataset=w.data, progress=False, plots=False)
        return stable(folder) == reference or "results differ"

    def other_host() -> bool:
        folder = w.path("bench") / "synthetic-quick"
        folder.mkdir(parents=True)
        (folder / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "released": False}))
        BenchLock(folder).acquire()
        return True

    def garbage_lock() -> bool:
        out = w.path("bench")
        folder = out / "synthetic-quick"
        folder.mkdir(parents=True)
        (folder / LOCK_FILE).write_bytes(b"\x00garbage")
        run_benchmark(config(out), dataset=w.data, progress=False, plots=False)
        return stable(folder) == reference or "results differ"

    cases += [Case("bench folder", "second bench while one runs", locked, limit_s=120),
              Case("bench folder", "stale lock of a dead process", stale, expect="ok", limit_s=120),
              Case("bench folder", "lock of another host", other_host),
              Case("bench folder", "garbage lock file", garbage_lock, expect="ok", limit_s=120)]
    return cases


def _hold(folder: str, ready, release) -> None:
    from mmgcn.bench.lock import BenchLock

    with BenchLock(folder):
        ready.set()
        release.wait(60)


# ---------------------------------------------------------------------- main
CATALOGUE = (config_cases, bench_config_cases, inter_cases, feature_cases, pickle_cases, checkpoint_cases,
             run_binding_cases, cli_cases, download_cases, archive_cases, bench_dir_cases)


def table(rows: dict[str, Counter], total: Counter) -> str:
    header = "| category | cases | " + " | ".join(OUTCOMES) + " |"
    lines = [header, "|" + "---|" * (len(OUTCOMES) + 2)]
    for category, counts in rows.items():
        lines.append(f"| {category} | {sum(counts.values())} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    lines.append(f"| **all** | **{sum(total.values())}** | " + " | ".join(f"**{total[o]}**" for o in OUTCOMES) + " |")
    return "\n".join(lines)


def run_suite() -> str:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                           "tests/faults"], cwd=REPO, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated cases (default 0)")
    parser.add_argument("--json", type=Path, help="write every case's outcome here")
    parser.add_argument("--md", type=Path, help="write the table (markdown) here")
    parser.add_argument("--suite", action="store_true", help="also run the pytest fault suite (tests/faults, not slow)")
    parser.add_argument("--only", help="run only the categories whose name contains this text")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)  # the refusals are counted, not logged
    os.environ.setdefault("MMGCN_CACHE", tempfile.mkdtemp(prefix="mmgcn-robustness-cache-"))
    started = time.perf_counter()
    rows: dict[str, Counter] = {}
    total: Counter = Counter()
    records = []
    with tempfile.TemporaryDirectory(prefix="mmgcn-robustness-") as tmp:
        world = World(Path(tmp), args.seed)
        for build in CATALOGUE:
            for case in build(world):
                if args.only and args.only not in case.category:
                    continue
                outcome, detail = classify(case)
                rows.setdefault(case.category, Counter())[outcome] += 1
                total[outcome] += 1
                records.append({"category": case.category, "case": case.name, "expect": case.expect,
                                "outcome": outcome, "detail": detail})
                if outcome in ("traceback", "silently wrong", "hang", "wrongly refused"):
                    print(f"  {outcome.upper()}: [{case.category}] {case.name}: {detail}", flush=True)
    seconds = time.perf_counter() - started
    text = table(rows, total)
    bad = sum(total[o] for o in ("traceback", "silently wrong", "hang", "wrongly refused"))
    summary = (f"{sum(total.values())} cases in {seconds:.0f} s (seed {args.seed}, CPU, torch {torch.__version__}); "
               f"target: >= 300 cases, 0 tracebacks, 0 silently wrong, 0 hangs: "
               f"{'met' if bad == 0 and sum(total.values()) >= 300 else 'NOT met'}")
    print(text)
    print()
    print(summary)
    suite = run_suite() if args.suite else None
    if suite:
        print(f"pytest tests/faults (not slow): {suite}")
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(
            f"# Robustness: hostile inputs and faults\n\nPrinted by `python benchmarks/robustness.py --seed {args.seed}"
            f"{' --suite' if args.suite else ''}` (see its docstring for the classes).\n\n{text}\n\n{summary}\n"
            + (f"\npytest tests/faults (not slow): {suite}\n" if suite else ""), encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seed": args.seed, "seconds": seconds, "totals": dict(total),
                                         "by_category": {k: dict(v) for k, v in rows.items()}, "suite": suite,
                                         "cases": records}, indent=1) + "\n", encoding="utf-8")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
