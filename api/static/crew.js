// citywatch crew page: vanilla JS, no external resources (crews' phones may be offline from
// CDNs, and the server has no internet). The key is kept in localStorage and sent as a
// Bearer header; EventSource cannot send headers, so the live stream uses a short-lived
// ticket from POST /stream/ticket instead of putting the key in a URL.
"use strict";

const KEY = "citywatch.crew.key";
const TYPE_WORDS = {
  limit: "Reading out of limits", baseline: "Unusual reading", time_of_day: "Unusual for this hour",
  level_shift: "Sudden change", flatline: "Sensor stuck", dropout: "Sensor silent",
  overheating: "Overheating", power_loss: "Mains power lost", flooding: "Water inside",
  intrusion: "Door opened", cable_cut: "Cable cut", fibre_degradation: "Fibre degrading",
  area_outage: "Area power outage", offline: "Device offline",
};
const SEVERITY_RANK = { critical: 0, major: 1, minor: 2, warning: 3 };

const state = {
  token: localStorage.getItem(KEY), me: null, alerts: new Map(), devices: new Map(),
  here: null, lastEventId: null, source: null, retryMs: 1000, onReady: null,
};
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
  });
  if (response.status === 401) { signOut("Your key was refused; paste it again."); throw new Error("401"); }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body?.detail || body?.title || `error ${response.status}`);  // RFC 9457 problem
  return body;
}

function signOut(message) {
  localStorage.removeItem(KEY);
  state.token = null;
  if (state.source) state.source.close();
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

function distanceKm(a, b) {
  const rad = Math.PI / 180, dLat = (b.lat - a.lat) * rad, dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 6371 * 2 * Math.asin(Math.sqrt(h));
}

function where(alert) {
  const d = state.devices.get(alert.device);
  return d && d.lat != null && d.lon != null ? d : null;
}

function ago(ms) {
  const min = Math.max(0, Math.round((Date.now() - ms) / 60000));
  return min < 60 ? `${min} min ago` : `${Math.floor(min / 60)} h ${min % 60} min ago`;
}

function sorted() {
  const list = [...state.alerts.values()];
  const key = (a) => {
    const loc = where(a);
    return state.here && loc ? distanceKm(state.here, loc) : Infinity;
  };
  return list.sort((a, b) => key(a) - key(b)
    || SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || b.opened_at - a.opened_at);
}

function render(flashId) {
  const ul = $("alerts");
  ul.replaceChildren();
  for (const alert of sorted()) {
    const li = $("alert-card").content.firstElementChild.cloneNode(true);
    li.dataset.alertId = alert.id;
    li.dataset.testid = "alert";
    li.classList.add(alert.severity);
    if (alert.acknowledged) li.classList.add("acked");
    if (alert.id === flashId) li.classList.add("flash");
    li.querySelector(".sev").textContent = alert.severity;
    li.querySelector(".what").textContent = TYPE_WORDS[alert.type] || alert.type;
    li.querySelector(".why").textContent = alert.explanation || "No details from the detector.";
    const loc = where(alert);
    const whereEl = li.querySelector(".where");
    const label = [alert.device || "whole ward", loc?.street, alert.ward].filter(Boolean).join(" · ");
    whereEl.textContent = label;
    if (loc) {
      const osm = document.createElement("a");
      osm.href = `https://www.openstreetmap.org/?mlat=${loc.lat}&mlon=${loc.lon}#map=18/${loc.lat}/${loc.lon}`;
      osm.textContent = "Map";
      osm.target = "_blank";
      osm.rel = "noopener";
      const geo = document.createElement("a");
      geo.href = `geo:${loc.lat},${loc.lon}?q=${loc.lat},${loc.lon}`;
      geo.textContent = "Navigate";
      li.querySelector(".links").append(geo, osm);
      if (state.here) li.querySelector(".dist").textContent = `${distanceKm(state.here, loc).toFixed(1)} km`;
    }
    const meta = [`opened ${ago(alert.opened_at)}`];
    if (alert.acknowledged) meta.push(`acknowledged by ${alert.acknowledged_by || "someone"}`);
    if (alert.assignee) meta.push(`on it: ${alert.assignee}`);
    li.querySelector(".meta").textContent = meta.join(" · ");
    li.querySelector(".ack").disabled = alert.acknowledged;
    li.querySelector(".ack").textContent = alert.acknowledged ? "Acknowledged" : "Acknowledge";
    li.querySelector(".onsite").disabled = alert.assignee === state.me.name;
    ul.append(li);
  }
  $("empty").hidden = state.alerts.size > 0;
  $("summary").textContent = `${state.alerts.size} open` + (state.here ? " · nearest first" : "");
}

function upsert(alert) {
  if (alert.state === "cleared") state.alerts.delete(alert.id);
  else if (alert.state === "active") state.alerts.set(alert.id, alert);
}

async function act(id, action) {
  $("error").textContent = "";
  const alert = state.alerts.get(id);
  try {
    if (action === "ack") {
      upsert(await api(`/alerts/${id}/acknowledge`, { method: "POST", body: "{}" }));
    } else if (action === "onsite") {
      if (!alert.acknowledged) await api(`/alerts/${id}/acknowledge`, { method: "POST", body: "{}" });
      await api(`/alerts/${id}/assign`, { method: "POST", body: JSON.stringify({ assignee: state.me.name }) });
      upsert(await api(`/alerts/${id}/comment`, { method: "POST", body: JSON.stringify({ text: "On site" }) }));
    } else if (action === "resolve") {
      upsert(await api(`/alerts/${id}/resolve`, { method: "POST", body: JSON.stringify({ note: "Resolved on site" }) }));
    }
  } catch (err) {
    $("error").textContent = err.message;
  }
  render();
}

async function openStream() {
  if (state.source) state.source.close();
  let ticket;
  try {
    ticket = await api("/stream/ticket", { method: "POST", body: "{}" });
  } catch (err) {
    setLive(false);
    setTimeout(openStream, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 30000);
    return;
  }
  const params = new URLSearchParams({ ticket: ticket.ticket });
  if (state.lastEventId !== null) params.set("last_event_id", state.lastEventId);
  const source = new EventSource(`/alerts/stream?${params}`);
  state.source = source;
  source.addEventListener("ready", (e) => {
    state.lastEventId = e.lastEventId;
    state.retryMs = 1000;
    setLive(true);
    if (state.onReady) { state.onReady(); state.onReady = null; }
  });
  source.addEventListener("change", (e) => {
    state.lastEventId = e.lastEventId;
    const change = JSON.parse(e.data);
    if (change.alert) { upsert(change.alert); render(change.alert.id); }
    if (change.alert && !state.devices.has(change.alert.device)) loadDevices();
  });
  source.onerror = () => {
    setLive(false);
    // The browser retries by itself unless the server refused (expired ticket): then the
    // stream is closed and we fetch a new ticket, resuming after the last event seen.
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(openStream, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 30000);
    }
  };
}

