"""``mmgcn recommend`` on trained tiny models: the printed list is the model's top-k of the
user's unseen items, and the printed contributions / shares add up as defined."""

from __future__ import annotations

import re

import pytest
import torch

import mmgcn.train.loading as loading
from mmgcn.cli import main
from mmgcn.data.synthetic import make_synthetic
from mmgcn.eval.explain import explain_user, signed_shares
from mmgcn.eval.metrics import top_k_items
from mmgcn.models import build_model
from mmgcn.train.loading import load_run
from mmgcn.train.trainer import TrainConfig, Trainer
from mmgcn.utils.ranking import mask_rows_

CELL = re.compile(r"([+-]\d+\.\d+) \(([+-]\d+)%\)")


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(50, 30, modalities={"image": 6, "text": 4}, interactions_per_user=6, seed=0, progress=False)


@pytest.fixture
def trained(synthetic, tmp_path, monkeypatch):
    """``trained(name, **config)`` -> run dir of a 2-epoch run; the loader returns ``synthetic``."""
    monkeypatch.setattr(loading, "load_dataset", lambda name, data_dir=None, **kwargs: synthetic)

    def train(name: str, **config) -> str:
        torch.manual_seed(0)
        model = build_model(name, synthetic, config)
        run_dir = tmp_path / name
        Trainer(model, synthetic, TrainConfig(epochs=2, batch_size=64, progress=False), run_dir,
                run_config={"run": {"model": name, "dataset": "synthetic"}}).fit()
        return str(run_dir)

    return train


