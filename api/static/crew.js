// citywatch crew page: vanilla JS, no external resources (crews' phones may be offline from
// CDNs, and the server has no internet). The key is kept in localStorage and sent as a
// Bearer header; EventSource cannot send headers, so the live stream uses a short-lived
// ticket from POST /stream/ticket instead of putting the key in a URL.
//
// An installable web app for a phone that is sometimes offline (crew-sw.js is the service
// worker). What the page keeps on the phone, and where:
// - localStorage "citywatch.crew.key": the crew's API key, in plain text as before (every
//   request needs it; "Sign out" and a refused key remove it).
// - localStorage "citywatch.crew.queue": actions not yet confirmed by the server (alert id,
//   action, note, its Idempotency-Key, when to send): no key, no other credentials.
//   "Sign out" drops it.
// - Cache Storage "citywatch-crew-shell-*": the page, this script, styles, icons, manifest.
// - localStorage "citywatch.crew.lang": "vi" or "en" once the crew used the language switch.
// - Cache Storage "citywatch-crew-data": the last answers to GET /me, /catalogue, /alerts and /devices,
//   stored by the service worker under their URL alone (never the Authorization header).
//   "Sign out" and a refused key delete it.
"use strict";

// Every text a person reads, in one place: Vietnamese first, English available (issue 14,
// section 2). The language is the one chosen with the page's switch (kept in localStorage
// LANG_KEY), else the key's own (`lang` of GET /me, set with `citywatch keys create --lang`),
// else the first of the browser's languages the page speaks, else Vietnamese; <html lang>
// follows. Numbers and times are written by Intl with the language's locale
// and Hanoi's time zone. An alert's main line is written here from its fields (type,
// metric, value with the catalogue's unit and alarm limits, from GET /catalogue), in
// words a lineman reads; the detector's own sentence (English, statistical) stays in the
// API's `explanation` and shows only behind the card's "technical details" toggle.
const TEXTS = {
  vi: {
    locale: "vi-VN",
    title: "citywatch · tổ kỹ thuật",
    appName: "citywatch · tổ kỹ thuật",
    switchLang: "English",
    switchLangTitle: "Switch to English",
    signInTitle: "Đăng nhập",
    signInHint: "Dán mã khóa của tổ một lần; điện thoại này sẽ ghi nhớ.",
    keyPlaceholder: "cw_…",
    saveKey: "Lưu mã khóa",
    nearestFirst: "Gần nhất trước",
    noAlerts: "Không có cảnh báo nào đang mở trong phường của tổ.",
    signOut: "Đăng xuất",
    signOutLoses: (n) => `${n} thao tác chưa gửi sẽ bị mất. Vẫn đăng xuất?`,
    liveTitle: "cập nhật trực tiếp",
    live: "trực tuyến",
    connecting: "đang kết nối…",
    offline: "mất mạng",
    allWards: "tất cả phường/xã",
    keyRefused: "Mã khóa bị từ chối; hãy dán lại.",
    types: {
      limit: "Vượt ngưỡng", baseline: "Số đo bất thường", time_of_day: "Bất thường so với giờ này",
      level_shift: "Thay đổi đột ngột", flatline: "Cảm biến bị treo", dropout: "Cảm biến im lặng",
      overheating: "Tủ quá nóng", power_loss: "Mất điện lưới", flooding: "Ngập nước",
      intrusion: "Cửa tủ bị mở", cable_cut: "Đứt cáp", fibre_degradation: "Sợi quang suy giảm",
      area_outage: "Mất điện cả khu vực", offline: "Thiết bị mất kết nối",
    },
    severities: { critical: "khẩn cấp", major: "nghiêm trọng", minor: "nhẹ", warning: "cảnh báo" },
    metrics: {
      temp_inside: "Nhiệt độ trong tủ", temp_outside: "Nhiệt độ ngoài tủ", humidity: "Độ ẩm trong tủ",
      door_open: "Cửa tủ", mains_voltage: "Điện áp lưới", on_battery: "Chạy ắc quy",
      battery_soc: "Dung lượng ắc quy", battery_voltage: "Điện áp ắc quy", fan_rpm: "Tốc độ quạt",
      water_level: "Mực nước trong tủ", power_draw: "Công suất tiêu thụ",
      temp: "Nhiệt độ trong cống cáp", moisture: "Độ ẩm trong cống cáp", strain: "Lực căng cáp",
      optical_loss: "Suy hao quang", signal: "Ánh sáng qua sợi quang",
    },
    states: {
      door_open: ["đóng", "mở"], on_battery: ["dùng điện lưới", "đang chạy ắc quy"],
      signal: ["mất ánh sáng", "có ánh sáng"], other: ["tắt", "bật"],
    },
    rules: {
      overheating: "Tủ quá nóng: kiểm tra quạt và khe thông gió.",
      power_loss: "Mất điện lưới: tủ đang chạy bằng ắc quy.",
      flooding: "Có nước vào: kiểm tra tủ hoặc cống cáp.",
      intrusion: "Cửa tủ bị mở ngoài giờ làm việc.",
      cable_cut: "Mất ánh sáng qua đoạn cáp: cáp bị đứt hoặc bị đè bẹp.",
      fibre_degradation: "Suy hao quang tăng dần: sợi quang hoặc mối hàn đang xuống cấp.",
      area_outage: "Nhiều tủ trong phường cùng chạy ắc quy: mất điện cả khu vực.",
      offline: "Thiết bị ngừng gửi dữ liệu: mất nguồn hay mất đường truyền?",
    },
    // Said after a device rule's figure ("Nhiệt độ trong tủ: 48 °C, cao hơn bình thường 10 °C.").
    advice: {
      overheating: "Kiểm tra quạt và khe thông gió.",
      power_loss: "Mất điện lưới: tủ đang chạy bằng ắc quy.",
      flooding: "Có nước vào: kiểm tra tủ hoặc cống cáp.",
      cable_cut: "Mất ánh sáng qua đoạn cáp: cáp bị đứt hoặc bị đè bẹp.",
      fibre_degradation: "Sợi quang hoặc mối hàn đang xuống cấp.",
    },
    areaBattery: (n, total) => `${n} trong số ${total} tủ của phường cùng chạy ắc quy: mất điện cả khu vực.`,
    areaSilent: (n, total) => `${n} trong số ${total} thiết bị của phường cùng mất kết nối: mất điện hoặc mất đường truyền cả khu vực.`,
    areaSilentUncounted: "Nhiều thiết bị trong phường cùng mất kết nối: mất điện hoặc mất đường truyền cả khu vực.",
    aboveLimit: (limit) => `vượt ngưỡng ${limit}`,
    belowLimit: (limit) => `dưới ngưỡng ${limit}`,
    aboveUsual: (gap) => `cao hơn bình thường ${gap}`,
    belowUsual: (gap) => `thấp hơn bình thường ${gap}`,
    aboveUsualHour: (gap) => `cao hơn mọi ngày vào giờ này ${gap}`,
    belowUsualHour: (gap) => `thấp hơn mọi ngày vào giờ này ${gap}`,
    shiftedFrom: (usual) => `thay đổi đột ngột so với mức ${usual} trước đó`,
    risingHour: (amount) => `tăng ${amount} mỗi giờ`,
    risingDay: (amount) => `tăng ${amount} mỗi ngày`,
    fallingHour: (amount) => `giảm ${amount} mỗi giờ`,
    fallingDay: (amount) => `giảm ${amount} mỗi ngày`,
    aboveCrit: (limit) => `vượt ngưỡng nguy hiểm ${limit}`,
    aboveWarn: (limit) => `vượt ngưỡng cảnh báo ${limit}`,
    belowCrit: (limit) => `dưới ngưỡng nguy hiểm ${limit}`,
    belowWarn: (limit) => `dưới ngưỡng cảnh báo ${limit}`,
    reading: (metric, value) => `${metric}: ${value}`,
    crossed: (metric, value, limit) => `${metric}: ${value}, ${limit}`,
    outsideLimits: (metric, value) => `${metric}: ${value}, ngoài ngưỡng cho phép`,
    stuck: (metric, value) => `${metric} đứng yên ở ${value}: cảm biến có thể bị treo`,
    silent: (metric) => `Không nhận được số đo ${metric.toLowerCase()}: thiết bị, nguồn điện hay đường truyền có sự cố?`,
    shifted: (metric, value) => `${metric}: ${value}, thay đổi đột ngột`,
    unusualHour: (metric, value) => `${metric}: ${value}, khác với mọi ngày vào giờ này`,
    unusual: (metric, value) => `${metric}: ${value}, khác với bình thường`,
    details: "Chi tiết kỹ thuật (tiếng Anh)",
    noDetails: "Bộ phát hiện không có chi tiết.",
    folded: (n) => `${n} cảnh báo khác tại đây hoặc cùng nguyên nhân`,
    wholeWard: "cả phường",
    map: "Bản đồ",
    navigate: "Chỉ đường",
    km: (km) => `${km} km`,
    minutesAgo: (min) => `${min} phút trước`,
    hoursAgo: (h, min) => `${h} giờ ${min} phút trước`,
    opened: (time, ago) => `mở lúc ${time} (${ago})`,
    acknowledgedBy: (who) => `${who} đã nhận`,
    someone: "có người",
    onIt: (who) => `đang xử lý: ${who}`,
    summary: (open, nearest, waiting) => [
      `${open} đang mở`, nearest ? "gần nhất trước" : "", waiting ? `${waiting} chờ gửi` : "",
    ].filter(Boolean).join(" · "),
    acknowledge: "Nhận việc",
    acknowledged: "Đã nhận",
    onSite: "Đã đến nơi",
    resolved: "Đã xử lý",
    actionNames: { ack: "Nhận việc", onsite: "Đã đến nơi", resolve: "Đã xử lý" },
    onSiteComment: "Đã đến hiện trường",
    willSend: (action) => `${action}: sẽ gửi khi có mạng`,
    sending: (action) => `${action}: đang gửi…`,
    readOnly: (role) => `Mã khóa của bạn (${role}) chỉ xem được cảnh báo, không thao tác được.`,
    alreadyAcknowledged: (who) => `${who} đã nhận việc này.`,
    alreadyOnSite: "Bạn đã báo có mặt tại hiện trường.",
    waitingToSend: (action) => `${action} đang chờ gửi.`,
    resolving: "Đang đóng cảnh báo: hoàn tác hoặc để nó được gửi.",
    cannotQueue: "Không có mạng, và điện thoại này không lưu được thao tác để gửi sau.",
    refused: (action, why) => `${action} không thực hiện được: ${why}`,
    resolveTitle: (what) => `Đóng cảnh báo: ${what}`,
    resolveNoteLabel: "Đã làm gì? (bắt buộc)",
    resolveConfirm: "Đóng cảnh báo",
    cancel: "Hủy",
    noteRequired: "Hãy ghi ngắn gọn việc đã làm trước.",
    undoIn: (s) => `Đã xử lý: sẽ gửi sau ${s} giây nếu bạn không hoàn tác.`,
    undo: "Hoàn tác",
    networkDown: "Không có mạng: thao tác được lưu trên điện thoại và gửi khi có mạng lại.",
    savedAt: (time) => `Không có mạng: đang hiện các cảnh báo đã lưu lúc ${time}.`,
    nothingSaved: "Không có mạng, và điện thoại chưa lưu gì. Sẽ thử lại khi có mạng.",
    serverTrouble: (status) => `Máy chủ đang gặp sự cố (lỗi ${status}); sẽ thử lại sau.`,
    unexpected: (status) => `Máy chủ trả lời bất thường (lỗi ${status}).`,
    noLocation: "Điện thoại này không chia sẻ được vị trí.",
    locationUnavailable: (why) => `Không lấy được vị trí: ${why}`,
    alarmSetup: "Bật chuông và thông báo",
    notificationsBlocked: "Thông báo đang bị chặn cho trang này: hãy cho phép trong cài đặt trang của trình duyệt.",
    alarmTitle: (what) => `Khẩn cấp: ${what}`,
  },
  en: {
    locale: "en-GB",
    title: "citywatch · crew",
    appName: "citywatch crew",
    switchLang: "Tiếng Việt",
    switchLangTitle: "Chuyển sang tiếng Việt",
    signInTitle: "Sign in",
    signInHint: "Paste your crew key once; this phone keeps it.",
    keyPlaceholder: "cw_…",
    saveKey: "Save key",
    nearestFirst: "Nearest first",
    noAlerts: "No open alerts in your wards.",
    signOut: "Sign out",
    signOutLoses: (n) => `${n} action(s) not sent yet will be lost. Sign out anyway?`,
    liveTitle: "live updates",
    live: "live",
    connecting: "connecting…",
    offline: "offline",
    allWards: "all wards",
    keyRefused: "Your key was refused; paste it again.",
    types: {
      limit: "Reading out of limits", baseline: "Unusual reading", time_of_day: "Unusual for this hour",
      level_shift: "Sudden change", flatline: "Sensor stuck", dropout: "Sensor silent",
      overheating: "Overheating", power_loss: "Mains power lost", flooding: "Water inside",
      intrusion: "Door opened", cable_cut: "Cable cut", fibre_degradation: "Fibre degrading",
      area_outage: "Area power outage", offline: "Device offline",
    },
    severities: { critical: "critical", major: "major", minor: "minor", warning: "warning" },
    metrics: {
      temp_inside: "Temperature inside the cabinet", temp_outside: "Temperature outside the cabinet",
      humidity: "Humidity inside the cabinet", door_open: "Cabinet door", mains_voltage: "Mains voltage",
      on_battery: "Battery use", battery_soc: "Battery charge", battery_voltage: "Battery voltage",
      fan_rpm: "Fan speed", water_level: "Water in the cabinet", power_draw: "Power draw",
      temp: "Duct temperature", moisture: "Duct moisture", strain: "Cable strain",
      optical_loss: "Optical loss", signal: "Light through the fibre",
    },
    states: {
      door_open: ["closed", "open"], on_battery: ["on mains", "running on battery"],
      signal: ["no light", "light arrives"], other: ["off", "on"],
    },
    rules: {
      overheating: "The cabinet is too hot: check the fans and vents.",
      power_loss: "Mains lost: the cabinet runs on its battery.",
      flooding: "Water has got in: check the cabinet or the duct.",
      intrusion: "The cabinet door was opened outside working hours.",
      cable_cut: "No light through the segment: cable cut or crushed.",
      fibre_degradation: "Optical loss creeping up: fibre or splice degrading.",
      area_outage: "Many cabinets of the ward on battery at once: area power outage.",
      offline: "The device stopped reporting: power or link down?",
    },
    advice: {
      overheating: "Check the fans and vents.",
      power_loss: "Mains lost: the cabinet runs on its battery.",
      flooding: "Water has got in: check the cabinet or the duct.",
      cable_cut: "No light through the segment: cable cut or crushed.",
      fibre_degradation: "Fibre or splice degrading.",
    },
    areaBattery: (n, total) => `${n} of ${total} cabinets in the ward on battery at once: area power outage.`,
    areaSilent: (n, total) => `${n} of ${total} devices in the ward went silent: area power or link down.`,
    areaSilentUncounted: "Many devices of the ward went silent at once: area power or link down.",
    aboveLimit: (limit) => `above the limit ${limit}`,
    belowLimit: (limit) => `below the limit ${limit}`,
    aboveUsual: (gap) => `${gap} above its usual`,
    belowUsual: (gap) => `${gap} below its usual`,
    aboveUsualHour: (gap) => `${gap} above its usual for this hour`,
    belowUsualHour: (gap) => `${gap} below its usual for this hour`,
    shiftedFrom: (usual) => `changed suddenly from ${usual}`,
    risingHour: (amount) => `rising ${amount} an hour`,
    risingDay: (amount) => `rising ${amount} a day`,
    fallingHour: (amount) => `falling ${amount} an hour`,
    fallingDay: (amount) => `falling ${amount} a day`,
    aboveCrit: (limit) => `above the critical limit ${limit}`,
    aboveWarn: (limit) => `above the warning limit ${limit}`,
    belowCrit: (limit) => `below the critical limit ${limit}`,
    belowWarn: (limit) => `below the warning limit ${limit}`,
    reading: (metric, value) => `${metric}: ${value}`,
    crossed: (metric, value, limit) => `${metric}: ${value}, ${limit}`,
    outsideLimits: (metric, value) => `${metric}: ${value}, outside its limits`,
    stuck: (metric, value) => `${metric} stuck at ${value}: the sensor may be frozen`,
    silent: (metric) => `No ${metric.toLowerCase()} reading: device, power or link down?`,
    shifted: (metric, value) => `${metric}: ${value}, changed suddenly`,
    unusualHour: (metric, value) => `${metric}: ${value}, not its usual for this hour`,
    unusual: (metric, value) => `${metric}: ${value}, not its usual`,
    details: "Technical details",
    noDetails: "No details from the detector.",
    folded: (n) => `${n} more alert(s) here or from the same cause`,
    wholeWard: "whole ward",
    map: "Map",
    navigate: "Navigate",
    km: (km) => `${km} km`,
    minutesAgo: (min) => `${min} min ago`,
    hoursAgo: (h, min) => `${h} h ${min} min ago`,
    opened: (time, ago) => `opened ${time} (${ago})`,
    acknowledgedBy: (who) => `acknowledged by ${who}`,
    someone: "someone",
    onIt: (who) => `on it: ${who}`,
    summary: (open, nearest, waiting) => [
      `${open} open`, nearest ? "nearest first" : "", waiting ? `${waiting} waiting to send` : "",
    ].filter(Boolean).join(" · "),
    // Actions, and why a button cannot act.
    acknowledge: "Acknowledge",
    acknowledged: "Acknowledged",
    onSite: "On site",
    resolved: "Resolved",
    actionNames: { ack: "Acknowledge", onsite: "On site", resolve: "Resolved" },
    onSiteComment: "On site",
    willSend: (action) => `${action}: will send when online`,
    sending: (action) => `${action}: sending…`,
    readOnly: (role) => `Your key (${role}) can read alerts but not act on them.`,
    alreadyAcknowledged: (who) => `Already acknowledged by ${who}.`,
    alreadyOnSite: "You are already on site.",
    waitingToSend: (action) => `${action} is waiting to be sent.`,
    resolving: "Resolving: undo it or let it be sent.",
    cannotQueue: "No network, and this phone cannot keep actions to send later.",
    refused: (action, why) => `${action} was not done: ${why}`,
    // Resolving, with a note and a minute to undo.
    resolveTitle: (what) => `Resolve: ${what}`,
    resolveNoteLabel: "What was done? (required)",
    resolveConfirm: "Resolve",
    cancel: "Cancel",
    noteRequired: "Write a short note of what was done first.",
    undoIn: (s) => `Resolved: sent in ${s} s unless you undo.`,
    undo: "Undo",
    // Network and server trouble, in words.
    networkDown: "No network: actions are kept on this phone and sent when it is back.",
    savedAt: (time) => `No network: showing the alerts saved at ${time}.`,
    nothingSaved: "No network, and nothing saved on this phone yet. Trying again when it is back.",
    serverTrouble: (status) => `The server has a problem (error ${status}); trying again soon.`,
    unexpected: (status) => `Unexpected answer from the server (error ${status}).`,
    noLocation: "This phone cannot share its location.",
    locationUnavailable: (why) => `Location unavailable: ${why}`,
    // Alarms.
    alarmSetup: "Turn on alarm sound and notifications",
    notificationsBlocked: "Notifications are blocked for this page: allow them in the browser's site settings.",
    alarmTitle: (what) => `Critical: ${what}`,
  },
};
const LANGS = Object.keys(TEXTS);
const LANG_KEY = "citywatch.crew.lang";
const HANOI_TZ = "Asia/Ho_Chi_Minh";

