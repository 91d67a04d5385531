// The profile summary: Strava connection, sync progress and errors, the 28-day training load,
// recent workouts with "View on Strava" links, and disconnecting (behind a confirmation dialog).
import {
  announce,
  api,
  athleteName,
  clockTime,
  describeProblem,
  duration,
  focusHeading,
  getToken,
  km,
  longDateTime,
  pace,
  PAGES,
  parseTime,
  restartOnboarding,
  showError,
  startStravaLink,
  timeAgo,
  wireConnectButton,
} from "./app.js";

const ACTIVE = new Set(["queued", "running"]);
const POLL_ACTIVE_MS = 2000; // while a sync is queued or running
const POLL_IDLE_MS = 60000; // keeps "2 minutes ago" honest and picks up scheduled syncs

const $ = (id) => document.getElementById(id);
let timer = null;
let previous = null; // the last rendered summary, to announce what changed
let busy = false;

// --- rendering ---

function setText(id, text) {
  $(id).textContent = text;
}

function timeElement(date, text) {
  const element = document.createElement("time");
  element.dateTime = date.toISOString();
  element.title = longDateTime(date);
  element.textContent = text;
  return element;
}

function renderProfile(profile) {
  setText("greeting", profile.display_name ? `Hi ${profile.display_name}` : "Your training");
  const goal = profile.weekly_distance_goal_km;
  const line = $("goal-line");
  line.hidden = goal == null;
  if (goal != null) line.textContent = `Weekly goal: ${km(goal * 1000)}`;
}

const BADGES = {
  linked: ["Connected", "ok"],
  attention: ["Needs attention", "warn"],
  action_required: ["Action needed", "bad"],
  not_linked: ["Not connected", "off"],
};

function badgeFor(strava) {
  if (strava.status === "linked" && strava.error) return BADGES.attention;
  return BADGES[strava.status] ?? BADGES.not_linked;
}

function renderLastSync(sync) {
  const cell = $("last-sync");
  const success = parseTime(sync.last_success_at);
  const attempt = parseTime(sync.last_sync_at);
  if (success) {
    const parts = [timeElement(success, timeAgo(success))];
    if (sync.last_result === "partial") parts.push(" (partly)");
    cell.replaceChildren(...parts);
  } else if (attempt) {
    cell.replaceChildren("Last attempt ", timeElement(attempt, timeAgo(attempt)), ", not completed");
  } else {
    cell.replaceChildren(ACTIVE.has(sync.state) ? "First sync in progress" : "Not yet");
  }
}

function errorCopy(strava) {
  const error = strava.error;
  if (error.action === "wait") {
    const at = parseTime(error.retry_at);
    const who = error.code === "rate_limited" ? "Strava is busy" : "Strava is not answering";
    return {
      title: at ? `${who}, retrying at ${clockTime(at)}` : `${who}, retrying soon`,
      text: "Nothing to do on your side: the sync starts again by itself.",
    };
  }
  const titles = {
    revoked: "Coach George's access was removed on Strava",
    reauth_required: "Strava needs you to connect again",
    insufficient_scope: "Some of your runs are missing",
    sync_failed: "The last sync did not finish",
    key_unavailable: "Syncing is paused",
  };
  const byAction = {
    reconnect: "Reconnect Strava to keep syncing",
    retry: "The last sync did not finish",
    none: "Syncing is paused",
  };
  if (strava.status === "not_linked") {
    return describeProblem(error.code, error.message); // why the last link attempt failed
  }
  const title = titles[error.code] ?? byAction[error.action] ?? "Something needs your attention";
  return { title, text: error.message };
}

function renderStrava(strava) {
  const [label, tone] = badgeFor(strava);
  const badge = $("strava-badge");
  badge.textContent = label;
  badge.dataset.tone = tone;

  const linked = strava.status !== "not_linked";
  $("not-linked").hidden = linked;
  $("link-facts").hidden = !linked;
  $("link-actions").hidden = !linked;
  const syncing = linked && ACTIVE.has(strava.sync.state);
  $("sync-progress").hidden = !syncing;
  if (syncing) {
    setText(
      "sync-progress-text",
      strava.sync.last_success_at
        ? "Syncing with Strava…"
        : "Syncing your last 28 days from Strava…",
    );
  }
  $("sync-now").hidden =
    syncing || strava.status === "action_required" || ["retry", "wait"].includes(strava.error?.action);
  $("cards").classList.toggle("single", !linked);
  if (linked) {
    setText("athlete-name", athleteName(strava.athlete));
    renderLastSync(strava.sync);
  }

  const box = $("strava-error");
  box.hidden = !strava.error;
  // Not linked: why the last attempt failed comes before the Connect button; linked: after the facts.
  if (linked) $("sync-progress").after(box);
  else $("not-linked").before(box);
  if (strava.error) {
    const copy = errorCopy(strava);
    setText("error-title", copy.title);
    setText("error-message", copy.text);
    box.dataset.code = strava.error.code;
    box.dataset.action = strava.error.action;
    const action = $("error-action");
    const labels = { reconnect: "Reconnect Strava", retry: "Retry sync" };
    // Not linked: the Connect button below the message is the way forward.
    const actionLabel = linked ? labels[strava.error.action] : null;
    action.hidden = !actionLabel || (strava.error.action === "retry" && syncing);
    action.textContent = actionLabel ?? "";
    action.dataset.action = strava.error.action;
  }
  $("strava-card").hidden = false;
}

