"""Content encoders and feature extraction.

Raw item content (posters, plot texts, audio) -> pretrained encoders -> cached
``<modality>_feat.npy`` + manifest, which the dataset loader picks up by modality name.

* :mod:`mmgcn.features.base` -- the :class:`Encoder` interface (``encode(inputs) -> (n, d)``
  float32), the registry (:func:`get_encoder`, :func:`available_encoders`) and errors.
* :mod:`mmgcn.features.image` -- EfficientNet-Lite0 (offline default), torchvision ResNet-50
  and ViT-B/16.
* :mod:`mmgcn.features.text` -- any ``transformers`` encoder, mean-pooled + L2-normalised;
  all-MiniLM-L6-v2 offline default.
* :mod:`mmgcn.features.audio` -- the pretrained aiSFX embedding (offline default) and a
  weight-free log-mel statistics baseline, over the front end of
  :mod:`mmgcn.features.audio_frontend` (WAV reading, resampling, mel filterbank, STFT).
* :mod:`mmgcn.features.extract` -- :func:`extract_features`: batched, resumable extraction.
* :mod:`mmgcn.features.manifest` -- cache file names, manifest read / write, loading.

Importing this package does not import torchvision or transformers; the encoder modules
are loaded when an encoder is requested.
"""

from mmgcn.features.base import (
    DEFAULT_ENCODERS,
    MODALITIES,
    ContentError,
    Encoder,
    EncodeResult,
    WeightsNotFoundError,
    available_encoders,
    get_encoder,
    register_encoder,
)
from mmgcn.features.extract import extract_features
from mmgcn.features.manifest import load_cached_features, read_manifest

__all__ = [
    "DEFAULT_ENCODERS",
    "MODALITIES",
    "ContentError",
    "EncodeResult",
    "Encoder",
    "WeightsNotFoundError",
    "available_encoders",
    "extract_features",
    "get_encoder",
    "load_cached_features",
    "read_manifest",
    "register_encoder",
]