// The language chosen on this phone with the page's switch (null: none).
function keptLang() {
  let kept = null;
  try { kept = localStorage.getItem(LANG_KEY); } catch (err) { kept = null; }
  return LANGS.includes(kept) ? kept : null;
}

// The chosen language: the page's switch, else the key's (once /me told it), else the
// browser's first language we speak.
function chooseLang(keyLang = null) {
  const kept = keptLang();
  if (kept) return kept;
  if (LANGS.includes(keyLang)) return keyLang;
  for (const tag of navigator.languages || [navigator.language]) {
    const primary = String(tag || "").toLowerCase().split("-")[0];
    if (LANGS.includes(primary)) return primary;
  }
  return "vi";
}

let LANG = chooseLang();
let TEXT = TEXTS[LANG];
let NUMBER = null; // Intl formatters of the language (set by useLang)
let FINE = null; // ... with two decimals, for small rates (0,48 dB a day)
let CLOCK = null;

function useLang(lang) {
  LANG = lang;
  TEXT = TEXTS[lang];
  NUMBER = new Intl.NumberFormat(TEXT.locale, { maximumFractionDigits: 1 });
  FINE = new Intl.NumberFormat(TEXT.locale, { maximumFractionDigits: 2 });
  CLOCK = new Intl.DateTimeFormat(TEXT.locale, { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: HANOI_TZ });
  document.documentElement.lang = lang;
}
useLang(LANG);

