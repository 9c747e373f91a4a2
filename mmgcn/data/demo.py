"""A small "shop" written as files, the way your own data arrives: a CSV of interactions, a
CSV of items with a title, a description and an image path, and a folder of images.

:func:`write_demo_shop` plants a taste that content can see: every item has one of
``len(STYLES)`` styles; the style sets the image's colour and pattern and the words of its
description. Every user prefers one or two styles: a user's interactions are drawn from
the preferred styles with probability ``taste`` and from any item otherwise, so the
content of an item tells which users want it, and a cold item (no interactions) can be
recommended from its image and text alone. A fraction of the items has no image
(``missing_images``), and an empty image cell in the CSV, as real catalogues do.

Used by the README's "Your own dataset" walk-through (and its test), the notebooks, and
the importer's tests. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

#: style -> (RGB colour, description words)
STYLES: dict[str, tuple[tuple[int, int, int], str]] = {
    "ember": ((200, 60, 40), "warm red stripes, bold and bright"),
    "moss": ((60, 150, 70), "soft green dots, calm and natural"),
    "tide": ((40, 90, 200), "deep blue waves, cool and clean"),
    "sand": ((220, 190, 90), "light yellow checks, sunny and plain"),
}


def _image(style: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8: the style's colour with its pattern, plus noise."""
    colour = np.array(list(STYLES.values())[style][0], dtype=np.float64)
    y, x = np.mgrid[0:size, 0:size]
    pattern = [
        (x // 4) % 2,                                   # stripes
        ((x // 4 + y // 4) % 3 == 0),                   # dots-ish
        (np.sin(x / 3.0 + y / 6.0) > 0),                # waves
        ((x // 6 + y // 6) % 2),                        # checks
    ][style].astype(np.float64)
    shade = 0.65 + 0.35 * pattern[..., None]
    noise = rng.normal(0.0, 18.0, size=(size, size, 3))
    return np.clip(colour * shade + noise, 0, 255).astype(np.uint8)


def write_demo_shop(
    folder: str | os.PathLike,
    *,
    n_users: int = 300,
    n_items: int = 120,
    interactions_per_user: int = 12,
    taste: float = 0.85,
    missing_images: float = 0.1,
    image_size: int = 48,
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``interactions.csv``, ``items.csv`` and ``images/`` under ``folder``.

    ``interactions.csv`` has ``user_id, item_id, rating, timestamp`` (ids like ``u017`` /
    ``sku-0042``, ratings 1-5 with the preferred styles rated higher, times in seconds);
    ``items.csv`` has ``item_id, title, description, image`` (image paths relative to
    ``folder``; empty for items without an image).

    Args:
        folder: where to write (created).
        n_users, n_items: sizes (defaults 300 x 120).
        interactions_per_user: distinct items per user (default 12).
        taste: probability that an interaction comes from a preferred style (default 0.85).
        missing_images: fraction of items without an image (default 0.1).
        image_size: side of the square PNG images in pixels (default 48).
        seed: random seed (default 0).

    Returns:
        ``{"interactions", "items", "images"}`` -> paths; the items' styles are in
        ``items.csv``'s titles (e.g. ``"ember lamp 7"``).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    n_styles = len(STYLES)
    names = list(STYLES)
    item_style = rng.integers(0, n_styles, size=n_items)
    nouns = ("lamp", "mug", "scarf", "poster", "cushion", "vase")
    item_rows = []
    for item in range(n_items):
        style = int(item_style[item])
        image = ""
        if rng.random() >= missing_images:
            image = f"images/sku-{item:04d}.png"
            Image.fromarray(_image(style, rng, image_size)).save(folder / image)
        noun = nouns[int(rng.integers(len(nouns)))]
        item_rows.append((f"sku-{item:04d}", f"{names[style]} {noun} {item}",
                          f"A {noun} with {STYLES[names[style]][1]}.", image))
    per_user = min(interactions_per_user, n_items)
    rows = []
    start = 1_700_000_000
    for user in range(n_users):
        liked = rng.choice(n_styles, size=int(rng.integers(1, 3)), replace=False)
        in_taste = np.isin(item_style, liked)
        weights = np.where(in_taste, taste / max(in_taste.sum(), 1), (1 - taste) / max((~in_taste).sum(), 1))
        chosen = rng.choice(n_items, size=per_user, replace=False, p=weights / weights.sum())
        times = start + np.sort(rng.integers(0, 90 * 86400, size=per_user))
        for item, when in zip(chosen, times):
            rating = int(np.clip(np.round(rng.normal(4.3 if in_taste[item] else 2.7, 0.7)), 1, 5))
            rows.append((f"u{user:03d}", f"sku-{int(item):04d}", rating, int(when)))
    order = np.argsort([r[3] for r in rows], kind="stable")  # a log, in time order
    with open(folder / "interactions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("user_id", "item_id", "rating", "timestamp"))
        writer.writerows(rows[i] for i in order)
    with open(folder / "items.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("item_id", "title", "description", "image"))
        writer.writerows(item_rows)
    return {"interactions": folder / "interactions.csv", "items": folder / "items.csv", "images": images}
