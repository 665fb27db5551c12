"""Benchmark suite for image codecs on remote-sensing imagery."""

__version__ = "0.1.0"
