"""Rendered images and thumbnails: valid JPEG/PNG of the right size and grey levels."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from pacsflow.web.dicomweb.render import (
    find_for_render,
    parse_options,
    plain_monochrome_frame,
    render_frame,
)
from tests.dicomweb.test_wado import AUTH, ROOT, Wado, error, running_wado

PNG = "image/png"
IMAGE_KEYS = [
    "ct_small",
    "ct_1",
    "seg_liver",
    "mr_big_endian",
    "mr_multiframe",
    "rgb_multiframe",
    "ybr_422",
    "palette",
    "deflated",
    "jpeg_baseline",
    "jpeg_lossless",
    "jpeg_nm",
    "j2k",
    "jpeg_ls",
    "rle",
    "enhanced_ct",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def wado(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Wado]:
    with running_wado(request.param, tmp_path_factory.mktemp("render")) as running:
        yield running


def image(wado: Wado, url: str, accept: str | None = None) -> Image.Image:
    response = wado.get(url, accept)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    opened = Image.open(io.BytesIO(response.get_data()))
    assert opened.format == {"image/jpeg": "JPEG", PNG: "PNG"}[response.mimetype]
    return opened


def grey(wado: Wado, url: str) -> np.ndarray:
    return np.asarray(image(wado, url, PNG), dtype=np.float64)


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 to 0..255, written out independently of the server's code."""
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(values <= low, 0, np.where(values > high, 255, scaled))


@pytest.mark.parametrize("key", IMAGE_KEYS)
@pytest.mark.parametrize("accept", [None, "*/*", "image/jpeg", "image/*"])
def test_rendered_is_a_jpeg_of_the_image_size(wado: Wado, key: str, accept: str | None) -> None:
    entry = wado.stored[key]
    rendered = image(wado, f"{entry.url}/rendered", accept)
    assert rendered.format == "JPEG"
    assert rendered.size == (entry.dataset.Columns, entry.dataset.Rows)
    colour = entry.dataset.SamplesPerPixel == 3 or key == "palette"
    assert rendered.mode == ("RGB" if colour else "L")


def test_png_when_preferred(wado: Wado) -> None:
    url = f"{wado.stored['ct_small'].url}/rendered"
    assert image(wado, url, "image/jpeg;q=0.5, image/png").format == "PNG"
    assert image(wado, url, "image/png;q=0.5, image/jpeg").format == "JPEG"


def test_window_parameter_sets_grey_levels(wado: Wado) -> None:
    entry = wado.stored["ct_small"]
    hounsfield = apply_modality_lut(entry.dataset.pixel_array, entry.dataset)
    for center, width in ((40, 400), (1000, 4000)):
        got = grey(wado, f"{entry.url}/rendered?window={center},{width},linear")
        expected = linear_window(hounsfield, center, width)
        assert np.abs(got - expected).max() <= 0.5 + 1e-6
    narrow = grey(wado, f"{entry.url}/rendered?window=40,400")
    wide = grey(wado, f"{entry.url}/rendered?window=1000,4000")
    assert not np.array_equal(narrow, wide)


def test_window_functions_differ(wado: Wado) -> None:
    url = f"{wado.stored['ct_small'].url}/rendered?window=100,300"
    images = [grey(wado, f"{url},{f}") for f in ("linear", "linear-exact", "sigmoid")]
    assert not np.array_equal(images[0], images[2])
    assert np.abs(images[0] - images[1]).max() <= 1  # exact differs by half a value


def test_header_window_is_the_default(wado: Wado) -> None:
    mr = wado.stored["mr_big_endian"]
    center, width = float(mr.dataset.WindowCenter), float(mr.dataset.WindowWidth)
    default = grey(wado, f"{mr.url}/rendered")
    assert np.array_equal(default, grey(wado, f"{mr.url}/rendered?window={center},{width}"))


