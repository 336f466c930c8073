"""Layout checks shared by the fit tests: every view fits its column, in any host theme.

The host tests (tests/sphinx/test_theme_fit.py, tests/mkdocs/test_mkdocs_fit.py) build one
site per theme with :data:`VIEWS_PAGE` and :data:`LINKS_PAGE`, open the views page at each
width in :data:`WIDTHS` and call :func:`fit_problems`; :func:`landing_error` follows a link
from another page to a named figure. Figures come from a tiny random BERT widened to 12
heads (:func:`wide_bert`), the head count of real base-sized models.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

WIDTHS = (320, 390, 1280, 1400)
VIEWS = ("head", "model", "neuron", "matrix", "summary")
TEXT = "The animal didn't cross the street because it was too tired."
# Enough text above the figures that a link to the last one must scroll the page.
FILLER = "\n\n".join(f"Paragraph {i}: text above the figures, so that a link to one has to scroll." for i in range(20))


def wide_bert(tiny_bert: Path, dest: Path) -> Path:
    """The tiny BERT with 12 heads of 4 dimensions (2 layers): its own random weights, its tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    if (dest / "model.safetensors").is_file():
        return dest
    config = BertConfig.from_pretrained(tiny_bert)
    config.num_attention_heads, config.hidden_size, config.intermediate_size = 12, 48, 96
    torch.manual_seed(0)
    shutil.copytree(tiny_bert, dest)
    BertModel(config).save_pretrained(dest)
    return dest


def views_page(fence: str) -> str:
    """A page with one named figure of each view (``fig-head`` ...) below a screenful of text.

    ``fence`` is "myst" (Sphinx's ```{attention} with :key: options) or "mkdocs".
    """
    figures = []
    for view in VIEWS:
        options = {"view": view, "name": f"fig-{view}", "caption": f"The {view} view."}
        if fence == "myst":
            head = "```{attention}\n" + "".join(f":{k}: {v}\n" for k, v in options.items())
        else:
            head = "```attention\n" + "".join(f"{k}: {v}\n" for k, v in options.items())
        figures.append(f"{head}\n{TEXT}\n```\n\n{FILLER[:300]}\n\n")
    return "# Views\n\n" + FILLER + "\n\n" + "".join(figures) + FILLER + "\n"


def links_page(target: str) -> str:
    """A page whose links go to each named figure of ``target`` (e.g. "views.md")."""
    return "# Links\n\n" + "\n".join(f"- [The {view} view]({target}#fig-{view})" for view in VIEWS) + "\n"


# Before the page's scripts: the height of each figure's frame when its figure starts (the
# height reserved for it, before anything draws), by figure id.
RESERVED_INIT = """
window.__attndocsReserved = {};
new MutationObserver(records => {
  for (const r of records) {
    const f = r.target;
    if (f.matches && f.matches('.attndocs-figure') && !(f.id in window.__attndocsReserved)) {
      window.__attndocsReserved[f.id] = f.querySelector('.attndocs-frame').getBoundingClientRect().height;
    }
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-attndocs-status']});
"""

