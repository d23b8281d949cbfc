"""Render library pictures to PNG with Pillow (supersampled for smooth edges), deterministically."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .library import BY_ID, LIBRARY, THEMES, ImageSpec

SUPERSAMPLE = 4
LABEL_COLOUR = (38, 50, 56)


def _draw_shapes(spec: ImageSpec, side: int) -> Image.Image:
    """The pictogram alone on a transparent square of ``side`` pixels (shapes clipped to it)."""
    big = side * SUPERSAMPLE
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    k = big / 100.0

    def box(b):
        x0, y0, x1, y1 = (v * k for v in b)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def width(w: float) -> int:
        return max(1, round(w * k))

    for shape in spec.shapes:
        kind = shape[0]
        if kind == "ellipse":
            _, b, fill, outline, w = shape
            draw.ellipse(box(b), fill=fill, outline=outline, width=width(w) if outline else 0)
        elif kind == "rect":
            _, b, fill, outline, w = shape
            draw.rectangle(box(b), fill=fill, outline=outline, width=width(w) if outline else 0)
        elif kind == "rrect":
            _, b, fill, radius, outline, w = shape
            draw.rounded_rectangle(box(b), radius=radius * k, fill=fill, outline=outline, width=width(w) if outline else 0)
        elif kind == "poly":
            _, pts, fill, outline = shape
            draw.polygon([(x * k, y * k) for x, y in pts], fill=fill, outline=outline, width=width(1.5) if outline else 0)
        elif kind == "line":
            _, pts, colour, w = shape
            draw.line([(x * k, y * k) for x, y in pts], fill=colour, width=width(w), joint="curve")
        elif kind == "arc":
            _, b, start, end, colour, w = shape
            draw.arc(box(b), start, end, fill=colour, width=width(w))
        elif kind == "pie":
            _, b, start, end, fill = shape
            draw.pieslice(box(b), start, end, fill=fill)
        elif kind == "chord":
            _, b, start, end, fill = shape
            draw.chord(box(b), start, end, fill=fill)
        else:  # pragma: no cover - library data is fixed and tested
            raise ValueError(f"unknown shape {kind!r} in {spec.id}")
    return img.resize((side, side), Image.Resampling.LANCZOS)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's bundled font: no system font is needed, so every machine renders the same label.
    return ImageFont.load_default(size=size)


def render(spec: ImageSpec, size: int = 128) -> Image.Image:
    """A tile: theme-coloured rounded square, the pictogram, and its label underneath."""
    if not 48 <= size <= 1024:
        raise ValueError("size must be between 48 and 1024 pixels")
    tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    draw.rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 10, fill=THEMES[spec.theme][1],
                           outline=(176, 190, 197), width=max(1, size // 96))
    side = int(size * 0.70)
    pic = _draw_shapes(spec, side)
    tile.alpha_composite(pic, ((size - side) // 2, int(size * 0.04)))
    font = _font(max(9, size // 9))
    label = spec.label
    while draw.textlength(label, font=font) > size * 0.94 and len(label) > 3:
        label = label[:-2] + "…"
    draw.text((size / 2, size * 0.885), label, fill=LABEL_COLOUR, font=font, anchor="mm")
    return tile


@lru_cache(maxsize=512)
def render_png(image_id: str, size: int = 128) -> bytes:
    """PNG bytes of one library picture (cached: the library is fixed)."""
    try:
        spec = BY_ID[image_id]
    except KeyError:
        raise KeyError(f"no image {image_id!r} in the FlexPass library") from None
    buf = io.BytesIO()
    render(spec, size).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def render_sheet(image_ids: list[str], *, columns: int = 6, size: int = 128, gap: int = 8) -> bytes:
    """A grid of pictures in the given order as one PNG: what a login page shows."""
    if not image_ids:
        raise ValueError("no images")
    rows = -(-len(image_ids) // columns)
    sheet = Image.new("RGBA", (columns * (size + gap) + gap, rows * (size + gap) + gap), (255, 255, 255, 255))
    for i, image_id in enumerate(image_ids):
        tile = Image.open(io.BytesIO(render_png(image_id, size)))
        r, c = divmod(i, columns)
        sheet.alpha_composite(tile.convert("RGBA"), (gap + c * (size + gap), gap + r * (size + gap)))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def export_library(directory: Path, size: int = 128) -> list[Path]:
    """Write every picture as ``<id>.png`` into ``directory`` (for static serving or review)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in LIBRARY:
        path = directory / f"{spec.id}.png"
        path.write_bytes(render_png(spec.id, size))
        paths.append(path)
    return paths
