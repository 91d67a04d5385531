"""Google encoded polyline format, as Strava uses for ``map.summary_polyline``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def encode(points: Iterable[Sequence[float]], precision: int = 5) -> str:
    """Encode ``[(lat, lng), ...]`` in degrees; 5 decimals, like Strava."""
    factor = 10**precision
    return encode_e5((round(lat * factor), round(lng * factor)) for lat, lng in points)


def encode_e5(points: Iterable[tuple[int, int]]) -> str:
    """Encode points already scaled to integers (the format's deltas of rounded values).

    Hot in the generator, hence the inlined loop."""
    out: list[str] = []
    append = out.append
    prev_lat = prev_lng = 0
    for lat, lng in points:
        for delta in (lat - prev_lat, lng - prev_lng):
            value = ~(delta << 1) if delta < 0 else delta << 1
            while value >= 0x20:
                append(chr((0x20 | (value & 0x1F)) + 63))
                value >>= 5
            append(chr(value + 63))
        prev_lat, prev_lng = lat, lng
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
