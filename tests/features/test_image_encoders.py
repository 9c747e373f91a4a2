"""Image encoders on real posters: shapes, determinism, preprocessing, odd image modes,
corrupt files, and the clear error when torchvision weights are missing offline."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmgcn.features import ContentError, WeightsNotFoundError, get_encoder
from mmgcn.features.image import LITE_MEAN, LITE_STD, ImageTransform, load_rgb, to_rgb

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_lite0_shapes_and_determinism(lite0, posters):
    feats = lite0.encode(posters[:3])
    assert feats.shape == (3, 1280) and feats.dtype == np.float32
    assert np.all(np.isfinite(feats)) and np.all(feats >= 0)  # pooled ReLU6 activations
    np.testing.assert_array_equal(feats, lite0.encode(posters[:3]))
    # posters are different pictures: their features differ
    assert not np.allclose(feats[0], feats[1], atol=1e-3)
    # a row does not depend on its batch neighbours
    alone = lite0.encode([posters[1]])
    np.testing.assert_allclose(alone[0], feats[1], rtol=1e-4, atol=1e-4)


def test_lite0_weights_are_pretrained_imagenet(lite0):
    """A real photo gets a sensible ImageNet label; a random network would not."""
    import matplotlib
    from torchvision.models import ResNet50_Weights

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    categories = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    x = lite0.transform(load_rgb(photo)).unsqueeze(0)
    with torch.inference_mode():
        logits = lite0.model.net(x)[0]
    top5 = [categories[i] for i in logits.topk(5).indices]
    assert "military uniform" in top5, top5


def test_lite0_preprocessing_matches_its_training_statistics(lite0, posters):
    """The stem's batch-norm running stats fit (x - 127) / 128 inputs, not ImageNet mean/std.

    The first BN layer saw the training inputs' conv outputs; the per-channel variance of
    our inputs' conv outputs should be close to its running variance under the right
    scaling and ~5x too large under the ImageNet one.
    """
    stem, bn = lite0.model.net._conv_stem, lite0.model.net._bn0
    keep = bn.running_var > 1e-3
    images = [load_rgb(p) for p in posters]

    def variance_ratio(mean, std):
        transform = ImageTransform(256, 224, mean, std, "bicubic")
        with torch.inference_mode():
            out = stem(torch.stack([transform(img) for img in images]))
        return float((out.var(dim=(0, 2, 3))[keep] / bn.running_var[keep]).median())

    ours, imagenet = variance_ratio(LITE_MEAN, LITE_STD), variance_ratio(IMAGENET_MEAN, IMAGENET_STD)
    assert abs(np.log(ours)) < abs(np.log(imagenet))
    assert imagenet > 2 * ours


def test_transform_equals_torchvision_pipeline(posters):
    from torchvision import transforms as T

    reference = T.Compose([
        T.Resize(232, interpolation=T.InterpolationMode.BILINEAR),
        T.CenterCrop(224),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    ours = ImageTransform(232, 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear")
    for img in [load_rgb(posters[0]), Image.new("RGB", (300, 180), (200, 30, 60))]:
        expected = reference(img)
        got = ours(img)
        assert got.shape == (3, 224, 224) and got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_odd_modes_become_rgb(tmp_path, lite0, posters):
    rgb = load_rgb(posters[0])
    gray = rgb.convert("L")
    gray.save(tmp_path / "gray.png")
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(0)  # fully transparent
    rgba.save(tmp_path / "transparent.png")
    Image.fromarray((np.asarray(gray, np.uint16) * 257).astype(np.uint16)).save(tmp_path / "gray16.png")

    for name in ("gray.png", "cmyk.jpg", "palette.png", "transparent.png", "gray16.png"):
        img = load_rgb(tmp_path / name)
        assert img.mode == "RGB" and img.size == rgb.size, name
    # grayscale: three equal channels; 16-bit grayscale rescales to the same 8-bit picture
    gray_rgb = np.asarray(load_rgb(tmp_path / "gray.png"))
    assert np.array_equal(gray_rgb[..., 0], gray_rgb[..., 2])
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "gray16.png")), gray_rgb)
    # transparent pixels are composited on white
    assert np.all(np.asarray(load_rgb(tmp_path / "transparent.png")) == 255)
    # CMYK JPEG comes back close to the original colours
    cmyk_rgb = np.asarray(load_rgb(tmp_path / "cmyk.jpg"), dtype=np.float64)
    assert np.abs(cmyk_rgb - np.asarray(rgb, dtype=np.float64)).mean() < 12

    paths = [tmp_path / n for n in ("gray.png", "cmyk.jpg", "palette.png", "transparent.png", "gray16.png")]
    feats = lite0.encode(paths)
    assert feats.shape == (5, 1280) and np.all(np.isfinite(feats))
    # a grayscale file encodes exactly like its RGB conversion given in memory
    np.testing.assert_allclose(feats[0], lite0.encode([gray.convert("RGB")])[0], rtol=1e-5, atol=1e-5)


def test_to_rgb_palette_with_transparency():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 1)
    img.info["transparency"] = 1  # palette index 1 is transparent
    out = np.asarray(to_rgb(img))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (255, 0, 0)


def test_corrupt_and_missing_files_are_reported(tmp_path, lite0, posters):
    data = posters[0].read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    not_image = tmp_path / "notes.jpg"
    not_image.write_bytes(b"this is not an image\n" * 10)
    absent = tmp_path / "absent.jpg"

    result = lite0.encode_batch([posters[0], truncated, not_image, absent, posters[1]])
    assert result.ok.tolist() == [True, False, False, False, True]
    assert set(result.errors) == {1, 2, 3}
    assert "truncated.jpg" in result.errors[1] and "notes.jpg" in result.errors[2] and "absent.jpg" in result.errors[3]
    assert np.all(result.features[1:4] == 0)
    np.testing.assert_allclose(result.features[4], lite0.encode([posters[1]])[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ContentError, match="truncated.jpg"):
        lite0.encode([truncated])
    with pytest.raises(TypeError, match="list of inputs"):
        lite0.encode(str(posters[0]))


def test_offline_default_loads_without_network(no_network, posters):
    encoder = get_encoder("efficientnet-lite0")
    assert encoder.encode(posters[:1]).shape == (1, 1280)
    assert no_network == []  # not even attempted
    sha = encoder.weights_sha256()
    assert list(sha) == ["efficientnet-lite0-57934424.pth"] and sha["efficientnet-lite0-57934424.pth"].startswith("57934424")


def test_missing_torchvision_weights_is_a_clear_error(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(WeightsNotFoundError) as info:
        get_encoder("resnet50")
    message = str(info.value)
    assert "resnet50-11ad3fa6.pth" in message  # what is missing
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints") in message  # where it looked
    assert "download.pytorch.org" in message and "failed" in message  # the download was tried and failed
    assert "efficientnet-lite0" in message and "TORCH_HOME" in message  # how to get on
    assert no_network, "the download should have been attempted (and refused)"
    assert not (tmp_path / "torch-home" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth").exists()

    with pytest.raises(WeightsNotFoundError, match="downloading is disabled"):
        get_encoder("vit_b_16", allow_download=False)


def test_corrupt_cached_torchvision_weights_are_refused(tmp_path, monkeypatch, no_network):
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(2, 2)}, buffer)
    (checkpoints / "resnet50-11ad3fa6.pth").write_bytes(buffer.getvalue())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="corrupt"):
        get_encoder("resnet50")
    assert no_network == []  # a cached file is never re-downloaded behind the user's back


def test_unknown_encoder_and_modality_mismatch():
    with pytest.raises(KeyError, match="efficientnet-lite0"):
        get_encoder("no-such-encoder")
    with pytest.raises(KeyError, match="encodes image, not text"):
        get_encoder("efficientnet-lite0", modality="text")
