"""A user's job list: newest first, by cursor or offset, optionally one status only."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.store.conftest import MakeJob


@pytest.fixture
async def seven(make_job: MakeJob) -> list[str]:
    """Seven jobs of one user, oldest first; every third one failed."""
    ids = []
    for index in range(7):
        ids.append(await make_job("failed" if index % 3 == 0 else "created"))
    return ids


async def _pages(store: httpx.AsyncClient, url: str, **params: str | int) -> list[dict]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await store.get(url, params=query)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages


async def test_newest_first_by_default(store: httpx.AsyncClient, user: str,
                                       seven: list[str]) -> None:
    page = (await store.get(f"/job/user/{user}")).json()
    assert [job["id"] for job in page["items"]] == seven[::-1]
    created = [job["created_at"] for job in page["items"]]
    assert created == sorted(created, reverse=True)
    assert page["total"] == 7 and page["next_cursor"] is None


async def test_cursor_walks_every_job_once(store: httpx.AsyncClient, user: str,
                                           seven: list[str]) -> None:
    pages = await _pages(store, f"/job/user/{user}", limit=3)
    assert [len(page["items"]) for page in pages] == [3, 3, 1]
    assert [job["id"] for page in pages for job in page["items"]] == seven[::-1]
    assert all(page["total"] == 7 and page["limit"] == 3 for page in pages)
    assert pages[1]["offset"] is None


async def test_cursor_pages_are_stable_when_new_jobs_arrive(
        store: httpx.AsyncClient, user: str, seven: list[str], make_job: MakeJob) -> None:
    first = (await store.get(f"/job/user/{user}", params={"limit": 4})).json()
    newer = await make_job()
    second = (await store.get(f"/job/user/{user}", params={
        "limit": 4, "cursor": first["next_cursor"]})).json()
    walked = [job["id"] for job in first["items"] + second["items"]]
    assert walked == seven[::-1] and newer not in walked
    assert second["total"] == 8


async def test_offset_pages(store: httpx.AsyncClient, user: str, seven: list[str]) -> None:
    newest_first = seven[::-1]
    for offset in (0, 2, 5, 7, 50):
        page = (await store.get(f"/job/user/{user}", params={"limit": 2,
                                                             "offset": offset})).json()
        assert [job["id"] for job in page["items"]] == newest_first[offset:offset + 2]
        assert page["offset"] == offset and page["total"] == 7
        assert (page["next_cursor"] is not None) == (offset + 2 < 7)


async def test_offset_page_continues_by_cursor(store: httpx.AsyncClient, user: str,
                                               seven: list[str]) -> None:
    page = (await store.get(f"/job/user/{user}", params={"limit": 2, "offset": 2})).json()
    rest = await _pages(store, f"/job/user/{user}", limit=10, cursor=page["next_cursor"])
    assert [job["id"] for job in rest[0]["items"]] == seven[::-1][4:]


async def test_status_filter(store: httpx.AsyncClient, user: str, seven: list[str]) -> None:
    failed = (await store.get(f"/job/user/{user}", params={"status": "failed"})).json()
    assert [job["id"] for job in failed["items"]] == [seven[6], seven[3], seven[0]]
    assert failed["total"] == 3 and all(job["status"] == "failed" for job in failed["items"])
    pages = await _pages(store, f"/job/user/{user}", status="created", limit=2)
    assert [job["id"] for page in pages for job in page["items"]] == [
        seven[5], seven[4], seven[2], seven[1]]
    running = (await store.get(f"/job/user/{user}", params={"status": "running"})).json()
    assert running["items"] == [] and running["total"] == 0


async def test_other_users_jobs_are_not_listed(store: httpx.AsyncClient, user: str,
                                               seven: list[str]) -> None:
    other = await store.post("/job/", json={"name": "echo", "user_id": f"{user}-other"})
    page = (await store.get(f"/job/user/{user}", params={"limit": 100})).json()
    assert other.json()["id"] not in [job["id"] for job in page["items"]]
    assert page["total"] == 7


async def test_limit_bounds(store: httpx.AsyncClient, user: str, seven: list[str]) -> None:
    one = (await store.get(f"/job/user/{user}", params={"limit": 1})).json()
    assert [job["id"] for job in one["items"]] == [seven[-1]] and one["limit"] == 1
    most = (await store.get(f"/job/user/{user}", params={"limit": 100})).json()
    assert len(most["items"]) == 7 and most["next_cursor"] is None
