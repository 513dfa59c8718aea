"""Safe image loading: bombs, truncated, empty and text files are refused with the file named."""

import hashlib
import io

import numpy as np
import pytest
from catalog_files import picture, write_jpeg, write_png, write_png_bomb, write_truncated_jpeg
from PIL import Image

from engine.catalog.images import (
    DESCRIPTOR_DIM,
    ImageError,
    image_descriptor,
    load_rgb,
    make_thumbnail,
    sha256_file,
)


def test_sha256_matches_hashlib(tmp_path):
    p = write_jpeg(tmp_path / "a.jpg")
    assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()


def test_demo_painting_loads_as_rgb(demo_paintings):
    rgb = load_rgb(demo_paintings[0])
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    small = load_rgb(demo_paintings[0], max_side=128)
    assert max(small.shape[:2]) == 128


def test_jpeg_reduced_decode_is_close_to_full(tmp_path):
    p = write_jpeg(tmp_path / "big.jpg", seed=3, size=(1600, 1200))
    small = load_rgb(p, max_side=400)
    assert small.shape == (300, 400, 3)
    full = np.asarray(Image.fromarray(load_rgb(p)).resize((400, 300), Image.Resampling.BOX))
    assert np.abs(small.astype(int) - full.astype(int)).mean() < 6


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
        (
            lambda p: p.write_text("Dear curator,\nthis is a letter.\n"),
            "not an image: the file contains text",
        ),
        (lambda p: write_truncated_jpeg(p), "truncated"),
        (lambda p: p.write_bytes(bytes(range(256)) * 4), "not an image in a supported format"),
    ],
    ids=["zero-byte", "text-named-jpg", "truncated", "binary-junk"],
)
def test_bad_files_are_refused_naming_the_file(tmp_path, make, expected):
    p = tmp_path / "bad.jpg"
    make(p)
    with pytest.raises(ImageError) as err:
        load_rgb(p)
    assert str(p) in str(err.value) and expected in str(err.value)


def test_truncated_png_is_refused(tmp_path):
    p = write_png(tmp_path / "t.png", size=(400, 300))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match="truncated"):
        load_rgb(p)


def test_png_bomb_is_refused_before_decoding(tmp_path):
    p = write_png_bomb(tmp_path / "bomb.png")
    assert p.stat().st_size < 2000
    with pytest.raises(ImageError, match=r"decompression bomb.*1,600,000,000 pixels"):
        load_rgb(p)


def test_configured_pixel_limit_applies(tmp_path):
    p = write_jpeg(tmp_path / "a.jpg", size=(2000, 1000))
    with pytest.raises(ImageError, match=r"2000 x 1000 = 2,000,000 pixels.*1,000,000"):
        load_rgb(p, max_pixels=1_000_000)
    assert load_rgb(p, max_pixels=2_000_000).shape == (1000, 2000, 3)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.fromarray(picture(1, 200, 100))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = tmp_path / "rotated.jpg"
    im.save(p, exif=exif)
    assert load_rgb(p).shape == (200, 100, 3)
    assert load_rgb(p, max_side=50).shape == (50, 25, 3)


def test_modes_become_rgb(tmp_path):
    base = Image.fromarray(picture(2, 64, 48))
    base.convert("CMYK").save(tmp_path / "cmyk.jpg")
    base.convert("P").save(tmp_path / "palette.png")
    base.convert("L").save(tmp_path / "grey.webp")
    base.save(tmp_path / "plain.tif")
    ramp = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "sixteen.png")
    rgba = base.convert("RGBA")
    rgba.putalpha(0)
    rgba.save(tmp_path / "transparent.png")
    for name in ["cmyk.jpg", "palette.png", "grey.webp", "plain.tif", "sixteen.png", "transparent.png"]:
        rgb = load_rgb(tmp_path / name)
        assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8, name
    sixteen = load_rgb(tmp_path / "sixteen.png")
    assert sixteen[0, 0, 0] == 0 and sixteen[-1, -1, 0] > 200  # scaled, not clipped to 255
    assert (load_rgb(tmp_path / "transparent.png") == 255).all()  # on white


def test_thumbnail_is_jpeg_of_requested_size():
    data = make_thumbnail(picture(4, 1600, 1200), 256)
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and im.size == (256, 192)


def test_descriptor_is_unit_vector_and_ranks_similar_images_first():
    a = picture(5, 320, 240)
    similar = np.clip(a.astype(int) + 12, 0, 255).astype(np.uint8)
    other = picture(99, 320, 240)[:, ::-1]
    da, ds, do = (image_descriptor(x) for x in (a, similar, other))
    assert da.dtype == np.float32 and da.shape == (DESCRIPTOR_DIM,)
    assert abs(np.linalg.norm(da) - 1) < 1e-5
    assert float(da @ ds) > float(da @ do)
    assert float(da @ ds) > 0.9


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_damaged_files_only_ever_raise_image_error(tmp_path, fmt):
    out = io.BytesIO()
    Image.fromarray(picture(6, 96, 64)).save(out, fmt)
    good = out.getvalue()
    rng = np.random.default_rng(len(fmt))
    p = tmp_path / f"damaged.{fmt.lower()}"
    for i in range(40):
        data = bytearray(good)
        if i % 2:
            for pos in rng.integers(0, len(data), 8):  # flipped bytes
                data[pos] = int(rng.integers(0, 256))
        else:
            data = data[: int(rng.integers(1, len(data)))]  # cut short
        p.write_bytes(bytes(data))
        try:
            rgb = load_rgb(p, max_side=48)
        except ImageError as exc:
            assert str(p) in str(exc)  # noqa: PT017 (either outcome is allowed; an error must name the file)
        else:
            assert rgb.ndim == 3 and rgb.shape[2] == 3


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_every_exif_orientation_matches_pillows_exif_transpose(tmp_path, orientation):
    from PIL import ImageOps

    im = Image.fromarray(picture(orientation, 1200, 800))
    exif = im.getexif()
    exif[0x0112] = orientation
    p = tmp_path / "o.png"
    im.save(p, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))
    assert np.array_equal(load_rgb(p), expected)
    small = load_rgb(p, max_side=300)  # reduced before rotating: same picture, smaller
    assert max(small.shape[:2]) == 300 and (small.shape[0] > small.shape[1]) == (
        expected.shape[0] > expected.shape[1]
    )
    shrunk = np.asarray(Image.fromarray(expected).resize(small.shape[1::-1], Image.Resampling.BOX))
    assert np.abs(small.astype(int) - shrunk.astype(int)).mean() < 8