function weekLabel(date, index, count) {
  if (index === count - 1) return "Last 7 days";
  return date.toLocaleDateString(undefined, { day: "numeric", month: "short" });
}

function renderLoad(training, strava, goalKm) {
  const card = $("load-card");
  card.hidden = strava.status === "not_linked";
  if (card.hidden) return;
  setText("load-heading", `Last ${training.window_days} days`);
  // Before the first complete sync the numbers would only be zeros: say what is coming instead.
  const pending = !strava.sync.last_success_at && training.runs === 0;
  $("load-pending").hidden = !pending;
  $("load-stats").hidden = pending;
  $("load-chart").hidden = pending;
  $("load-ratio").hidden = true;
  if (pending) {
    setText(
      "load-pending",
      ACTIVE.has(strava.sync.state)
        ? "Your runs, distance and weekly load appear here once the first sync is done."
        : "Your runs, distance and weekly load appear here after the first sync.",
    );
    return;
  }
  setText("stat-runs", String(training.runs));
  setText("stat-distance", km(training.distance_m));
  setText("stat-longest", km(training.longest_run_m));
  setText("stat-time", duration(training.moving_time_s));

  const goal = goalKm ? goalKm * 1000 : 0;
  const max = Math.max(goal, ...training.weeks.map((week) => week.distance_m));
  const goalKey = $("goal-key");
  goalKey.hidden = !goal;
  goalKey.textContent = goal ? `Goal ${km(goal)}` : "";
  const bars = training.weeks.map((week, index) => {
    const item = document.createElement("li");
    item.className = "bar";
    const start = parseTime(week.week_start);
    const label = weekLabel(start, index, training.weeks.length);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = km(week.distance_m);
    const track = document.createElement("span");
    track.className = "bar-track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    const share = max > 0 ? week.distance_m / max : 0;
    // CSSOM, not a style attribute: allowed under the page's style-src 'self' policy.
    fill.style.height = `${week.distance_m > 0 ? Math.max(3, share * 100) : 0}%`;
    track.append(fill);
    if (goal) {
      const mark = document.createElement("span");
      mark.className = "goal-mark";
      mark.style.bottom = `${(goal / max) * 100}%`;
      track.append(mark);
    }
    const name = document.createElement("span");
    name.className = "bar-label";
    name.textContent = label;
    const extra = document.createElement("span");
    extra.className = "visually-hidden";
    extra.textContent = `, ${week.runs} ${week.runs === 1 ? "run" : "runs"}`;
    const prefix = document.createElement("span");
    prefix.className = "visually-hidden";
    prefix.textContent = index === training.weeks.length - 1 ? "" : "Week from ";
    item.append(prefix, name, document.createTextNode(" "), value, extra, track);
    return item;
  });
  $("weeks").replaceChildren(...bars);

  const ratio = $("load-ratio");
  ratio.hidden = training.acute_chronic_ratio == null;
  if (training.acute_chronic_ratio != null) {
    ratio.textContent = `Last 7 days: ${training.acute_chronic_ratio.toFixed(2)}× your weekly average over ${training.window_days} days.`;
  }
}

function sportName(sportType) {
  return sportType.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/ (\w)/g, (m) => m.toLowerCase());
}

function workoutDate(workout) {
  // start_date_local is the wall-clock time where the run happened: show it as such.
  const local = parseTime(workout.start_date_local);
  if (local) {
    return local.toLocaleDateString(undefined, {
      weekday: "short",
      day: "numeric",
      month: "short",
      timeZone: "UTC",
    });
  }
  return parseTime(workout.start_date).toLocaleDateString(undefined, {
    weekday: "short",
    day: "numeric",
    month: "short",
  });
}

function renderWorkouts(items, strava) {
  const card = $("workouts-card");
  card.hidden = strava.status === "not_linked" || items === null;
  if (card.hidden) return;
  $("workouts-empty").hidden = items.length > 0;
  if (strava.sync.last_success_at) {
    setText("workouts-empty", "No workouts in the last 28 days yet.");
  } else if (ACTIVE.has(strava.sync.state)) {
    setText("workouts-empty", "Your workouts appear here once the first sync is done.");
  } else {
    setText("workouts-empty", "Your workouts appear here after the first sync.");
  }
  const rows = items.map((workout) => {
    const item = document.createElement("li");
    item.className = "workout";
    const main = document.createElement("div");
    main.className = "workout-main";
    const name = document.createElement("p");
    name.className = "workout-name";
    name.textContent = workout.name || sportName(workout.sport_type);
    const meta = document.createElement("p");
    meta.className = "workout-meta";
    const parts = [workoutDate(workout), sportName(workout.sport_type)];
    if (workout.distance_m) parts.push(km(workout.distance_m, { fixed: true }));
    if (workout.moving_time_s) parts.push(duration(workout.moving_time_s));
    const runPace = workout.is_run ? pace(workout.distance_m, workout.moving_time_s) : null;
    if (runPace) parts.push(runPace);
    meta.textContent = parts.join(" · ");
    main.append(name, meta);
    const link = document.createElement("a");
    link.className = "view-on-strava";
    link.href = `https://www.strava.com/activities/${encodeURIComponent(String(workout.source_id))}`;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.append("View on Strava");
    const context = document.createElement("span");
    context.className = "visually-hidden";
    context.textContent = `: ${name.textContent} (opens in a new tab)`;
    link.append(context);
    item.append(main, link);
    return item;
  });
  $("workouts").replaceChildren(...rows);
}

