"""JSON read from messages and dead letters, with its nesting bounded.

A message body (from the broker, or a dead letter as staff edited it) may nest thousands of
levels: ``json.loads`` then raises RecursionError, and so would any code that walks the
result (rendering, validation, the JSON column). No contract nests more than a few levels, so
anything deeper than ``PAYLOAD_MAX_DEPTH`` is refused as malformed, the same way as text that
is no JSON at all (``json.JSONDecodeError`` is a ValueError too).
"""

from __future__ import annotations

import json
from typing import Any

PAYLOAD_MAX_DEPTH = 32


class JSONTooDeep(ValueError):
    """The document nests deeper than allowed."""


def json_loads_bounded(text: str | bytes, *, max_depth: int = PAYLOAD_MAX_DEPTH) -> Any:
    """``json.loads``, refusing (JSONTooDeep) a document nested deeper than ``max_depth``.
    Raises json.JSONDecodeError for text that is no JSON, as json.loads does."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise JSONTooDeep(f"nested deeper than {max_depth} levels") from None
    pending = [(data, 1)]
    while pending:  # no recursion: the walk itself must survive what it checks
        node, depth = pending.pop()
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            raise JSONTooDeep(f"nested deeper than {max_depth} levels")
        pending.extend((child, depth + 1) for child in children)
    return data
