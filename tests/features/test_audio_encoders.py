"""Audio front end against hand-computed cases, WAV reading, and the two audio encoders."""

from __future__ import annotations

import importlib.util
import io
import pickle

import numpy as np
import pytest
import scipy.io.wavfile
import torch

from mmgcn.features import ContentError, get_encoder
from mmgcn.features.audio import _load_aisfx_state
from mmgcn.features.audio_frontend import (
    LogMelSpectrogram,
    hz_to_mel,
    load_wav,
    mel_filterbank,
    mel_to_hz,
    resample,
)

needs_aisfx = pytest.mark.skipif(
    importlib.util.find_spec("aisfx") is None, reason="aisfx not installed (pip install --no-deps aisfx==0.1.2)"
)


def tone(freq: float, seconds: float = 1.0, rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_mel_scales_hand_values():
    assert float(hz_to_mel(700.0)) == pytest.approx(2595 * np.log10(2))  # HTK: m(700) = 2595 log10 2
    assert float(hz_to_mel(1000.0, "slaney")) == pytest.approx(15.0)  # Slaney: 1 kHz = 15 mel
    assert float(hz_to_mel(500.0, "slaney")) == pytest.approx(7.5)  # linear below 1 kHz
    freqs = np.array([0.0, 125.0, 999.0, 4000.0, 8000.0])
    for scale in ("htk", "slaney"):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs, scale), scale), freqs, atol=1e-6)


def test_filterbank_triangles():
    rate, n_fft, n_mels = 16000, 512, 10
    fb = mel_filterbank(n_fft, rate, n_mels, 0.0, 8000.0)
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.dtype == np.float32
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    centres = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), n_mels + 2))[1:-1]
    # each band peaks at the FFT bin nearest its centre, with weight <= 1, and is zero far away
    for j, centre in enumerate(centres):
        assert abs(bins[fb[j].argmax()] - centre) <= rate / n_fft
        assert fb[j].max() <= 1.0 + 1e-6
    assert fb[0, -1] == 0 and fb[-1, 0] == 0
    summed = mel_filterbank(n_fft, rate, n_mels, 0.0, 8000.0, norm="sum")
    np.testing.assert_allclose(summed.sum(axis=1), 1.0, rtol=1e-5)
    slaney = mel_filterbank(n_fft, rate, n_mels, 0.0, 8000.0, norm="slaney")
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), n_mels + 2))
    inside = fb > 1e-6  # (a band edge can meet a bin up to float rounding)
    expected = np.broadcast_to(2 / (edges[2:] - edges[:-2])[:, None], fb.shape)
    np.testing.assert_allclose((slaney / np.where(inside, fb, 1))[inside], expected[inside], rtol=1e-4)
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(512, 16000, 10, 0.0, 9000.0)


