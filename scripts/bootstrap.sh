# Sourced by scripts/dev and scripts/test: make sure uv and the locked environment exist.
# Uses the machine's Python, 3.11 or newer (never downloads an interpreter).
export UV_PYTHON_DOWNLOADS=never
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --frozen --quiet