def test_enhanced_objects_use_functional_group_window_and_rescale(wado: Wado) -> None:
    entry = wado.stored["enhanced_ct"]  # shared groups: window 49/102 over rescaled values
    default = grey(wado, f"{entry.url}/frames/2/rendered")
    assert np.array_equal(default, grey(wado, f"{entry.url}/frames/2/rendered?window=49,102"))
    stored = pixel_array(entry.dataset, index=1).astype(np.float64) - 1024
    assert np.abs(default - linear_window(stored, 49, 102)).max() <= 0.5 + 1e-6


def test_without_window_min_max_is_used(wado: Wado) -> None:
    got = grey(wado, f"{wado.stored['ct_small'].url}/rendered")  # CT_small has no window
    assert (got.min(), got.max()) == (0, 255)


def test_monochrome1_is_inverted(wado: Wado) -> None:
    query = "rendered?window=100,800"
    normal = grey(wado, f"{wado.stored['ct_small'].url}/{query}")
    inverted = grey(wado, f"{wado.stored['ct_small_monochrome1'].url}/{query}")
    np.testing.assert_array_equal(inverted, 255 - normal)


def test_rgb_is_rendered_as_stored(wado: Wado) -> None:
    entry = wado.stored["rgb_multiframe"]
    for number in (1, 2):
        got = np.asarray(image(wado, f"{entry.url}/frames/{number}/rendered", PNG))
        np.testing.assert_array_equal(got, pixel_array(entry.dataset, index=number - 1))


def test_palette_colour_goes_through_its_lut(wado: Wado) -> None:
    entry = wado.stored["palette"]
    got = np.asarray(image(wado, f"{entry.url}/rendered", PNG))
    expected = apply_color_lut(entry.dataset.pixel_array, entry.dataset) >> 8  # 16-bit entries
    np.testing.assert_array_equal(got, expected)


def test_ybr_jpeg_is_rendered_in_rgb(wado: Wado) -> None:
    entry = wado.stored["jpeg_baseline"]
    got = np.asarray(image(wado, f"{entry.url}/frames/3/rendered", PNG), dtype=np.int16)
    np.testing.assert_array_equal(got, pixel_array(entry.dataset, index=2))


def test_instance_rendered_is_its_first_frame(wado: Wado) -> None:
    entry = wado.stored["mr_multiframe"]
    first = grey(wado, f"{entry.url}/rendered")
    assert np.array_equal(first, grey(wado, f"{entry.url}/frames/1/rendered"))
    assert not np.array_equal(first, grey(wado, f"{entry.url}/frames/5/rendered"))


@pytest.mark.parametrize(
    ("key", "viewport", "size"),
    [
        ("ct_small", "64,32", (32, 32)),  # 128x128 fits 64x32 as 32x32
        ("jpeg_nm", "100,100", (25, 100)),  # 256 wide, 1024 high
        ("ct_1", "1024,1024", (1024, 1024)),  # scaled up to fit
        ("ct_small", "50,50,0,0,64,32", (50, 25)),  # a 64x32 region
        ("ct_small", "200,200,100,,,", (44, 200)),  # region x=100..128, full height
    ],
)
def test_viewport_fits_keeping_aspect(
    wado: Wado, key: str, viewport: str, size: tuple[int, int]
) -> None:
    url = f"{wado.stored[key].url}/rendered?viewport={viewport}"
    assert image(wado, url).size == size


def test_viewport_region_with_negative_width_is_mirrored(wado: Wado) -> None:
    url = f"{wado.stored['ct_small'].url}/rendered?window=40,400&viewport=64,64"
    plain = grey(wado, f"{url},0,0,64,64")
    mirrored = grey(wado, f"{url},64,0,-64,64")
    np.testing.assert_array_equal(mirrored, np.fliplr(plain))


def test_quality_changes_jpeg_size(wado: Wado) -> None:
    url = f"{wado.stored['ct_1'].url}/rendered?quality="
    low, high = (len(wado.get(f"{url}{q}").get_data()) for q in (10, 95))
    assert low < high