const KEY = "citywatch.crew.key";
const QUEUE = "citywatch.crew.queue";
const DATA_CACHE = "citywatch-crew-data"; // the service worker's cache of API answers
const UNDO_MS = 60_000; // "Resolved" is sent after this long unless undone
const RETRY_SEND_MS = 15_000; // while actions wait for the network
const SEVERITY_RANK = { critical: 0, major: 1, minor: 2, warning: 3 };
const ACTING_ROLES = new Set(["noc", "crew"]);

const state = {
  token: localStorage.getItem(KEY), me: null, alerts: new Map(), devices: new Map(),
  here: null, lastEventId: null, source: null, retryMs: 1000, onReady: null, streamTimer: null,
  queue: [], flushing: false, sendTimer: null, undoTicker: null, stale: false,
  alarmed: new Set(), audio: null, resolving: null, registration: null,
  wards: new Map(), metrics: new Map(), live: "off",
  listing: new Set(), // per list request on its way: the alerts changed meanwhile (upsert)
};
const $ = (id) => document.getElementById(id);

class NetworkError extends Error {}
class HttpError extends Error {
  constructor(status, message, retryAfter) { super(message); this.status = status; this.retryAfter = retryAfter; }
}

// ------------------------------------------------------------------ storage

function storageWorks() {
  try {
    localStorage.setItem(`${QUEUE}.probe`, "1");
    localStorage.removeItem(`${QUEUE}.probe`);
    return true;
  } catch (err) { return false; }
}

