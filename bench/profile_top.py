"""Top frames of py-spy raw (collapsed-stack) profiles, by own and by cumulative samples.

    uv run python bench/profile_top.py PROFILE.txt [...] [--top 25]

A raw profile (`py-spy record --format raw`) has one line per distinct stack,
`outer (file:line);...;inner (file:line) COUNT`. Frames are grouped by function and file (the
line number dropped); a frame counts once per stack for the cumulative figure.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")
# Long prefixes of installed packages and of this repository, dropped for reading.
_PREFIX = re.compile(r"\((?:/[^()]*?/(?:site-packages|lib/python3\.\d+|services/[^/]+)/)")


def _frame(raw: str) -> str:
    return _PREFIX.sub("(", _FRAME_LINE.sub(")", raw.strip()))


def aggregate(text: str) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        stack, count = match.group(1), int(match.group(2))
        frames = [_frame(frame) for frame in stack.split(";") if frame.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            cumulative[frame] += count
    return own, cumulative, total


def report(path: Path, top: int) -> str:
    own, cumulative, total = aggregate(path.read_text())
    lines = [f"== {path.name}: {total} samples (py-spy, active CPU samples only)"]
    for title, counter in (("own", own), ("cumulative", cumulative)):
        lines.append(f"-- top {top} by {title} samples")
        for frame, count in counter.most_common(top):
            lines.append(f"{count:7d} {100 * count / max(total, 1):5.1f}%  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print("\n\n".join(report(path, args.top) for path in args.profiles))


if __name__ == "__main__":
    main()
