"""The kernel's OpenAPI viewer: Swagger UI at ``/schema`` (and ``/schema/swagger``), every
file of it served by the kernel itself.

Litestar's viewers load their JavaScript and CSS from CDNs, which the kernel's
Content-Security-Policy (backend.api.headers) refuses, and which a machine without internet
cannot reach: the page stayed blank. Here Swagger UI's own files come from the
``swagger-ui-py`` package, served at ``/schema/assets/``; the page has no inline script (a
small initializer, ``/schema/assets/init.js``, reads the JSON's address from a ``data-``
attribute), so it works under the very CSP of the rest of the kernel. ``/schema`` is public
(backend.api.security.PUBLIC_PATHS), its assets included.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path
from typing import Any

from litestar import Request, Router, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin, YamlRenderPlugin
from litestar.static_files import create_static_files_router

ASSETS = "/assets"  # under the OpenAPI path: /schema/assets/…


def swagger_ui_dist() -> Path:
    """Swagger UI's built files, as the swagger-ui-py package ships them (not imported:
    its own code is for other frameworks)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (pyproject.toml)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


# Starts Swagger UI on the page's #swagger-ui element. The spec comes from its address, so
# the page needs no inline script; a session's CSRF cookie goes back as the header the
# kernel wants (as Litestar's own page does), for "Try it out" from a signed-in browser.
INIT_JS = """\
(() => {
  const root = document.getElementById('swagger-ui');
  const { specUrl, csrfCookie, csrfHeader } = root.dataset;
  const cookie = (name) => document.cookie.split('; ')
    .find((row) => row.startsWith(`${name}=`))?.split('=')[1];
  window.ui = SwaggerUIBundle({
    url: specUrl,
    dom_id: '#swagger-ui',
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    requestInterceptor: (request) => {
      const token = csrfCookie ? cookie(csrfCookie) : undefined;
      if (token !== undefined) {
        request.headers[csrfHeader] = token;
      }
      return request;
    },
  });
})();
"""


class SelfHostedSwagger(SwaggerRenderPlugin):
    """Litestar's Swagger UI plugin with its files served by the kernel, no inline script."""

    def __init__(self, base: str, **kwargs: Any) -> None:
        assets = f"{base}{ASSETS}"
        super().__init__(
            js_url=f"{assets}/swagger-ui-bundle.js", css_url=f"{assets}/swagger-ui.css",
            favicon=f'<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">',
            **kwargs)
        self.init_url = f"{assets}/init.js"

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        csrf = request.app.csrf_config
        data = {
            "spec-url": self.get_openapi_json_route(request),
            # Only a cookie the page's script can read is worth naming.
            "csrf-cookie": csrf.cookie_name if csrf and not csrf.cookie_httponly else "",
            "csrf-header": csrf.header_name if csrf else "",
        }
        attributes = " ".join(f'data-{name}="{html.escape(value)}"'
                              for name, value in data.items())
        return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title}</title>
    {self.favicon}
    <link rel="stylesheet" href="{html.escape(self.css_url)}">
    {self.style}
  </head>
  <body>
    <div id="swagger-ui" {attributes}></div>
    <script src="{html.escape(self.js_url)}"></script>
    <script src="{html.escape(self.init_url)}"></script>
  </body>
</html>
""".encode()

    def receive_router(self, router: Router) -> None:
        # Not Litestar's oauth2-redirect.html: its inline script can't run under the CSP,
        # and the kernel documents no OAuth2 flow for Swagger UI to sign in with.
        router.register(get(f"{ASSETS}/init.js", media_type="text/javascript",
                            sync_to_thread=False, include_in_schema=False)(_init_js))
        router.register(create_static_files_router(
            path=ASSETS, directories=[swagger_ui_dist()], name="openapi-assets",
            include_in_schema=False))


def _init_js() -> str:
    return INIT_JS


def openapi_config(path: str = "/schema", **fields: Any) -> OpenAPIConfig:
    """The OpenAPI config of a kernel app: Swagger UI at ``path`` and ``path/swagger``,
    the document at ``path/openapi.json`` (and ``.yaml``)."""
    return OpenAPIConfig(path=path, render_plugins=[
        SelfHostedSwagger(path, path="/swagger"), YamlRenderPlugin()], **fields)
