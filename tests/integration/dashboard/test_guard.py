"""The dashboard's outer walls, on the real process: basic auth, actions as same-origin
POSTs only (F11: rq-dashboard's requeue-all also answered GET), waitress rather than the
development server, a CSP on every answer, and nothing needed but REDIS_URL and its own
user name and password."""

from __future__ import annotations

import httpx
import pytest
import redis
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from tests.integration.dashboard.conftest import NOT_GIVEN, PASSWORD, USER, Dashboard

EVIL = "https://evil.example"
QUEUE = "standard"


def failed_job(connection: redis.Redis) -> str:
    """A failed job in QUEUE, as a worker leaves one (JSON, like every job of ours)."""
    queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    job = queue.enqueue_call("builtins.print", args=("x",))
    queue.remove(job)
    FailedJobRegistry(QUEUE, connection=connection, serializer=JSONSerializer).add(
        job, exc_string="Traceback: failed on purpose")
    return job.id


def requeued(connection: redis.Redis) -> int:
    return connection.llen(f"rq:queue:{QUEUE}")


@pytest.mark.parametrize("origin", [EVIL, None], ids=["cross-site", "no-origin"])
def test_a_get_cannot_requeue(dashboard: Dashboard, rq_redis: redis.Redis,
                              origin: str | None) -> None:
    # A cross-site <img src=".../requeue/standard"> carries the browser's cached basic auth.
    job_id = failed_job(rq_redis)
    headers = {"Origin": origin} if origin else {}
    answer = httpx.get(f"{dashboard.url}/requeue/{QUEUE}", auth=(USER, PASSWORD),
                       headers=headers, timeout=10)
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == "POST"
    assert requeued(rq_redis) == 0
    assert job_id in FailedJobRegistry(QUEUE, connection=rq_redis).get_job_ids()


def test_a_cross_site_post_cannot_requeue(dashboard: Dashboard, rq_redis: redis.Redis) -> None:
    failed_job(rq_redis)
    answer = httpx.post(f"{dashboard.url}/requeue/{QUEUE}", auth=(USER, PASSWORD),
                        headers={"Origin": EVIL}, timeout=10)
    assert answer.status_code == 403, answer.text
    assert answer.json()["status_code"] == 403
    assert requeued(rq_redis) == 0


def test_the_dashboard_pages_still_requeue(dashboard: Dashboard, rq_redis: redis.Redis) -> None:
    # The same action as the refused ones, from the dashboard's own page: it works.
    job_id = failed_job(rq_redis)
    with dashboard.client() as http:
        answer = http.post(f"/requeue/{QUEUE}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "OK", "count": 1}
    assert requeued(rq_redis) == 1
    assert job_id not in FailedJobRegistry(QUEUE, connection=rq_redis).get_job_ids()


@pytest.mark.parametrize("path", ["/requeue/standard", "/job/x/requeue", "/job/x/delete",
                                  "/queue/standard/failed/empty", "/queue/standard/compact"])
def test_no_action_answers_a_get(dashboard: Dashboard, rq_redis: redis.Redis, path: str) -> None:
    with dashboard.client() as http:
        assert http.get(path).status_code == 405


@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("admin", PASSWORD)])
def test_every_answer_needs_the_password(dashboard: Dashboard, auth: tuple[str, str] | None,
                                         ) -> None:
    for path in ("/", "/0/data/queues.json", "/0/data/workers.json"):
        answer = httpx.get(dashboard.url + path, auth=auth, timeout=10)
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"].startswith("Basic ")
        assert "content-security-policy" in answer.headers


def test_served_by_waitress_with_a_csp(dashboard: Dashboard, rq_redis: redis.Redis) -> None:
    with dashboard.client() as http:
        page, data = http.get("/"), http.get("/0/data/queues.json")
    assert page.status_code == data.status_code == 200
    for answer in (page, data):
        assert "werkzeug" not in answer.headers.get("server", "").lower(), answer.headers
        policy = answer.headers["content-security-policy"]
        assert "script-src 'nonce-" in policy and "'unsafe-inline'" not in policy.split(
            "script-src")[1].split(";")[0]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
    # Every script of the page (not its underscore templates, which are text) carries
    # this answer's nonce; no two answers share one.
    nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    scripts = page.text.count("<script ") - page.text.count('type="text/template"')
    assert scripts == page.text.count(f'<script nonce="{nonce}"') == 5
    again = httpx.get(dashboard.url + "/", auth=(USER, PASSWORD), timeout=10)
    assert nonce not in again.headers["content-security-policy"]


def test_needs_only_redis_url_and_its_own_password(dashboard: Dashboard) -> None:
    # The fixture gave it REDIS_URL and DASHBOARD_USERNAME/PASSWORD, every other secret
    # empty; it is up and reads Redis.
    assert all(dashboard.env[name] == "" for name in NOT_GIVEN)
    answer = httpx.get(dashboard.url + "/0/data/queues.json", auth=(USER, PASSWORD), timeout=10)
    assert answer.status_code == 200, answer.text
    assert dashboard.proc.alive()


def test_an_unknown_job_is_a_404(dashboard: Dashboard, rq_redis: redis.Redis) -> None:
    with dashboard.client() as http:
        for path in ("/0/view/job/nope", "/0/data/job/nope.json"):
            answer = http.get(path)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["status_code"] == 404
