"""Audio encoders: waveform -> log-mel spectrogram -> one fixed vector per clip.

The front end (:class:`~mmgcn.features.audio_frontend.LogMelSpectrogram` over
``torch.stft``, :func:`~mmgcn.features.audio_frontend.mel_filterbank`, WAV reading and
resampling) lives in :mod:`mmgcn.features.audio_frontend`.

Registered encoders:

* ``aisfx`` (default, 512-d, pretrained): the sound-effects embedding network of Ma &
  Lerch, "Representation Learning for the Automatic Indexing of Sound Effects Libraries"
  (ISMIR 2022) -- a 4-block VGG-style CNN over 96-band log-mel patches of ~2.3 s, trained
  on sound-effect libraries (UCS categories). Its weights ship inside the PyPI package
  ``aisfx`` (``aisfx/models/checkpoint.pth``, CC BY 4.0), so it runs offline. The package
  pins numpy 1.23 and librosa 0.9, so install it without its dependencies
  (``pip install --no-deps aisfx==0.1.2``); only the weight file is read (with a restricted
  unpickler), the network and front end are re-implemented here following its
  preprocessing: 44.1 kHz mono, peak-normalised, 2048-sample Hann frames with hop 1024,
  96 HTK mel bands 0-22.05 kHz (each band's weights sum to 1), ``log10(1 + 1e4 P)``
  divided by the paper's global maximum 9.4578, 100-frame blocks with 50 % overlap; the
  per-block 512-d embeddings are averaged into one vector per clip. Input at another rate
  (e.g. 16 kHz) is resampled to 44.1 kHz (bands above the input's Nyquist stay empty).
* ``logmel-stats`` (128-d, **no learned weights**): a baseline, not a pretrained model.
  16 kHz, 25 ms Hann windows (400 samples, FFT 512) every 10 ms, 64 HTK mel bands
  125-7500 Hz (the VGGish front end), ``log(mel + 0.01)``; statistics pooling -- the
  per-band mean and standard deviation over frames -- gives a 128-d vector. Useful as a
  sanity baseline and for testing the pipeline; for real recommendation features plug in
  a pretrained audio model (``aisfx`` here, or VGGish / PANNs CNN14 / CLAP / BEATs when
  their weights are available) by subclassing :class:`AudioEncoder`.

Datasets may ship audio features already: TikTok's ``audio_feat.npy`` (128-d, row i =
item i) is loaded by the dataset reader as modality ``"audio"``; nothing to extract.

Inputs are WAV file paths (PCM 8/16/24/32-bit or float; other formats: convert to WAV
first, e.g. with ffmpeg) or ``(waveform, sample_rate)`` tuples with a 1-D (mono) or 2-D
``(samples, channels)`` array.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmgcn.features.audio_frontend import LogMelSpectrogram, load_wav, resample, to_mono_float
from mmgcn.features.base import (
    ContentError,
    Encoder,
    EncodeResult,
    WeightsNotFoundError,
    register_encoder,
)

log = logging.getLogger(__name__)

AudioInput = str | os.PathLike | tuple[np.ndarray, int]


# ---------------------------------------------------------------------- encoders
class AudioEncoder(Encoder):
    """Base of audio encoders: reads / resamples each input, then :meth:`embed_clip`.

    Subclasses set ``front_end`` (a :class:`LogMelSpectrogram` whose ``sample_rate`` is the
    rate inputs are resampled to) and implement :meth:`embed_clip`.
    """

    modality = "audio"
    packages = ("torch", "scipy")
    front_end: LogMelSpectrogram

    def read(self, source: AudioInput) -> np.ndarray:
        """Mono float32 waveform at ``front_end.sample_rate``."""
        if isinstance(source, tuple):
            if len(source) != 2:
                raise ContentError(f"audio input tuple must be (waveform, sample_rate), got {len(source)} items")
            wave, rate = to_mono_float(source[0]), int(source[1])
        else:
            wave, rate = load_wav(source)
        return resample(wave, rate, self.front_end.sample_rate)

    def embed_clip(self, wave: np.ndarray) -> np.ndarray:
        """``(dim,)`` float32 embedding of one mono waveform at the front end's rate."""
        raise NotImplementedError

    def encode_batch(self, inputs: Sequence[AudioInput]) -> EncodeResult:
        n = len(inputs)
        features = np.zeros((n, self.dim), dtype=np.float32)
        ok = np.zeros(n, dtype=bool)
        errors: dict[int, str] = {}
        for pos, source in enumerate(inputs):
            try:
                wave = self.read(source)
            except ContentError as exc:
                errors[pos] = str(exc)
                log.warning("%s: %s", self.name, exc)
                continue
            with torch.inference_mode():
                features[pos] = self.embed_clip(wave)
            ok[pos] = True
        return EncodeResult(features, ok, errors)

    def preprocessing(self) -> dict[str, Any]:
        return {"input": "mono (channels averaged), resampled with a polyphase filter", **self.front_end.describe()}


class LogMelStatsEncoder(AudioEncoder):
    """Weight-free baseline: per-band mean and standard deviation of log-mel frames.

    Output ``(2 * n_mels,)`` = ``[mean_1..mean_M, std_1..std_M]`` over frames. Not a
    pretrained model -- see the module docstring for what to plug in instead.
    """

    def __init__(self, name: str, device: str = "cpu", **front_end: Any) -> None:
        super().__init__(name, device)
        self.front_end = LogMelSpectrogram(**front_end).to(device)

    @property
    def dim(self) -> int:
        return 2 * self.front_end.n_mels

    def weight_files(self) -> list[Path]:
        return []

    def embed_clip(self, wave: np.ndarray) -> np.ndarray:
        frames = self.front_end(torch.from_numpy(wave).to(self.device))[0]
        stats = torch.cat([frames.mean(dim=0), frames.std(dim=0, unbiased=False)])
        return stats.float().cpu().numpy()

    def preprocessing(self) -> dict[str, Any]:
        return {**super().preprocessing(), "pooling": "mean and std over frames (no learned weights)"}


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: bool) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return nn.functional.max_pool2d(x, 2) if pool else x


