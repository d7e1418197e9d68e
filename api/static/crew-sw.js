// citywatch crew page service worker (served as /crew/sw.js, scope /crew).
//
// - The page shell (page, script, styles, icons, manifest) is precached at install and
//   answered network-first, so a deploy shows at once and the page opens with no network.
// - GET /me, /catalogue (ward names, units), /alerts and /devices answers are network-first with a cache fallback: the
//   last ones are kept in DATA_CACHE under their URL alone. The request is stored without
//   its Authorization header (the key stays only in the page's localStorage), and an
//   answer from the cache carries "x-citywatch-saved-at" so the page can say how old it is.
//   The page deletes DATA_CACHE on sign out and when its key is refused.
// - Nothing else is touched: POSTs (actions, stream tickets; the page queues actions
//   itself) and the SSE stream go straight to the network.
// - Notifications raised by the page through the registration open the page when tapped.
"use strict";

const SHELL_CACHE = "citywatch-crew-shell-v1";
const DATA_CACHE = "citywatch-crew-data";
const SHELL = [
  "/crew",
  "/crew/assets/crew.js",
  "/crew/assets/crew.css",
  "/crew/manifest.webmanifest",
  "/crew/assets/icon.svg",
  "/crew/assets/icon-192.png",
  "/crew/assets/icon-512.png",
];
const DATA_PATHS = new Set(["/me", "/catalogue", "/alerts", "/devices"]);
const NETWORK_WAIT_MS = 8000; // then fall back to what is kept, if anything

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    await cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("citywatch-crew-shell-") && name !== SHELL_CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("network too slow")), ms);
    promise.then((v) => { clearTimeout(timer); resolve(v); }, (e) => { clearTimeout(timer); reject(e); });
  });
}

async function shell(request) {
  const cache = await caches.open(SHELL_CACHE);
  const url = new URL(request.url);
  const key = url.pathname; // the page under /crew, whatever its query or hash
  try {
    const response = await withTimeout(fetch(request), NETWORK_WAIT_MS);
    if (response.ok) await cache.put(key, response.clone());
    return response;
  } catch (err) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw err;
  }
}

async function data(request) {
  const cache = await caches.open(DATA_CACHE);
  const key = new Request(request.url); // no Authorization header in the cache
  try {
    const response = await withTimeout(fetch(request), NETWORK_WAIT_MS);
    if (response.ok) {
      const headers = new Headers(response.headers);
      headers.set("x-citywatch-saved-at", String(Date.now()));
      const copy = new Response(await response.clone().blob(), { status: response.status, headers });
      await cache.put(key, copy);
    } else if (response.status === 401 || response.status === 403) {
      await cache.delete(key);
    }
    return response;
  } catch (err) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (SHELL.includes(url.pathname)) event.respondWith(shell(request));
  else if (DATA_PATHS.has(url.pathname)) event.respondWith(data(request));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = event.notification.data?.url || "/crew";
  event.waitUntil((async () => {
    const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const page = pages.find((c) => new URL(c.url).pathname === "/crew");
    if (page) return page.focus();
    return self.clients.openWindow(target);
  })());
});
