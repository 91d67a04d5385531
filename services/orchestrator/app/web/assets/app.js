// Coach George web onboarding: what every page shares (session, API calls, PKCE, formatting).
// Plain ES module, no dependencies, nothing loaded from outside this origin.

const TOKEN_KEY = "coachGeorge.accessToken";
const LINK_KEY = "coachGeorge.stravaLink";
export const CALLBACK_PATH = "/onboarding/strava/callback";
export const PAGES = {
  profile: "/onboarding/profile",
  connect: "/onboarding/strava",
  summary: "/onboarding/summary",
};

// --- the runner session (stands in for the app's identity provider) ---

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function setToken(token) {
  localStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage unavailable: nothing to clear */
  }
}

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** Call the API with the runner's bearer token; resolves to the JSON body, throws ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(
      0,
      "network_error",
      "Coach George could not be reached. Check your connection and try again.",
    );
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401) clearToken();
    throw new ApiError(
      response.status,
      data?.error ?? "server_error",
      data?.message ?? "Something went wrong on our side. Try again in a moment.",
      data?.detail,
    );
  }
  return data;
}

export async function ensureSession() {
  if (getToken()) return;
  const session = await api("/api/v1/auth/sessions", { method: "POST", body: {} });
  setToken(session.access_token);
}

/** Without a session (or with one the server no longer knows) onboarding starts over. */
export function restartOnboarding() {
  clearToken();
  location.replace(PAGES.profile);
}

// --- PKCE (RFC 7636) and the Strava link flow (docs/contract.md §2) ---

function base64url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A 64-character verifier (48 random bytes, base64url) and its S256 challenge. */
export async function createPkcePair() {
  if (!globalThis.crypto?.subtle) {
    throw new ApiError(
      0,
      "insecure_context",
      "Connecting Strava needs a secure connection. Open this page over HTTPS.",
    );
  }
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(48)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: base64url(new Uint8Array(digest)) };
}

/** Ask for a link token, keep the verifier in this tab only, and go to Strava's consent page. */
export async function startStravaLink() {
  const { verifier, challenge } = await createPkcePair();
  const token = await api("/api/v1/strava/link-token", {
    method: "POST",
    body: {
      code_challenge: challenge,
      code_challenge_method: "S256",
      redirect_uri: `${location.origin}${CALLBACK_PATH}`,
    },
  });
  const target = new URL(token.authorize_url);
  if (target.protocol !== "https:" && target.protocol !== "http:") {
    throw new ApiError(0, "invalid_request", "The authorization address is not valid.");
  }
  sessionStorage.setItem(LINK_KEY, JSON.stringify({ state: token.state, verifier }));
  location.assign(target.href);
}

/** The pending link attempt of this tab, removed as it is read: a verifier is used once. */
export function takeStravaLink() {
  let raw = null;
  try {
    raw = sessionStorage.getItem(LINK_KEY);
    sessionStorage.removeItem(LINK_KEY);
  } catch {
    return null;
  }
  try {
    const parsed = raw ? JSON.parse(raw) : null;
    return parsed && typeof parsed.verifier === "string" ? parsed : null;
  } catch {
    return null;
  }
}

/** Wire a "Connect with Strava" button: busy while the link token is fetched, errors shown. */
export function wireConnectButton(button, showError) {
  button.disabled = false; // disabled in the HTML until this handler exists
  button.addEventListener("click", async () => {
    if (button.getAttribute("aria-disabled") === "true") return;
    button.setAttribute("aria-disabled", "true");
    button.classList.add("is-busy");
    showError(null);
    try {
      await startStravaLink();
    } catch (error) {
      button.removeAttribute("aria-disabled");
      button.classList.remove("is-busy");
      if (error.code === "unauthenticated") return restartOnboarding();
      if (error.code === "profile_required") return location.assign(PAGES.profile);
      showError(error);
    }
  });
}

// --- what went wrong, in the runner's words (codes from docs/contract.md §3) ---