class SfxEmbeddingNet(nn.Module):
    """The aiSFX embedding CNN: 4 conv blocks (64-128-256-512), mean over mel, max over time.

    Input ``(batch, frames, n_mels)``, output ``(batch, 512)``.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.conv_block1 = _ConvBlock(1, width)
        self.conv_block2 = _ConvBlock(width, 2 * width)
        self.conv_block3 = _ConvBlock(2 * width, 4 * width)
        self.conv_block4 = _ConvBlock(4 * width, 8 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        x = self.conv_block1(x, pool=True)
        x = self.conv_block2(x, pool=True)
        x = self.conv_block3(x, pool=True)
        x = self.conv_block4(x, pool=False)
        return x.mean(dim=3).amax(dim=2)


class AisfxEncoder(AudioEncoder):
    """Pretrained aiSFX sound-effects embeddings (512-d), averaged over ~2.3 s blocks."""

    packages = ("torch", "scipy", "aisfx")
    SPEC_MAX = 9.457798957824707  # the paper's global spectrogram maximum (min is 0)
    BLOCK_FRAMES = 100
    BLOCK_HOP = 50

    def __init__(self, name: str, device: str = "cpu", weights_path: str | os.PathLike | None = None) -> None:
        super().__init__(name, device)
        self.weights_path = Path(weights_path) if weights_path else aisfx_weights_path()
        self.net = SfxEmbeddingNet()
        self.net.load_state_dict(_load_aisfx_state(self.weights_path), strict=True)
        self.net.eval().to(device)
        for param in self.net.parameters():
            param.requires_grad_(False)
        self.front_end = LogMelSpectrogram(
            sample_rate=44100, n_fft=2048, win_length=2048, hop_length=1024, n_mels=96, f_min=0.0,
            f_max=22050.0, mel_scale="htk", mel_norm="sum", compression="log10_1p", log_scale=1e4,
            periodic_window=False,
        ).to(device)

    @property
    def dim(self) -> int:
        return 512

    def weight_files(self) -> list[Path]:
        return [self.weights_path]

    def embed_clip(self, wave: np.ndarray) -> np.ndarray:
        peak = float(np.abs(wave).max())
        wave = wave / peak if peak > 0 else wave
        spec = self.front_end(torch.from_numpy(wave).to(self.device))[0] / self.SPEC_MAX
        n_frames = spec.shape[0]
        if n_frames < self.BLOCK_FRAMES:  # short clip: one zero-padded block
            spec = nn.functional.pad(spec, (0, 0, 0, self.BLOCK_FRAMES - n_frames))
        blocks = spec.unfold(0, self.BLOCK_FRAMES, self.BLOCK_HOP).transpose(1, 2)  # (blocks, frames, mels)
        return self.net(blocks).mean(dim=0).float().cpu().numpy()

    def preprocessing(self) -> dict[str, Any]:
        return {
            **super().preprocessing(),
            "peak_normalise": True,
            "spectrogram_scale": f"divided by {self.SPEC_MAX}",
            "blocks": f"{self.BLOCK_FRAMES} frames, hop {self.BLOCK_HOP} (a shorter clip is zero-padded to one block)",
            "pooling": "mean of per-block 512-d embeddings",
        }


def aisfx_weights_path() -> Path:
    """``checkpoint.pth`` inside the installed ``aisfx`` package (the package is not imported)."""
    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "aisfx: the pretrained sound-effects weights ship in the PyPI package aisfx, which is not installed; "
            "install it without its (numpy 1.23 / librosa 0.9) pins: `pip install --no-deps aisfx==0.1.2`; "
            "or use the weight-free baseline encoder logmel-stats"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise WeightsNotFoundError(f"aisfx: {path} is missing; reinstall with `pip install --no-deps --force-reinstall aisfx==0.1.2`")
    return path


def _load_aisfx_state(path: Path) -> dict[str, torch.Tensor]:
    """The embedding-net weights from aiSFX's ``(state_dict, dataset_map)`` checkpoint.

    The pickle holds numpy scalars in the dataset map; only those numpy types are allowed
    besides tensors (``weights_only=True``), so the file cannot run code.
    """
    from numpy._core.multiarray import scalar

    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType, np.dtypes.Int32DType]
    with torch.serialization.safe_globals(allowed):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint[0] if isinstance(checkpoint, (tuple, list)) else checkpoint
    prefix = "embedding_net."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


@register_encoder("aisfx", "audio", "aiSFX sound-effects CNN (ISMIR 2022), 512-d, weights in a PyPI package (offline)")
def aisfx(name: str, device: str = "cpu", **options: Any) -> AisfxEncoder:
    return AisfxEncoder(name, device=device, **options)


@register_encoder("logmel-stats", "audio", "baseline: 16 kHz log-mel mean+std pooling, 128-d, no learned weights")
def logmel_stats(name: str, device: str = "cpu", **options: Any) -> LogMelStatsEncoder:
    return LogMelStatsEncoder(name, device=device, **options)
