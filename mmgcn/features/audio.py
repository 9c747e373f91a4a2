"""Audio encoders: waveform -> log-mel spectrogram -> one fixed vector per clip.

The front end (:class:`LogMelSpectrogram`, :func:`mel_filterbank`) is implemented here on
``torch.stft`` (no torchaudio / librosa): a Hann-windowed STFT, power spectrum
:math:`P_{t,k} = |X_{t,k}|^2`, triangular mel filters :math:`W \\in \\mathbb{R}^{M \\times K}`
(HTK mel scale :math:`m(f) = 2595 \\log_{10}(1 + f / 700)` or Slaney's), and a log
compression, giving ``(frames, n_mels)`` features :math:`\\log(W P_t + \\epsilon)`.

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
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmgcn.features.base import (
    ContentError,
    Encoder,
    EncodeResult,
    WeightsNotFoundError,
    register_encoder,
)

log = logging.getLogger(__name__)

AudioInput = str | os.PathLike | tuple[np.ndarray, int]


# ---------------------------------------------------------------------- waveforms
def load_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """``(mono float32 waveform in [-1, 1], sample_rate)`` of a WAV file.

    Raises:
        ContentError: missing file, not a WAV, or empty.
    """
    import scipy.io.wavfile

    path = Path(path)
    try:
        rate, data = scipy.io.wavfile.read(path)
    except (OSError, ValueError, EOFError) as exc:
        raise ContentError(f"{path}: cannot read WAV audio ({type(exc).__name__}: {exc}); convert it to PCM WAV") from exc
    return to_mono_float(data, source=str(path)), int(rate)


def to_mono_float(data: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Integer PCM or float samples ``(samples,)`` / ``(samples, channels)`` -> mono float32."""
    data = np.asarray(data)
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise ContentError(f"{source}: expected a non-empty 1-D or (samples, channels) waveform, got shape {data.shape}")
    if data.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        wave = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        wave = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    elif np.issubdtype(data.dtype, np.floating):
        wave = data.astype(np.float32)
    else:
        raise ContentError(f"{source}: unsupported sample type {data.dtype}")
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if not np.all(np.isfinite(wave)):
        raise ContentError(f"{source}: waveform contains NaN or inf")
    return wave