export const PROBLEMS = {
  access_denied: {
    title: "You cancelled the connection",
    text: "Strava was not connected because the authorization was cancelled. Connect again when you are ready.",
  },
  insufficient_scope: {
    title: "Coach George needs to see your activities",
    text: "The permission to view your activities was not granted, so there is nothing to plan from. Connect again and leave that permission ticked.",
  },
  athlete_already_linked: {
    title: "This Strava account is already linked",
    text: "That Strava athlete is connected to another Coach George account. Disconnect it there first, or connect a different Strava account.",
  },
  invalid_state: {
    title: "This link attempt is no longer valid",
    text: "It was already used, or it was started in another tab. Start again from here.",
  },
  state_expired: {
    title: "This link attempt expired",
    text: "Connecting Strava has to be finished within 10 minutes. Start again.",
  },
  pkce_mismatch: {
    title: "This link attempt could not be verified",
    text: "The answer from Strava did not match the request this browser made. Start again.",
  },
  reauth_required: {
    title: "Strava did not accept the authorization",
    text: "Strava refused this authorization. Connect again.",
  },
  strava_unavailable: {
    title: "Strava is not answering",
    text: "Strava could not be reached to finish connecting. Try again in a moment.",
  },
  strava_athlete_limit: {
    title: "Strava is not accepting new connections",
    text:
      "Coach George has reached the number of athletes Strava lets it connect. " +
      "Nothing is wrong on your side; we are asking Strava for more room.",
  },
  redirect_uri_not_allowed: {
    title: "This address cannot connect Strava",
    text: "Open Coach George at its usual address and connect Strava from there.",
  },
  network_error: {
    title: "No connection",
    text: "Coach George could not be reached. Check your connection and try again.",
  },
};

export function describeProblem(code, fallbackMessage) {
  return (
    PROBLEMS[code] ?? {
      title: "Strava could not be connected",
      text: fallbackMessage || "Something went wrong. Try again.",
    }
  );
}

// --- formatting ---

/** "Jane D.": first name and the initial of the last name, as Strava shows other athletes. */
export function athleteName(athlete) {
  if (!athlete) return "";
  const first = (athlete.firstname ?? "").trim();
  const last = (athlete.lastname ?? "").trim();
  const name = [first, last ? `${last[0]}.` : ""].filter(Boolean).join(" ");
  return name || `Athlete ${athlete.id}`;
}

const number1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const number1Fixed = new Intl.NumberFormat(undefined, {
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});

export function km(meters, { fixed = false } = {}) {
  const value = (meters ?? 0) / 1000;
  return `${(fixed ? number1Fixed : number1).format(value)}\u00a0km`; // no line break before the unit
}

export function duration(seconds) {
  const total = Math.max(0, Math.round(seconds ?? 0));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours > 0) return `${hours}h\u00a0${String(minutes).padStart(2, "0")}m`;
  return `${minutes}:${String(secs).padStart(2, "0")}`;
}

export function pace(meters, seconds) {
  if (!meters || !seconds) return null;
  const perKm = seconds / (meters / 1000);
  const minutes = Math.floor(perKm / 60);
  const secs = Math.round(perKm % 60);
  return secs === 60
    ? `${minutes + 1}:00\u00a0/km`
    : `${minutes}:${String(secs).padStart(2, "0")}\u00a0/km`;
}

/** Parse an API timestamp; a value without an offset is UTC. */
export function parseTime(value) {
  if (!value) return null;
  const hasOffset = /[zZ]|[+-]\d\d:?\d\d$/.test(value);
  const date = new Date(hasOffset ? value : `${value}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** "just now", "2 minutes ago", "3 hours ago", "yesterday". */
export function timeAgo(date, now = new Date()) {
  const seconds = Math.round((date.getTime() - now.getTime()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

/** Local wall-clock time, like 14:15 (or 2:15 PM, as the runner's locale writes it). */
export function clockTime(date) {
  return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

export function longDateTime(date) {
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// --- screen-reader announcements ---

/** Say `text` through the page's polite live region (re-announces identical text). */
export function announce(text) {
  const region = document.getElementById("live");
  if (!region) return;
  region.textContent = "";
  requestAnimationFrame(() => {
    region.textContent = text;
  });
}

/** Show one of a group of sections and move focus to its heading for keyboard users. */
export function focusHeading(container) {
  const heading = container.querySelector("h1, h2");
  if (!heading) return;
  heading.setAttribute("tabindex", "-1");
  heading.focus();
}

export function showError(element, error) {
  if (!error) {
    element.hidden = true;
    element.textContent = "";
    return;
  }
  const problem = describeProblem(error.code, error.message);
  element.textContent = PROBLEMS[error.code] ? `${problem.title}. ${problem.text}` : error.message;
  element.hidden = false;
}
