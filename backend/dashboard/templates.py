"""rq-dashboard's own templates, with a few exact edits made as they are loaded.

Each edit names the text it replaces and how many times that text occurs; a template that
no longer matches (another rq-dashboard) stops the dashboard at start rather than serve a
page without the edit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from jinja2 import BaseLoader, Environment, TemplateNotFound


@dataclass(frozen=True)
class Edit:
    old: str
    new: str
    count: int  # occurrences of ``old`` in the template as rq-dashboard ships it


class EditingLoader(BaseLoader):
    """Loads templates from ``inner``, applying ``edits[name]`` to template ``name``."""

    def __init__(self, inner: BaseLoader, edits: Mapping[str, Sequence[Edit]]) -> None:
        self.inner = inner
        self.edits = edits

    def get_source(self, environment: Environment, template: str,
                   ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        for edit in self.edits.get(template, ()):
            found = source.count(edit.old)
            if found != edit.count:
                raise TemplateNotFound(
                    f"{template}: expected {edit.count} x {edit.old!r}, found {found}; "
                    "rq-dashboard's templates changed, review backend/dashboard")
            source = source.replace(edit.old, edit.new)
        return source, filename, uptodate

    def check(self, environment: Environment) -> None:
        """Load every edited template once, so a mismatch shows at start."""
        for name in self.edits:
            self.get_source(environment, name)
