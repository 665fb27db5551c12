"""Codecs defined by external encoder and decoder commands, as CompressAI's bench wraps VTM, HM or bpgenc.

A TOML file (given with ``--codec-file FILE.toml``, or as a plug-in) defines
one or more codecs::

    [codecs.cjpeg]
    description = "libjpeg-turbo's cjpeg/djpeg command-line tools"
    encode = "cjpeg -quality {quality} -outfile {output} {input}"
    decode = "djpeg -outfile {output} {input}"
    input = "ppm"            # what the encoder reads: png or ppm
    output = "ppm"           # what the decoder writes: png or ppm
    stream_suffix = ".jpg"   # the encoded file's name ending
    qualities = [10, 30, 50, 70, 90]
    quality_range = [1, 100]
    quality_name = "cjpeg -quality (higher = better)"
    header_like = "jpeg"     # optional: a built-in codec whose header_size parses these streams

Each encode and decode runs the command once in a temporary folder: rate is
the encoded file's size; times include the tools' process start (they cannot
be measured apart from outside). A tool missing from PATH makes the codec
unavailable, with the command it looked for.
"""

from __future__ import annotations

import dataclasses
import functools
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import numpy as np

from bench.codecs.base import Codec, CodecUnavailable, Image
from bench.workers import die_at_parent_death, ending_strays

FORMATS = {"png": ".png", "ppm": ".ppm"}


@dataclasses.dataclass(frozen=True)
class Commands:
    name: str
    encode: str
    decode: str
    input: str
    output: str
    stream_suffix: str
    timeout: float = 600.0

    def run(self, template: str, **paths: object) -> None:
        argv = [part.format(**paths) for part in shlex.split(template)]
        with ending_strays():  # what the command leaves running in the background, past its time limit too
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout,
                                  preexec_fn=die_at_parent_death)  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"{self.name}: {argv[0]} exited with {done.returncode}: {done.stderr.strip()[:200]}")


def _encode(commands: Commands, image: Image, quality: float) -> bytes:
    from PIL import Image as PILImage

    with tempfile.TemporaryDirectory(prefix="bench-external-") as work:
        source, target = Path(work, "in" + FORMATS[commands.input]), Path(work, "out" + commands.stream_suffix)
        PILImage.fromarray(image).save(source)
        commands.run(commands.encode, input=source, output=target, quality=f"{quality:g}")
        return target.read_bytes()


def _decode(commands: Commands, data: bytes) -> Image:
    from PIL import Image as PILImage

    with tempfile.TemporaryDirectory(prefix="bench-external-") as work:
        source, target = Path(work, "in" + commands.stream_suffix), Path(work, "out" + FORMATS[commands.output])
        source.write_bytes(data)
        commands.run(commands.decode, input=source, output=target)
        with PILImage.open(target) as decoded:
            return np.asarray(decoded.convert("RGB"))


def _library_version(commands: Commands) -> str:
    tools = [shlex.split(template)[0] for template in (commands.encode, commands.decode)]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise CodecUnavailable(f"{commands.name}: {', '.join(missing)} not on PATH")
    return "external: " + ", ".join(dict.fromkeys(shutil.which(tool) for tool in tools))


def codecs_from_file(path: Path) -> list[Codec]:
    """The codecs a TOML file defines; ValueError naming the file and the problem when it is malformed."""
    from bench.codecs import get_codec

    try:
        document = tomllib.loads(Path(path).read_text())
        found = []
        for name, spec in document["codecs"].items():
            if spec["input"] not in FORMATS or spec["output"] not in FORMATS:
                raise ValueError(f"input and output must be one of {', '.join(FORMATS)}")
            commands = Commands(name, spec["encode"], spec["decode"], spec["input"], spec["output"],
                                spec.get("stream_suffix", ".bin"))  # fmt: skip
            header_like = spec.get("header_like")
            found.append(Codec(
                name=name, family="classical", description=spec.get("description", f"external: {spec['encode']}"),
                quality_name=spec.get("quality_name", "the tool's quality option"),
                qualities=tuple(float(q) for q in spec["qualities"]),
                encode=functools.partial(_encode, commands), decode=functools.partial(_decode, commands),
                header_size=get_codec(header_like).header_size if header_like else (lambda data: 0),
                rate_note=f"bytes: the file {spec['encode'].split()[0]} writes; header_bytes: "
                          + (f"as {header_like} parses it" if header_like else "0 (not parsed)"),
                library_version=functools.partial(_library_version, commands),
                install_hint=spec.get("install_hint", ""),
                quality_range=tuple(spec["quality_range"]) if "quality_range" in spec else None,
                integer_quality=bool(spec.get("integer_quality", True)),
            ))  # fmt: skip
        return found
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable codec file ({type(exc).__name__}: {exc})") from None
