"""Image analysis with Pillow, numpy and imagehash: format, size, dominant colours and a
perceptual hash. Pillow reads the header first: an image larger than its decompression-bomb
limit (`Image.MAX_IMAGE_PIXELS`, about 89 million pixels) is refused before it is decoded."""

from __future__ import annotations

import io
import math

import imagehash
from PIL import Image, UnidentifiedImageError

from chassis.errors import Unprocessable, UnsupportedMediaType
from contracts import ImageAnalysis

DOMINANT_COLORS = 5
# Palette entries closer than this (Euclidean, 0-255 RGB) are one colour: median cut splits a
# flat colour with JPEG noise into near twins.
SAME_COLOR = 32.0
# A colour on less than this share of the image (an edge's blend, a speck) is not dominant.
MINOR_SHARE = 0.02
# Colours are counted on a thumbnail: a few thousand pixels tell them as well as millions.
SAMPLE_SIDE = 96


def analyze_image(data: bytes) -> ImageAnalysis:
    """What `data` shows (CPU-bound: run it off the loop): 415 if it is not a decodable image,
    422 if it is a decompression bomb."""
    try:
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Unprocessable(f"the image is too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedMediaType("the file is not an image Pillow can decode") from exc
    with image:
        width, height = image.size
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and width * height > limit:
            raise Unprocessable(
                f"the image has {width * height} pixels, more than {limit}: a decompression bomb"
            )
        try:
            image.load()  # decodes the first frame; a truncated file fails here
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise UnsupportedMediaType(f"the image cannot be decoded: {exc}") from exc
        rgb = flattened(image)
        return ImageAnalysis(
            format=image.format or "unknown",
            width=width,
            height=height,
            mode=image.mode,
            dominant_colors=dominant_colors(rgb),
            phash=str(imagehash.phash(rgb)),
        )


def flattened(image: Image.Image) -> Image.Image:
    """The image in RGB, transparent parts over white."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def dominant_colors(rgb: Image.Image, count: int = DOMINANT_COLORS) -> list[str]:
    """The image's main colours as `#rrggbb`, the most frequent first (median cut)."""
    sample = rgb.copy()
    sample.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE))
    palette_image = sample.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
    palette = palette_image.getpalette() or []
    colors: list[tuple[int, tuple[int, ...]]] = []
    # A palette image counts (pixels, palette index).
    counted = [(pixels, int(index)) for pixels, index in palette_image.getcolors() or []]  # type: ignore[arg-type]
    for pixels, index in sorted(counted, reverse=True):
        rgb_value = tuple(palette[index * 3 : index * 3 + 3])
        twin = next(
            (i for i, (_, kept) in enumerate(colors) if distance(kept, rgb_value) < SAME_COLOR),
            None,
        )
        if twin is None:
            colors.append((pixels, rgb_value))
        else:
            colors[twin] = (colors[twin][0] + pixels, colors[twin][1])
    colors.sort(key=lambda counted: counted[0], reverse=True)
    total = sum(pixels for pixels, _ in colors)
    return [
        "#{:02x}{:02x}{:02x}".format(*rgb_value)
        for rank, (pixels, rgb_value) in enumerate(colors)
        if rank == 0 or pixels >= MINOR_SHARE * total
    ]


def distance(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Euclidean distance of two RGB colours."""
    return math.dist(a, b)
