// The profile summary: Strava connection, sync progress and errors, the 28-day training load,
// the training-load model (daily load bars with fitness and fatigue lines, drawn as inline SVG),
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
// While the page is visible: picks up runs pushed by Strava's webhooks within seconds (one small
// summary read; hidden pages do not poll at all, see schedule()).
const POLL_IDLE_MS = 10000;

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const LOAD_DAYS = 28;
let timer = null;
let shownLoad = null; // the training-load document the chart was last drawn from
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
  if (strava.status === "not_linked" && !isRevoked(strava)) {
    return describeProblem(error.code, error.message); // why the last link attempt failed
  }
  if (isRevoked(strava)) {
    // The server's message repeats the title; say what happened to the data instead.
    return {
      title: titles.revoked,
      text: "Your Strava workouts were removed from Coach George, as Strava asks. Reconnect Strava to sync them again.",
    };
  }
  const title = titles[error.code] ?? byAction[error.action] ?? "Something needs your attention";
  return { title, text: error.message };
}

// Access removed on Strava (a confirmed deauthorization): no link, and Reconnect is the way back.
function isRevoked(strava) {
  return strava.status === "not_linked" && strava.error?.code === "revoked";
}

function renderStrava(strava) {
  const [label, tone] = badgeFor(strava);
  const badge = $("strava-badge");
  badge.textContent = label;
  badge.dataset.tone = tone;

  const linked = strava.status !== "not_linked";
  const revoked = isRevoked(strava);
  $("not-linked").hidden = linked || revoked;
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
    // Not linked: the Connect button below the message is the way forward (revoked: Reconnect).
    const actionLabel = linked || revoked ? labels[strava.error.action] : null;
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

// --- the training-load model (GET /api/v1/training/load; docs/training-load.md) ---

const METHODS = {
  heart_rate: "from heart rate",
  pace: "from pace",
  power: "from power",
  duration: "from duration",
};

function points(value) {
  const rounded = Math.round(value);
  return rounded < 0 ? `\u2212${Math.abs(rounded)}` : String(rounded);
}

function calendarDate(isoDate) {
  // A local calendar date ("2026-12-04"), shown as it is whatever the browser's zone.
  return new Date(`${isoDate}T12:00:00Z`);
}

function dayLabel(isoDate, options) {
  return calendarDate(isoDate).toLocaleDateString(undefined, { ...options, timeZone: "UTC" });
}

function svg(name, attributes = {}) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function niceStep(rough) {
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const steps = [1, 2, 2.5, 5, 10].map((factor) => factor * magnitude);
  return steps.find((step) => step >= rough) ?? 10 * magnitude;
}

function dayTitle(day) {
  const when = dayLabel(day.date, { weekday: "short", day: "numeric", month: "short" });
  if (!day.workouts.length) return `${when}: rest`;
  const parts = day.workouts.map(
    (workout) => `${sportName(workout.sport_type)} ${points(workout.load)} ${METHODS[workout.method] ?? ""}`.trim(),
  );
  return `${when}: ${points(day.load)} points (${parts.join(", ")})`;
}

function drawLoadChart(document_) {
  const plot = $("load-plot");
  const days = document_.days;
  const width = Math.max(260, Math.round(plot.clientWidth || 600));
  const height = width < 480 ? 190 : 250;
  const pad = { top: 12, right: 6, bottom: 26, left: 34 };
  const innerWidth = width - pad.left - pad.right;
  const innerHeight = height - pad.top - pad.bottom;
  const highest = Math.max(20, ...days.flatMap((day) => [day.load, day.atl, day.ctl]));
  const step = niceStep(highest / 4);
  const top = Math.ceil(highest / step) * step;
  const y = (value) => pad.top + innerHeight - (Math.max(0, value) / top) * innerHeight;
  const slot = innerWidth / Math.max(1, days.length);
  const x = (index) => pad.left + slot * (index + 0.5);
  const barWidth = Math.max(2, Math.min(18, slot * 0.64));

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-labelledby": "training-caption load-chart-description",
    class: document_.current.provisional ? "load-svg provisional" : "load-svg",
  });
  const current = document_.current;
  const description = svg("desc", { id: "load-chart-description" });
  description.textContent =
    `Daily load over the last ${days.length} days. Today fitness is ${points(current.ctl)}, ` +
    `fatigue ${points(current.atl)} and form ${points(current.form)}.`;
  root.append(description);

  for (let value = 0; value <= top + step / 2; value += step) {
    root.append(svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value) }));
    const label = svg("text", { class: "axis-label", x: pad.left - 6, y: y(value) + 4, "text-anchor": "end" });
    label.textContent = String(value);
    root.append(label);
  }

  days.forEach((day, index) => {
    if (day.load <= 0) return;
    const isToday = index === days.length - 1;
    const bar = svg("rect", {
      class: isToday ? "bar-load today" : "bar-load",
      x: x(index) - barWidth / 2,
      y: y(day.load),
      width: barWidth,
      height: Math.max(1, y(0) - y(day.load)),
      rx: Math.min(3, barWidth / 3),
      "data-date": day.date,
    });
    const title = svg("title");
    title.textContent = dayTitle(day);
    bar.append(title);
    root.append(bar);
  });

  for (const [key, name] of [["ctl", "line-fitness"], ["atl", "line-fatigue"]]) {
    const line = svg("polyline", {
      class: name,
      points: days.map((day, index) => `${x(index).toFixed(1)},${y(day[key]).toFixed(1)}`).join(" "),
    });
    root.append(line);
  }

  // Date labels a week apart, counted back from today.
  for (let index = days.length - 1; index >= 0; index -= 7) {
    const isToday = index === days.length - 1;
    const label = svg("text", {
      class: "axis-label",
      x: isToday ? width - pad.right : x(index),
      y: height - 6,
      "text-anchor": isToday ? "end" : "middle",
    });
    label.textContent = isToday ? "Today" : dayLabel(days[index].date, { day: "numeric", month: "short" });
    root.append(label);
  }
  plot.replaceChildren(root);
  plot.dataset.width = String(width);
}

