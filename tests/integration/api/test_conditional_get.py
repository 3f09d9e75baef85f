"""A list asked for again with If-None-Match is a 304 while nothing changed."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import Kernel

pytestmark = pytest.mark.parametrize("backend", ["redis"])


async def test_the_job_list_is_a_304_until_a_job_changes(kernel: Kernel, user: str) -> None:
    for _ in range(30):  # over 1 KiB: the answer is gzipped, its ETag is the same
        assert (await kernel.submit(user)).status_code == 200
    first = await kernel.http.get("/api/v1/jobs", headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200 and len(first.json()["items"]) == 20
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["cache-control"] == "private, no-cache"
    etag = first.headers["etag"]
    plain = await kernel.http.get("/api/v1/jobs", headers={"Accept-Encoding": "identity"})
    assert plain.headers["etag"] == etag

    again = await kernel.http.get("/api/v1/jobs", headers={"If-None-Match": etag})
    assert again.status_code == 304, again.text
    assert again.content == b"" and again.headers["etag"] == etag
    assert again.headers["cache-control"] == "private, no-cache"
    # Another page, filter or owner is another answer.
    other_page = await kernel.http.get("/api/v1/jobs", params={"offset": 20},
                                       headers={"If-None-Match": etag})
    assert other_page.status_code == 200 and len(other_page.json()["items"]) == 10

    job_id = (await kernel.submit(user)).json()["job_id"]
    changed = await kernel.http.get("/api/v1/jobs", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["items"][0]["id"] == job_id
    assert changed.headers["etag"] != etag
    # One job, too; an error is never a 304.
    one = await kernel.http.get(f"/api/v1/jobs/{job_id}")
    same = await kernel.http.get(f"/api/v1/jobs/{job_id}",
                                 headers={"If-None-Match": one.headers["etag"]})
    assert same.status_code == 304
    missing = await kernel.http.get("/api/v1/jobs/0123456789abcdef01234567",
                                    headers={"If-None-Match": "*"})
    assert missing.status_code == 404 and "etag" not in missing.headers