@pytest.mark.parametrize(
    ("key", "path", "size"),
    [
        ("ct_1", "thumbnail", (128, 128)),
        ("jpeg_nm", "thumbnail", (32, 128)),
        ("mr_multiframe", "frames/3/thumbnail", (128, 128)),
        ("ct_1", "thumbnail?viewport=64,64", (64, 64)),
    ],
)
def test_thumbnails_fit_128_pixels(wado: Wado, key: str, path: str, size: tuple[int, int]) -> None:
    assert image(wado, f"{wado.stored[key].url}/{path}").size == size


def test_series_and_study_thumbnails_show_a_middle_image(wado: Wado) -> None:
    s = wado.stored
    ct = s["ct_1"]
    series = wado.get(f"{ROOT}/studies/{ct.study}/series/{ct.series}/thumbnail").get_data()
    assert series == wado.get(f"{s['ct_2'].url}/thumbnail").get_data()
    study = wado.get(f"{ROOT}/studies/{ct.study}/thumbnail").get_data()  # series 1: the SEG
    assert study == wado.get(f"{s['seg_liver'].url}/thumbnail").get_data()
    assert image(wado, f"{ROOT}/studies/{ct.study}/thumbnail", PNG).size == (128, 128)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("window=abc,400", "window"),
        ("window=40", "window"),
        ("window=40,0", "window"),
        ("window=40,0.5,linear", "window"),
        ("window=40,400,cubic", "window"),
        ("viewport=0,10", "viewport"),
        ("viewport=a,b", "viewport"),
        ("viewport=10,10,1,1", "viewport"),
        ("viewport=10,10,1,1,0,5", "viewport"),
        ("viewport=10,10,500,500,10,10", "viewport"),
        ("quality=0", "quality"),
        ("quality=101", "quality"),
        ("quality=high", "quality"),
    ],
)
def test_bad_parameters_are_400_naming_them(wado: Wado, query: str, parameter: str) -> None:
    url = f"{wado.stored['ct_small'].url}/rendered?{query}"
    assert f"query parameter {parameter}" in error(wado.get(url), 400)


def test_rendered_errors(wado: Wado) -> None:
    s = wado.stored
    assert "image/jpeg or image/png" in error(
        wado.get(f"{s['ct_1'].url}/rendered", "image/gif"), 406
    )
    assert "no pixel data" in error(wado.get(f"{s['sr'].url}/rendered"), 406)
    assert "no pixel data" in error(wado.get(f"{s['sr'].url}/thumbnail"), 406)
    assert "no decoder" in error(wado.get(f"{s['video'].url}/rendered"), 406)
    assert "no image instance" in error(wado.get(f"{ROOT}/studies/{s['sr'].study}/thumbnail"), 404)
    assert "frame 11 does not exist" in error(
        wado.get(f"{s['mr_multiframe'].url}/frames/11/rendered"), 404
    )
    assert "one frame number" in error(
        wado.get(f"{s['mr_multiframe'].url}/frames/1,2/rendered"), 400
    )
    assert "nothing is stored" in error(
        wado.get(f"{ROOT}/studies/1.2/series/1.2/instances/1.2/rendered"), 404
    )


@pytest.mark.parametrize("key", ["ct_small", "ct_1", "mr_big_endian", "ct_small_monochrome1"])
def test_plain_monochrome_shortcut_renders_as_the_general_path(wado: Wado, key: str) -> None:
    """Frames whose header comes from the indexed JSON look exactly as when pydicom reads it."""
    entry = wado.stored[key]
    with wado.app.test_request_context(headers=AUTH):  # as the admin, who reads everything
        item, metadata_json = find_for_render(entry.study, entry.series, entry.sop)
        storage = wado.app.extensions[ARCHIVE_EXTENSION].storage
        options = parse_options({}, PNG)
        with storage.open(item.storage_key) as fp:
            assert plain_monochrome_frame(fp, item.pixels, 0, metadata_json) is not None
            shortcut = render_frame(fp, item.pixels, 0, options, metadata_json)
            general = render_frame(fp, item.pixels, 0, options)
    assert shortcut == general
