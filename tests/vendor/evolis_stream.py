#!/usr/bin/env python3
"""Writes the job Evolis's own library (evolis-sdk / libevolis) produces for a card.

Used by tests/evolis_vendor.rs to compare the driver's stream with the vendor's. The images come
in as raw files written by the test:

  K panel:      width*height bytes, one per pixel, 1 = ink, row-major.
  Colour side:  width*height*3 bytes, (Y, M, C) ink amounts 0-255 per pixel, row-major.

With its colour management off (GColorProfileMode=NOPROFILE, GSmoothing=NOSMOOTH) the library
writes Y = 255 - blue, M = 255 - green, C = 255 - red of an RGB image, so the RGB image made here
is (255 - C, 255 - M, 255 - Y).

The black panel goes to the library as a 1-bit image (set_black); it then sends exactly that
bitmap on the K panel, and its Pida ink summary counts only the Y/M/C planes. One quirk of
libevolis 9.4.1: on colour ribbons it rescales a portrait (648 x 1016) set_black bitmap as if it
were landscape (single pixels vanish or double), while it maps K / KO ribbons, landscape bitmaps
and portrait colour images exactly. So on a colour ribbon a portrait K bitmap is handed over as
the landscape bitmap that lands on the same printer pixels: portrait (x, y) goes to printer line
1015 - y, position 647 - x; landscape (X, Y) to line X, position 647 - Y; so X = 1015 - y, Y = x.
(Putting K as pure black pixels into the RGB image instead changes the Y/M/C panels around them
and the Pida values.)

Usage: evolis_stream.py --ribbon KO|KBLACK|YMCKO|YMCKOK --width W --height H --out FILE
         [--front-k F] [--front-ymc F] [--front-overlay] [--back-k F] [--back-ymc F] [--back-overlay]
Exit status 3 when the library cannot be imported.
"""

import argparse
import os
import struct
import sys
import tempfile

try:
    import evolis
except Exception as e:  # noqa: BLE001 - any import failure means the same to the caller
    sys.stderr.write(f"evolis-sdk cannot be imported ({e}): run tools/test, which installs evolis-sdk\n")
    sys.exit(3)


def bmp_rgb(width, height, ymc):
    """24-bit bottom-up BMP from interleaved Y, M, C ink bytes."""
    row_len = (width * 3 + 3) & ~3
    rows = []
    for y in range(height - 1, -1, -1):
        row = bytearray(row_len)
        src = ymc[y * width * 3:(y + 1) * width * 3]
        # BMP pixel order is B, G, R: B = 255 - Y, G = 255 - M, R = 255 - C.
        row[0:width * 3] = bytes(255 - v for v in src)
        rows.append(bytes(row))
    data = b"".join(rows)
    header = b"BM" + struct.pack("<IHHI", 54 + len(data), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(data), 11811, 11811, 0, 0)
    return header + info + data


def bmp_mono(width, height, k):
    """1-bit bottom-up BMP, palette 0 = black, 1 = white, from one byte per pixel (1 = ink)."""
    row_len = ((width + 31) // 32) * 4
    rows = []
    for y in range(height - 1, -1, -1):
        row = bytearray(row_len)
        for x in range(width):
            if not k[y * width + x]:
                row[x // 8] |= 0x80 >> (x % 8)
        rows.append(bytes(row))
    data = b"".join(rows)
    offset = 14 + 40 + 8
    header = b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 1, 0, len(data), 11811, 11811, 2, 2)
    palette = bytes((0, 0, 0, 0, 255, 255, 255, 0))
    return header + info + palette + data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ribbon", required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--out", required=True)
    for side in ("front", "back"):
        ap.add_argument(f"--{side}-k")
        ap.add_argument(f"--{side}-ymc")
        ap.add_argument(f"--{side}-overlay", action="store_true")
    args = ap.parse_args()
    w, h = args.width, args.height

    co = evolis.Connection("model://Evolis Primacy 2")
    session = evolis.PrintSession(co, getattr(evolis.RibbonType, args.ribbon))
    settings = {
        evolis.SettingKey.GColorProfileMode: "NOPROFILE",
        evolis.SettingKey.GSmoothing: "NOSMOOTH",
        evolis.SettingKey.FOverlayManagement: "FULLVARNISH" if args.front_overlay else "NOVARNISH",
        evolis.SettingKey.BOverlayManagement: "FULLVARNISH" if args.back_overlay else "NOVARNISH",
    }
    for key, value in settings.items():
        if not session.set_setting(key, value):
            sys.exit(f"evolis-sdk refused setting {key.name}={value}")

    colour_ribbon = args.ribbon.startswith("YMC")
    with tempfile.TemporaryDirectory() as tmp:
        for side, face in (("front", evolis.CardFace.FRONT), ("back", evolis.CardFace.BACK)):
            ymc_path = getattr(args, f"{side}_ymc")
            k_path = getattr(args, f"{side}_k")
            if ymc_path:
                ymc = open(ymc_path, "rb").read()
                assert len(ymc) == w * h * 3, f"{ymc_path}: {len(ymc)} bytes, {w * h * 3} expected"
                path = os.path.join(tmp, f"{side}-colour.bmp")
                open(path, "wb").write(bmp_rgb(w, h, ymc))
                if not session.set_image(face, path):
                    sys.exit(f"set_image {side}: {session.get_last_error()}")
            if k_path:
                k = open(k_path, "rb").read()
                assert len(k) == w * h, f"{k_path}: {len(k)} bytes, {w * h} expected"
                kw, kh = w, h
                if colour_ribbon and (w, h) == (648, 1016):
                    turned = bytearray(w * h)
                    for y in range(h):
                        for x in range(w):
                            if k[y * w + x]:
                                turned[x * h + (h - 1 - y)] = 1
                    k, kw, kh = bytes(turned), h, w
                path = os.path.join(tmp, f"{side}-black.bmp")
                open(path, "wb").write(bmp_mono(kw, kh, k))
                if not session.set_black(face, path):
                    sys.exit(f"set_black {side}: {session.get_last_error()}")
        rc = session.print_to_file(args.out)
        if rc != evolis.ReturnCode.OK:
            sys.exit(f"print_to_file: {rc}")


if __name__ == "__main__":
    main()