function announceChanges(summary) {
  const now = summary.strava;
  const before = previous?.strava;
  if (!before) return;
  if (before.status !== "not_linked" && now.status === "not_linked") {
    announce("Strava is disconnected.");
  } else if (ACTIVE.has(before.sync.state) && !ACTIVE.has(now.sync.state) && !now.error) {
    const runs = summary.training.runs;
    announce(`Sync finished: ${runs} ${runs === 1 ? "run" : "runs"} in the last ${summary.training.window_days} days.`);
  } else if (!ACTIVE.has(before.sync.state) && ACTIVE.has(now.sync.state)) {
    announce("Syncing with Strava…");
  } else if (now.error && now.error.code !== before.error?.code) {
    const copy = errorCopy(now);
    announce(`${copy.title}. ${copy.text}`);
  }
}

function render(summary, workouts) {
  $("loading").hidden = true;
  renderProfile(summary.profile);
  renderStrava(summary.strava);
  renderLoad(summary.training, summary.strava, summary.profile.weekly_distance_goal_km);
  renderWorkouts(workouts, summary.strava);
  announceChanges(summary);
  previous = summary;
  document.body.dataset.syncState = summary.strava.sync.state;
}

// --- loading and polling ---

async function refresh() {
  clearTimeout(timer);
  timer = null;
  try {
    const summary = await api("/api/v1/profile/summary");
    if (!summary.profile) return location.replace(PAGES.profile);
    let workouts = null;
    if (summary.strava.status !== "not_linked") {
      workouts = (await api("/api/v1/workouts?limit=5")).items;
    }
    $("page-error").hidden = true;
    render(summary, workouts);
    const active = ACTIVE.has(summary.strava.sync.state);
    schedule(active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
  } catch (error) {
    if (error.code === "unauthenticated") return restartOnboarding();
    $("loading").hidden = true;
    showError($("page-error"), error);
    schedule(previous && ACTIVE.has(previous.strava.sync.state) ? POLL_ACTIVE_MS : POLL_IDLE_MS);
  }
}

function schedule(delay) {
  clearTimeout(timer);
  timer = setTimeout(refresh, delay);
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh();
});

// --- actions ---

async function requestSync(button) {
  if (busy) return;
  busy = true;
  button.setAttribute("aria-disabled", "true");
  showError($("action-error"), null);
  try {
    await api("/api/v1/strava/sync", { method: "POST", body: {} });
    announce("Syncing with Strava…");
    await refresh();
    focusHeading($("strava-card"));
  } catch (error) {
    if (error.code === "unauthenticated") return restartOnboarding();
    showError($("action-error"), error);
  } finally {
    busy = false;
    button.removeAttribute("aria-disabled");
  }
}

async function reconnect(button) {
  if (busy) return;
  busy = true;
  button.setAttribute("aria-disabled", "true");
  showError($("action-error"), null);
  try {
    await startStravaLink();
  } catch (error) {
    if (error.code === "unauthenticated") return restartOnboarding();
    showError($("action-error"), error);
  } finally {
    busy = false;
    button.removeAttribute("aria-disabled");
  }
}

$("error-action").addEventListener("click", (event) => {
  const button = event.currentTarget;
  if (button.dataset.action === "reconnect") reconnect(button);
  else if (button.dataset.action === "retry") requestSync(button);
});

$("sync-now").addEventListener("click", (event) => requestSync(event.currentTarget));

const dialog = $("unlink-dialog");
$("unlink").addEventListener("click", () => {
  dialog.returnValue = "";
  dialog.showModal();
});

dialog.addEventListener("close", async () => {
  if (dialog.returnValue !== "confirm") {
    $("unlink").focus();
    return;
  }
  showError($("action-error"), null);
  try {
    await api("/api/v1/strava/link", { method: "DELETE" });
    await refresh();
    focusHeading($("strava-card"));
  } catch (error) {
    if (error.code === "unauthenticated") return restartOnboarding();
    showError($("action-error"), error);
    $("unlink").focus();
  }
});

wireConnectButton($("connect"), (error) => showError($("action-error"), error));

if (!getToken()) {
  location.replace(PAGES.profile);
} else {
  refresh();
}
