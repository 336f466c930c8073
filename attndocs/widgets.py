"""The anywidget host: one ES module that mounts figures, the widget-model state that carries them, and attndocs.widget().

anywidget (https://anywidget.dev) turns a Python object into an interactive view in
JupyterLab, Jupyter Notebook, VS Code, Colab and marimo from one ES module whose default
export has ``render({ model, el })``; MyST-MD's ``anywidget`` directive mounts the same
kind of module in a page. :func:`widget_esm` is that module: attndocs.js and attndocs.css
inside, no import, no request. :func:`widget_state` is what the widget model holds: the
figure fragment render.render_figure makes, payload inline, so nothing is fetched.
:func:`widget` makes the Python object (anywidget is an optional extra, imported only here,
only when called).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from .errors import AttndocsError, OptionError
from .options import FigureOptions, SiteSettings
from .record import AttentionRecord
from .render import bundle_css, bundle_js, render_figure

# Bumped when the state's keys or meaning change, so a module can tell a state it cannot read.
STATE_VERSION = 1
INSTALL_HINT = "pip install 'attndocs[widget]'"

# The module's own code around the bundle. It runs in every host the same way:
# - the bundle (attndocs.js) defines window.attndocs once per page, however many widgets
#   import this module (anywidget may import it once per widget);
# - the CSS goes where el lives: into its shadow root (marimo renders widgets in one, and
#   document styles do not reach inside), else into document.head; once per root, removed
#   when the last widget of that root unmounts;
# - el may not be in the page yet when render runs (Jupyter attaches a view after
#   rendering it), and views measure their width as they draw: the figure boots once el is
#   connected;
# - two outputs of one widget mount the same fragment twice: the later mounts get their own
#   element id, since fig.uid() derives every inner id from it;
# - the returned cleanup destroys the figure's view and lets go of its data.
_MODULE = r"""
const STATE_VERSION = %(version)s;
const CSS = %(css)s;
const STYLE_ATTR = "data-attndocs-widget-style";

function api() {
  if (!window.attndocs || !window.attndocs.version) {
    loadBundle();
  }
  const attndocs = window.attndocs;
  // An older attndocs.js already on the page (a classic notebook output) has no release().
  if (!attndocs.release) {
    attndocs.release = function (root) {
      root.querySelectorAll(".attndocs-figure").forEach(function (figEl) {
        const fig = attndocs.figure(figEl);
        if (fig) fig.destroy();
      });
    };
  }
  return attndocs;
}

function loadBundle() {
%(js)s
}

// One <style> per root (a shadow root, or the document), counted by the widgets using it.
function addStyle(root) {
  const host = root instanceof ShadowRoot ? root : (document.head || document.documentElement);
  let style = host.querySelector("style[" + STYLE_ATTR + "]");
  if (!style) {
    style = document.createElement("style");
    style.setAttribute(STYLE_ATTR, "");
    style.textContent = CSS;
    host.insertBefore(style, host.firstChild);
  }
  style._attndocsUsers = (style._attndocsUsers || 0) + 1;
  return function () {
    style._attndocsUsers -= 1;
    if (style._attndocsUsers <= 0) style.remove();
  };
}

function mountCount(id) {
  const a = window.attndocs;
  if (!a._widgetMounts) a._widgetMounts = new Map();
  const n = (a._widgetMounts.get(id) || 0) + 1;
  a._widgetMounts.set(id, n);
  return n;
}

function showProblem(box, message) {
  box.textContent = "";
  const note = document.createElement("div");
  note.className = "attndocs-placeholder";
  note.setAttribute("role", "note");
  const strong = document.createElement("strong");
  strong.textContent = "Attention figure unavailable: ";
  note.appendChild(strong);
  note.appendChild(document.createTextNode(message));
  box.appendChild(note);
}

