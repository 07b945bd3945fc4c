// Keeps the page's <main> up to date without reloading: every few seconds it asks the
// server for the same view's content and swaps it in when it changed. Pauses while the tab
// is hidden; says when the last refresh happened, or why it failed.
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const main = document.getElementById("main");
  const live = document.getElementById("live");
  const source = main && main.dataset.refresh;
  if (!source) {
    return;
  }
  const url = source + (source.includes("?") ? "&" : "?") + "fragment=1";
  let busy = false;

  async function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) {
        live.textContent = "Not updated: the server answered " + response.status + ".";
        return;
      }
      const text = await response.text();
      if (text !== main.innerHTML) {
        main.innerHTML = text;
      }
      live.textContent = "Updated " + new Date().toLocaleTimeString();
      live.dataset.updated = String(Date.now());
    } catch (e) {
      live.textContent = "Not updated: the server cannot be reached.";
    } finally {
      busy = false;
    }
  }

  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", refresh);
})();
