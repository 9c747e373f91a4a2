"""Audio front end: WAV reading, resampling, mel filterbank and log-mel spectrogram.

Implemented on ``torch.stft`` and numpy / scipy (no torchaudio or librosa): a
Hann-windowed STFT, power spectrum :math:`P_{t,k} = |X_{t,k}|^2`, triangular mel filters
:math:`W \\in \\mathbb{R}^{M \\times K}` (HTK mel scale
:math:`m(f) = 2595 \\log_{10}(1 + f / 700)` or Slaney's), and a log compression, giving
``(frames, n_mels)`` features :math:`\\log(W P_t + \\epsilon)`. The encoders built on it
live in :mod:`mmgcn.features.audio`.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmgcn.features.base import ContentError


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
