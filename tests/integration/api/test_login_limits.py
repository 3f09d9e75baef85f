"""Password guessing against a real kernel process, set up as compose sets it (F6).

Sign-ins are limited per client address (LOGIN_RATE_LIMIT) and per user name
(LOGIN_FAILURES_PER_ACCOUNT), and X-Forwarded-For is believed from TRUSTED_PROXIES only.
The tests reach the kernel from 127.0.0.1: where a test adds 127.0.0.1 to compose's
TRUSTED_PROXIES, the test client plays compose's nginx and sends what nginx forwards
(the client's claimed X-Forwarded-For, then the address nginx saw); elsewhere it is an
untrusted client of the kernel's published port.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import httpx
import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from backend.api.__main__ import trusted_proxies
from tests.ops.settings_files import load_compose
from tests.services import TEST_PASSWORD, create_user

ROUTES = ["/api/v1/auth/login", "/api/v1/auth/token"]
GUESSES = 50


def _compose() -> tuple[str, str, ipaddress.IPv4Network, ipaddress.IPv4Network]:
    """Compose's TRUSTED_PROXIES, nginx's address, and the `front` network's subnet and
    range of the other containers' addresses."""
    compose = load_compose()
    value = compose["x-backend-env"]["TRUSTED_PROXIES"]
    networks = compose["services"]["web"]["networks"]
    nginx = networks["front"]["ipv4_address"] if isinstance(networks, dict) else ""
    ipam = (compose["networks"]["front"] or {}).get("ipam", {"config": [{}]})["config"][0]
    return (value, nginx, ipaddress.ip_network(ipam.get("subnet", "0.0.0.0/32")),
            ipaddress.ip_network(ipam.get("ip_range", "0.0.0.0/32")))


COMPOSE_PROXIES, NGINX, FRONT, OTHERS = _compose()
GATEWAY = str(next(FRONT.hosts()))  # Docker's: how the host's clients reach containers


def _name() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def _attempt(url: str, route: str, username: str, password: str,
             forwarded: str | None = None, source: str = "127.0.0.1") -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    body = {"username": username, "password": password}
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source)) as client:
        return client.post(f"{url}{route}", timeout=30, headers=headers,
                           json=body | ({"name": "tests"} if route.endswith("/token") else {}))


def _stopped_after(codes: list[int], limit: int) -> bool:
    """At most ``limit`` attempts were answered (401), then every one was a 429."""
    first = codes.index(429) if 429 in codes else len(codes)
    return first <= limit and set(codes[:first]) <= {401} and set(codes[first:]) == {429}


@pytest.mark.parametrize("backend", ["redis"])
@pytest.mark.parametrize("route", ROUTES)
def test_guessing_one_password_from_ever_new_addresses_is_stopped(
        kernel_process: Any, data_service: str, route: str) -> None:
    # Each guess really comes from another client (nginx names a new one every time): the
    # address limit cannot stop that, the user name's count does.
    url, _ = kernel_process(TRUSTED_PROXIES=f"127.0.0.1,{COMPOSE_PROXIES}",
                            LOGIN_RATE_LIMIT="10/minute", LOGIN_FAILURES_PER_ACCOUNT="10")
    victim, bystander = _name(), _name()
    create_user(data_service, victim)
    create_user(data_service, bystander)
    answers = [_attempt(url, route, victim, f"guess-{n}", f"203.0.113.{n + 1}")
               for n in range(GUESSES)]
    codes = [answer.status_code for answer in answers]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}, codes
    assert int(answers[-1].headers["Retry-After"]) >= 1
    # Even the right password waits now: the answer tells the guesser nothing.
    assert _attempt(url, route, victim, TEST_PASSWORD, "198.51.100.7").status_code == 429
    # Another account, from another client, is not held up.
    assert _attempt(url, route, bystander, TEST_PASSWORD,
                    "198.51.100.8").status_code in (200, 201)


@pytest.mark.parametrize("backend", ["redis"])
def test_through_compose_nginx_a_forged_forwarded_address_gains_nothing(
        kernel_process: Any) -> None:
    # The attacker reaches nginx from the host (through Docker's gateway) and puts a new
    # X-Forwarded-For on every attempt; nginx appends the gateway. Only nginx is believed,
    # so the kernel counts the gateway, whatever the attacker claims.
    url, _ = kernel_process(TRUSTED_PROXIES=f"127.0.0.1,{COMPOSE_PROXIES}",
                            LOGIN_RATE_LIMIT="3/minute", LOGIN_FAILURES_PER_ACCOUNT="0")
    codes = [_attempt(url, route, _name(), "guess", f"203.0.113.{n + 1}, {GATEWAY}")
             .status_code for n in range(4) for route in ROUTES]
    assert _stopped_after(codes, 3), codes


@pytest.mark.parametrize("backend", ["redis"])
def test_by_default_no_forwarded_address_is_believed(kernel_process: Any) -> None:
    # TRUSTED_PROXIES left at its default: a client that forges X-Forwarded-For is still
    # counted under its own address (a loopback address of this test alone: other tests
    # sign in from 127.0.0.1, and the counts live in the session's Redis).
    url, _ = kernel_process(LOGIN_RATE_LIMIT="3/minute", LOGIN_FAILURES_PER_ACCOUNT="0")
    source = str(ipaddress.ip_address("127.1.0.1") + uuid.uuid4().int % 2**22)
    codes = [_attempt(url, route, _name(), "guess", f"203.0.113.{n + 1}", source).status_code
             for n in range(4) for route in ROUTES]
    assert _stopped_after(codes, 3), codes


async def test_compose_believes_its_nginx_and_no_other_peer() -> None:
    # uvicorn's own proxy header middleware, with compose's value, on compose's addresses.
    assert trusted_proxies(COMPOSE_PROXIES) == [NGINX]
    address = ipaddress.ip_address(NGINX)
    assert address in FRONT and address not in OTHERS and NGINX != GATEWAY
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    proxy = ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxies(COMPOSE_PROXIES))
    api = str(next(OTHERS.hosts()))
    for peer, forwarded in [(GATEWAY, "203.0.113.9"), (api, "203.0.113.9"),
                            ("172.17.0.1", "203.0.113.9"), (NGINX, f"203.0.113.9, {GATEWAY}")]:
        scope = {"type": "http", "client": (peer, 40000),
                 "headers": [(b"x-forwarded-for", forwarded.encode())]}
        await proxy(scope, None, None)  # type: ignore[arg-type]
    assert seen == [GATEWAY, api, "172.17.0.1", GATEWAY]


def test_the_kernel_refuses_to_start_with_a_proxy_list_it_cannot_read() -> None:
    assert trusted_proxies("") == []
    assert trusted_proxies(" 10.193.117.2, 10.244.0.0/16 ") == ["10.193.117.2", "10.244.0.0/16"]
    for wrong in ("*", "nginx", "10.0.0.0/33"):
        with pytest.raises(SystemExit, match="TRUSTED_PROXIES"):
            trusted_proxies(wrong)
