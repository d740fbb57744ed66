"""Label templates (`"Disk {tags[mount]} at {value:.0f}% on {host}"`) checked at load, safe to render.

A template with a syntax error, an unknown name or attribute access fails when
the rules file loads. At evaluation a key the alert does not have renders as
`<no tags[mount]>` and a format that does not fit the value renders the value
plainly: an alert is never lost to its own summary.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_TEMPLATE_BYTES = 1024


class _Missing:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _LenientFormatter(string.Formatter):
    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        try:
            return super().get_field(field_name, args, kwargs)
        except (KeyError, IndexError, TypeError, AttributeError):
            return _Missing(field_name), field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, _Missing):
            return f"<no {value.name}>"
        if value is None:
            return "-"
        try:
            return format(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


_LENIENT = _LenientFormatter()
_STRICT = string.Formatter()


@dataclass(frozen=True, slots=True)
class Template:
    text: str

    def render(self, values: Mapping[str, Any]) -> str:
        """The text with `values` filled in; never raises for a missing key or odd value."""
        if "{" not in self.text:
            return self.text.replace("}}", "}")
        return _LENIENT.vformat(self.text, (), values)


def check_template(text: object, names: Mapping[str, Any]) -> str | None:
    """Why `text` is not a usable template for `names` (name -> sample value), or None.

    The sample values give the format specs a real value to be tried on, so
    `{value:.0q}` fails here rather than at 3 a.m.
    """
    if not isinstance(text, str):
        return "must be a string"
    if len(text.encode()) > MAX_TEMPLATE_BYTES:
        return f"must be at most {MAX_TEMPLATE_BYTES} bytes"
    try:
        parsed = list(_STRICT.parse(text))
    except ValueError as exc:
        return f"invalid template: {exc}"
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            return "invalid template: placeholders must be named, like {host}"
        if "." in field.split("[", 1)[0] or "]." in field:
            return f"invalid template: {{{field}}}: attribute access is not allowed"
        root = field.split("[", 1)[0]
        if root not in names:
            return f"invalid template: unknown name {{{root}}} (known: {', '.join(sorted(names))})"
        if spec and "{" in spec:
            return f"invalid template: {{{field}}}: nested placeholders are not allowed"
        if conversion not in (None, "r", "s", "a"):
            return f"invalid template: {{{field}}}: unknown conversion !{conversion}"
        sample = names[root]
        if spec and "[" not in field and sample is not None:
            try:
                format(sample, spec)
            except (ValueError, TypeError) as exc:
                return f"invalid template: {{{field}:{spec}}}: {exc}"
    return None
