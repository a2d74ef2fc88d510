"""What a person sees, measured in the browser: the theme, text contrast, and screenshots.

- :func:`use_theme` switches JupyterLab's theme with the ``apputils:change-theme`` command (the app is
  exposed to the page by the ``lab`` fixture) and waits until the theme's colours are applied.
- :func:`low_contrast_text` lists every visible text under an element whose WCAG contrast ratio,
  from its computed colour and its effective background (the element's and its ancestors'
  backgrounds composited), is below 4.5.
- :func:`check_screenshot` compares an element's screenshot with a committed reference in
  ``tests/browser/reference/``: both downscaled, a pixel differs when a channel differs by more
  than ``TOLERANCE``, and at most ``MAX_DIFFERING`` of the pixels may differ, so font
  anti-aliasing does not make it flaky while a missing bar, a wrong background or a clipped widget
  does fail. ``BATCHNB_UPDATE_SCREENSHOTS=1`` rewrites the references (review them before committing).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from PIL import Image, ImageChops
from playwright.sync_api import Locator, Page

REFERENCE = Path(__file__).resolve().parent / "reference"
LIGHT, DARK = "JupyterLab Light", "JupyterLab Dark"
TOLERANCE = 48  # of 255, per channel, after downscaling
MAX_DIFFERING = 0.03
SCALE = 2  # downscale factor


def updating() -> bool:
    """Whether this run rewrites the committed reference images."""
    return bool(os.environ.get("BATCHNB_UPDATE_SCREENSHOTS"))


def use_theme(page: Page, theme: str) -> None:
    """Switch JupyterLab to ``theme`` and wait until its colours are in effect and the splash
    screen JupyterLab shows while it loads a theme is gone."""
    background = {LIGHT: "white", DARK: "#111"}[theme]
    page.evaluate(
        "theme => window.jupyterapp.commands.execute('apputils:change-theme', {theme})",
        theme,
    )
    page.wait_for_function(
        """([theme, background]) => document.body.dataset.jpThemeName === theme &&
            getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim() === background &&
            document.getElementById('jupyterlab-splash') === null""",
        arg=[theme, background],
        timeout=30_000,
    )


# For each visible, enabled element with text of its own: the text, its colour (fill for SVG text)
# and the background colours from the element up to the first opaque one.
_TEXT_COLOURS_JS = """
root => {
  const out = [];
  const all = [root, ...root.querySelectorAll('*')];
  for (const el of all) {
    const own = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
    if (!own || el.closest('button:disabled, [aria-disabled="true"], style, script')) continue;
    const style = getComputedStyle(el);
    if (style.visibility !== 'visible' || el.getClientRects().length === 0) continue;
    const colour = el instanceof SVGElement ? style.fill : style.color;
    const backgrounds = [];
    for (let node = el; node; node = node.parentElement) {
      const bg = getComputedStyle(node).backgroundColor;
      backgrounds.push(bg);
      if (/^rgb\\(/.test(bg)) break;
    }
    out.push({text: own.slice(0, 60), colour, backgrounds});
  }
  return out;
}
"""


def parse_colour(css: str) -> tuple[float, float, float, float]:
    """``rgb()``, ``rgba()`` or ``color(srgb …)`` (what Chromium computes) as 0-255 channels and alpha."""
    css = css.strip()
    m = re.fullmatch(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)", css)
    if m:
        r, g, b, a = m.groups()
        return float(r), float(g), float(b), float(a) if a is not None else 1.0
    m = re.fullmatch(r"color\(srgb ([\d.e-]+) ([\d.e-]+) ([\d.e-]+)(?: / ([\d.]+))?\)", css)
    if m:
        r, g, b, a = m.groups()
        return float(r) * 255, float(g) * 255, float(b) * 255, float(a) if a is not None else 1.0
    raise ValueError(f"unexpected computed colour {css!r}")


def _over(top: tuple[float, float, float, float], below: tuple[float, float, float]) -> tuple[float, float, float]:
    r, g, b, a = top
    return (r * a + below[0] * (1 - a), g * a + below[1] * (1 - a), b * a + below[2] * (1 - a))


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(colour: str, backgrounds: list[str]) -> float:
    """WCAG 2 contrast of a text colour over its backgrounds (innermost first; white below the last)."""
    below: tuple[float, float, float] = (255.0, 255.0, 255.0)
    for bg in reversed(backgrounds):
        below = _over(parse_colour(bg), below)
    text = _over(parse_colour(colour), below)
    lighter, darker = sorted((_luminance(text), _luminance(below)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def low_contrast_text(element: Locator, minimum: float = 4.5) -> list[str]:
    """The texts under ``element`` with a contrast ratio below ``minimum``, each with its ratio."""
    items = element.evaluate(_TEXT_COLOURS_JS)
    assert items, "no visible text to check"
    return [
        f"{item['text']!r}: {ratio:.2f} ({item['colour']} on {item['backgrounds']})"
        for item in items
        if (ratio := contrast_ratio(item["colour"], item["backgrounds"])) < minimum
    ]


def _small(image: Image.Image) -> Image.Image:
    rgb = image.convert("RGB")
    return rgb.resize((max(1, rgb.width // SCALE), max(1, rgb.height // SCALE)), Image.Resampling.BOX)


def check_screenshot(element: Locator, name: str, out_dir: Path, down_to: Locator | None = None) -> Path:
    """Screenshot ``element`` (only down to the bottom of ``down_to``, a part of it, when what lies
    below varies from run to run, such as temporary paths that may wrap) and compare it with
    ``reference/<name>.png``; writes the reference when updating or when it is missing.

    Returns:
        The path of this run's screenshot.
    """
    box = element.bounding_box()
    assert box is not None, f"{element} is not rendered"
    if down_to is not None:
        end = down_to.bounding_box()
        assert end is not None, f"{down_to} is not rendered"
        box["height"] = end["y"] + end["height"] - box["y"]
    png = element.page.screenshot(clip=box, animations="disabled", caret="hide")
    actual = out_dir / f"{name}.png"
    actual.write_bytes(png)
    reference = REFERENCE / f"{name}.png"
    if updating() or not reference.exists():
        assert updating() or not os.environ.get("CI"), f"no {reference}: run with BATCHNB_UPDATE_SCREENSHOTS=1"
        REFERENCE.mkdir(exist_ok=True)
        reference.write_bytes(png)
        return actual
    got, want = Image.open(io.BytesIO(png)), Image.open(reference)
    # A line's height may differ by a pixel or two between font versions; more is a different layout.
    assert abs(got.width - want.width) <= 4 and abs(got.height - want.height) <= 4, (
        f"{name}: {got.size} against the reference's {want.size} (see {actual})"
    )
    box = (0, 0, min(got.width, want.width), min(got.height, want.height))
    bands = ImageChops.difference(_small(got.crop(box)), _small(want.crop(box))).split()
    largest = ImageChops.lighter(ImageChops.lighter(bands[0], bands[1]), bands[2])  # per pixel, the worst channel
    diff = largest.point(lambda v: 255 if v > TOLERANCE else 0)
    differing = diff.histogram()[255] / (diff.width * diff.height)
    if differing > MAX_DIFFERING:
        diff.save(out_dir / f"{name}-diff.png")
    assert differing <= MAX_DIFFERING, (
        f"{name}: {differing:.1%} of the pixels differ from {reference} (allowed {MAX_DIFFERING:.0%}); "
        f"this run: {actual}, differences: {out_dir / (name + '-diff.png')}. "
        "If the change is intended, rerun with BATCHNB_UPDATE_SCREENSHOTS=1 and commit the new reference."
    )
    return actual
