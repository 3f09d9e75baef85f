"""docs/examples/webhook_receiver.py, the receiver the README's webhook recipe runs, accepts
a delivery signed the way the dispatcher signs it (backend.webhook_signing.signature) and
refuses a forged, stale or re-addressed one."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from backend.local.embedded import answers, free_port
from backend.webhook_signing import JOB_ID_HEADER, SIGNATURE_HEADER, signature

RECEIVER = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_receiver.py"
SECRET = "whsec_example-secret"
JOB_ID = "6650c0ffee0123456789abcd"
BODY = b'{"id":"6650c0ffee0123456789abcd","status":"succeeded","result":{"words":3}}'


def _deliver(make_header: Callable[[str], str]) -> tuple[int, int, str]:
    """One delivery to a fresh ``--once`` receiver, signed by ``make_header(its URL)``:
    (the HTTP status it answered, its exit code, its output)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/taskbroker"
    receiver = subprocess.Popen(
        [sys.executable, str(RECEIVER), "--once", f"127.0.0.1:{port}"],
        env={"TB_WEBHOOK_SECRET": SECRET}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        deadline = time.monotonic() + 10
        while not answers("127.0.0.1", port):
            assert time.monotonic() < deadline and receiver.poll() is None, "receiver not up"
            time.sleep(0.05)
        answer = httpx.post(url, content=BODY, timeout=10,
                            headers={SIGNATURE_HEADER: make_header(url), JOB_ID_HEADER: JOB_ID})
        code = receiver.wait(10)
        return answer.status_code, code, receiver.stdout.read() if receiver.stdout else ""
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait(10)


def test_a_delivery_signed_as_the_dispatcher_signs_verifies() -> None:
    status, code, output = _deliver(lambda url: signature(SECRET, url, BODY))
    assert (status, code) == (204, 0), output
    assert f'verified: job {JOB_ID} succeeded, result {{"words": 3}}' in output


FORGERIES: dict[str, Callable[[str], str]] = {
    "another secret": lambda url: signature("whsec_someone-else", url, BODY),
    "an hour old": lambda url: signature(SECRET, url, BODY, timestamp=int(time.time()) - 3600),
    "signed for another URL": lambda url: signature(SECRET, url + "-elsewhere", BODY),
    "no signature": lambda url: "",
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_delivery_that_does_not_verify_is_refused(forgery: str) -> None:
    status, code, output = _deliver(FORGERIES[forgery])
    assert (status, code) == (401, 1), output
    assert f"refused: job {JOB_ID}, the signature does not verify" in output
