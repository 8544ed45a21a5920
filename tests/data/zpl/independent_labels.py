"""Labels made by encoders other than ours, for tests/sim_zpl_examples.rs.

Prints a JSON list; each entry has the ZPL, where it came from, and what the simulator must
find (computed here from the encoders' own inputs, not by our code):
  - `zpl` (PyPI `zpl`, 0.1.13): text, a QR code, a box, and an image that the package turns into
    a ^GFA field with the ZPL compression scheme (its own run-length encoder).
  - `zplgrf` (PyPI, 1.6.0): the same image as a GRF, in its `:Z64:` (zlib + base64 + CRC) and
    its ASCII-compressed forms, taken from its ~DG line and placed in a ^GFA field.
"""
import io
import json

import PIL.Image
import PIL.ImageDraw
import PIL.ImageOps
import zpl
import zplgrf

# An 80 x 40 black-and-white image with shapes, runs and repeated rows.
img = PIL.Image.new("L", (80, 40), 255)
draw = PIL.ImageDraw.Draw(img)
draw.rectangle((4, 4, 35, 20), fill=0)
draw.line((0, 39, 79, 0), fill=0, width=3)
draw.rectangle((50, 10, 77, 12), fill=0)
# What a printer must put on the label: 1 bit per dot, 1 = black, rows padded to whole bytes.
expected = PIL.ImageOps.invert(img).convert("1").tobytes().hex().upper()

out = []

label = zpl.Label(30, 40, 8)  # 30 mm x 40 mm at 8 dots/mm
label.origin(2, 2)
label.write_text("MTU 0042", char_height=4, char_width=3)
label.endorigin()
label.origin(2, 8)
label.barcode("Q", "EG-LIC-0001", magnification=4, errorCorrection="M")
label.endorigin()
label.origin(20, 20)
label.draw_box(10, 5, thickness=1)
label.endorigin()
label.origin(20, 8)
label.write_graphic(img, 10)  # 10 mm wide = 80 dots: the image at 1:1
label.endorigin()
out.append({
    "source": "PyPI zpl 0.1.13: Label.write_text, barcode('Q'), draw_box, write_graphic",
    "zpl": label.dumpZPL(),
    "width": 320,
    "length": 240,
    "texts": ["MTU 0042"],
    "qr": ["EG-LIC-0001"],
    "graphic": {"x": 160, "y": 64, "rows": 40, "bytes_per_row": 10, "hex": expected},
})

png = io.BytesIO()
img.save(png, format="PNG")
grf = zplgrf.GRF.from_image(png.getvalue(), "MTU")
for compression, name in ((3, "Z64"), (2, "ASCII-compressed")):
    line = grf.to_zpl_line(compression=compression)  # ~DGR:MTU.GRF,total,bytes_per_row,data
    _, total, per_row, data = line.split(",", 3)
    zpl_text = "^XA^FO7,9^GFA,%s,%s,%s,%s^FS^XZ" % (total, total, per_row, data.replace("\n", ""))
    out.append({
        "source": "PyPI zplgrf 1.6.0: GRF.from_image(...).to_zpl_line(compression=%d) (%s), data placed in ^GFA"
        % (compression, name),
        "zpl": zpl_text,
        "graphic": {"x": 7, "y": 9, "rows": 40, "bytes_per_row": 10, "hex": grf.data.bytes.hex().upper()},
        "expected_matches_image": grf.data.bytes.hex().upper() == expected,
    })

print(json.dumps(out))
