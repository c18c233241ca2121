/* The recurring job's page: counts down to the next slot, and once it is due asks
 * the page's runs fragment (server-rendered, escaped by Django's templates) for
 * the runs started since, adding their bars on top without touching the bars
 * already live. Each bar's "jobprogress:update" events keep its attempt count. */
(function () {
  "use strict";

  var root = document.querySelector("[data-recurring]");
  if (!root) { return; }
  var LOOK_AFTER_MS = 1500;   // the cluster starts a slot within moments of it
  var DUE_POLL_MS = 2000;     // a slot due but not yet taken: look again soon
  var IDLE_POLL_MS = 10000;   // long overdue: no cluster seems to run

  function nextAt() {
    var node = root.querySelector("[data-recurring-next]");
    return node ? Date.parse(node.getAttribute("data-at")) : NaN;
  }

  function countdownText(ms) {
    var s = Math.ceil(ms / 1000);
    if (s <= 0) { return "due now: it starts as soon as a django-q2 cluster runs"; }
    if (s < 120) { return "in " + s + " s"; }
    if (s < 7200) { return "in " + Math.round(s / 60) + " min"; }
    return "in " + Math.round(s / 3600) + " h";
  }

  function tick() {
    var node = root.querySelector("[data-recurring-countdown]");
    var at = nextAt();
    if (node && !isNaN(at)) { node.textContent = countdownText(at - Date.now()); }
  }

  function merge(html) {
    var fresh = document.createElement("div");
    fresh.innerHTML = html;
    var next = fresh.querySelector("[data-recurring-next]");
    var current = root.querySelector("[data-recurring-next]");
    if (next && current) { current.replaceWith(next); }
    var list = root.querySelector("[data-recurring-runs]");
    var known = {};
    list.querySelectorAll(":scope > li").forEach(function (item) {
      known[item.getAttribute("data-run-id")] = true;
    });
    var added = [];
    fresh.querySelectorAll("[data-recurring-runs] > li").forEach(function (item) {
      if (!known[item.getAttribute("data-run-id")]) { added.push(item); }
    });
    for (var i = added.length - 1; i >= 0; i--) { list.insertBefore(added[i], list.firstChild); }
    var limit = Number(list.getAttribute("data-limit")) || 10;
    while (list.children.length > limit) { list.removeChild(list.lastElementChild); }
    root.querySelector("[data-recurring-empty]").hidden = list.children.length > 0;
    if (added.length && window.djangoJobProgress) { window.djangoJobProgress.scan(); }
    tick();
  }

  function lookLater() {
    var left = nextAt() - Date.now();
    var wait = left > 0 ? left + LOOK_AFTER_MS : (left > -60000 ? DUE_POLL_MS : IDLE_POLL_MS);
    setTimeout(look, wait);
  }

  function look() {
    fetch(root.getAttribute("data-runs-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .catch(function () { return null; })
      .then(function (html) {
        if (html) { merge(html); }
        lookLater();
      });
  }

  document.addEventListener("jobprogress:update", function (event) {
    var item = event.target.closest("[data-recurring-runs] > li");
    if (!item) { return; }
    var snapshot = event.detail;
    item.querySelector("[data-run-attempts]").textContent = String(snapshot.attempts);
    var run = snapshot.fields && snapshot.fields.run;
    if (run) { item.querySelector("[data-run-number]").textContent = "run " + run + " · "; }
  });

  tick();
  setInterval(tick, 1000);
  lookLater();
})();
