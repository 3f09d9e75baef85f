"""What both Litestar apps (the kernel and the data service) share about HTTP itself,
among it the one shape of every error answer (RFC 9457 problem details, docs/errors.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    SerializationException,
    ValidationException,
)
from litestar.status_codes import (
    HTTP_404_NOT_FOUND,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_422_UNPROCESSABLE_ENTITY,
)

from backend.accounts import TOKEN_ID_PATTERN, USERNAME_PATTERN
from backend.jobs import PATTERN_RULES
from backend.problems import PROBLEM_JSON, FieldError, Problem

__all__ = ["PROBLEM_JSON", "FieldError", "Problem", "before_request", "field_errors",
           "http_problem", "invalid", "problem", "require_json", "unprocessable",
           "validation_problem"]


def status_title(status: int) -> str:
    """The HTTP status phrase (``Unprocessable Content``) of ``status``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def field_errors(items: Any, default_message: str = "") -> list[FieldError]:
    """``errors`` from what an exception carries: a list of problems as Litestar makes them
    (``{"key", "message", "source"}``), one such mapping, or ``FieldError`` s."""
    if isinstance(items, Mapping):
        items = [items] if "key" in items or "field" in items else []
    errors: list[FieldError] = []
    for item in items if isinstance(items, list | tuple) else []:
        if isinstance(item, FieldError):
            errors.append(item)
        elif isinstance(item, Mapping) and (item.get("key") or item.get("field")):
            errors.append(FieldError(field=str(item.get("field") or item.get("key")),
                                     message=str(item.get("message") or default_message),
                                     in_=str(item.get("in") or item.get("source") or "body")))
    return errors


def problem(request: Request[Any, Any, Any] | None, status: int, detail: str,
            errors: Iterable[FieldError] = (), *, headers: Mapping[str, str] | None = None,
            instance: str | None = None, **members: Any) -> Response[Problem]:
    """The one error answer of both apps: ``application/problem+json`` with ``title`` the
    status phrase, ``instance`` the request's path, ``errors`` always a list, and
    ``members`` (``retry_after_seconds``, ``job_id``, ...) where they carry data."""
    # Not Litestar's ProblemDetailsPlugin: its converters see the exception alone (no
    # request, so no ``instance``), put an HTTPException's detail in ``title`` and a list
    # of fields in an ``extra`` member; the body here is a declared struct instead.
    path = instance if instance is not None else (request.url.path if request else "")
    body = Problem(type="about:blank", title=status_title(status), status=status,
                   detail=detail.strip() or status_title(status), instance=path,
                   errors=list(errors), **members)
    return Response(body, status_code=status, media_type=PROBLEM_JSON,
                    headers=dict(headers or {}))


def http_problem(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """Any Litestar ``HTTPException`` (an unknown path, a wrong method, a 403, a CSRF
    refusal, a 409 of our own) as a problem: its detail, its headers, its named fields."""
    detail = str(exc.detail or "")
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"nothing here: no route answers {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        allow = (exc.headers or {}).get("allow")
        detail += f"; use {allow}" if allow else ""
    elif exc.status_code == 403 and "csrf" in detail.lower():
        detail = ("the CSRF token is missing or wrong: send the csrftoken cookie's value in "
                  "the X-CSRFToken header, or authenticate with Authorization: Bearer")
    extra = exc.extra if isinstance(exc.extra, Mapping) else {}
    members = {name: extra[name] for name in ("job_id", "current_status", "limit_bytes")
               if extra.get(name) is not None}
    return problem(request, exc.status_code, detail, field_errors(exc.extra, detail),
                   headers=exc.headers, **members)


_WITH_BODY = {"POST", "PUT", "PATCH"}

# msgspec's validation messages, as Litestar (or a strict decode) hands them over.
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_REGEX = re.compile(r"^Expected `str` matching regex (?P<pattern>.+)$")
_TYPES = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_BOUND = re.compile(r"^Expected `(?P<expected>[^`]+)`(?P<length> of length)? "
                    r"(?P<op>>=|<=|>|<) (?P<bound>\S+)$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")
_OPS = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}
_TYPE_WORDS = {"float": "a number", "int": "an integer", "str": "a string",
               "object": "a JSON object", "array": "an array", "bool": "true or false",
               "null": "null", "datetime": "a date and time (ISO 8601)"}
# The key Litestar gives a problem with the body as a whole (or with a field it cannot name).
_WHOLE_BODY = {"data", "body", ""}
_WHERE = {"body": "request body", "query": "query parameter", "path": "path parameter",
          "header": "header", "cookie": "cookie"}


_RULES = {**PATTERN_RULES,
          TOKEN_ID_PATTERN: "must be a token id: 32 lower-case hex digits",
          USERNAME_PATTERN: "must be a user name: letters, digits and '.', '_', '@', '+', '-', "
                            "not starting with '.'",
          r"^[0-9a-f]{64}$": "must be 64 lower-case hex digits"}


def _rule(pattern: str) -> str:
    for regex, words in _RULES.items():
        if pattern.strip("'\"") in (regex, regex.replace("\\", "\\\\")):
            return words
    return f"does not have the expected form ({pattern})"


