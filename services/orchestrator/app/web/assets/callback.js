// Strava redirects here with ?state=…&code=…&scope=… (or &error=access_denied).
// Strip those from the address bar at once, hand them to the API with this tab's verifier,
// forget the verifier, and say exactly how it went.
import {
  announce,
  api,
  athleteName,
  CALLBACK_PATH,
  describeProblem,
  focusHeading,
  getToken,
  PAGES,
  restartOnboarding,
  showError,
  takeStravaLink,
  wireConnectButton,
} from "./app.js";

const params = new URLSearchParams(location.search);
// `code` and `state` must not linger in history, bookmarks or a shared screenshot of the URL.
history.replaceState(null, "", CALLBACK_PATH);

const sections = {
  working: document.getElementById("working"),
  success: document.getElementById("success"),
  problem: document.getElementById("problem"),
};

function show(name) {
  for (const [key, section] of Object.entries(sections)) section.hidden = key !== name;
  focusHeading(sections[name]);
}

function showProblem(code, message) {
  const problem = describeProblem(code, message);
  document.getElementById("problem-title").textContent = problem.title;
  document.getElementById("problem-text").textContent = problem.text;
  document.getElementById("problem-code").textContent = code;
  show("problem");
  announce(`${problem.title}. ${problem.text}`);
}

function showSuccess(status) {
  const name = athleteName(status.athlete);
  document.getElementById("linked-as").textContent = `Linked as ${name}`;
  if (status.error) {
    const warning = document.getElementById("scope-warning");
    warning.textContent = status.error.message;
    warning.hidden = false;
  }
  show("success");
  announce(`Strava is connected. Linked as ${name}.`);
}

async function finish() {
  if (!getToken()) return restartOnboarding();
  const state = params.get("state");
  const pending = takeStravaLink();
  if (!state && !pending) {
    // Reloaded after finishing (the query is gone): nothing left to do here.
    return location.replace(PAGES.summary);
  }
  if (!state || !pending || pending.state !== state) {
    return showProblem("invalid_state");
  }
  const body = { state, code_verifier: pending.verifier };
  const error = params.get("error");
  if (error) {
    body.error = error;
  } else {
    if (params.has("code")) body.code = params.get("code");
    body.scope = params.get("scope") ?? "";
  }
  try {
    showSuccess(await api("/api/v1/strava/callback", { method: "POST", body }));
  } catch (problem) {
    if (problem.code === "unauthenticated") return restartOnboarding();
    showProblem(problem.code, problem.message);
  }
}

wireConnectButton(document.getElementById("try-again"), (problem) =>
  showError(document.getElementById("retry-error"), problem),
);
finish();