function loadQueue() {
  try { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); } catch (err) { return []; }
}

function saveQueue() {
  try { localStorage.setItem(QUEUE, JSON.stringify(state.queue)); return true; } catch (err) { return false; }
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------ API

// The server answers errors as RFC 9457 problem documents: "detail" says what, in words.
function describe(body, status) {
  const detail = body?.detail;
  if (typeof detail === "string") return detail;
  if (typeof body?.title === "string") return body.title;
  if (Array.isArray(detail)) return detail.map((d) => d.msg).filter(Boolean).join("; ");
  return status >= 500 ? TEXT.serverTrouble(status) : TEXT.unexpected(status);
}

// fetch with the key; throws NetworkError (no answer: words, never "Failed to fetch") or
// HttpError (the server's reason). `meta.savedAt` is set when the service worker answered
// from its cache because the network was down.
async function api(path, options = {}, meta = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: {
        Authorization: `Bearer ${state.token}`, "Content-Type": "application/json", ...options.headers,
      },
    });
  } catch (err) {
    throw new NetworkError(TEXT.networkDown);
  }
  if (response.status === 401) { signOut(TEXT.keyRefused); throw new HttpError(401, TEXT.keyRefused); }
  let body = null;
  if (response.status !== 204) {
    try { body = await response.json(); } catch (err) { body = null; }
  }
  if (!response.ok) {
    throw new HttpError(response.status, describe(body, response.status), response.headers.get("Retry-After"));
  }
  const saved = response.headers.get("x-citywatch-saved-at");
  meta.savedAt = saved ? Number(saved) : null;
  return body;
}

async function forgetData() {
  try { if (window.caches) await caches.delete(DATA_CACHE); } catch (err) { /* nothing kept */ }
}

function signOut(message) {
  localStorage.removeItem(KEY);
  state.token = null;
  state.me = null;
  state.queue = [];
  saveQueue();
  forgetData();
  if (state.source) state.source.close();
  clearTimeout(state.streamTimer);
  $("app").hidden = true;
  $("live").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

// ------------------------------------------------------------------ rendering

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
  return min < 60 ? TEXT.minutesAgo(min) : TEXT.hoursAgo(Math.floor(min / 60), min % 60);
}

function clock(ms) { return CLOCK.format(new Date(ms)); }

// A ward as a person reads it (Phường Định Công); the codename if the catalogue lacks it.
function wardName(codename) { return state.wards.get(codename) || codename; }

function reading(metric, value) {
  if (!metric.unit) {
    const states = TEXT.states[metric.name] || TEXT.states.other;
    return states[value >= 1 ? 1 : 0];
  }
  return `${NUMBER.format(value)} ${metric.unit}`;
}

// The limit of the catalogue the value crossed, in words ("" when none or unknown).
function crossedLimit(metric, value) {
  if (!metric.unit) return "";
  const checks = [
    [metric.crit_high, (l) => value >= l, TEXT.aboveCrit], [metric.warn_high, (l) => value >= l, TEXT.aboveWarn],
    [metric.crit_low, (l) => value <= l, TEXT.belowCrit], [metric.warn_low, (l) => value <= l, TEXT.belowWarn],
  ];
  for (const [limit, crossed, words] of checks) {
    if (limit != null && crossed(limit)) return words(reading(metric, limit));
  }
  return "";
}

// What is wrong, written from the alert's fields in the crew's language (no statistics:
// the detector's sentence stays behind "technical details").
function metricLabel(name) { return (name && TEXT.metrics[name]) || name; }

const finite = (x) => x != null && Number.isFinite(x);

// A rate of change per hour, in words; per day when slow ("tăng 0,48 dB mỗi ngày").
function rate(metric, perHour) {
  const daily = Math.abs(perHour) < 0.1;
  const size = Math.abs(perHour) * (daily ? 24 : 1);
  const amount = `${(size < 1 ? FINE : NUMBER).format(size)} ${metric.unit}`;
  if (perHour >= 0) return daily ? TEXT.risingDay(amount) : TEXT.risingHour(amount);
  return daily ? TEXT.fallingDay(amount) : TEXT.fallingHour(amount);
}

