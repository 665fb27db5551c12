"""The `bpg` codec uses bpgenc/bpgdec when they are on PATH.

No bpgenc exists on package registries, so these tests put stand-ins on PATH:
they write and read a genuine BPG header (magic, format byte, ue7 sizes,
hevc_header_length) around raw pixels instead of HEVC data, which exercises
the command lines, the file round trip and the header parsing.
"""

import stat
import sys
import textwrap

import numpy as np
import pytest

from bench.codecs import bpg

FAKE_BPGENC = """
import sys
from PIL import Image
import numpy as np

def ue7(n):
    out = [n & 0x7F]
    while n >> 7:
        n >>= 7
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))

if sys.argv[1] == "-h":
    print("BPG Image Encoder version 0.9.8 (stand-in)")
    sys.exit(0)
args = sys.argv[1:]
assert args[args.index("-f") + 1] == "444"
quality = int(args[args.index("-q") + 1])
pixels = np.asarray(Image.open(args[-1]).convert("RGB"))
h, w = pixels.shape[:2]
payload = pixels.tobytes()
hevc_header = bytes([quality, 0xAA, 0xBB])
with open(args[args.index("-o") + 1], "wb") as out:
    out.write(b"BPG\\xfb" + bytes([3 << 5, 0]) + ue7(w) + ue7(h) + ue7(len(payload)) + ue7(len(hevc_header)) + hevc_header + payload)
"""

FAKE_BPGDEC = """
import sys
from PIL import Image
import numpy as np

def ue7(data, pos):
    value = 0
    while True:
        value = (value << 7) | (data[pos] & 0x7F)
        pos += 1
        if not data[pos - 1] & 0x80:
            return value, pos

args = sys.argv[1:]
data = open(args[-1], "rb").read()
w, pos = ue7(data, 6)
h, pos = ue7(data, pos)
_, pos = ue7(data, pos)
n, pos = ue7(data, pos)
pixels = np.frombuffer(data[pos + n:], np.uint8).reshape(h, w, 3)
Image.fromarray(pixels).save(args[args.index("-o") + 1])
"""


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    for name, body in (("bpgenc", FAKE_BPGENC), ("bpgdec", FAKE_BPGDEC)):
        path = tmp_path / name
        path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    bpg.bpg_tools.cache_clear()
    yield tmp_path
    bpg.bpg_tools.cache_clear()


def test_bpgenc_on_path_is_used(fake_tools):
    assert bpg.bpg_tools() == (str(fake_tools / "bpgenc"), str(fake_tools / "bpgdec"))
    assert "BPG Image Encoder version 0.9.8" in bpg.library_version()
    image = np.random.default_rng(0).integers(0, 256, (9, 300, 3), dtype=np.uint8)
    data = bpg.encode(image, 28)
    assert data[:4] == bpg.BPG_MAGIC
    assert np.array_equal(bpg.decode(data), image)
    # magic 4 + format 2 + ue7 width (2 bytes for 300) + height 1 + length 2 + hevc_header_length 1 + header 3
    assert bpg.header_size(data) == 4 + 2 + 2 + 1 + 2 + 1 + 3


def test_in_process_stream_without_tools(monkeypatch):
    monkeypatch.setattr(bpg, "bpg_tools", lambda: None)
    assert bpg.library_version().startswith("PyAV")
    image = np.zeros((16, 16, 3), np.uint8)
    assert bpg.encode(image, 30)[:4] != bpg.BPG_MAGIC