function setLive(on) {
  $("live").textContent = on ? "live" : "offline";
  $("live").className = `live ${on ? "on" : "off"}`;
}

async function loadDevices() {
  try {
    const devices = await api("/devices?limit=1000");
    for (const d of devices.data) state.devices.set(d.id, d);
    render();
  } catch (err) { /* locations are a nicety; the list works without them */ }
}

async function start() {
  $("login").hidden = true;
  try {
    state.me = await api("/me");
  } catch (err) {
    if (state.token) signOut(err.message);
    return;
  }
  $("who").textContent = `${state.me.name} · ${state.me.wards.join(", ") || "all wards"}`;
  $("app").hidden = false;
  // Wait for the stream's "ready" (it names the feed head) before loading the list, so no
  // change falls between the two.
  await new Promise((resolve) => { state.onReady = resolve; openStream(); setTimeout(resolve, 5000); });
  try {
    const page = await api("/alerts?state=active&limit=500");
    for (const alert of page.data) upsert(alert);
    render();
  } catch (err) { $("error").textContent = err.message; }
  loadDevices();
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value.trim();
  localStorage.setItem(KEY, state.token);
  $("token").value = "";
  start();
});
$("logout").addEventListener("click", () => signOut());
$("alerts").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  button.disabled = true;
  act(Number(button.closest("li").dataset.alertId), button.dataset.action);
});
$("locate").addEventListener("click", () => {
  if (!navigator.geolocation) { $("error").textContent = "This phone cannot share its location."; return; }
  navigator.geolocation.watchPosition(
    (pos) => { state.here = { lat: pos.coords.latitude, lon: pos.coords.longitude }; render(); },
    (err) => { $("error").textContent = `Location unavailable: ${err.message}`; },
    { enableHighAccuracy: true, maximumAge: 30000 },
  );
});

if (state.token) start(); else signOut();
