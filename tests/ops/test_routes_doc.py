"""The route tables of docs/api.md (the kernel) and docs/data-service.md (the data service)
list exactly the routes the apps serve: every method and path, nothing more, nothing less.

The apps are built as their processes build them (``create_app``), without starting them.
Under /schema Litestar adds viewers and aliases of its own; the tables must name /schema and
/schema/openapi.json, and whatever else they name there must exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from litestar import Litestar

from backend.api.app import create_app as create_kernel
from backend.settings import Settings
from backend.store.app import create_app as create_store
from tests.ops.settings_files import ROOT
from tests.services import TEST_SECRETS

ROUTES_HEADER = re.compile(r"^\| method \| path \|")
# What every HTTP route answers besides its own methods (CORS preflight, HEAD of a file).
IMPLICIT = {"OPTIONS", "HEAD"}

Route = tuple[str, str]  # (method, path with its parameters written {})


def _normal(path: str) -> str:
    path = path.split("?", 1)[0]
    path = re.sub(r"\{[^}]*\}", "{}", path)  # {job_id:str} and {job_id} alike
    return path.rstrip("/") or "/"


def documented(doc: Path) -> set[Route]:
    """Every (method, path) of the route tables (``| method | path | ...``) in ``doc``: a row
    names one or more methods and one or more paths (code spans), each method on each path."""
    routes: set[Route] = set()
    inside = False
    for line in doc.read_text().splitlines():
        if ROUTES_HEADER.match(line):
            inside = True
            continue
        if not (inside and line.startswith("|")):
            inside = False
            continue
        if line.startswith("|---"):
            continue
        methods_cell, paths_cell = line.strip("|").split("|")[:2]
        methods = [m.strip() for m in methods_cell.split(",")]
        paths = [p for p in re.findall(r"`([^`]+)`", paths_cell) if p.startswith("/")]
        assert methods and paths, f"a route row without a method or a path: {line!r}"
        routes |= {(method, _normal(path)) for method in methods for path in paths}
    assert routes, f"no route table in {doc}"
    return routes


def served(app: Litestar) -> set[Route]:
    return {(method, _normal(route.path)) for route in app.routes
            for method in route.methods - IMPLICIT}


def _settings(web_app: Path) -> Settings:
    settings = Settings()
    # As a system with the web app built serves it (the build may be absent here).
    (web_app / "index.html").write_text("<!doctype html>")
    settings.api.frontend_dist = str(web_app)
    settings.api.data_service_token = TEST_SECRETS["DATA_SERVICE_TOKEN"]
    settings.auth.auth_secret = TEST_SECRETS["AUTH_SECRET"]
    return settings


@pytest.mark.parametrize(("doc", "create_app"), [
    ("docs/api.md", create_kernel),
    ("docs/data-service.md", create_store),
], ids=["kernel", "data-service"])
def test_route_table_matches_the_app(doc: str, create_app, tmp_path: Path) -> None:
    listed = documented(ROOT / doc)
    app_routes = served(create_app(_settings(tmp_path)))

    def own(routes: set[Route]) -> set[Route]:
        return {(m, p) for m, p in routes if p != "/schema" and not p.startswith("/schema/")}

    assert own(listed) - own(app_routes) == set(), f"{doc} lists routes the app does not serve"
    assert own(app_routes) - own(listed) == set(), f"{doc} leaves out routes the app serves"
    schema = {(m, p) for m, p in listed if (m, p) not in own(listed)}
    assert {("GET", "/schema"), ("GET", "/schema/openapi.json")} <= schema, doc
    assert schema <= app_routes, f"{doc}: {sorted(schema - app_routes)} not served"