// What the alert's value is judged against (its `reference`, of `reference_kind`), in
// words: "cao hơn bình thường 10 °C", "vượt ngưỡng 30 mm", "giảm 8 % mỗi giờ"; "" if none.
function against(alert, metric) {
  const { value, reference: ref, reference_kind: kind } = alert;
  if (!metric.unit || !finite(value) || !finite(ref) || !kind) return "";
  if (kind === "limit") return (value >= ref ? TEXT.aboveLimit : TEXT.belowLimit)(reading(metric, ref));
  if (kind === "trend") return rate(metric, ref);
  if (kind !== "baseline") return "";
  if (alert.type === "level_shift") return TEXT.shiftedFrom(reading(metric, ref));
  const diff = value - ref;
  if (NUMBER.format(Math.abs(diff)) === "0") return "";
  const gap = reading(metric, Math.abs(diff));
  if (alert.type === "time_of_day") return (diff > 0 ? TEXT.aboveUsualHour : TEXT.belowUsualHour)(gap);
  return (diff > 0 ? TEXT.aboveUsual : TEXT.belowUsual)(gap);
}

// An area outage: how many of the ward's devices, on battery or silent.
function areaLine(alert) {
  const silent = alert.metric === "offline";
  if (alert.reference_kind === "total" && finite(alert.value) && finite(alert.reference)) {
    const [n, total] = [NUMBER.format(alert.value), NUMBER.format(alert.reference)];
    return silent ? TEXT.areaSilent(n, total) : TEXT.areaBattery(n, total);
  }
  return silent ? TEXT.areaSilentUncounted : TEXT.rules.area_outage;
}

// A device rule's reading with what it is judged against, then what it means
// ("Nhiệt độ trong tủ: 48 °C, cao hơn bình thường 10 °C. Kiểm tra quạt và khe thông gió.");
// null when the alert carries no figure (alerts stored before they did, a door).
function ruleLine(alert) {
  const metric = state.metrics.get(alert.value_metric);
  if (!metric || !metric.unit || !finite(alert.value)) return null;
  const label = metricLabel(metric.name);
  const value = reading(metric, alert.value);
  const words = against(alert, metric);
  const figure = words ? TEXT.crossed(label, value, words) : TEXT.reading(label, value);
  const advice = TEXT.advice[alert.type];
  return advice ? `${figure}. ${advice}` : figure;
}