def _rows(printed: str) -> tuple[list[str], list[list[str]]]:
    lines = [line.strip() for line in printed.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    header = re.split(r"\s{2,}", lines[start])
    rows = []
    for line in lines[start + 1:]:
        if not line or not line[0].isdigit():
            break
        rows.append(re.split(r"\s{2,}", line))
    return header, rows


def _expected_top(run_dir: str, synthetic, user: int, k: int) -> tuple[list[int], list[float]]:
    """The top-k items outside train + valid computed directly from the checkpoint (no explain code)."""
    model = load_run(run_dir, dataset=synthetic).model
    with torch.no_grad():
        scores = model.score(torch.tensor([user])).clone()
    seen = synthetic.train + synthetic.valid
    mask_rows_(scores, seen.tocsr(), torch.tensor([user]), float("-inf"))
    values, items = top_k_items(scores, k)
    # the CLI's list is recommend()'s: same masks, same ties, same representations
    assert model.recommend([user], k=k)[1][0].tolist() == items[0].tolist()
    return items[0].tolist(), values[0].tolist()


@pytest.mark.parametrize("name", ["mmgcn", "attention"])
def test_user_top_k_is_the_models_top_k_unseen_and_parts_add_up(trained, synthetic, capsys, name):
    run_dir = trained(name)
    assert main(["recommend", run_dir, "--user", "3", "-k", "3"]) == 0
    printed = capsys.readouterr().out
    header, rows = _rows(printed)
    items, scores = _expected_top(run_dir, synthetic, 3, 3)
    assert [int(r[header.index("item")]) for r in rows] == items
    assert [float(r[header.index("score")]) for r in rows] == pytest.approx(scores, abs=6e-4)
    parts = header[header.index("score") + 1 : header.index("content-only")]
    assert parts == (list(synthetic.features) if name == "mmgcn" else ["id", *synthetic.features])
    for row in rows:
        cells = [CELL.fullmatch(row[header.index(p)]).groups() for p in parts]
        contributions = [float(c) for c, _ in cells]
        shares = [int(s) for _, s in cells]
        score = float(row[header.index("score")])
        assert sum(contributions) == pytest.approx(score, abs=1e-3 * len(parts))
        assert sum(abs(s) for s in shares) == pytest.approx(100, abs=len(parts))
        for contribution, share in zip(contributions, shares):
            assert share == pytest.approx(100 * contribution / sum(abs(c) for c in contributions), abs=1.01)
        content_only, id_graph = float(row[header.index("content-only")]), float(row[header.index("ID+graph")])
        assert content_only + id_graph == pytest.approx(score, abs=2e-3)
    if name == "mmgcn":
        assert "no separate ID part" in printed


def test_users_seen_items_are_left_out_unless_asked(trained, synthetic, capsys):
    run_dir = trained("vbpr")
    user = next(u for u in range(synthetic.n_users) if synthetic.valid[u].nnz and synthetic.test[u].nnz)
    for mask, splits in (("train+valid", ("train", "valid")), ("train", ("train",))):
        seen = {int(i) for s in splits for i in synthetic.split(s)[user].indices}
        assert main(["recommend", run_dir, "--user", str(user), "-k", str(synthetic.n_items), "--mask", mask]) == 0
        header, rows = _rows(capsys.readouterr().out)
        listed = {int(r[1]) for r in rows}
        assert listed == set(range(synthetic.n_items)) - seen
    # the default is train + valid; test items stay rankable (they are what is being predicted)
    assert main(["recommend", run_dir, "--user", str(user), "-k", str(synthetic.n_items)]) == 0
    header, rows = _rows(capsys.readouterr().out)
    assert set(synthetic.test[user].indices.tolist()) <= {int(r[1]) for r in rows}
    assert main(["recommend", run_dir, "--user", str(user), "-k", "2", "--mask", "test"]) == 2
    assert "may name train and valid" in capsys.readouterr().err
    assert main(["recommend", run_dir, "--user", str(user), "-k", "5", "--mask", "none"]) == 0
    header, rows = _rows(capsys.readouterr().out)
    model = load_run(run_dir, dataset=synthetic).model
    with torch.no_grad():
        expected = top_k_items(model.score(torch.tensor([user])), 5)[1][0].tolist()
    assert [int(r[1]) for r in rows] == expected
    assert header[3:6] == ["id", "content", "bias"]


def test_models_without_parts_say_so(trained, capsys):
    run_dir = trained("concat")  # hidden layers after the concatenation: not additive
    assert main(["recommend", run_dir, "--user", "1", "-k", "2"]) == 0
    printed = capsys.readouterr().out
    assert "is not additive over parts" in printed
    header, rows = _rows(printed)
    assert header == ["rank", "item", "score", "content-only", "ID+graph"] and len(rows) == 2


def test_id_only_model_has_one_id_part_and_refuses_new_items(trained, capsys):
    run_dir = trained("bpr")
    assert main(["recommend", run_dir, "--user", "1", "-k", "2"]) == 0
    header, rows = _rows(capsys.readouterr().out)
    assert header == ["rank", "item", "score", "id"]
    assert all(r[3].endswith("(+100%)") or r[3].endswith("(-100%)") for r in rows)
    assert main(["recommend", run_dir, "--text", "a new film"]) == 2
    assert "reads no item content (ID only)" in capsys.readouterr().err


def test_argument_errors(trained, capsys, tmp_path):
    run_dir = trained("vbpr")
    assert main(["recommend", run_dir]) == 2
    assert "give either --user" in capsys.readouterr().err
    assert main(["recommend", run_dir, "--user", "999"]) == 2
    assert "user ids 0..49" in capsys.readouterr().err
    # synthetic features were not made by our encoders: a new item cannot be embedded like them
    assert main(["recommend", run_dir, "--text", "a new film"]) == 2
    assert "were not produced by mmgcn's encoders" in capsys.readouterr().err
    assert main(["recommend", str(tmp_path / "nothing"), "--user", "0"]) == 2
    assert "config.yaml: not found" in capsys.readouterr().err


def test_signed_shares_by_hand():
    assert signed_shares({"image": 3.0, "text": 1.0}) == {"image": 0.75, "text": 0.25}
    # a part that lowers the score gets a negative share; |shares| sum to 1
    assert signed_shares({"image": 3.0, "id": -1.0}) == {"image": 0.75, "id": -0.25}
    assert signed_shares({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}


def test_explain_user_content_only_is_the_new_item_score(synthetic):
    torch.manual_seed(0)
    model = build_model("vbpr", synthetic).eval()
    explanations = explain_user(model, synthetic, 2, k=4)
    items = [e.item for e in explanations]
    new = model.represent_new_items({m: f[items] for m, f in synthetic.features.items()})
    expected = model.score(torch.tensor([2]), emb=new)[0]
    assert [e.content_only for e in explanations] == pytest.approx(expected.tolist(), abs=1e-6)
