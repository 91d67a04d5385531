// Step 2: "Connect with Strava" makes a PKCE pair, asks for a link token and opens Strava.
import { api, getToken, PAGES, restartOnboarding, showError, wireConnectButton } from "./app.js";

const button = document.getElementById("connect");
const error = document.getElementById("connect-error");

async function check() {
  if (!getToken()) return location.replace(PAGES.profile);
  try {
    const summary = await api("/api/v1/profile/summary");
    if (!summary.profile) return location.replace(PAGES.profile);
    if (summary.strava.status === "linked") return location.replace(PAGES.summary);
  } catch (problem) {
    if (problem.code === "unauthenticated") return restartOnboarding();
  }
}

wireConnectButton(button, (problem) => showError(error, problem));
check();