# Every way a drawn figure can fail its column, as one message per problem.
_FIT_JS = r"""
(checkReserved) => {
  const out = [];
  const vw = document.documentElement.clientWidth;
  for (const f of document.querySelectorAll('.attndocs-figure[data-attndocs-view]')) {
    const view = f.getAttribute('data-attndocs-view');
    const say = (what) => out.push(view + ': ' + what);
    if (f.getAttribute('data-attndocs-status') !== 'ready') { say('did not draw: ' + f.textContent.slice(0, 200)); continue; }
    const frame = f.querySelector('.attndocs-frame');
    const fr = frame.getBoundingClientRect();
    const content = frame.clientWidth;
    const column = f.parentElement.getBoundingClientRect();
    if (f.getBoundingClientRect().right > Math.min(column.right, vw) + 1) say('the figure is wider than its column');
    // No number or label wraps onto a second line.
    for (const cell of f.querySelectorAll('.attndocs-scell, .attndocs-shead, .attndocs-nhead, .attndocs-nnum, .attndocs-grid-label')) {
      const tops = new Set();
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const range = document.createRange();
        range.selectNodeContents(node);
        for (const r of range.getClientRects()) if (r.width > 0) tops.add(Math.round(r.top + r.height / 2));
      }
      if (tops.size > 1) say('"' + cell.textContent + '" wraps onto ' + tops.size + ' lines');
    }
    // A box that hides columns (or rows) shows a cue at that edge.
    for (const box of f.querySelectorAll('*')) {
      const style = getComputedStyle(box);
      const scrolls = (o) => o === 'auto' || o === 'scroll';
      const hidesX = scrolls(style.overflowX) && box.scrollWidth > box.clientWidth + 1;
      const hidesY = scrolls(style.overflowY) && box.scrollHeight > box.clientHeight + 1;
      if (!hidesX && !hidesY) continue;
      const more = (box.getAttribute('data-attndocs-more') || '').split(' ');
      const mask = style.maskImage || style.webkitMaskImage || 'none';
      const cued = mask.includes('gradient') &&
        (!hidesX || more.includes('right') || more.includes('left')) && (!hidesY || more.includes('down') || more.includes('up'));
      if (!cued) say(box.className + ' hides part of its content (' + box.scrollWidth + '>' + box.clientWidth + ') with no cue');
    }
    // Every head of the model view in sight: inside the frame and the window.
    if (view === 'model') {
      const thumbs = f.querySelectorAll('.attndocs-thumb');
      let outside = 0;
      for (const t of thumbs) {
        const r = t.getBoundingClientRect();
        if (r.left < fr.left - 1 || r.right > fr.right + 1 || r.right > vw || r.width < 20) outside++;
      }
      if (!thumbs.length || outside) say(outside + ' of ' + thumbs.length + ' thumbnails are cut off or too small');
    }
    // The neuron view's last column header is whole and in view.
    if (view === 'neuron') {
      const heads = f.querySelectorAll('.attndocs-ngrid > .attndocs-nhead');
      const last = heads[heads.length - 1];
      const box = f.querySelector('.attndocs-neuron').getBoundingClientRect();
      const r = last ? last.getBoundingClientRect() : null;
      if (!r || r.right > box.right + 1 || r.right > fr.right + 1 || last.scrollWidth > last.clientWidth + 1) {
        say('the "' + (last ? last.textContent : '?') + '" header is cut off');
      }
    }
    // Drawings use the width they get.
    const drawing = view === 'head' ? f.querySelector('.attndocs-lines > canvas')
      : view === 'matrix' ? f.querySelector('.attndocs-matrix') : null;
    if (drawing) {
      const w = drawing.getBoundingClientRect().width;
      if (w < 0.9 * content) say('the drawing is ' + Math.round(w) + ' px wide in a frame of ' + content + ' px');
    }
    // The height reserved before drawing is the height drawn.
    const reserved = (window.__attndocsReserved || {})[f.id];
    if (!checkReserved) continue;
    if (reserved === undefined) say('no height was recorded before it drew');
    else if (Math.abs(fr.height - reserved) > Math.max(24, 0.12 * fr.height)) {
      say('its frame was ' + Math.round(reserved) + ' px high before it drew and ' + Math.round(fr.height) + ' px after');
    }
  }
  return out;
}
"""


def wait_drawn(page: Any) -> None:
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('.attndocs-figure[data-attndocs-view]'))
             .every(f => ['ready', 'error'].includes(f.getAttribute('data-attndocs-status')))""",
        timeout=20000,
    )
    # Scroll cues are marked in the frame after a change.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def fit_problems(page: Any, *, reserved: bool = True) -> list[str]:
    """Every way the page's drawn figures fail their column (empty when all fit).

    ``reserved``: also check each figure's height before it drew (the page was opened
    with :data:`RESERVED_INIT` as an init script).
    """
    wait_drawn(page)
    return page.evaluate(_FIT_JS, reserved)


# Where a link target belongs: below what the host fixes over the top of the window (its
# header) and the room it asks for above link targets (scroll-padding-top), else at 0.
_COVERED_JS = """
(figure) => {
  const box = figure.getBoundingClientRect();
  let bottom = 0;
  for (const node of document.elementsFromPoint(box.left + box.width / 2, 1)) {
    if (figure.contains(node)) continue;
    for (let n = node; n && n !== document.body && n !== document.documentElement; n = n.parentElement) {
      const position = getComputedStyle(n).position;
      if (position === 'fixed' || position === 'sticky') {
        const r = n.getBoundingClientRect();
        if (r.top <= 1 && r.bottom < innerHeight / 3) bottom = Math.max(bottom, r.bottom);
        break;
      }
    }
  }
  // A host may ask for room above its link targets (MkDocs' theme: 20 px under its navbar).
  const padding = parseFloat(getComputedStyle(document.documentElement).scrollPaddingTop) || 0;
  return {top: box.top, covered: Math.max(bottom, padding)};
}
"""


def landing_error(page: Any, name: str) -> float:
    """How far (px) the figure named ``name`` is from the top of the window (below the host's header).

    Waits until every figure has drawn; then the page must still hold the figure there.
    """
    wait_drawn(page)
    page.wait_for_timeout(300)
    where = page.locator(f'.attndocs-figure[data-attndocs-name="{name}"]').evaluate(_COVERED_JS)
    return abs(where["top"] - where["covered"])


def problems_at_widths(open_probe: Any, page: str) -> list[str]:
    """:func:`fit_problems` and the probe's own (console errors) for ``page`` at every width of
    :data:`WIDTHS`, each in a fresh page: ``open_probe(page, width)`` gives a site probe."""
    problems: list[str] = []
    for width in WIDTHS:
        probe = open_probe(page, width)
        probe.context.add_init_script(RESERVED_INIT)
        try:
            probe.goto()
            problems += [f"{width} px: {p}" for p in fit_problems(probe.page)]
            problems += probe.problems()
        finally:
            probe.close()
    return problems
