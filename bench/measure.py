"""Measuring: one task's images through its (codec, quality) pairs, to result rows.

Runs inside worker processes (local or Dask): only a `Task` (paths and
names) goes in and plain row dicts come out. Each original is read and
prepared for the metrics once (`bench.metrics.prepare`) and shared by all
its pairs; decoded images stay here, classified in one network pass per
image size; only the gallery images' small PNG crops (`bench.crops`) travel
in their rows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import crops, metrics, plugins
from bench.crops import CROP, CROP_ORIGINAL
from bench.codecs import Codec, get_codec
from bench.datasets import ImageRecord
from bench.images import DEFAULT_MAX_PIXELS, ImageReadError, read_rgb
from bench.tasks import classifier
from bench.workers import heartbeat

Predict = Callable[[list[np.ndarray]], list[str]]


@dataclasses.dataclass(frozen=True)
class Task:
    """Images and the (codec, quality) pairs still to measure on each of them.

    Classical codecs get one task per image with all its pairs (the image is
    read once); learned codecs get one task per (codec, quality) and up to
    `LEARNED_BATCH` images, which go through the network together.
    """

    dataset: str
    records: tuple[ImageRecord, ...]
    pairs: tuple[tuple[str, float], ...]
    classifier: str | None = None  # the committed classifier (by name) run on originals and decoded images
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are error rows, refused from their header
    plugins: tuple[str, ...] = ()  # loaded again where the task runs (Dask workers do not fork from the sweep)
    weights_dir: Path | None = None  # learned codecs: checkpoints here replace committed ones of equal quality
    device: str = "cpu"  # learned codecs: where their transforms run (`bench.codecs.learned`)
    gallery: frozenset[str] = frozenset()  # ids of the task's images whose crops the report shows (`bench.crops`)


LEARNED_BATCH = 16


@dataclasses.dataclass
class Measured:
    """One encode/decode of one image: its row values, and the decoded image (None after an error)."""

    values: dict
    decoded: np.ndarray | None = None


def _stream(data: object) -> bytes:
    """`data` if it is a byte string: the len() of a str or a list would be stored as a rate."""
    if not isinstance(data, bytes):
        raise TypeError(f"returned {type(data).__name__}, not bytes")
    return data


def measure(codec: Codec, reference: metrics.Reference, quality: float) -> Measured:
    """Encode and decode the original once; rate, distortion and timing of the result."""
    stage = "encode"
    try:
        start = time.perf_counter()
        data = _stream(codec.encode(reference.image, quality))
        encoded = time.perf_counter()
        stage = "decode"
        decoded = codec.decode(data)
        return _measured(codec, reference, data, decoded, encoded - start, time.perf_counter() - encoded)
    except Exception as exc:  # any codec or metric failure becomes an error row, the sweep goes on
        return Measured({"error": f"{stage}: {type(exc).__name__}: {exc}"})


def measure_batch(codec: Codec, references: list[metrics.Reference], quality: float) -> list[Measured]:
    """`measure` for equal-size images through the codec's batch path; times are per-image shares.

    Falls back to one image at a time when the batch fails, so one bad image
    cannot cost the others their rows.
    """
    try:
        start = time.perf_counter()
        streams = [_stream(data) for data in codec.encode_batch([r.image for r in references], quality)]
        encoded = time.perf_counter()
        decoded = codec.decode_batch(streams)
        encode_s, decode_s = (encoded - start) / len(references), (time.perf_counter() - encoded) / len(references)
        return [_measured(codec, r, s, d, encode_s, decode_s) for r, s, d in zip(references, streams, decoded)]
    except Exception:
        return [measure(codec, reference, quality) for reference in references]


def _measured(codec, reference: metrics.Reference, data: bytes, decoded, encode_s: float, decode_s: float) -> Measured:
    stage = "decode"
    try:
        if decoded.shape != reference.shape or decoded.dtype != np.uint8:
            raise ValueError(f"decoded to {decoded.shape} {decoded.dtype}, expected {reference.shape} uint8")
        stage = "header_size"
        header = codec.header_size(data)
        if not 0 <= header <= len(data):
            raise ValueError(f"{header} bytes of a {len(data)}-byte stream")
        stage = "metrics"
        values = {
            "bytes": len(data),
            "header_bytes": header,
            "bpp": metrics.bpp(len(data), reference.shape),
            "bpp_payload": metrics.bpp(len(data) - header, reference.shape),
            **metrics.measure(reference, decoded),
            "encode_s": encode_s,
            "decode_s": decode_s,
        }
        return Measured(values, decoded)
    except Exception as exc:  # any codec or metric failure becomes an error row, the sweep goes on
        return Measured({"error": f"{stage}: {type(exc).__name__}: {exc}"})


def base_row(task: Task, record: ImageRecord) -> dict:
    return {"dataset": task.dataset, "image": record.id, "label": record.label, "split": record.split,
            "seen": int(record.seen), "image_sha256": record.sha256}


def evaluate(task: Task) -> list[dict]:
    """Rows for every image × pair of `task` (error rows when an image cannot be read)."""
    plugins.load(task.plugins)  # once per process: a no-op where the sweep forked this worker
    rows, by_size = [], {}
    for record in task.records:
        base = base_row(task, record)
        try:
            image, note = read_rgb(record.path, max_pixels=task.max_pixels)
        except ImageReadError as exc:
            rows += [{**base, "codec": c, "quality": q, "error": f"read: {exc}"} for c, q in task.pairs]
            continue
        base.update(height=image.shape[0], width=image.shape[1], note=note or None)
        by_size.setdefault(image.shape, []).append((base, metrics.prepare(image)))
    model = classifier.load(task.classifier) if task.classifier and by_size else None
    if model is not None:
        for group in by_size.values():
            labels = model.predict_remembered([base["image"] for base, _ in group], [r.image for _, r in group])
            for (base, _), label in zip(group, labels):
                base.update(predicted_original=label, classifier=model.identity)
    decoded_rows, cropped = [], set()
    heartbeat()  # reading, preparing and classifying the originals (a fresh worker imports torch) is not a pair
    for codec_name, quality in task.pairs:
        codec = get_codec(codec_name, weights_dir=task.weights_dir, device=task.device)
        for group in by_size.values():
            references = [reference for _, reference in group]
            if codec.encode_batch is not None and len(references) > 1:
                measured = measure_batch(codec, references, quality)
            else:
                measured = [measure(codec, reference, quality) for reference in references]
            for (base, reference), result in zip(group, measured):
                row = {**base, "codec": codec_name, "quality": quality, "codec_version": codec.version_at(quality), **result.values}
                rows.append(row)
                if result.decoded is not None:
                    decoded_rows.append((row, result.decoded))
                    if base["image"] in task.gallery:
                        row[CROP] = crops.crop_png(result.decoded)
                        if base["image"] not in cropped:  # the original's crop once per image
                            row[CROP_ORIGINAL] = crops.crop_png(reference.image)
                            cropped.add(base["image"])
            heartbeat()  # the time limit is per encode/decode pair (per batch for learned codecs)
    if model is not None:
        _classify(decoded_rows, model.predict)  # within the last pair's limit: one network pass per image size
    return rows


def _classify(decoded_rows: list[tuple[dict, np.ndarray]], predict: Predict) -> None:
    """Fill each row's ``predicted`` from its decoded image, one network pass per image size."""
    by_shape: dict[tuple, list[tuple[dict, np.ndarray]]] = {}
    for row, decoded in decoded_rows:
        by_shape.setdefault(decoded.shape, []).append((row, decoded))
    for group in by_shape.values():
        try:
            labels = predict([decoded for _, decoded in group])
        except Exception as exc:  # the measurements stand; only the prediction is missing
            labels = [None] * len(group)
            for row, _ in group:
                row["note"] = "; ".join(filter(None, [row.get("note"), f"classify: {type(exc).__name__}: {exc}"]))
        for (row, _), label in zip(group, labels):
            row["predicted"] = label
