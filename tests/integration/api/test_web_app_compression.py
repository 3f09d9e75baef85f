"""The web app's files, compressed once by the build and sent by a real kernel process:
brotli to browsers that take it, gzip to the others, the plain file to the rest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import ROOT

pytestmark = pytest.mark.parametrize("backend", ["redis"])

PRECOMPRESS = ROOT / "frontend" / "scripts" / "precompress.mjs"
BUNDLE = "main-ABCD2345.js"
IMMUTABLE = "public, max-age=31536000, immutable"


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is not on PATH (the build's precompress step needs it)"
    return node


def _brotli_decompress(data: bytes) -> bytes:
    """Node's zlib (Python's brotli package is not a dependency of the kernel)."""
    script = ("const z=require('node:zlib');const c=[];process.stdin.on('data',d=>c.push(d))"
              ".on('end',()=>process.stdout.write(z.brotliDecompressSync(Buffer.concat(c))))")
    return subprocess.run([_node(), "-e", script], input=data, capture_output=True,
                          check=True, timeout=30).stdout


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A built web app: a bundle of some size and index.html, after the build's
    precompress step (frontend/scripts/precompress.mjs)."""
    dist = tmp_path / "browser"
    dist.mkdir()
    (dist / "index.html").write_text(f'<app-root></app-root><script src="{BUNDLE}"></script>')
    lines = [f"export const row{n} = {{ id: {n}, name: 'job {n}', status: 'queued' }};"
             for n in range(400)]
    (dist / BUNDLE).write_text("\n".join(lines))
    subprocess.run([_node(), str(PRECOMPRESS), str(dist)], check=True, capture_output=True,
                   timeout=60)
    assert (dist / f"{BUNDLE}.br").is_file() and (dist / f"{BUNDLE}.gz").is_file()
    return dist


def _get(url: str, accept_encoding: str) -> httpx.Response:
    # httpx decodes gzip itself; without the brotli package it leaves brotli bodies as sent.
    return httpx.get(url, headers={"accept-encoding": accept_encoding}, timeout=15)


def test_bundles_are_brotli_when_asked_and_gzip_otherwise(kernel_process: Any,
                                                          dist: Path) -> None:
    url, _ = kernel_process(FRONTEND_DIST=str(dist))
    plain = (dist / BUNDLE).read_bytes()

    for accepted in ("gzip, deflate, br, zstd", "br"):
        answer = _get(f"{url}/{BUNDLE}", accepted)
        assert answer.status_code == 200, accepted
        assert answer.headers["content-encoding"] == "br", (accepted, answer.headers)
        assert answer.headers["content-type"].startswith("text/javascript")
        assert answer.headers["vary"] == "Accept-Encoding"
        assert answer.headers["cache-control"] == IMMUTABLE
        assert int(answer.headers["content-length"]) < len(plain) / 4
        assert _brotli_decompress(answer.content) == plain

    for accepted in ("gzip, deflate", "gzip, br;q=0"):
        answer = _get(f"{url}/{BUNDLE}", accepted)
        assert answer.headers["content-encoding"] == "gzip", (accepted, answer.headers)
        assert answer.headers["content-type"].startswith("text/javascript")
        assert answer.headers["cache-control"] == IMMUTABLE
        assert answer.content == plain  # decoded by httpx
        assert int(answer.headers["content-length"]) == len((dist / f"{BUNDLE}.gz").read_bytes())

    answer = _get(f"{url}/{BUNDLE}", "identity")
    assert "content-encoding" not in answer.headers
    assert answer.content == plain and answer.headers["cache-control"] == IMMUTABLE

    # The app's routes still get index.html; the API still compresses its own answers.
    page = _get(f"{url}/jobs", "gzip, br")
    assert page.status_code == 200 and "<app-root>" in page.text
    schema = _get(f"{url}/schema/openapi.json", "gzip, br")
    assert schema.headers["content-encoding"] == "gzip" and "paths" in schema.json()