function mainLine(alert) {
  if (alert.type === "area_outage") return areaLine(alert);
  if (!alert.metric) {
    const line = ruleLine(alert);
    if (line) return line;
  }
  const metric = state.metrics.get(alert.metric);
  const label = metricLabel(alert.metric);
  if (!metric || alert.value == null || !Number.isFinite(alert.value)) {
    if (TEXT.rules[alert.type]) return TEXT.rules[alert.type];
    if (alert.type === "dropout" && label) return TEXT.silent(label);
    return typeWords(alert);
  }
  const value = reading(metric, alert.value);
  switch (alert.type) {
    case "limit": {
      const crossed = crossedLimit(metric, alert.value);
      return crossed ? TEXT.crossed(label, value, crossed) : TEXT.outsideLimits(label, value);
    }
    case "flatline": return TEXT.stuck(label, value);
    case "dropout": return TEXT.silent(label);
    case "level_shift": case "time_of_day": case "baseline": {
      const words = against(alert, metric);
      if (words) return TEXT.crossed(label, value, words);
      if (alert.type === "level_shift") return TEXT.shifted(label, value);
      return alert.type === "time_of_day" ? TEXT.unusualHour(label, value) : TEXT.unusual(label, value);
    }
    default: return TEXT.reading(label, value);
  }
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

function typeWords(alert) { return TEXT.types[alert.type] || alert.type; }

function queued(alertId) { return state.queue.filter((op) => op.alertId === alertId); }

// Why each action button of this alert cannot act now (null: it can).
function blockers(alert, ops) {
  const out = { ack: null, onsite: null, resolve: null };
  const set = (action, reason) => { if (!out[action]) out[action] = reason; };
  if (!ACTING_ROLES.has(state.me.role)) {
    for (const action of Object.keys(out)) set(action, TEXT.readOnly(state.me.role));
    return out;
  }
  if (ops.some((op) => op.action === "resolve")) {
    for (const action of Object.keys(out)) set(action, TEXT.resolving);
  }
  for (const op of ops) set(op.action, TEXT.waitingToSend(TEXT.actionNames[op.action]));
  if (alert.acknowledged) set("ack", TEXT.alreadyAcknowledged(alert.acknowledged_by || TEXT.someone));
  if (alert.assignee && alert.assignee === state.me.name) set("onsite", TEXT.alreadyOnSite);
  if (!navigator.onLine && !storageWorks()) {
    for (const action of Object.keys(out)) set(action, TEXT.cannotQueue);
  }
  return out;
}

// One card per problem, at most one per device: an incident's children fold into its
// root's card (a device that went offline and its silent sensors; a ward's outage and its
// cabinets), and the other open alerts of a device into that device's first card (the
// most urgent; "sorted" puts it first). A child whose root this crew does not see keeps a
// card of its own. citywatch/scorecard.py counts cards the same way.
function cards() {
  const all = sorted();
  const roots = new Map();
  for (const a of all) if (a.incident != null && a.incident_root) roots.set(a.incident, a);
  const rootOf = (a) => (a.incident != null && !a.incident_root ? roots.get(a.incident) : undefined);
  // A device's card: its incident's root if it roots one, else its first alert in order.
  const lead = new Map();
  for (const a of all) if (a.device && a.incident_root && !lead.has(a.device)) lead.set(a.device, a);
  for (const a of all) if (a.device && !rootOf(a) && !lead.has(a.device)) lead.set(a.device, a);
  const children = new Map();
  const shown = [];
  for (const a of all) {
    const into = rootOf(a) || (a.device ? lead.get(a.device) : undefined);
    if (into && into !== a) {
      if (!children.has(into.id)) children.set(into.id, []);
      children.get(into.id).push(a);
    } else {
      shown.push(a);
    }
  }
  // What folds into a card that itself folded in: all of it shows on the outer card.
  const all_of = (id, seen = new Set()) => (children.get(id) || []).flatMap((c) =>
    seen.has(c.id) ? [] : (seen.add(c.id), [c, ...all_of(c.id, seen)]));
  return { shown, children: new Map(shown.map((a) => [a.id, all_of(a.id)])) };
}

function foldIn(li, children) {
  if (!children || !children.length) return;
  const box = document.createElement("details");
  box.className = "children";
  box.dataset.testid = "folded";
  const title = document.createElement("summary");
  title.textContent = TEXT.folded(children.length);
  const list = document.createElement("ul");
  for (const child of children) {
    const item = document.createElement("li");
    item.textContent = [typeWords(child), metricLabel(child.metric), child.device].filter(Boolean).join(" · ");
    list.append(item);
  }
  box.append(title, list);
  li.querySelector(".why").after(box);
}

function render(flashId) {
  if (!state.me) return;
  const ul = $("alerts");
  ul.replaceChildren();
  const { shown, children } = cards();
  for (const alert of shown) {
    const li = $("alert-card").content.firstElementChild.cloneNode(true);
    li.dataset.alertId = alert.id;
    li.dataset.testid = "alert";
    li.classList.add(alert.severity);
    if (alert.acknowledged) li.classList.add("acked");
    if (alert.id === flashId) li.classList.add("flash");
    li.querySelector(".sev").textContent = TEXT.severities[alert.severity] || alert.severity;
    li.querySelector(".what").textContent = typeWords(alert);
    li.querySelector(".why").textContent = mainLine(alert);
    const detail = li.querySelector(".detail");
    detail.querySelector("summary").textContent = TEXT.details;
    detail.querySelector(".explanation").textContent = alert.explanation || TEXT.noDetails;
    foldIn(li, children.get(alert.id));
    const loc = where(alert);
    const label = [alert.device || TEXT.wholeWard, loc?.street, wardName(alert.ward)].filter(Boolean).join(" · ");
    li.querySelector(".where").textContent = label;
    if (loc) {
      const osm = document.createElement("a");
      osm.href = `https://www.openstreetmap.org/?mlat=${loc.lat}&mlon=${loc.lon}#map=18/${loc.lat}/${loc.lon}`;
      osm.textContent = TEXT.map;
      osm.target = "_blank";
      osm.rel = "noopener";
      const geo = document.createElement("a");
      geo.href = `geo:${loc.lat},${loc.lon}?q=${loc.lat},${loc.lon}`;
      geo.textContent = TEXT.navigate;
      li.querySelector(".links").append(geo, osm);
      if (state.here) li.querySelector(".dist").textContent = TEXT.km(NUMBER.format(distanceKm(state.here, loc)));
    }
    const meta = [TEXT.opened(clock(alert.opened_at), ago(alert.opened_at))];
    if (alert.acknowledged) meta.push(TEXT.acknowledgedBy(alert.acknowledged_by || TEXT.someone));
    if (alert.assignee) meta.push(TEXT.onIt(alert.assignee));
    li.querySelector(".meta").textContent = meta.join(" · ");

    const ops = queued(alert.id);
    const pending = li.querySelector(".pending");
    for (const op of ops) {
      if (op.action === "resolve" && op.sendAfter > Date.now()) continue; // shown as "undo"
      const item = document.createElement("li");
      const name = TEXT.actionNames[op.action];
      item.textContent = op.sending ? TEXT.sending(name) : TEXT.willSend(name);
      pending.append(item);
    }
    const undoable = ops.find((op) => op.action === "resolve" && op.sendAfter > Date.now());
    if (undoable) {
      const box = li.querySelector(".undo");
      box.hidden = false;
      box.querySelector(".undo-text").textContent = TEXT.undoIn(Math.ceil((undoable.sendAfter - Date.now()) / 1000));
      box.querySelector(".undo-button").textContent = TEXT.undo;
      li.classList.add("resolving");
    }

    const blocked = blockers(alert, ops);
    const labels = { ack: alert.acknowledged ? TEXT.acknowledged : TEXT.acknowledge, onsite: TEXT.onSite, resolve: TEXT.resolved };
    const reasons = [];
    for (const [action, cls] of [["ack", ".ack"], ["onsite", ".onsite"], ["resolve", ".resolve"]]) {
      const button = li.querySelector(`.actions ${cls}`);
      button.textContent = labels[action];
      button.disabled = blocked[action] !== null;
      button.title = blocked[action] || "";
      // "Acknowledged" on the button says it already; other reasons are written out.
      if (blocked[action] && !(action === "ack" && alert.acknowledged && !ops.length)
          && !reasons.includes(blocked[action])) reasons.push(blocked[action]);
    }
    li.querySelector(".blocked").textContent = reasons.join(" ");
    ul.append(li);
  }
  $("empty").hidden = state.alerts.size > 0;
  $("summary").textContent = TEXT.summary(shown.length, Boolean(state.here), state.queue.length);
}

function showNotice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

function setLive(mode) {
  state.live = mode;
  const on = mode === true || mode === "live";
  const words = { live: TEXT.live, connecting: TEXT.connecting };
  $("live").textContent = on ? TEXT.live : words[mode] || TEXT.offline;
  $("live").className = `live ${on ? "on" : mode === "connecting" ? "wait" : "off"}`;
}

function upsert(alert) {
  for (const changed of state.listing) changed.set(alert.id, alert);
  if (alert.state === "cleared") state.alerts.delete(alert.id);
  else if (alert.state === "active") state.alerts.set(alert.id, alert);
}

// ------------------------------------------------------------------ actions and the queue

// The requests of one action, each sent with its own Idempotency-Key (a repeat after a
// lost answer is a no-op on the server). `tolerate409`: a step whose goal may already hold.
function steps(op) {
  if (op.action === "ack") return [["acknowledge", {}, false]];
  if (op.action === "onsite") {
    return [
      ["acknowledge", {}, true],
      ["assign", { assignee: op.assignee }, true],
      ["comment", { text: TEXT.onSiteComment }, false],
    ];
  }
  return [["resolve", { note: op.note }, false]];
}

function enqueue(alertId, action, extra = {}) {
  const op = { key: newKey(), alertId, action, step: 0, queuedAt: Date.now(), sendAfter: 0, ...extra };
  state.queue.push(op);
  if (!saveQueue()) {
    // Not kept on the phone: sent now or lost with the page; the button said so if offline.
  }
  render();
  flush();
}

function drop(op) {
  state.queue = state.queue.filter((o) => o !== op);
  saveQueue();
}

// Sends what is due, in order, one action at a time; stops at the first network failure.
async function flush() {
  if (state.flushing || !state.token || !state.me) return;
  state.flushing = true;
  clearTimeout(state.sendTimer);
  let offline = false;
  try {
    for (const op of [...state.queue]) {
      if (op.sendAfter > Date.now() || !state.queue.includes(op)) continue;
      const outcome = await send(op);
      if (outcome === "offline") { offline = true; break; }
    }
  } finally {
    state.flushing = false;
    scheduleFlush(offline);
    render();
  }
}

function scheduleFlush(offline) {
  clearTimeout(state.sendTimer);
  if (!state.queue.length) return;
  const next = Math.min(...state.queue.map((op) => op.sendAfter));
  const wait = offline ? RETRY_SEND_MS : Math.max(0, next - Date.now());
  state.sendTimer = setTimeout(flush, wait);
}

async function send(op) {
  const list = steps(op);
  op.sending = true;
  render();
  try {
    for (; op.step < list.length; op.step += 1, saveQueue()) {
      const [path, body, tolerate409] = list[op.step];
      try {
        upsert(await api(`/alerts/${op.alertId}/${path}`, {
          method: "POST", body: JSON.stringify(body), headers: { "Idempotency-Key": `${op.key}.${op.step}` },
        }));
      } catch (err) {
        if (!(err instanceof HttpError && err.status === 409 && tolerate409)) throw err;
      }
    }
    drop(op);
    return "sent";
  } catch (err) {
    op.sending = false;
    if (err instanceof NetworkError) { $("error").textContent = ""; return "offline"; }
    if (err instanceof HttpError && (err.status === 401 || err.status >= 500 || err.retryAfter)) {
      if (err.status >= 500) $("error").textContent = err.message;
      return "offline"; // kept: the server recovers, or its first copy (another tab) finishes
    }
    drop(op);
    $("error").textContent = TEXT.refused(TEXT.actionNames[op.action], err.message);
    return "refused";
  }
}

function act(id, action) {
  $("error").textContent = "";
  const alert = state.alerts.get(id);
  if (!alert) return;
  if (action === "ack") enqueue(id, "ack");
  else if (action === "onsite") enqueue(id, "onsite", { assignee: state.me.name });
  else if (action === "resolve") askResolveNote(alert);
  else if (action === "undo") {
    state.queue = state.queue.filter((op) => !(op.alertId === id && op.action === "resolve" && op.sendAfter > Date.now()));
    saveQueue();
    scheduleFlush(false);
    render();
  }
}

function askResolveNote(alert) {
  state.resolving = alert.id;
  $("resolve-title").textContent = TEXT.resolveTitle(typeWords(alert));
  $("resolve-note").value = "";
  $("resolve-error").textContent = "";
  $("resolve-dialog").showModal();
  $("resolve-note").focus();
}

function confirmResolve(e) {
  e.preventDefault();
  const note = $("resolve-note").value.trim();
  if (!note) { $("resolve-error").textContent = TEXT.noteRequired; $("resolve-note").focus(); return; }
  $("resolve-dialog").close();
  const id = state.resolving;
  state.resolving = null;
  if (!state.alerts.has(id)) return;
  enqueue(id, "resolve", { note, sendAfter: Date.now() + UNDO_MS });
  tickUndo();
}

// Counts the undo windows down on the cards while any is open.
function tickUndo() {
  clearInterval(state.undoTicker);
  state.undoTicker = setInterval(() => {
    const open = state.queue.some((op) => op.action === "resolve" && op.sendAfter > Date.now());
    for (const li of document.querySelectorAll("li.resolving")) {
      const op = state.queue.find((o) => o.alertId === Number(li.dataset.alertId) && o.action === "resolve");
      if (op && op.sendAfter > Date.now()) {
        li.querySelector(".undo-text").textContent = TEXT.undoIn(Math.ceil((op.sendAfter - Date.now()) / 1000));
      }
    }
    if (!open) { clearInterval(state.undoTicker); render(); }
  }, 1000);
}

// ------------------------------------------------------------------ alarms

function unlockAudio() {
  try {
    if (!state.audio) state.audio = new (window.AudioContext || window.webkitAudioContext)();
    if (state.audio.state === "suspended") state.audio.resume();
  } catch (err) { state.audio = null; }
}

function beep() {
  const ctx = state.audio;
  if (!ctx) return;
  const t0 = ctx.currentTime;
  for (let i = 0; i < 3; i += 1) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, t0 + i * 0.4);
    gain.gain.exponentialRampToValueAtTime(0.3, t0 + i * 0.4 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.4 + 0.3);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t0 + i * 0.4);
    osc.stop(t0 + i * 0.4 + 0.32);
  }
}

