"""Docs-only directives that write the option and setting tables from attndocs.options.

``.. attndocs-options-table::`` lists every FigureOptions option,
``.. attndocs-state-table::`` every state key (a figure option and a link key, from
attndocs.state) and ``.. attndocs-settings-table::`` every SiteSettings field as ``attention_<name>``, with
their defaults, allowed values and help, so the documentation can never drift from the
code: adding an option to attndocs/options.py adds its row here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from attndocs.options import figure_fields, option_name, settings_fields, shown_default
from attndocs.state import ALL_VIEWS, STATE_KEYS


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return repr(f.default_factory())  # type: ignore[misc]
    if f.metadata.get("state") is not None:  # what the figure opens on
        return shown_default(f) or "—"
    return "—" if f.default is None else repr(f.default)


def _allowed(f: dataclasses.Field) -> str:
    return getattr(f.metadata["parse"], "allowed", "") or "text"


def _table(headers: list[str], rows: list[list[Any]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["attndocs-reference"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    head += nodes.row("", *[nodes.entry("", nodes.paragraph(text=h)) for h in headers])
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += cell if isinstance(cell, nodes.Node) else nodes.paragraph(text=str(cell))
            row += entry
        body += row
    return table


def _code(text: str) -> nodes.paragraph:
    return nodes.paragraph("", "", nodes.literal(text=text))


class OptionsTable(SphinxDirective):
    """Every figure option: its name in pages, default, allowed values and help."""

    def run(self) -> list[nodes.Node]:
        rows = [[_code(option_name(f)), _code(_default(f)), _allowed(f), f.metadata["help"]] for f in figure_fields()]
        return [_table(["option", "default", "allowed", "what it does"], rows, [14, 10, 22, 54])]


class StateTable(SphinxDirective):
    """Every state key: a figure option and a link key of the same name, from attndocs.state."""

    def run(self) -> list[nodes.Node]:
        fields = {f.name: f for f in figure_fields()}
        rows = []
        for key in STATE_KEYS:
            views = "all" if key.views == ALL_VIEWS else ", ".join(key.views)
            rows.append([_code(key.name), views, _code(shown_default(fields[key.name]) or "—"), _code(key.link), key.help])
        return [_table(["option and link key", "views", "opens on", "in a link", "what it does"], rows, [12, 14, 14, 18, 42])]


class SettingsTable(SphinxDirective):
    """Every site setting as its conf.py name, with default, allowed values and help."""

    def run(self) -> list[nodes.Node]:
        rows = [[_code(f"attention_{f.name}"), _code(_default(f)), _allowed(f), f.metadata["help"]] for f in settings_fields()]
        rows.append(
            [
                _code("attention_override_admonition"),
                "not set",
                "true or false",
                "Make `.. attention::` the figure directive, replacing docutils' attention admonition. "
                "Not set: it is the figure directive, and each `attention` block without figure options "
                "gets an info line (not a warning) naming its file and line. "
                "`.. attention-figure::` works either way.",
            ]
        )
        return [_table(["conf.py name", "default", "allowed", "what it does"], rows, [24, 12, 20, 44])]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("attndocs-options-table", OptionsTable)
    app.add_directive("attndocs-state-table", StateTable)
    app.add_directive("attndocs-settings-table", SettingsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
