"""The kernel's security settings are checked at start: no weak or missing signing key."""

from __future__ import annotations

import pytest

from backend.api.events import job_changes
from backend.api.oidc import url_problem
from backend.api.security import csrf_secret, make_auth
from backend.jobs import Job, JobStatus
from backend.settings import AuthSettings
from tests.unit.test_api_events import Script, job, watch


@pytest.mark.parametrize(("secret", "says"), [("", "needs AUTH_SECRET"),
                                              ("short-and-guessable", "too short")])
def test_the_kernel_refuses_to_start_without_a_strong_secret(secret: str, says: str) -> None:
    with pytest.raises(SystemExit, match=says):
        make_auth(AuthSettings(AUTH_SECRET=secret))


def test_oidc_needs_an_audience() -> None:
    with pytest.raises(SystemExit, match="AUTH_OIDC_AUDIENCE"):
        make_auth(AuthSettings(AUTH_SECRET="x" * 40, AUTH_OIDC_ISSUER="https://id.example"))


def test_a_strong_secret_is_enough_to_start() -> None:
    auth = make_auth(AuthSettings(AUTH_SECRET="x" * 40))
    assert auth.token_cls.oidc is None


@pytest.mark.parametrize("issuer", ["http://id.example.com", "ftp://id.example.com",
                                    "https://", "id.example.com"])
def test_an_oidc_issuer_that_is_not_https_is_refused_at_start(issuer: str) -> None:
    # Keys fetched over plain http from a remote host could be swapped by anyone on the way.
    with pytest.raises(SystemExit, match="https://"):
        make_auth(AuthSettings(AUTH_SECRET="x" * 40, AUTH_OIDC_ISSUER=issuer,
                               AUTH_OIDC_AUDIENCE="taskbroker"))


@pytest.mark.parametrize("issuer", ["https://id.example.com/realms/x", "http://127.0.0.1:9",
                                    "http://localhost:9/", "http://[::1]:9"])
def test_https_issuers_and_loopback_ones_start(issuer: str) -> None:
    auth = make_auth(AuthSettings(AUTH_SECRET="x" * 40, AUTH_OIDC_ISSUER=issuer,
                                  AUTH_OIDC_AUDIENCE="taskbroker"))
    assert auth.token_cls.oidc is not None


def test_a_jwks_uri_must_be_https_too() -> None:
    assert url_problem("https://id.example.com/certs", "jwks_uri") is None
    assert "https://" in (url_problem("http://id.example.com/certs", "jwks_uri") or "")


def test_the_csrf_key_is_derived_from_the_auth_secret_not_the_secret_itself() -> None:
    secret = "s" * 40
    assert csrf_secret(secret) == csrf_secret(secret) != secret
    assert csrf_secret(secret) != csrf_secret("t" * 40)


async def test_a_quiet_live_stream_ends_at_its_keep_alive_once_its_caller_is_refused() -> None:
    asked: list[bool] = []

    async def allowed() -> bool:
        asked.append(True)
        return len(asked) < 2  # let in at the first keep-alive, refused at the second

    queued = job(JobStatus.QUEUED)

    class Unchanged(Script):  # the job never changes: only keep-alives would be sent
        async def get_jobs(self, job_ids: list[str]) -> list[Job]:
            return [queued]

    events = [event async for event in job_changes(watch(Unchanged()), queued, keepalive=0.0,
                                                   allowed=allowed)]
    assert [event.event for event in events] == ["job", None, "error"]  # job, keep-alive, end
    assert "no longer valid" in events[-1].data
