"""Fixtures for the encoder tests: a handful of real ML-100K posters and texts, shared
encoders (loaded once per session), and a switch that makes every network attempt fail."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from mmgcn.features import get_encoder


@pytest.fixture(scope="session")
def ml100k(data_root: Path) -> Path:
    folder = data_root / "ml-100k"
    if not (folder / "posters").is_dir():
        pytest.skip("ml-100k posters not in the data directory")
    return folder


@pytest.fixture(scope="session")
def posters(ml100k: Path) -> list[Path]:
    """Five real posters (movie ids 1, 2, 3, 4, 5)."""
    return [ml100k / "posters" / f"{movie_id}.jpg" for movie_id in (1, 2, 3, 4, 5)]


@pytest.fixture(scope="session")
def movie_texts(ml100k: Path) -> list[str]:
    """``title. Genres: ... plot`` for the first 12 movies, built from the raw files."""
    genres = [line.split("|")[0] for line in (ml100k / "u.genre").read_text().splitlines() if line]
    plots = {d["movie_id"]: d.get("description") or "" for d in json.loads((ml100k / "movielens100k_details.json").read_text())}
    texts = []
    for line in (ml100k / "u.item").read_text(encoding="latin-1").splitlines()[:12]:
        fields = line.split("|")
        names = ", ".join(g for g, flag in zip(genres, fields[5:]) if flag == "1")
        texts.append(f"{fields[1]}. Genres: {names}. {plots.get(int(fields[0]), '')}".strip())
    return texts


@pytest.fixture(scope="session")
def lite0():
    return get_encoder("efficientnet-lite0")


@pytest.fixture(scope="session")
def minilm():
    return get_encoder("all-minilm-l6-v2")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every socket connection / DNS lookup raises; returns the list of attempts made."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
        raise OSError("network disabled by the no_network test fixture")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # huggingface_hub reads the variable at import, which happened already
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return attempts
