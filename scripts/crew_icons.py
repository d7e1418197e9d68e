"""Draws the crew page's app icons (no external assets): a white ring around a red dot on
the page's dark blue, full bleed so that launchers may mask it to any shape.

    .venv/bin/python scripts/crew_icons.py   # writes api/static/icon-{192,512}.png, icon.svg
"""

import math
import struct
import zlib
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "api" / "static"
BACKGROUND = (0x0F, 0x17, 0x2A)
RING = (0xFF, 0xFF, 0xFF)
DOT = (0xDC, 0x26, 0x26)
# In units of the icon's size, centred: inside the maskable safe zone (radius 0.4).
RING_OUTER, RING_INNER, DOT_RADIUS = 0.34, 0.26, 0.15
SAMPLES = 4


def _colour(x: float, y: float) -> tuple[int, int, int]:
    r = math.hypot(x - 0.5, y - 0.5)
    if r <= DOT_RADIUS:
        return DOT
    if RING_INNER <= r <= RING_OUTER:
        return RING
    return BACKGROUND


def png(size: int) -> bytes:
    rows = bytearray()
    step = 1 / (size * SAMPLES)
    for py in range(size):
        rows.append(0)  # filter: none
        for px in range(size):
            acc = [0, 0, 0]
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    c = _colour((px * SAMPLES + sx + 0.5) * step, (py * SAMPLES + sy + 0.5) * step)
                    acc = [a + b for a, b in zip(acc, c, strict=True)]
            rows.extend(round(a / SAMPLES**2) for a in acc)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def svg() -> str:
    hexed = ["#{:02x}{:02x}{:02x}".format(*c) for c in (BACKGROUND, RING, DOT)]
    mid, width = (RING_OUTER + RING_INNER) / 2 * 100, (RING_OUTER - RING_INNER) * 100
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
        f'<rect width="100" height="100" fill="{hexed[0]}"/>'
        f'<circle cx="50" cy="50" r="{mid:g}" fill="none" stroke="{hexed[1]}" '
        f'stroke-width="{width:g}"/>'
        f'<circle cx="50" cy="50" r="{DOT_RADIUS * 100:g}" fill="{hexed[2]}"/></svg>\n'
    )


def main() -> None:
    for size in (192, 512):
        (STATIC / f"icon-{size}.png").write_bytes(png(size))
    (STATIC / "icon.svg").write_text(svg())


if __name__ == "__main__":
    main()
