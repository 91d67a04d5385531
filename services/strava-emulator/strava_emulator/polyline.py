"""Google encoded polyline format, as Strava uses for ``map.summary_polyline``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def _encode_value(value: int, out: list[str]) -> None:
    value = ~(value << 1) if value < 0 else value << 1
    while value >= 0x20:
        out.append(chr((0x20 | (value & 0x1F)) + 63))
        value >>= 5
    out.append(chr(value + 63))


def encode(points: Iterable[Sequence[float]], precision: int = 5) -> str:
    """Encode ``[(lat, lng), ...]``; deltas between rounded points, 5 decimals like Strava."""
    factor = 10**precision
    out: list[str] = []
    prev_lat = prev_lng = 0
    for lat, lng in points:
        ilat = round(lat * factor)
        ilng = round(lng * factor)
        _encode_value(ilat - prev_lat, out)
        _encode_value(ilng - prev_lng, out)
        prev_lat, prev_lng = ilat, ilng
    return "".join(out)


def decode(encoded: str, precision: int = 5) -> list[tuple[float, float]]:
    """Inverse of :func:`encode` (used by tests and handy for clients' fixtures)."""
    factor = 10**precision
    coords: list[tuple[float, float]] = []
    index = lat = lng = 0
    while index < len(encoded):
        deltas: list[int] = []
        for _ in range(2):
            shift = result = 0
            while True:
                byte = ord(encoded[index]) - 63
                index += 1
                result |= (byte & 0x1F) << shift
                shift += 5
                if byte < 0x20:
                    break
            deltas.append(~(result >> 1) if result & 1 else result >> 1)
        lat += deltas[0]
        lng += deltas[1]
        coords.append((lat / factor, lng / factor))
    return coords
