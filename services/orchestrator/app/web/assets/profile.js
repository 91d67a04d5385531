// Step 1: the runner's profile (PUT /api/v1/profile), which linking Strava requires.
import { ApiError, api, ensureSession, getToken, PAGES, restartOnboarding } from "./app.js";

const form = document.getElementById("profile-form");
const nameInput = document.getElementById("display_name");
const zoneSelect = document.getElementById("timezone");
const goalInput = document.getElementById("weekly_distance_goal_km");
const formError = document.getElementById("form-error");
const saveButton = document.getElementById("save");
let linked = false;

function fillTimeZones(selected) {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const all = new Set(zones);
  if (selected) all.add(selected);
  if (all.size === 0) all.add("UTC");
  zoneSelect.replaceChildren(
    ...[...all].sort().map((zone) => {
      const option = document.createElement("option");
      option.value = zone;
      option.textContent = zone.replaceAll("_", " ");
      return option;
    }),
  );
  zoneSelect.value = selected && all.has(selected) ? selected : [...all][0];
}

function fieldError(input, message) {
  const element = document.getElementById(`${input.id}-error`);
  if (message) {
    input.setAttribute("aria-invalid", "true");
    element.textContent = message;
    element.hidden = false;
  } else {
    input.removeAttribute("aria-invalid");
    element.textContent = "";
    element.hidden = true;
  }
}

function validate() {
  let first = null;
  const name = nameInput.value.trim();
  fieldError(nameInput, name ? null : "Enter your name, or what Coach George should call you.");
  if (!name) first ??= nameInput;
  const goal = goalInput.value;
  const goalValid = goal === "" || (goalInput.validity.valid && Number(goal) >= 0 && Number(goal) <= 1000);
  fieldError(goalInput, goalValid ? null : "Enter a distance between 0 and 1000 km, or leave it empty.");
  if (!goalValid) first ??= goalInput;
  return first;
}

async function prefill() {
  fillTimeZones(Intl.DateTimeFormat().resolvedOptions().timeZone);
  if (!getToken()) return;
  try {
    const summary = await api("/api/v1/profile/summary");
    linked = summary.strava.status !== "not_linked";
    const profile = summary.profile;
    if (!profile) return;
    document.getElementById("step").textContent = "Your profile";
    saveButton.textContent = "Save";
    nameInput.value = profile.display_name;
    if (profile.timezone) fillTimeZones(profile.timezone);
    if (profile.weekly_distance_goal_km != null) goalInput.value = String(profile.weekly_distance_goal_km);
  } catch (error) {
    if (error instanceof ApiError && error.code === "unauthenticated") return; // a fresh session on save
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  formError.hidden = true;
  const invalid = validate();
  if (invalid) {
    invalid.focus();
    return;
  }
  saveButton.disabled = true;
  saveButton.classList.add("is-busy");
  try {
    await ensureSession();
    const goal = goalInput.value === "" ? null : Number(goalInput.value);
    const body = { display_name: nameInput.value.trim(), timezone: zoneSelect.value || null, weekly_distance_goal_km: goal };
    try {
      await api("/api/v1/profile", { method: "PUT", body });
    } catch (error) {
      if (error.code !== "unauthenticated") throw error;
      await ensureSession(); // the stored session was gone: start a new one and save again
      await api("/api/v1/profile", { method: "PUT", body });
    }
    location.assign(linked ? PAGES.summary : PAGES.connect);
  } catch (error) {
    saveButton.disabled = false;
    saveButton.classList.remove("is-busy");
    if (error.code === "unauthenticated") return restartOnboarding();
    formError.textContent =
      error.code === "invalid_request"
        ? "Some of these details are not valid. Check them and try again."
        : error.message;
    formError.hidden = false;
  }
});

saveButton.disabled = false; // disabled in the HTML until this handler exists
prefill();