async function alarm(alert) {
  if (state.alarmed.has(alert.id)) return;
  state.alarmed.add(alert.id);
  beep();
  if (navigator.vibrate) navigator.vibrate([400, 150, 400, 150, 400]);
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const title = TEXT.alarmTitle(typeWords(alert));
  const options = {
    body: [mainLine(alert), [alert.device, wardName(alert.ward)].filter(Boolean).join(" · ")].join("\n"),
    tag: `citywatch-alert-${alert.id}`,
    icon: "/crew/assets/icon-192.png",
    badge: "/crew/assets/icon-192.png",
    requireInteraction: true,
    data: { url: `/crew#alert-${alert.id}` },
  };
  try {
    const registration = state.registration || (await navigator.serviceWorker?.getRegistration("/crew"));
    if (registration) await registration.showNotification(title, options);
    else new Notification(title, options);
  } catch (err) { /* the sound and vibration still ran */ }
}

function isNewCritical(change) {
  const a = change.alert;
  return a && a.state === "active" && a.severity === "critical" && !a.silenced
    && (change.kind === "raised" || change.kind === "severity_raised");
}

function showAlarmSetup() {
  const ask = "Notification" in window && Notification.permission !== "granted";
  $("alarm-setup").hidden = !ask;
}

// On a tap (a user gesture): the browser may ask the crew, or say it is blocked.
async function setUpAlarms() {
  unlockAudio();
  if (!("Notification" in window)) return;
  const answer = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
  $("error").textContent = answer === "granted" ? "" : TEXT.notificationsBlocked;
  showAlarmSetup();
}

// ------------------------------------------------------------------ the stream

function retryStream() {
  clearTimeout(state.streamTimer);
  state.streamTimer = setTimeout(openStream, state.retryMs);
  state.retryMs = Math.min(state.retryMs * 2, 30000);
}

async function openStream() {
  clearTimeout(state.streamTimer);
  if (state.source) state.source.close();
  state.source = null;
  if (!state.token) return;
  let ticket;
  try {
    ticket = await api("/stream/ticket", { method: "POST", body: "{}" });
  } catch (err) {
    if (!state.token) return;
    setLive(false);
    if (state.onReady) { state.onReady(); state.onReady = null; } // offline: go on with what is kept
    retryStream();
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
    if (state.onReady) { state.onReady(); state.onReady = null; } else if (state.stale) loadList();
    flush();
  });
  source.addEventListener("change", (e) => {
    state.lastEventId = e.lastEventId;
    const change = JSON.parse(e.data);
    if (change.alert) {
      const isNew = !state.alerts.has(change.alert.id);
      upsert(change.alert);
      render(change.alert.id);
      if (isNewCritical(change) && (isNew || change.kind === "severity_raised")) alarm(change.alert);
    }
    if (change.alert && !state.devices.has(change.alert.device)) loadDevices();
  });
  source.onerror = () => {
    setLive(false);
    // The browser retries by itself unless the server refused (expired ticket): then the
    // stream is closed and we fetch a new ticket, resuming after the last event seen.
    if (source.readyState === EventSource.CLOSED) retryStream();
  };
}

