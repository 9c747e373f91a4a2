"""benchmarks/peers/mmrec.py's translation of MMRec hyper-parameters into ours (no MMRec needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from mmgcn.models import build_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mmrec():
    spec = importlib.util.spec_from_file_location("mmrec_peers", REPO / "benchmarks" / "peers" / "mmrec.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


SLOTS = {"v": "visual", "t": "acoustic"}


def test_every_peer_translates_into_a_model_that_builds_and_scores(mmrec, tiny_dataset):
    for name, peer in mmrec.PEERS.items():
        config, train = peer.to_ours(peer.params, SLOTS)
        assert set(train) == {"lr"} and train["lr"] == peer.params["learning_rate"], name
        model = build_model(peer.ours, tiny_dataset, config)
        model.eval()
        with torch.no_grad():
            scores = model.score(torch.arange(tiny_dataset.n_users))
        assert scores.shape == (tiny_dataset.n_users, tiny_dataset.n_items), name
        assert torch.isfinite(scores).all(), name


def test_lgmrec_contrastive_weight_is_scaled_from_a_batch_sum_to_a_batch_mean(mmrec):
    peer = mmrec.PEERS["lgmrec"]
    config, _ = peer.to_ours({**peer.params, "cl_weight": 1e-4}, SLOTS)
    # MMRec: 1e-4 * sum over 2048 rows == ours: w * mean over 2048 rows  ->  w = 0.2048
    assert config["cl_weight"] == pytest.approx(0.2048)
    assert config["num_hyperedges"] == 4 and config["modality_layers"] == 2 and config["reg_weight"] == 1e-6


def test_freedom_image_weight_goes_to_the_visual_slot(mmrec):
    peer = mmrec.PEERS["freedom"]
    config, _ = peer.to_ours({**peer.params, "mm_image_weight": 0.1}, SLOTS)
    assert config["modality_weights"] == pytest.approx({"visual": 0.1, "acoustic": 0.9})


def test_best_epoch_is_read_from_an_early_stop_or_from_the_last_update_before_the_cap(mmrec):
    def epoch(i: int, updated: bool) -> str:
        return (f"epoch {i} training [time: 1.00s, train loss: 0.5]\nepoch {i} evaluating [time: 0.50s, "
                f"valid_score: 0.0{i}]\nvalid result: \nrecall@20: 0.0{i}\n"
                + ("██ LGMRec--Best validation results updated!!!\n" if updated else ""))

    capped = epoch(0, True) + epoch(1, True) + epoch(2, False) + epoch(3, True) + epoch(4, False)
    assert mmrec.best_epoch(capped) == 4  # 0-based epoch 3, the last one that updated
    stopped = capped + "+++++Finished training, best eval result in epoch 7\n"
    assert mmrec.best_epoch(stopped) == 8
    assert mmrec.best_epoch(epoch(0, False)) is None


def test_a_missing_dataset_is_one_error_line_and_leaves_mmrec_untouched(mmrec, tmp_path, monkeypatch):
    monkeypatch.setenv("MMGCN_DATA", str(tmp_path / "no-data"))
    checkout = tmp_path / "MMRec"
    (checkout / "src" / "utils").mkdir(parents=True)
    (checkout / "src" / "utils" / "metrics.py").write_text("x = np.float(1)\n")
    with pytest.raises(SystemExit) as exit_info:
        mmrec.prepare_mmrec(checkout, "tiktok")
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert "tiktok" in message and "trnMat.pkl" in message and "MMGCN_DATA" in message
    # nothing was written into the checkout: no compatibility fix, no dataset
    assert (checkout / "src" / "utils" / "metrics.py").read_text() == "x = np.float(1)\n"
    assert not (checkout / "data").exists()
