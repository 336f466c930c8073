"""The ``attention_*`` config values, generated from SiteSettings, and their validation.

Every SiteSettings field ``x`` becomes ``attention_x`` in conf.py with the same default;
``attention_override_admonition`` decides whether ``.. attention::`` is the figure
directive or stays docutils' admonition; left unset, it is the figure directive and says
so for every block that looks like an admonition. Values are checked when the builder starts, so
a typo in conf.py stops the build at once with a message naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.errors import ConfigError

from ..errors import OptionError
from ..options import SiteSettings, parse_value, settings_fields

if TYPE_CHECKING:
    from sphinx.application import Sphinx

PREFIX = "attention_"
OVERRIDE_ADMONITION = "attention_override_admonition"

# Settings whose change alters the figures themselves: every page is read again. The others
# change only how pages are written (embed) or how a build runs (device, batch size, errors).
_REBUILD = {"embed": "html", "page_budget": "html", "device": "", "device_map": "", "max_memory": "", "batch_size": "", "raise_on_error": ""}


def config_name(field: dataclasses.Field) -> str:
    return PREFIX + field.name


def add_config_values(app: Sphinx) -> None:
    for f in settings_fields():
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        app.add_config_value(config_name(f), default, _REBUILD.get(f.name, "env"))
    # True: `.. attention::` is the figure directive, replacing docutils' attention admonition.
    # None (not set in conf.py) acts as True, and each `.. attention::` block without options
    # (likely an existing admonition) gets an info line naming its place and this setting.
    app.add_config_value(OVERRIDE_ADMONITION, None, "env", types=frozenset({bool, type(None)}))


def site_settings(app: Sphinx) -> SiteSettings:
    """SiteSettings from conf.py; ConfigError naming the setting and what it allows.

    Paths are taken relative to the folder of conf.py: the cache (default
    ``.cache/attndocs`` there) and model folders given in ``attention_default_model`` or
    ``attention_model_aliases``.
    """
    confdir = Path(app.confdir)
    values: dict[str, Any] = {}
    for f in settings_fields():
        name = config_name(f)
        value = app.config[name]
        try:
            values[f.name] = parse_value(f, value)
        except OptionError as exc:
            allowed = getattr(f.metadata["parse"], "allowed", None)
            raise ConfigError(
                f"{name} = {value!r} in conf.py is not valid"
                + (f": expected {allowed}" if allowed else f": {exc.message}")
                + f". {f.metadata['help']}"
            ) from None
    cache_dir = values.get("cache_dir")
    values["cache_dir"] = str(confdir / cache_dir) if cache_dir else str(confdir / ".cache" / "attndocs")
    _check_cache_dir(Path(values["cache_dir"]), Path(app.outdir))
    values["default_model"] = model_path(values["default_model"], confdir)
    values["model_aliases"] = {k: model_path(v, confdir) for k, v in values["model_aliases"].items()}
    return SiteSettings(**values)


def model_path(name: str, confdir: Path) -> str:
    """A model named by a folder relative to conf.py becomes that folder's absolute path.

    sphinx-build may run from any working folder, so a relative folder means the one
    beside conf.py. Names that are not such a folder (aliases, hub ids) pass unchanged.
    """
    if not name or name.startswith(("/", "~")):
        return name
    candidate = confdir / name
    if candidate.is_dir():
        # abspath, not resolve: a folder reached through a link keeps the name the author
        # wrote, which is what figures show as the model's name.
        return os.path.abspath(candidate)
    return name


def _check_cache_dir(cache_dir: Path, outdir: Path) -> None:
    """A cache inside the output folder would be published with the site (and wiped by a clean)."""
    cache, out = cache_dir.resolve(), outdir.resolve()
    if cache == out or out in cache.parents:
        raise ConfigError(
            f"attention_cache_dir ({cache_dir}) is inside the output folder ({outdir}): it would be published "
            "with the site. Keep the cache beside conf.py (the default is .cache/attndocs)"
        )