// ------------------------------------------------------------------ loading

// A list is older than an answer to an action, or a stream change, that came while it was
// on its way (back online, the page asks for the list and sends the waiting actions at
// once): those alerts keep their newer state, or an acknowledgement just sent would show
// as not acknowledged until the next change.
async function loadList() {
  const meta = {};
  const changed = new Map();
  state.listing.add(changed);
  try {
    const page = await api("/alerts?state=active&limit=500", {}, meta);
    const fresh = new Map();
    for (const alert of page.data) if (alert.state === "active") fresh.set(alert.id, alert);
    for (const [id, alert] of changed) {
      if (alert.state === "cleared") fresh.delete(id);
      else if (alert.state === "active") fresh.set(id, alert);
    }
    state.alerts = fresh;
    state.stale = meta.savedAt !== null;
    state.savedAt = state.stale ? meta.savedAt : null;
    showNotice(state.stale ? TEXT.savedAt(clock(meta.savedAt)) : "");
    $("error").textContent = "";
  } catch (err) {
    state.stale = true;
    if (err instanceof NetworkError) showNotice(TEXT.nothingSaved);
    else $("error").textContent = err.message;
  } finally {
    state.listing.delete(changed);
  }
  render();
}

// Ward names and metric units (the page writes alerts from them); kept by the service
// worker like /me, so the page reads the same offline.
async function loadCatalogue() {
  try {
    const catalogue = await api("/catalogue");
    state.wards = new Map(catalogue.wards.map((w) => [w.codename, w.name]));
    state.metrics = new Map(catalogue.metrics.map((m) => [m.name, m]));
  } catch (err) { /* codenames and the type's words until it loads */ }
}

function showWho() {
  if (!state.me) return;
  const wards = state.me.wards.map(wardName).join(", ") || TEXT.allWards;
  $("who").textContent = `${state.me.name} · ${wards}`;
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
    if (err instanceof NetworkError && state.token) {
      // Offline with nothing kept yet: keep the key, try again when the network is back.
      $("app").hidden = false;
      $("live").hidden = false;
      setLive(false);
      showNotice(TEXT.nothingSaved);
      return;
    }
    if (state.token) signOut(err.message);
    return;
  }
  followKeyLang();
  await loadCatalogue();
  showWho();
  $("app").hidden = false;
  $("live").hidden = false;
  setLive("connecting");
  showAlarmSetup();
  state.queue = loadQueue();
  // Wait for the stream's "ready" (it names the feed head) before loading the list, so no
  // change falls between the two.
  await new Promise((resolve) => { state.onReady = resolve; openStream(); setTimeout(resolve, 5000); });
  await loadList();
  loadDevices();
  if (state.queue.some((op) => op.action === "resolve" && op.sendAfter > Date.now())) tickUndo();
  flush();
}

function reconnect() {
  if (!state.token) return;
  if (!state.me) { start(); return; }
  state.retryMs = 1000;
  if (!state.source || state.source.readyState !== EventSource.OPEN) openStream();
  flush();
}

// ------------------------------------------------------------------ wiring

function applyTexts() {
  document.title = TEXT.title;
  $("lang").textContent = TEXT.switchLang;
  $("lang").title = TEXT.switchLangTitle;
  $("lang").lang = LANG === "vi" ? "en" : "vi";
  for (const el of document.querySelectorAll("[data-text]")) el.textContent = TEXT[el.dataset.text];
  for (const el of document.querySelectorAll("[data-text-title]")) el.title = TEXT[el.dataset.textTitle];
  for (const el of document.querySelectorAll("[data-text-placeholder]")) el.placeholder = TEXT[el.dataset.textPlaceholder];
}

async function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  try {
    state.registration = await navigator.serviceWorker.register("/crew/sw.js", { scope: "/crew" });
  } catch (err) { /* the page works without it, only not offline */ }
  // The first visit's answers came before the worker took control: ask again so that it
  // keeps them for the next time the page opens without network.
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (state.me) { api("/me").catch(() => {}); api("/catalogue").catch(() => {}); loadList(); loadDevices(); }
  });
}

// The key's language (GET /me) when the crew has not chosen one on this phone.
function followKeyLang() {
  const lang = chooseLang(state.me?.lang);
  if (lang === LANG) return;
  useLang(lang);
  applyTexts();
  render();
}

// The switch: the other language, kept for the next visit; everything is rewritten.
function switchLang() {
  const next = LANG === "vi" ? "en" : "vi";
  try { localStorage.setItem(LANG_KEY, next); } catch (err) { /* this visit only */ }
  useLang(next);
  applyTexts();
  showWho();
  if (state.me) setLive(state.live);
  if (state.stale && state.savedAt) showNotice(TEXT.savedAt(clock(state.savedAt)));
  render();
}

applyTexts();
$("lang").addEventListener("click", switchLang);
$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  unlockAudio();
  state.token = $("token").value.trim();
  localStorage.setItem(KEY, state.token);
  $("token").value = "";
  start();
});
$("logout").addEventListener("click", () => {
  if (state.queue.length && !window.confirm(TEXT.signOutLoses(state.queue.length))) return;
  signOut();
});
$("alerts").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  unlockAudio();
  button.disabled = true;
  act(Number(button.closest("li[data-alert-id]").dataset.alertId), button.dataset.action);
});
$("resolve-form").addEventListener("submit", confirmResolve);
$("resolve-cancel").addEventListener("click", () => { state.resolving = null; $("resolve-dialog").close(); });
$("alarm-setup").addEventListener("click", setUpAlarms);
document.addEventListener("pointerdown", unlockAudio, { once: true });
$("locate").addEventListener("click", () => {
  if (!navigator.geolocation) { $("error").textContent = TEXT.noLocation; return; }
  navigator.geolocation.watchPosition(
    (pos) => { state.here = { lat: pos.coords.latitude, lon: pos.coords.longitude }; render(); },
    (err) => { $("error").textContent = TEXT.locationUnavailable(err.message); },
    { enableHighAccuracy: true, maximumAge: 30000 },
  );
});
window.addEventListener("online", reconnect);
window.addEventListener("offline", () => { if (state.me) { setLive(false); render(); } });

registerWorker();
if (state.token) start(); else signOut();
