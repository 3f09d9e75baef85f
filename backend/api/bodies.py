"""Bodies of the kernel's routes: JSON decoded strictly, and the error answers documented
in the OpenAPI schema as the routes give them (see :mod:`backend.api.errors`)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec

from backend.web import PROBLEM_JSON, FieldError, Problem, plain_detail, plain_problem

_MEANINGS = {
    400: "The body, a parameter or the path is malformed; `detail` names the field.",
    401: "Not signed in: send the session cookie or an API token as `Authorization: Bearer` "
         "(the answer carries `WWW-Authenticate`).",
    403: "Signed in, but not allowed (another user's jobs, for a non-admin).",
    404: "No such job (or not yours).",
    409: "The job's status does not allow it (`current_status` says which it is).",
    413: "The body (or the job's queue message) is over the size limit.",
    415: "The body is not `application/json`.",
    422: "The task or the executor is unknown; `detail` lists the valid ones.",
    429: "Too much work waits, or too many live streams are open; see `Retry-After`.",
    503: "A part the kernel needs is down. A submit's answer names the job (`job_id`): "
         "it was not recorded, or it is marked failed, and it never runs.",
}


def responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI answers of a route besides its success, each with the error body."""
    return {code: ResponseSpec(Problem, description=_MEANINGS[code],
                               media_type=PROBLEM_JSON) for code in codes}


def strict(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """Decode ``body`` strictly: ``"5"`` is not a number. Litestar's own decoding is lax
    (it converts strings for query parameters), so JSON bodies are checked again here."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        problem = plain_problem("body", str(exc))
        raise ValidationException(detail=plain_detail([problem]), extra=[problem]) from exc
    except msgspec.DecodeError as exc:  # a body Litestar did not parse first (a batch's)
        detail = f"request body is not valid JSON: {exc}"
        raise ValidationException(detail=detail, extra=[FieldError(field="body",
                                                                   message=detail)]) from exc