def plain_problem(key: Any, message: Any, source: Any = "body") -> FieldError:
    """One validation problem in plain words: the field is named (a missing or unknown
    field included, never Litestar's ``data``), and a pattern is stated as its rule, never
    as a bare regex."""
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
    elif match := _BOUND.match(text):
        expected = _TYPE_WORDS.get(match.group("expected"), match.group("expected"))
        bound = f"{_OPS[match.group('op')]} {match.group('bound')}"
        text = (f"must be {expected} of {bound} characters" if match.group("length")
                else f"must be {expected}, {bound}")
    elif match := _ENUM.match(text):
        text = f"{match.group('value')} is not one of the allowed values"
    elif text == "'data'" and name in _WHOLE_BODY:  # Litestar's KeyError text: no body at all
        text = "the request body is missing: send a JSON object"
    where = getattr(source, "value", source)  # Litestar's ParamType, or a plain word
    return FieldError(field="body" if name in _WHOLE_BODY else name, message=text,
                      in_=str(where or "body"))


def plain_detail(problems: list[FieldError]) -> str:
    """A sentence naming every problem: ``Invalid request body field job_name: ...``."""
    parts = []
    for problem in problems:
        where = _WHERE.get(problem.in_, problem.in_)
        if problem.field == "body":
            parts.append(f"Invalid {where}: {problem.message}")
        else:
            field = "field " if problem.in_ == "body" else ""
            parts.append(f"Invalid {where} {field}{problem.field}: {problem.message}")
    return "; ".join(parts) if parts else "Invalid request"


def plain_validation(extra: Any, fallback: str) -> tuple[str, list[FieldError]]:
    """The detail and ``errors`` of a 400 from a validation error's ``extra`` (a list of
    problems as Litestar makes them); ``fallback`` when it names none."""
    problems = [item if isinstance(item, FieldError)
                else plain_problem(item.get("key"), item.get("message"), item.get("source"))
                for item in (extra if isinstance(extra, list) else [])
                if isinstance(item, FieldError) or (isinstance(item, dict) and item.get("message"))]
    if not problems:
        return fallback, [FieldError(field="body", message=fallback)]
    return plain_detail(problems), problems


def invalid(field: str, message: str, in_: str = "body") -> ValidationException:
    """A 400 naming ``field`` (where it was sent: ``in_``) and what is wrong with it."""
    error = FieldError(field=field, message=message, in_=in_)
    return ValidationException(detail=plain_detail([error]), extra=[error])


def unprocessable(field: str, message: str, detail: str | None = None,
                  in_: str = "body") -> ClientException:
    """A 422: ``field`` is well formed but names what this server does not have or do."""
    return ClientException(status_code=HTTP_422_UNPROCESSABLE_ENTITY, detail=detail or message,
                           extra=[FieldError(field=field, message=message, in_=in_)])


def validation_problem(request: Request[Any, Any, Any], exc: HTTPException,
                       ) -> Response[Problem]:
    """Every 400 of both apps: a sentence naming each bad field (in words), the fields in
    ``errors``; a body that is not JSON said so."""
    if isinstance(exc.__cause__, SerializationException):
        # msgspec's own words ("Input data was truncated") do not say it is the JSON.
        detail = f"request body is not valid JSON: {exc.detail}"
        return problem(request, exc.status_code, detail, [FieldError(field="body",
                                                                     message=detail)])
    detail, problems = plain_validation(exc.extra, str(exc.detail))
    named = [_as_sent(request, item) for item in problems]
    if named != problems:
        detail = plain_detail(named)
    return problem(request, exc.status_code, detail, named)


def _as_sent(request: Request[Any, Any, Any], error: FieldError) -> FieldError:
    """``error`` naming the parameter as the caller sends it (``all``), not as the handler
    calls it (``all_users``)."""
    if error.in_ == "body":
        return error
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(error.field)
    except AttributeError:  # no handler (the request never reached a route)
        return error
    definition = getattr(parameter, "kwarg_definition", None)
    sent = getattr(definition, "name", None) or getattr(definition, error.in_, None)
    return FieldError(field=sent, message=error.message, in_=error.in_) if sent else error


def _has_body(request: Request[Any, Any, Any]) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


async def require_json(request: Request[Any, Any, Any]) -> Response[Problem] | None:
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
    return problem(request, HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail,
                   [FieldError(field="Content-Type", message=detail, in_="header")])


async def schema_path_not_found(request: Request[Any, Any, Any]) -> Response[Problem] | None:
    """A ``before_request`` hook: a path under /schema that no viewer serves answers a 404
    problem, not Litestar's HTML error page."""
    if request.route_handler.handler_name != "handle_schema_path_not_found":
        return None
    return problem(request, HTTP_404_NOT_FOUND, f"nothing here: no API schema viewer at "
                   f"{request.url.path} (try /schema or /schema/openapi.json)")


async def before_request(request: Request[Any, Any, Any]) -> Response[Problem] | None:
    """Both apps' ``before_request``: :func:`schema_path_not_found`, :func:`require_json`."""
    return await schema_path_not_found(request) or await require_json(request)
