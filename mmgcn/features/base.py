"""The content-encoder interface and the encoder registry.

An encoder turns raw item content of one modality (image files, strings, waveforms)
into fixed-size float32 vectors. Two calls:

* ``encode(inputs) -> (n, d) float32``: the in-memory API (e.g. embedding a new item for
  cold-start recommendation). Raises :class:`ContentError` if any input cannot be read.
* ``encode_batch(inputs) -> EncodeResult``: the extraction pipeline's call; an input that
  cannot be read (a corrupt image, an unreadable audio file) gets a zero row, ``ok=False``
  and a reason, and the batch goes on.

``describe()`` returns what a feature manifest records about the encoder: name, package
versions, the SHA-256 of the weight files actually loaded, and the preprocessing.

Encoders are built by name: ``get_encoder("efficientnet-lite0", device="cpu")``;
``available_encoders()`` lists the names per modality.
"""

from __future__ import annotations

import abc
import importlib.metadata
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmgcn.errors import ConfigError, DataError, MmgcnError
from mmgcn.utils.io import sha256_file

log = logging.getLogger(__name__)

MODALITIES = ("image", "text", "audio")

# offline defaults: weights that ship inside installed packages
DEFAULT_ENCODERS = {"image": "efficientnet-lite0", "text": "all-minilm-l6-v2", "audio": "aisfx"}


class ContentError(DataError):
    """An item's content cannot be read or decoded (names the input and the reason)."""


class UnknownEncoderError(ConfigError, KeyError):
    """No encoder of that name (for that modality) is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(MmgcnError, FileNotFoundError):
    """Pretrained weights are not available locally and could not be fetched.

    The message says what is missing, where it was looked for, and how to get it.
    """


@dataclass
class EncodeResult:
    """Output of :meth:`Encoder.encode_batch` for ``n`` inputs.

    Attributes:
        features: ``(n, d)`` float32; rows of failed inputs are zero.
        ok: ``(n,)`` bool, ``False`` where the input could not be read.
        errors: ``{position in the batch: reason}`` for failed inputs.
        truncated: number of inputs cut to the model's maximum length (text).
    """

    features: np.ndarray
    ok: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)
    truncated: int = 0


class Encoder(abc.ABC):
    """Base class of content encoders.

    Subclasses set ``modality`` and ``dim`` and implement :meth:`encode_batch`,
    :meth:`preprocessing` and :meth:`weight_files`.

    Args:
        name: the registry name the encoder was built under.
        device: torch device string, e.g. ``"cpu"`` or ``"cuda"``.

    Attributes:
        batch_size: inputs per forward pass inside :meth:`encode_batch` (default ``32``;
            results do not depend on it beyond float rounding).
    """

    modality: ClassVar[str] = ""
    packages: ClassVar[tuple[str, ...]] = ("torch",)

    def __init__(self, name: str, device: str = "cpu") -> None:
        self.name = name
        self.device = device
        self.batch_size = 32
        self._weights_sha256: dict[str, str] | None = None

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Output dimension ``d``."""

    @abc.abstractmethod
    def encode_batch(self, inputs: Sequence[Any]) -> EncodeResult:
        """Encode ``inputs``; unreadable inputs get a zero row and ``ok=False``."""

    @abc.abstractmethod
    def preprocessing(self) -> dict[str, Any]:
        """The input preprocessing, as recorded in the manifest."""

    @abc.abstractmethod
    def weight_files(self) -> list[Path]:
        """The weight files this encoder loaded (empty for weight-free encoders)."""

    def encode(self, inputs: Sequence[Any]) -> np.ndarray:
        """Encode ``inputs`` into a ``(len(inputs), dim)`` float32 array.

        Raises:
            ContentError: if any input cannot be read (the message names it).
        """
        if isinstance(inputs, (str, bytes)):
            raise TypeError("encode() takes a list of inputs; wrap a single input in a list")
        result = self.encode_batch(list(inputs))
        if result.errors:
            detail = "; ".join(f"input {i}: {msg}" for i, msg in sorted(result.errors.items()))
            raise ContentError(f"{self.name}: {len(result.errors)} input(s) could not be encoded: {detail}")
        return result.features

    def weights_sha256(self) -> dict[str, str]:
        """``{file name: sha256}`` of the loaded weight files (computed once)."""
        if self._weights_sha256 is None:
            self._weights_sha256 = {p.name: sha256_file(p) for p in self.weight_files()}
        return self._weights_sha256

    def describe(self) -> dict[str, Any]:
        """Encoder identity for manifests: name, versions, weights hash, preprocessing."""
        return {
            "encoder": self.name,
            "encoder_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "modality": self.modality,
            "dim": self.dim,
            "package_versions": package_versions(self.packages),
            "weights_sha256": self.weights_sha256(),
            "preprocessing": self.preprocessing(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, modality={self.modality!r}, dim={self.dim}, device={self.device!r})"


def package_versions(packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``packages`` (plus mmgcn); ``"not installed"`` where absent."""
    out = {}
    for name in ("mmgcn", *packages):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# ---------------------------------------------------------------------- registry
_REGISTRY: dict[str, tuple[str, Callable[..., Encoder], str]] = {}


def register_encoder(name: str, modality: str, summary: str) -> Callable:
    """Register ``factory(name, device=..., **options) -> Encoder`` under ``name``."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")

    def wrap(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} is already registered")
        _REGISTRY[name] = (modality, factory, summary)
        return factory

    return wrap


def _load_builtin_encoders() -> None:
    # the modules register themselves on import; importing here keeps torchvision /
    # transformers out of `import mmgcn.features` until an encoder is asked for
    from mmgcn.features import audio, image, text  # noqa: F401


def available_encoders(modality: str | None = None) -> dict[str, str]:
    """``{name: one-line summary}`` of registered encoders (of one modality if given)."""
    _load_builtin_encoders()
    return {n: s for n, (m, _, s) in sorted(_REGISTRY.items()) if modality in (None, m)}


def encoder_modality(name: str) -> str:
    """The modality an encoder name belongs to."""
    _load_builtin_encoders()
    if name not in _REGISTRY:
        raise UnknownEncoderError(_unknown(name))
    return _REGISTRY[name][0]


def get_encoder(name: str, *, device: str = "cpu", modality: str | None = None, **options: Any) -> Encoder:
    """Build the encoder registered as ``name``.

    An unregistered ``name`` is taken as a Hugging Face model id or a local model folder
    and loaded with ``transformers`` (see :class:`~mmgcn.features.text.TextEncoder`) when
    ``modality="text"`` or the name looks like one (``org/model`` or a folder).

    Raises:
        KeyError: unknown encoder name.
        WeightsNotFoundError: pretrained weights unavailable offline.
    """
    _load_builtin_encoders()
    if name not in _REGISTRY:
        from mmgcn.features.text import looks_like_text_model

        if modality == "text" or looks_like_text_model(name):
            from mmgcn.features.text import TextEncoder

            return TextEncoder(name, device=device, **options)
        raise UnknownEncoderError(_unknown(name))
    registered_modality, factory, _ = _REGISTRY[name]
    if modality is not None and modality != registered_modality:
        raise UnknownEncoderError(f"encoder {name!r} encodes {registered_modality}, not {modality}; {_unknown(name)}")
    return factory(name, device=device, **options)


def _unknown(name: str) -> str:
    known = ", ".join(f"{n} ({m})" for n, (m, _, _) in sorted(_REGISTRY.items()))
    return (
        f"unknown encoder {name!r}; registered encoders: {known}. For text, any transformers "
        f"model id or local model folder also works."
    )
