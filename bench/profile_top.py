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


# Frames every stack of a thread passes through (process start, event loop, pool thread): left
# out of the cumulative list so that it shows the request's own layers.
_ROOTS = re.compile(
    r"\((?:click/|<frozen runpy>|uvicorn/(?:main|server|__main__|_compat)\.py|asyncio/runners\.py"
    r"|threading\.py|celery/(?:bin|apps|worker/worker)|billiard/)"
    r"|^WorkerThread\.run "
)
# Where our code and the per-request machinery the issue names sit (cumulative).
_WATCHED = re.compile(
    r"\(app/|\(api_app\.py|do_ping|_checkout|[Cc]ommit|[Rr]ollback|AESGCM|decrypt|"
    r"\(structlog/|dump_json|model_validate|Session\.close|BaseHTTPMiddleware\.__call__ "
)
_PACKAGE = re.compile(r"\(([^/()]+?)(?:/|\.py|\))")


def package(frame: str) -> str:
    """`Session.scalar (sqlalchemy/orm/session.py)` → sqlalchemy."""
    match = _PACKAGE.search(frame)
    return match.group(1) if match else frame


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
    by_package: Counter[str] = Counter()
    for frame, count in own.items():
        by_package[package(frame)] += count
    roots = [frame for frame in cumulative if _ROOTS.search(frame)]
    for frame in roots:
        del cumulative[frame]
    lines = [f"== {path.name}: {total} samples"]
    lines.append("-- own samples by package (leaf frame's package or module)")
    lines.append(
        "   "
        + ", ".join(
            f"{name} {100 * n / max(total, 1):.1f}%" for name, n in by_package.most_common(12)
        )
    )
    watched: Counter[str] = Counter(
        {frame: count for frame, count in cumulative.items() if _WATCHED.search(frame)}
    )
    for title, counter in (
        ("own", own),
        ("cumulative (process/thread roots left out)", cumulative),
        ("cumulative, our code and per-request machinery only", watched),
    ):
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
