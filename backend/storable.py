"""Checks msgspec cannot express: free-form JSON (``params``, ``result``) that BSON can store.

msgspec already validated types, lengths and ranges; JSON still admits integers wider
than BSON's 64 bits, keys BSON cannot encode (NUL) or MongoDB reserves (``$``-prefixed),
and nesting deeper than MongoDB's limit. Caught here, they are a 400 naming the field
instead of a driver error.
"""

from __future__ import annotations

from typing import Any

from backend.errors import UnstorableValueError

MAX_DEPTH = 32
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def check_storable(field: str, value: Any) -> None:
    """Raise :class:`UnstorableValueError` if ``value`` cannot be stored as BSON."""
    # Iterative walk: a hostile body must not be able to exhaust the Python stack.
    stack: list[tuple[str, Any, int]] = [(field, value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnstorableValueError(field, f"nested deeper than {MAX_DEPTH} levels at {path}")
        if isinstance(item, bool) or item is None or isinstance(item, float | str):
            continue
        if isinstance(item, int):
            if not _INT64_MIN <= item <= _INT64_MAX:
                raise UnstorableValueError(field, f"integer at {path} does not fit in 64 bits")
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise UnstorableValueError(field, f"non-string key at {path}")
                if "\x00" in key or key.startswith("$"):
                    raise UnstorableValueError(
                        field, f"key {key[:50]!r} at {path} contains NUL or starts with '$'"
                    )
                stack.append((f"{path}.{key[:50]}", child, depth + 1))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child, depth + 1) for index, child in enumerate(item))
        else:
            raise UnstorableValueError(field, f"unsupported value of type {type(item).__name__}")
