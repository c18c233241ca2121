/* The weekly email blast's page: the batch's counters beside its bar, from the
 * "jobprogress:update" events the bar dispatches, and, once the batch has
 * finished, the notification its on_complete callback writes (fetched from the
 * page's JSON view until it is there). Text only, via textContent. */
(function () {
  "use strict";

  var FINISHED = { completed: true, failed: true, cancelled: true };
  var RETRY_MS = 500;         // the callback runs as its own job, just after the batch ends
  var GIVE_UP_MS = 120000;

  function showCounts(section, snapshot) {
    section.querySelectorAll("[data-blast-count]").forEach(function (node) {
      var value = snapshot[node.getAttribute("data-blast-count")];
      node.textContent = typeof value === "number" ? String(value) : "";
    });
  }

  function showNotices(section, notices) {
    var list = section.querySelector("[data-blast-notices]");
    list.textContent = "";
    notices.forEach(function (notice) {
      var item = document.createElement("li");
      item.textContent = notice.text;
      list.appendChild(item);
    });
  }

  function say(section, text) {
    var waiting = section.querySelector("[data-blast-waiting]");
    waiting.textContent = text;
    waiting.hidden = !text;
  }

  function fetchNotices(section, deadline) {
    fetch(section.dataset.noticesUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .catch(function () { return null; })
      .then(function (body) {
        if (body && body.notices.length) {
          showNotices(section, body.notices);
          say(section, "");
        } else if (Date.now() < deadline) {
          setTimeout(function () { fetchNotices(section, deadline); }, RETRY_MS);
        } else {
          say(section, "No notification yet: is the worker running? Reload to look again.");
        }
      });
  }

  function show(section, snapshot) {
    showCounts(section, snapshot);
    if (!FINISHED[snapshot.status] || section.hasAttribute("data-blast-finished")) { return; }
    section.setAttribute("data-blast-finished", "");
    if (section.querySelector("[data-blast-notices] li")) { return; }  // rendered with the page
    say(section, "All emails are done: waiting for the on_complete callback's notification…");
    fetchNotices(section, Date.now() + GIVE_UP_MS);
  }

  document.addEventListener("jobprogress:update", function (event) {
    var section = event.target.closest("[data-demo-blast]");
    if (section) { show(section, event.detail); }
  });

  // The bar may have rendered before this script ran: start from its embedded snapshot.
  document.querySelectorAll("[data-demo-blast]").forEach(function (section) {
    var initial = section.querySelector('[data-jobprogress] script[type="application/json"]');
    if (initial) { show(section, JSON.parse(initial.textContent)); }
  });
})();
