"""The API's JSON parser: DRF's, with limits on the shape of what it accepts.

A 64 KiB body can hold 30,000 nested arrays, deep enough to exhaust the interpreter's
recursion (a RecursionError, a 500, before) in the decoder or in any code walking the result,
and tens of thousands of keys. JSON's ``\ud800`` escapes decode to lone surrogates, which no
database can store as UTF-8 text (an encoding error, a 500). Such documents are refused as a
400 here, before a serializer sees them.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {settings.API_JSON_MAX_DEPTH} levels") from None
        json_shape_check(data, max_depth=settings.API_JSON_MAX_DEPTH, max_values=settings.API_JSON_MAX_VALUES)
        return data


def json_shape_check(data: object, *, max_depth: int, max_values: int) -> None:
    """ParseError when ``data`` nests deeper than ``max_depth``, holds more than ``max_values``
    values (keys and items) in all, or a string (key or value) that is not valid Unicode text
    (a lone surrogate). Walks without recursion."""
    values = 0
    pending = [(data, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            children: Iterable[object] = node.values()
            for key in node:
                _text_check(key)
        elif isinstance(node, list):
            children = node
        else:
            if isinstance(node, str):
                _text_check(node)
            continue
        if depth > max_depth:
            raise ParseError(f"JSON parse error - nested deeper than {max_depth} levels")
        values += len(node)
        if values > max_values:
            raise ParseError(f"JSON parse error - more than {max_values} values")
        pending.extend((child, depth + 1) for child in children)


def _text_check(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError("JSON parse error - a string holds a lone surrogate (\\ud800-\\udfff escape)") from None