def resample(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (Kaiser-windowed FIR) from ``rate_in`` to ``rate_out`` Hz."""
    if rate_in == rate_out:
        return wave
    from scipy.signal import resample_poly

    ratio = Fraction(int(rate_out), int(rate_in))
    return resample_poly(wave, ratio.numerator, ratio.denominator).astype(np.float32)


# ---------------------------------------------------------------------- mel front end
def hz_to_mel(freq: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Mel value of ``freq`` Hz: HTK ``2595 log10(1 + f/700)``, or Slaney (linear below 1 kHz)."""
    freq = np.asarray(freq, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    if scale == "slaney":
        f_sp, min_log_hz = 200.0 / 3, 1000.0
        min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
        return np.where(freq >= min_log_hz, min_log_mel + np.log(np.maximum(freq, 1e-10) / min_log_hz) / logstep, freq / f_sp)
    raise ValueError(f"unknown mel scale {scale!r}; expected 'htk' or 'slaney'")


def mel_to_hz(mel: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    if scale == "slaney":
        f_sp, min_log_hz = 200.0 / 3, 1000.0
        min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
        return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)
    raise ValueError(f"unknown mel scale {scale!r}; expected 'htk' or 'slaney'")


def mel_filterbank(
    n_fft: int,
    sample_rate: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    scale: str = "htk",
    norm: str | None = None,
) -> np.ndarray:
    """Triangular mel filters, ``(n_mels, n_fft // 2 + 1)`` float32.

    Band ``j`` rises linearly (in Hz) from mel point ``j`` to ``j + 1`` and falls to
    ``j + 2``, the ``n_mels + 2`` points being equally spaced on the mel scale between
    ``f_min`` and ``f_max`` (default: Nyquist).

    Args:
        norm: ``None`` (peak 1), ``"slaney"`` (scale by ``2 / bandwidth``: constant energy
            per band) or ``"sum"`` (each band's weights sum to 1).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, sample_rate={sample_rate}")
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min, scale), hz_to_mel(f_max, scale), n_mels + 2), scale)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bin_hz[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= 2.0 / (upper - lower)
    elif norm == "sum":
        sums = weights.sum(axis=1, keepdims=True)
        weights = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    elif norm is not None:
        raise ValueError(f"unknown mel norm {norm!r}; expected None, 'slaney' or 'sum'")
    return weights.astype(np.float32)


class LogMelSpectrogram(nn.Module):
    """Waveform ``(samples,)`` or ``(batch, samples)`` -> log-mel ``(batch, frames, n_mels)``.

    Frames are centred (the signal is zero-padded by ``n_fft // 2`` on both sides), so
    ``frames = samples // hop_length + 1``.

    Args:
        sample_rate: expected input rate in Hz (default ``16000``).
        n_fft: FFT size (default ``512``).
        win_length: Hann window length, ``<= n_fft`` (default ``400``, 25 ms at 16 kHz).
        hop_length: frame step (default ``160``, 10 ms at 16 kHz).
        n_mels: number of mel bands (default ``64``).
        f_min: lowest band edge in Hz (default ``125``).
        f_max: highest band edge in Hz (default ``7500``).
        mel_scale: ``"htk"`` or ``"slaney"`` (default ``"htk"``).
        mel_norm: filter normalisation, see :func:`mel_filterbank` (default ``None``).
        compression: ``"log"`` -> ``ln(mel + log_offset)``; ``"log10_1p"`` ->
            ``log10(1 + log_scale * mel)`` (default ``"log"``).
        log_offset: added before ``ln`` (default ``0.01``, as VGGish).
        log_scale: multiplier inside ``log10_1p`` (default ``1e4``).
        periodic_window: periodic (``True``, FFT convention) or symmetric Hann.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 64,
        f_min: float = 125.0,
        f_max: float | None = 7500.0,
        mel_scale: str = "htk",
        mel_norm: str | None = None,
        compression: str = "log",
        log_offset: float = 0.01,
        log_scale: float = 1e4,
        periodic_window: bool = True,
    ) -> None:
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must be <= n_fft ({n_fft})")
        if compression not in ("log", "log10_1p"):
            raise ValueError(f"unknown compression {compression!r}; expected 'log' or 'log10_1p'")
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = sample_rate, n_fft, win_length, hop_length
        self.n_mels, self.f_min, self.f_max = n_mels, f_min, f_max if f_max is not None else sample_rate / 2
        self.mel_scale, self.mel_norm, self.compression = mel_scale, mel_norm, compression
        self.log_offset, self.log_scale, self.periodic_window = log_offset, log_scale, periodic_window
        filters = mel_filterbank(n_fft, sample_rate, n_mels, f_min, self.f_max, mel_scale, mel_norm)
        self.register_buffer("filters", torch.from_numpy(filters), persistent=False)
        self.register_buffer("window", torch.hann_window(win_length, periodic=periodic_window), persistent=False)

    def power_spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, n_fft // 2 + 1)`` power spectrum ``|STFT|^2``."""
        spec = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return spec.abs().pow(2).transpose(1, 2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        mel = self.power_spectrogram(wave.to(self.filters.dtype)) @ self.filters.T
        if self.compression == "log":
            return torch.log(mel + self.log_offset)
        return torch.log10(1.0 + self.log_scale * mel)

    def describe(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "window": "hann (periodic)" if self.periodic_window else "hann (symmetric)",
            "n_mels": self.n_mels,
            "f_min": self.f_min,
            "f_max": self.f_max,
            "mel_scale": self.mel_scale,
            "mel_norm": self.mel_norm,
            "compression": f"ln(mel + {self.log_offset})" if self.compression == "log" else f"log10(1 + {self.log_scale} * mel)",
        }

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, n_mels={self.n_mels}"


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