function render({ model, el }) {
  const attndocs = api();
  const box = document.createElement("div");
  box.className = "attndocs-widget";
  el.appendChild(box);
  let alive = true;
  let dropStyle = null;

  function applyDisplay() {
    const display = model.get("display");
    if (display !== "auto" && display !== "light" && display !== "dark") return;
    box.querySelectorAll(".attndocs-figure").forEach(function (figEl) {
      figEl.setAttribute("data-attndocs-display", display);
      const fig = attndocs.figure(figEl);
      if (fig) {
        fig.header.options.display = display;
        fig._applyTheme();
      }
    });
  }

  function draw() {
    attndocs.release(box);
    box.textContent = "";
    if (model.get("version") > STATE_VERSION) {
      showProblem(box, "this widget's data is newer than its attndocs.js; update attndocs and run the cell again");
      return;
    }
    // The fragment comes from attndocs' render_figure, which escapes all text in it.
    box.innerHTML = model.get("html") || "";
    box.querySelectorAll(".attndocs-figure").forEach(function (figEl) {
      const n = mountCount(figEl.id);
      if (n > 1) figEl.id = figEl.id + "-" + n;
    });
    applyDisplay();
    attndocs.boot(box);
  }

  function whenConnected() {
    if (!alive) return;
    if (!box.isConnected) {
      requestAnimationFrame(whenConnected);
      return;
    }
    dropStyle = addStyle(box.getRootNode());
    draw();
  }

  const onHtml = function () { if (dropStyle) draw(); };
  model.on("change:html", onHtml);
  model.on("change:display", applyDisplay);
  whenConnected();

  return function cleanup() {
    alive = false;
    attndocs.release(box);
    box.remove();
    if (dropStyle) dropStyle();
    // Some hosts' models do not implement off (myst-theme's throws "not implemented yet"):
    // the figure is released first, and a host that cannot unsubscribe keeps two no-ops.
    try {
      model.off("change:html", onHtml);
      model.off("change:display", applyDisplay);
    } catch (e) { /* nothing left to undo */ }
  };
}

