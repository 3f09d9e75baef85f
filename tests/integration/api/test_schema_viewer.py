"""The OpenAPI viewer the local run's banner points at (``/schema``): served whole by the
kernel process itself, to anyone, under the kernel's own Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from backend.api.headers import SECURITY_HEADERS
from tests.services import ManagedProcess

pytestmark = pytest.mark.parametrize("backend", ["redis"])

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _Page(HTMLParser):
    """The page's references (src/href) and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.inline_scripts = 0
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.references += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "script" and not values.get("src"):
            self._in_inline_script = True
        if any(k.startswith("on") for k, _ in attrs):
            self.inline_scripts += 1  # an inline event handler

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False


def test_schema_viewer_and_its_assets_are_served_by_the_kernel(
        kernel_process: Callable[..., tuple[str, ManagedProcess]]) -> None:
    url, _ = kernel_process()
    # Anonymous: the API's documentation is public, as it always was.
    with httpx.Client(base_url=url, timeout=15) as http:
        for path in ("/schema", "/schema/swagger"):
            page = http.get(path)
            assert page.status_code == 200, (path, page.text)
            assert page.headers["content-type"].startswith("text/html"), path
            assert "<title>taskbroker kernel API</title>" in page.text, path
            # The page lives under the CSP of the rest of the kernel, not a looser one.
            assert (page.headers["content-security-policy"]
                    == SECURITY_HEADERS["Content-Security-Policy"]), path
            parsed = _Page()
            parsed.feed(page.text)
            assert parsed.inline_scripts == 0, f"{path} has inline script the CSP refuses"
            assert len(parsed.references) >= 3, parsed.references  # css, js, initializer
            for reference in parsed.references:
                parts = urlsplit(reference)
                # Same origin: a path on this kernel, not another host (no CDN).
                assert not parts.scheme and not parts.netloc, (path, reference)
                assert reference.startswith("/schema/"), (path, reference)
                asset = http.get(reference)
                assert asset.status_code == 200, (reference, asset.text[:200])
                suffix = parts.path[parts.path.rfind("."):]
                assert asset.headers["content-type"].startswith(CONTENT_TYPES[suffix]), (
                    reference, asset.headers["content-type"])
                assert len(asset.content) > 500, reference
            assert any("swagger-ui-bundle.js" in r for r in parsed.references), parsed.references

        # What the viewer loads, and what scripts and the web app read, still answers.
        schema = http.get("/schema/openapi.json")
        assert schema.status_code == 200
        assert schema.json()["info"]["title"] == "taskbroker kernel API"
        assert "/api/v1/job_executor/async" in schema.json()["paths"]
        assert http.get("/schema/openapi.yaml").status_code == 200
        # The assets route serves files, nothing else: a missing one is a plain 404.
        assert http.get("/schema/assets/no-such-file.js").status_code == 404
        # The rest of the API stays behind sign-in.
        assert http.get("/api/v1/jobs").status_code == 401
