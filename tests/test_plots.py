from bench.codecs import CODECS
from bench.reports.plots import STYLES, codec_style


def test_every_built_in_codec_has_its_own_colour_and_marker_and_learned_ones_are_dashed():
    assert set(CODECS) <= set(STYLES)
    pairs = [(style["color"], style["marker"]) for style in map(codec_style, CODECS)]
    assert len(set(pairs)) == len(pairs) and len({color for color, _ in pairs}) == len(pairs)
    assert all((codec_style(name, codec.family)["linestyle"] == "--") == (codec.family == "learned")
               for name, codec in CODECS.items())  # fmt: skip
    assert codec_style("VTM (external)", "external")["linestyle"] == ":"


def test_a_plug_in_codec_gets_a_stable_style():
    assert codec_style("my-codec") == codec_style("my-codec") and codec_style("my-codec") != codec_style("other-codec")
