"""The plugin's mkdocs.yml keys: one per SiteSettings field, validated by that field's own parser.

Adding a site setting to :class:`~attndocs.options.SiteSettings` adds the key here too. A
bad value stops MkDocs at configuration time with the same message the other front-ends
give (option, value, allowed values).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from mkdocs.config import base
from mkdocs.config import config_options as c

from ..errors import OptionError
from ..fence import local_model
from ..options import SiteSettings, parse_value, settings_fields

DEFAULT_CACHE_DIR = ".cache/attndocs"


class SettingOption(c.BaseConfigOption):
    """A MkDocs config option backed by one SiteSettings field."""

    def __init__(self, f: dataclasses.Field) -> None:
        super().__init__()
        self.field = f
        self.default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]

    def run_validation(self, value: object) -> Any:
        if value is None:  # an empty key in YAML means "the default"
            return self.default
        try:
            return parse_value(self.field, value)
        except OptionError as exc:
            # MkDocs names the key itself ("Plugin 'attndocs' option 'device': ..."), so the
            # message starts at the value.
            raise c.ValidationError(re.sub(r"^option '[^']+' has ", "", str(exc))) from None


# The Config subclass is generated so that its keys can never drift from SiteSettings.
AttndocsConfig: type[base.Config] = type(
    "AttndocsConfig",
    (base.Config,),
    {"__module__": __name__, "__doc__": "attndocs plugin settings (SiteSettings keys).", **{f.name: SettingOption(f) for f in settings_fields()}},
)


def site_settings(plugin_config: base.Config, config_file_path: str | None) -> SiteSettings:
    """SiteSettings from the plugin's config, with the cache folder resolved beside mkdocs.yml."""
    values = {f.name: plugin_config[f.name] for f in settings_fields()}
    base_dir = config_dir(config_file_path)
    values["cache_dir"] = str((base_dir / (values["cache_dir"] or DEFAULT_CACHE_DIR)).resolve())
    values["default_model"] = local_model(values["default_model"], base_dir)
    values["model_aliases"] = {k: local_model(v, base_dir) for k, v in values["model_aliases"].items()}
    return SiteSettings(**values)


def config_dir(config_file_path: str | None) -> Path:
    """The folder of mkdocs.yml: relative paths in the plugin's settings and pages start there."""
    return Path(config_file_path).resolve().parent if config_file_path else Path.cwd()