function renderTrainingLoad(document_, strava) {
  const card = $("training-card");
  card.hidden = strava.status === "not_linked" || document_ === null;
  if (card.hidden) return;
  const current = document_.current;
  const anyLoad = document_.days.some((day) => day.load > 0);
  const pending = !strava.sync.last_success_at && !anyLoad;
  $("training-pending").hidden = !pending;
  $("training-body").hidden = pending;
  $("training-badge").hidden = pending || !current.provisional;
  if (pending) {
    setText(
      "training-pending",
      "Your fitness, fatigue and form appear here once your workouts are synced.",
    );
    return;
  }
  const sentences = current.sentences.map((sentence) => {
    const item = document.createElement("li");
    item.textContent = sentence;
    return item;
  });
  $("load-sentences").replaceChildren(...sentences);
  setText("figure-fitness", points(current.ctl));
  setText("figure-fatigue", points(current.atl));
  setText("figure-form", points(current.form));
  setText("figure-week", points(current.weekly_load));
  renderBasis(document_.physiology);
  shownLoad = document_;
  drawLoadChart(document_);
}

function paceText(secondsPerKm) {
  const whole = Math.round(secondsPerKm);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")} /km`;
}

// Each value the loads used and where it came from, in the server's words (estimates say so).
function renderBasis(physiology) {
  const rows = [
    [physiology.max_hr, (value) => `${Math.round(value)} bpm`],
    [physiology.threshold_hr, (value) => `${Math.round(value)} bpm`],
    [physiology.resting_hr, (value) => `${Math.round(value)} bpm`],
    [physiology.threshold_speed_mps, () => paceText(physiology.threshold_pace_s_per_km)],
    [physiology.ftp_w, (value) => `${Math.round(value)} W`],
  ];
  const items = rows.map(([resolved, format]) => {
    const item = document.createElement("li");
    item.dataset.source = resolved.source;
    const note = resolved.note.charAt(0).toUpperCase() + resolved.note.slice(1);
    // A default's note already states its value.
    const shown = resolved.value != null && resolved.source !== "default";
    item.textContent = shown ? `${note}: ${format(resolved.value)}.` : `${note}.`;
    return item;
  });
  $("basis-list").replaceChildren(...items);
}

// Redraw at the new width (the SVG is drawn in real pixels so its text keeps its size).
new ResizeObserver(() => {
  if (!shownLoad || $("training-card").hidden) return;
  const width = Math.round($("load-plot").clientWidth);
  if (width && String(Math.max(260, width)) !== $("load-plot").dataset.width) drawLoadChart(shownLoad);
}).observe($("load-plot"));

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
  if (card.hidden) {
    $("workouts").replaceChildren(); // nothing from Strava stays in the page once unlinked
    return;
  }
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
  if (before.status !== "not_linked" && isRevoked(now)) {
    const copy = errorCopy(now);
    announce(`${copy.title}. ${copy.text}`);
  } else if (before.status !== "not_linked" && now.status === "not_linked") {
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

function render(summary, workouts, trainingLoad) {
  $("loading").hidden = true;
  renderProfile(summary.profile);
  renderStrava(summary.strava);
  renderLoad(summary.training, summary.strava, summary.profile.weekly_distance_goal_km);
  renderTrainingLoad(trainingLoad, summary.strava);
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
    let trainingLoad = null;
    if (summary.strava.status !== "not_linked") {
      [workouts, trainingLoad] = await Promise.all([
        api("/api/v1/workouts?limit=5").then((page) => page.items),
        api(`/api/v1/training/load?days=${LOAD_DAYS}`),
      ]);
    }
    $("page-error").hidden = true;
    render(summary, workouts, trainingLoad);
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
  timer = null;
  // A hidden page does not poll; becoming visible again refreshes at once.
  if (document.visibilityState === "hidden") return;
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
