/* Shows a job's status fields and raw snapshot beside its bar, from the
 * "jobprogress:update" events the bar dispatches. Text only, via textContent. */
(function () {
  "use strict";

  function lookup(snapshot, path) {
    return path.split(".").reduce(function (value, key) {
      return value === null || value === undefined ? value : value[key];
    }, snapshot);
  }

  function show(section, snapshot) {
    section.querySelectorAll("[data-demo-field]").forEach(function (node) {
      var value = lookup(snapshot, node.getAttribute("data-demo-field"));
      node.textContent = value === null || value === undefined ? "" : String(value);
    });
    var raw = section.querySelector("[data-demo-snapshot]");
    if (raw) { raw.textContent = JSON.stringify(snapshot, null, 2); }
  }

  document.addEventListener("jobprogress:update", function (event) {
    var section = event.target.closest("[data-demo-job]");
    if (section) { show(section, event.detail); }
  });

  // The bar may have rendered before this script ran: start from its embedded snapshot.
  document.querySelectorAll("[data-demo-job]").forEach(function (section) {
    var initial = section.querySelector('[data-jobprogress] script[type="application/json"]');
    if (initial) { show(section, JSON.parse(initial.textContent)); }
  });
})();