def test_power_spectrum_of_a_bin_centred_sine():
    """A sine of amplitude A at bin k: |X_k| = A * sum(window) / 2 = A * N / 4 for periodic Hann."""
    rate, n_fft, amplitude = 16000, 512, 0.5
    k = 32  # 1000 Hz = bin 32 at 16 kHz / 512
    front = LogMelSpectrogram(sample_rate=rate, n_fft=n_fft, win_length=n_fft, hop_length=256)
    power = front.power_spectrogram(torch.from_numpy(tone(k * rate / n_fft, amplitude=amplitude)).unsqueeze(0))[0]
    middle = power[power.shape[0] // 2]
    assert int(middle.argmax()) == k
    assert float(middle[k]) == pytest.approx((amplitude * n_fft / 4) ** 2, rel=1e-3)
    # the Hann window's leakage reaches exactly the two neighbours (a quarter of the peak amplitude)
    assert float(middle[k + 1]) == pytest.approx((amplitude * n_fft / 8) ** 2, rel=1e-3)
    assert float(middle[k + 3]) < 1e-6 * float(middle[k])


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3500.0])
def test_pure_tone_lands_in_its_mel_band(freq):
    front = LogMelSpectrogram()  # 16 kHz, 64 bands 125-7500 Hz
    frames = front(torch.from_numpy(tone(freq)))
    assert frames.shape == (1, 16000 // 160 + 1, 64)
    centres = mel_to_hz(np.linspace(hz_to_mel(125.0), hz_to_mel(7500.0), 66))[1:-1]
    assert int(frames[0, 20:-20].mean(dim=0).argmax()) == int(np.abs(centres - freq).argmin())


def test_load_wav_scaling_and_mono(tmp_path):
    stereo = np.stack([np.full(100, 16384, np.int16), np.full(100, -16384, np.int16)], axis=1)
    stereo[:, 1] = 8192
    scipy.io.wavfile.write(tmp_path / "s16.wav", 8000, stereo)
    wave, rate = load_wav(tmp_path / "s16.wav")
    assert rate == 8000 and wave.shape == (100,) and wave.dtype == np.float32
    np.testing.assert_allclose(wave, (0.5 + 0.25) / 2)
    scipy.io.wavfile.write(tmp_path / "u8.wav", 8000, np.array([128, 192, 64], np.uint8))
    np.testing.assert_allclose(load_wav(tmp_path / "u8.wav")[0], [0.0, 0.5, -0.5])
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav file")
    with pytest.raises(ContentError, match="bad.wav"):
        load_wav(tmp_path / "bad.wav")


def test_resample_keeps_the_pitch():
    wave = resample(tone(1000.0), 16000, 44100)
    assert wave.shape == (44100,)
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.fft.rfftfreq(44100, 1 / 44100)[spectrum.argmax()] == pytest.approx(1000.0, abs=1.0)


def test_logmel_stats_baseline():
    encoder = get_encoder("logmel-stats")
    clips = [(tone(440.0), 16000), (tone(440.0, amplitude=0.05), 16000), (tone(2000.0), 16000)]
    feats = encoder.encode(clips)
    assert feats.shape == (3, 128) and feats.dtype == np.float32
    np.testing.assert_array_equal(feats, encoder.encode(clips))
    assert feats[0, :64].mean() > feats[1, :64].mean()  # louder -> larger log-mel means
    assert int(feats[0, :64].argmax()) < int(feats[2, :64].argmax())  # higher pitch -> higher band
    assert encoder.describe()["weights_sha256"] == {}  # no learned weights, and it says so


def test_unreadable_audio_is_reported(tmp_path):
    encoder = get_encoder("logmel-stats")
    (tmp_path / "broken.wav").write_bytes(b"\x00" * 10)
    result = encoder.encode_batch([(tone(440.0), 16000), tmp_path / "broken.wav"])
    assert result.ok.tolist() == [True, False] and "broken.wav" in result.errors[1]


@needs_aisfx
def test_aisfx_pretrained_embeddings(no_network):
    encoder = get_encoder("aisfx")
    assert no_network == []
    rng = np.random.default_rng(0)
    noise_a = rng.normal(scale=0.3, size=48000).astype(np.float32)
    noise_b = rng.normal(scale=0.3, size=48000).astype(np.float32)
    clips = [(noise_a, 16000), (noise_b, 16000), (tone(440.0, 3.0), 16000), (tone(440.0, 3.0, rate=44100), 44100)]
    feats = encoder.encode(clips)
    assert feats.shape == (4, 512) and np.all(np.isfinite(feats))
    np.testing.assert_array_equal(feats, encoder.encode(clips))
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    cos = unit @ unit.T
    # two noise recordings are alike; noise and a tone are not
    assert cos[0, 1] > 0.95 and cos[0, 1] > cos[0, 2] + 0.1
    # the same tone given at 16 kHz or 44.1 kHz embeds alike
    assert cos[2, 3] > 0.9
    desc = encoder.describe()
    assert list(desc["weights_sha256"]) == ["checkpoint.pth"] and desc["preprocessing"]["sample_rate"] == 44100
    # a clip shorter than one 2.3 s block still gets one vector
    assert encoder.encode([(tone(440.0, 0.2), 16000)]).shape == (1, 512)


def test_aisfx_checkpoint_loader_refuses_code(tmp_path):
    """The restricted unpickler allows tensors and numpy scalars, nothing that can run code."""

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    buffer = io.BytesIO()
    torch.save(({"embedding_net.w": torch.zeros(1)}, {"x": Payload()}), buffer, pickle_module=pickle)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(pickle.UnpicklingError):
        _load_aisfx_state(path)
