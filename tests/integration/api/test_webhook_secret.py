"""``/api/v1/webhooks/secret`` over a real data service: each user makes and rotates a
webhook secret of their own, shown once; MongoDB keeps only a key id, never the secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.webhook_signing import SECRET_PREFIX, derive_secret
from tests.integration.api.conftest import OpenKernel
from tests.problems import problem_of
from tests.services import SERVICE_HEADERS, create_user, sign_in

pytestmark = pytest.mark.parametrize("backend", ["redis"])

MASTER = "kernel-test-webhook-secret"
PATH = "/api/v1/webhooks/secret"


async def test_a_user_makes_then_rotates_a_secret_of_their_own_shown_once(
        open_kernel: OpenKernel, user: str, store: httpx.AsyncClient):
    kernel = await open_kernel(WEBHOOK_SECRET=MASTER)
    assert (await kernel.http.get(PATH)).json() == {"exists": False, "rotated_at": None}
    made = await kernel.http.post(PATH)
    assert made.status_code == 201, made.text
    first = made.json()["secret"]
    key = (await store.get(f"/webhook-keys/{user}")).json()
    # What the sender signs with: the secret derived from the key id the store keeps.
    assert first == derive_secret(MASTER, user, key["key_id"])
    assert first.startswith(SECRET_PREFIX) and MASTER not in first
    state = (await kernel.http.get(PATH)).json()
    assert state == {"exists": True, "rotated_at": made.json()["rotated_at"]}  # no secret
    second = (await kernel.http.post(PATH)).json()["secret"]
    new_key = (await store.get(f"/webhook-keys/{user}")).json()
    assert second != first and new_key["key_id"] != key["key_id"]
    assert second == derive_secret(MASTER, user, new_key["key_id"])
    # Another user's secret is another one, whatever they do.
    other = await kernel.sign_in(f"{user}-other")
    assert (await other.post(PATH)).json()["secret"] not in (first, second)


async def test_only_a_signed_in_user_reaches_their_secret(open_kernel: OpenKernel):
    kernel = await open_kernel(WEBHOOK_SECRET=MASTER)
    anonymous = await kernel.client()
    for method in ("GET", "POST"):
        answer = await anonymous.request(method, PATH)
        assert answer.status_code == 401 and "secret" not in answer.json()


async def test_a_kernel_without_webhook_secret_says_so_and_rotates_nothing(
        open_kernel: OpenKernel, user: str, store: httpx.AsyncClient):
    kernel = await open_kernel(WEBHOOK_SECRET="")
    answer = await kernel.http.post(PATH)
    assert answer.status_code == 503, answer.text
    assert problem_of(answer, 503)["detail"].count("WEBHOOK_SECRET")
    assert (await store.get(f"/webhook-keys/{user}")).status_code == 404


def test_the_cli_rotates_the_secret_and_then_only_says_that_one_exists(
        kernel_process: Any, kernel_env: dict[str, str], user: str, tmp_path: Path) -> None:
    url, _ = kernel_process(WEBHOOK_SECRET=MASTER)
    create_user(kernel_env["DATA_SERVICE_URL"], user)
    env = {**os.environ, "API_URL": url, "TASKBROKER_TOKEN": sign_in(url, user),
           "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "backend", "webhooks", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    assert "none yet" in cli("secret")
    secret = cli("rotate-secret")
    key = httpx.get(f"{kernel_env['DATA_SERVICE_URL']}/webhook-keys/{user}",
                    headers=SERVICE_HEADERS).json()
    assert secret == derive_secret(MASTER, user, key["key_id"])
    shown = cli("secret")
    assert "made or rotated" in shown and secret not in shown
