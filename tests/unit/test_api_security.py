"""The kernel's security settings are checked at start: no weak or missing signing key."""

from __future__ import annotations

import pytest

from backend.api.security import make_auth
from backend.settings import AuthSettings


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
