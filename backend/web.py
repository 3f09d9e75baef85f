"""What both Litestar apps (the kernel and the data service) share about HTTP itself."""

from __future__ import annotations

import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

from backend.jobs import PATTERN_RULES

_WITH_BODY = {"POST", "PUT", "PATCH"}

# msgspec's validation messages, as Litestar (or a strict decode) hands them over.
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_REGEX = re.compile(r"^Expected `str` matching regex (?P<pattern>.+)$")
_TYPES = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_TYPE_WORDS = {"float": "a number", "int": "an integer", "str": "a string",
               "object": "a JSON object", "array": "an array", "bool": "true or false",
               "null": "null", "datetime": "a date and time (ISO 8601)"}
# The key Litestar gives a problem with the body as a whole (or with a field it cannot name).
_WHOLE_BODY = {"data", "body", ""}
_WHERE = {"body": "request body", "query": "query parameter", "path": "path parameter",
          "header": "header", "cookie": "cookie"}


def _rule(pattern: str) -> str:
    for regex, words in PATTERN_RULES.items():
        if pattern.strip("'\"") in (regex, regex.replace("\\", "\\\\")):
            return words
    return f"does not have the expected form ({pattern})"


def plain_problem(key: Any, message: Any, source: Any = "body") -> dict[str, str]:
    """One validation problem as ``{"key", "message", "source"}`` in plain words: the key
    names the field (a missing or unknown field included, never Litestar's ``data``), and
    a pattern is stated as its rule, never as a bare regex."""
    text = str(message or "").strip()
    name = "" if key is None else str(key)
    at = _AT.search(text)
    if at:
        text = text[:at.start()]
        if name in _WHOLE_BODY:
            name = at.group("path")
    parent = "" if name in _WHOLE_BODY else name + "."
    if match := _MISSING.match(text):
        name, text = parent + match.group("field"), "required, but missing"
    elif match := _UNKNOWN.match(text):
        name, text = parent + match.group("field"), "not a field of this request; leave it out"
    elif match := _REGEX.match(text):
        text = _rule(match.group("pattern"))
    elif match := _TYPES.match(text):
        expected = " or ".join(_TYPE_WORDS.get(kind.strip(), kind.strip())
                               for kind in match.group("expected").split("|"))
        text = f"must be {expected}, not {_TYPE_WORDS.get(match.group('got'), match.group('got'))}"
    elif text == "'data'" and name in _WHOLE_BODY:  # Litestar's KeyError text: no body at all
        text = "the request body is missing: send a JSON object"
    return {"key": "body" if name in _WHOLE_BODY else name, "message": text,
            "source": str(source or "body")}


def plain_detail(problems: list[dict[str, str]]) -> str:
    """A sentence naming every problem: ``Invalid request body field job_name: ...``."""
    parts = []
    for problem in problems:
        where = _WHERE.get(problem["source"], problem["source"])
        if problem["key"] == "body":
            parts.append(f"Invalid {where}: {problem['message']}")
        else:
            field = "field " if problem["source"] == "body" else ""
            parts.append(f"Invalid {where} {field}{problem['key']}: {problem['message']}")
    return "; ".join(parts) if parts else "Invalid request"


def plain_validation(extra: Any, fallback: str) -> tuple[str, list[dict[str, str]]]:
    """The detail and ``extra`` of a 400 from a validation error's ``extra`` (a list of
    problems as Litestar makes them); ``fallback`` when it names none."""
    problems = [plain_problem(item.get("key"), item.get("message"), item.get("source"))
                for item in (extra if isinstance(extra, list) else [])
                if isinstance(item, dict) and item.get("message")]
    if not problems:
        return fallback, [{"key": "body", "message": fallback, "source": "body"}]
    return plain_detail(problems), problems


def _has_body(request: Request[Any, Any, Any]) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


async def require_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]] | None:
    """A ``before_request`` hook: a request body must be ``application/json``.

    A browser sends ``text/plain`` (or a form) cross-origin without asking first, so a
    kernel that parsed any body as JSON would take jobs from any web page a user opens.
    """
    if request.method not in _WITH_BODY or not _has_body(request):
        return None
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == MediaType.JSON:
        return None
    got = media_type or "no Content-Type"
    detail = f"send the request body as JSON with Content-Type: application/json (got {got})"
    return Response({"status_code": HTTP_415_UNSUPPORTED_MEDIA_TYPE, "detail": detail},
                    status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE, media_type=MediaType.JSON)
