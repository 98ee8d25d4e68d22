"""Checks that a saved plot is a real picture: a PNG with pixel variance above that of an empty set of axes, and
drawn data (coloured pixels), since axes, ticks and labels alone are black and grey."""

from __future__ import annotations

from pathlib import Path

MIN_VARIANCE = 0.01
"""An empty 6x4 in. set of axes saved at 100 dpi has a pixel variance of about 0.0074; the plots here 0.01-0.04."""
MIN_COLOURED = 0.002
"""Share of pixels whose channels differ by more than 0.2 (not black, white or grey): the plotted data."""


def assert_real_png(path: str | Path) -> None:
    from matplotlib.image import imread

    path = Path(path)
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    pixels = imread(path)[..., :3]
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 300, f"{path} is only {pixels.shape[:2]} pixels"
    assert pixels.var() > MIN_VARIANCE, f"{path} is blank (pixel variance {pixels.var():.4f})"
    coloured = float((pixels.max(-1) - pixels.min(-1) > 0.2).mean())
    assert coloured > MIN_COLOURED, f"{path} has axes but no plotted data ({coloured:.4f} of pixels coloured)"


def assert_labelled(axes) -> None:
    """Both axes of a matplotlib Axes carry a label."""
    assert axes.get_xlabel().strip() and axes.get_ylabel().strip(), "an axis has no label"
