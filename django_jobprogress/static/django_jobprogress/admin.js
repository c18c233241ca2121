/* django-jobprogress admin: the job list's unfinished rows follow their jobs over
 * the page's one shared socket (progress.js, ws/watch/), like every other bar.
 * When sockets cannot open, the whole page polls the admin's live/ view: one
 * request for every row every few seconds, never one per row.
 * Job text is written with textContent, never innerHTML. */
(function () {
  "use strict";

  var FINISHED = { completed: true, failed: true, cancelled: true };
  var MAX_DELAY_MS = 30000;

  function statusText(config, s) {
    var label = config.labels[s.status] || s.status;
    if (s.cancel_requested && !FINISHED[s.status]) {
      return config.cancel_requested.replace("%(status)s", label);
    }
    return label;
  }

  /* One row's bar, in the shape the shared socket expects of a bar: kind, id,
   * root (with data-ws-watch-path), done, render(snapshot), connect(). */
  function Row(root, config, poller) {
    this.root = root;
    this.kind = "job";
    this.id = root.getAttribute("data-jp-live");
    this.config = config;
    this.poller = poller;
    this.done = false;
    this.last = null;
    root.setAttribute("data-ws-watch-path", config.watch);
  }

  Row.prototype.render = function (s) {
    if (this.last && s.updated && this.last.updated && s.updated < this.last.updated) { return; }
    this.last = s;
    var root = this.root;
    var percent = Math.floor((s.progress || 0) * 100);
    root.querySelector(".jp-minibar__fill").style.width = percent + "%";
    root.querySelector('[role="progressbar"]').setAttribute("aria-valuenow", String(percent));
    root.querySelector(".jp-minibar__percent").textContent = percent + "%";
    var row = root.closest("tr");
    var badge = row && row.querySelector("[data-jp-badge]");
    if (badge) {
      badge.className = "jp-badge jp-badge--" + s.status;
      badge.textContent = statusText(this.config, s);
    }
    var stage = row && row.querySelector("td.field-stage");
    if (stage) { stage.textContent = s.stage || this.config.empty; }
    if (FINISHED[s.status]) {
      this.done = true;
      root.removeAttribute("data-jp-live");
      root.classList.add("jp-minibar--" + s.status);
    }
  };

  /* Called when the shared socket gives up (or the browser has none). */
  Row.prototype.connect = function () { this.poller.add(this); };

  /* The fallback: one request to live/ for all the rows it was given. */
  function Poller(config) {
    this.config = config;
    this.rows = {};
    this.delay = config.interval;
    this.timer = null;
  }

  Poller.prototype.add = function (row) {
    this.rows[row.id] = row;
    if (!this.timer) { this.later(this.config.interval); }
  };

  Poller.prototype.later = function (delay) {
    var self = this;
    this.timer = setTimeout(function () { self.timer = null; self.poll(); }, delay);
  };

  Poller.prototype.poll = function () {
    var self = this;
    var ids = Object.keys(this.rows);
    if (!ids.length) { return; }
    if (document.hidden) { this.later(this.config.interval); return; }
    var query = ids.map(function (id) { return "id=" + encodeURIComponent(id); }).join("&");
    fetch(this.config.url + "?" + query, {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (response) {
        if (response.status === 403) { return null; }  // no longer allowed: stop
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (body) {
        if (!body) { self.rows = {}; return; }
        ids.forEach(function (id) {
          var row = self.rows[id];
          var s = body.jobs[id];
          if (s) { row.render(s); }
          if (!s || row.done) { delete self.rows[id]; }  // gone (pruned) or finished
        });
        self.delay = self.config.interval;
        self.later(self.delay);
      })
      .catch(function () {
        self.delay = Math.min(self.delay * 2, MAX_DELAY_MS);
        self.later(self.delay);
      });
  };

  function start() {
    var island = document.getElementById("jp-live-config");
    var nodes = document.querySelectorAll("[data-jp-live]");
    if (!island || !nodes.length) { return; }
    var config = JSON.parse(island.textContent);
    var poller = new Poller(config);
    var live = window.djangoJobProgress;
    var shared = live && "WebSocket" in window && !live.shared.disabled ? live.shared : null;
    for (var i = 0; i < nodes.length; i++) {
      var row = new Row(nodes[i], config, poller);
      if (shared) { shared.add(row); } else { row.connect(); }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
