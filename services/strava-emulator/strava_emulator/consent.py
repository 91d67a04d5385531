"""The sandbox consent page: pick an athlete, untick scopes, Authorize or Cancel.

Self-contained HTML (inline CSS, no scripts or third-party assets). Its element ids and names
are a stable contract for browser tests; see ``render_consent_page``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Final

from strava_emulator.data import Athlete

SCOPE_TEXT: Final = {
    "read": "View data about your public segments, routes, profile, posts and events",
    "read_all": "View data about your private routes, segments, and events",
    "profile:read_all": "View your complete Strava profile",
    "profile:write": "Update your weight, FTP and starred segments",
    "activity:read": "View data about your activities (Everyone and Followers)",
    "activity:read_all": "View data about your private activities (including Only You)",
    "activity:write": "Upload your activities from the app to Strava",
}

_STYLE: Final = """
:root { --strava: #fc4c02; --ink: #242428; --muted: #6d6d78; --line: #dfdfe8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--ink); background: #f7f7fa; }
header { background: var(--strava); color: #fff; padding: 14px 24px; font-weight: 700;
         letter-spacing: .02em; }
header small { font-weight: 400; opacity: .85; margin-left: 8px; }
main { max-width: 520px; margin: 32px auto; background: #fff; border: 1px solid var(--line);
       border-radius: 6px; padding: 28px; }
h1 { font-size: 22px; margin: 0 0 6px; }
p.lead { color: var(--muted); margin: 0 0 20px; }
label.field { display: block; font-weight: 600; margin: 16px 0 6px; }
select { width: 100%; padding: 9px; font-size: 15px; border: 1px solid var(--line);
         border-radius: 4px; background: #fff; }
fieldset { border: 1px solid var(--line); border-radius: 4px; margin: 18px 0; padding: 10px 14px; }
legend { font-weight: 600; padding: 0 6px; }
.scope { display: flex; gap: 10px; align-items: flex-start; padding: 7px 0; }
.scope input { margin-top: 4px; accent-color: var(--strava); }
.scope code { font-size: 12px; color: var(--muted); display: block; }
.actions { display: flex; gap: 12px; margin-top: 22px; }
button { flex: 1; padding: 11px; font-size: 15px; font-weight: 700; border-radius: 4px;
         cursor: pointer; border: 1px solid var(--strava); }
#authorize { background: var(--strava); color: #fff; }
#cancel { background: #fff; color: var(--strava); }
.note { color: var(--muted); font-size: 12px; margin-top: 18px; }
"""


def render_consent_page(
    *,
    client_id: int,
    redirect_uri: str,
    state: str,
    requested_scopes: Sequence[str],
    athletes: Iterable[Athlete],
    callback_host: str,
) -> str:
    """Stable selectors: ``select#athlete[name=athlete_id]``, one
    ``input[type=checkbox][name=scope][value=<scope>]`` per requested scope (checked), and
    ``button#authorize`` / ``button#cancel`` (``name=decision``) in the one form."""
    options = "\n".join(
        f'      <option value="{athlete.id}">{escape(athlete.firstname)} '
        f"{escape(athlete.lastname)}</option>"
        for athlete in athletes
    )
    scopes = "\n".join(
        f'    <label class="scope"><input type="checkbox" name="scope" value="{escape(scope)}"'
        f" checked><span>{escape(SCOPE_TEXT.get(scope, scope))}<code>{escape(scope)}</code>"
        "</span></label>"
        for scope in requested_scopes
    )
    hidden = {
        "client_id": str(client_id),
        "redirect_uri": redirect_uri,
        "state": state,
        "requested_scope": ",".join(requested_scopes),
    }
    hidden_inputs = "\n".join(
        f'  <input type="hidden" name="{name}" value="{escape(value, quote=True)}">'
        for name, value in hidden.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize application | Strava sandbox</title>
<style>{_STYLE}</style>
</head>
<body>
<header>STRAVA <small>sandbox emulator</small></header>
<main>
<h1>Authorize application</h1>
<p class="lead">Application <strong>{client_id}</strong> wants to connect to your Strava
account and return you to <strong>{escape(callback_host)}</strong>.</p>
<form method="post" action="/oauth/authorize/decision">
{hidden_inputs}
  <label class="field" for="athlete">Sign in as</label>
  <select id="athlete" name="athlete_id">
{options}
  </select>
  <fieldset>
    <legend>Permissions</legend>
{scopes}
  </fieldset>
  <div class="actions">
    <button id="authorize" type="submit" name="decision" value="authorize">Authorize</button>
    <button id="cancel" type="submit" name="decision" value="cancel">Cancel</button>
  </div>
</form>
<p class="note">Sandbox only: no real Strava account is involved.</p>
</main>
</body>
</html>
"""
