"""A request's headers as they arrived: one value per name for plain lookups, and every value
of a name that was sent more than once, which is what signature checks need to see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

_NONE_REPEATED: Mapping[str, list[str]] = MappingProxyType({})


class ReceivedHeaders(dict[str, str]):
    """Lower-case header name -> its first value, plus `getlist` for every value in order.

    Built once per request from the ASGI pairs. Most requests repeat no header; those pay for
    one dict and nothing else.
    """

    _repeated: Mapping[str, list[str]] = _NONE_REPEATED

    @classmethod
    def from_asgi(cls, raw: Iterable[tuple[bytes, bytes]]) -> ReceivedHeaders:
        """From ASGI's (name, value) byte pairs; servers give the names in lower case."""
        pairs = raw if isinstance(raw, list) else list(raw)
        # Reversed, so that the first value of a repeated name is the one kept.
        headers = cls({k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(pairs)})
        if len(headers) != len(pairs):
            every: dict[str, list[str]] = {}
            for name, value in pairs:
                every.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
            headers._repeated = {name: values for name, values in every.items() if len(values) > 1}
        return headers

    def getlist(self, name: str) -> list[str]:
        """Every value of header `name` (any case), in the order sent."""
        name = name.lower()
        repeated = self._repeated.get(name)
        if repeated is not None:
            return list(repeated)
        value = self.get(name)
        return [] if value is None else [value]