export default { render };
"""


@functools.lru_cache(maxsize=1)
def widget_esm() -> str:
    """The ES module anywidget (and MyST-MD's ``anywidget`` directive) mounts.

    Self-contained: attndocs.js and attndocs.css are inside, it imports nothing and fetches
    nothing. ``export default { render({ model, el }) }`` draws the figure of the model's
    ``html`` (see :func:`widget_state`) into ``el``, in the page or in a shadow root, and
    returns a cleanup that destroys it. Two mounts of one model (two outputs) both work.
    """
    # JSON is a JavaScript string literal; "<" escaped keeps the module safe to inline anywhere.
    css = json.dumps(bundle_css()).replace("<", "\\u003c")
    return _MODULE % {"version": STATE_VERSION, "css": css, "js": bundle_js()}


def widget_state(
    record: AttentionRecord, options: FigureOptions, *, compare: AttentionRecord | None = None
) -> dict[str, Any]:
    """The widget model's state for one figure: JSON, payload inline, nothing to fetch.

    ``{"html": <the figure fragment>, "display": "auto" | "light" | "dark", "view": ...,
    "figure_id": ..., "version": STATE_VERSION}``. ``html`` is
    :func:`attndocs.render.render_figure`'s fragment (embed inline; the figure keeps its
    state out of the page's address, which belongs to the notebook or page around it).
    ``display`` follows ``options.display``; "auto" follows the host's theme (JupyterLab,
    VS Code, marimo, the page's background, the system), and the module applies a new
    value live. ``compare``: the second record of a compare-text / compare-model figure.
    """
    if not isinstance(record, AttentionRecord):
        raise OptionError(
            f"widget_state needs an AttentionRecord, not {type(record).__name__}",
            "make one with attndocs.notebook.record_from_attention or the pipeline",
        )
    figure = render_figure(record, options, hash_state=False, compare=compare)
    return {
        "html": figure.html,
        "display": options.display,
        "view": figure.view,
        "figure_id": figure.id,
        "version": STATE_VERSION,
    }


@functools.lru_cache(maxsize=1)
def _widget_class() -> type:
    try:
        import anywidget
        import traitlets
    except ImportError as exc:
        raise AttndocsError(
            "attndocs.widget needs anywidget, which is not installed",
            f"{INSTALL_HINT} (or pip install anywidget)",
        ) from exc

    class AttentionWidget(anywidget.AnyWidget):
        """An attndocs figure as an anywidget: the payload travels in the widget model."""

        _esm = widget_esm()
        html = traitlets.Unicode("").tag(sync=True)
        display = traitlets.Unicode("auto").tag(sync=True)
        view = traitlets.Unicode("head").tag(sync=True)
        figure_id = traitlets.Unicode("").tag(sync=True)
        version = traitlets.Int(STATE_VERSION).tag(sync=True)

        @traitlets.validate("display")
        def _check_display(self, proposal: Any) -> str:
            value = proposal["value"]
            if value not in ("auto", "light", "dark"):
                raise OptionError(f"display must be 'auto', 'light' or 'dark', not {value!r}")
            return value

        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            # Beside the widget, what attndocs.figure() outputs (the figure, its still picture,
            # one line of text): where no widget manager runs (nbconvert, GitHub, nbviewer) the
            # saved notebook still shows the figure.
            bundle = super()._repr_mimebundle_(**kwargs)
            data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
            record, options = getattr(self, "record", None), getattr(self, "options", None)
            if isinstance(data, dict) and record is not None and options is not None:
                from .notebook import _show

                still = _show(record, options.replace(display=self.display), "return", "Attention figure",
                              compare=getattr(self, "compare", None))
                data = {**still._repr_mimebundle_(), **data, "text/plain": still.description}  # type: ignore[union-attr]
            return (data, metadata) if isinstance(bundle, tuple) else data

    return AttentionWidget


def widget(
    text: str | None = None,
    *,
    record: AttentionRecord | None = None,
    compare: AttentionRecord | None = None,
    settings: SiteSettings | Mapping[str, Any] | None = None,
    **options: Any,
) -> Any:
    """An attndocs figure as an anywidget (JupyterLab, Notebook, VS Code, Colab, marimo).

    ``widget("The cat sat on the mat.", model="minilm", view="model")`` takes the same
    options as :func:`attndocs.figure` (underscored names: ``text_b``, ``include_layers``
    ...) and runs the model through the same cache. ``widget(record=rec, view="matrix")``
    shows a record you already have (an :class:`AttentionRecord`, e.g. from
    ``attndocs.notebook.record_from_attention``; ``compare`` its comparison's second
    record). The figure's data travels in the widget model (:func:`widget_state`): the
    view fetches nothing. Set ``.display`` to "light", "dark" or "auto" to change its
    theme live. Needs anywidget: ``pip install 'attndocs[widget]'``.
    """
    cls = _widget_class()
    if (text is None) == (record is None):
        raise OptionError(
            "attndocs.widget needs a text or a record, not " + ("both" if text is not None else "neither"),
            "widget('The cat sat on the mat.', model='minilm') or widget(record=rec, view='head')",
        )
    if record is not None:
        if settings is not None:
            raise OptionError("settings apply to a model run; a record needs none", "drop settings=")
        if not isinstance(record, AttentionRecord):
            raise OptionError(
                f"record must be an AttentionRecord, not {type(record).__name__}",
                "make one with attndocs.notebook.record_from_attention, or pass a text",
            )
        figure_options = FigureOptions.from_mapping({"view": "head", **options})
    else:
        if compare is not None:
            raise OptionError("compare goes with a record", "for a text, use the compare-text or compare-model option")
        from .pipeline import Pipeline

        figure_options = FigureOptions.from_mapping({"view": "head", **options, "text": text})
        site = settings if isinstance(settings, SiteSettings) else SiteSettings.from_mapping(settings or {})
        result = Pipeline(site).compute_one(figure_options, qk=figure_options.view == "neuron")
        record, compare = result.record, result.compare
    state = widget_state(record, figure_options, compare=compare)  # type: ignore[arg-type]
    made = cls(**state)
    made.record = record
    made.options = figure_options
    made.compare = compare
    return made
