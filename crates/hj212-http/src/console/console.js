// hj212d console: filter the fleet table as one types, and keep live parts of a page fresh
// (the element with id "live" is re-read from the server every 10 s, the filter kept).
"use strict";

function applyFilter() {
  const box = document.getElementById("filter");
  if (!box) return;
  const words = box.value.trim().toLowerCase();
  for (const row of document.querySelectorAll("tr[data-search]")) {
    row.hidden = words !== "" && !row.dataset.search.includes(words);
  }
}

async function refreshLive() {
  const live = document.getElementById("live");
  if (!live) return;
  try {
    const answer = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    if (!answer.ok || answer.redirected) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById("live");
    if (fresh) {
      live.replaceWith(fresh);
      applyFilter();
    }
  } catch (_) {
    // Offline for a moment: the next round tries again.
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("filter");
  if (box) box.addEventListener("input", applyFilter);
  setInterval(refreshLive, 10000);
});
