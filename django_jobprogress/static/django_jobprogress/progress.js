/* django-jobprogress: live progress bars. No framework, no build step.
 * The [data-jobprogress] elements of a page follow their jobs over one shared
 * WebSocket (ws/watch/), which reconnects with backoff; when it keeps failing,
 * each bar tries its own socket (ws/jobs/<id>/), then polls the JSON view.
 * All job text is written with textContent, never innerHTML. */
(function () {
  "use strict";
  if (window.djangoJobProgress) { window.djangoJobProgress.scan(); return; }

  var FINISHED = { completed: true, failed: true, cancelled: true };
  var POLL_MS = 1000;
  var MAX_BACKOFF_MS = 10000;
  var SOCKET_FAILURES_BEFORE_POLLING = 3;

  function field(root, name) { return root.querySelector('[data-field="' + name + '"]'); }

  function text(labels, key, fallback, values) {
    var template = labels[key] || fallback;
    return template.replace(/%\((\w+)\)s/g, function (all, name) { return String(values[name]); });
  }

  function formatEta(labels, seconds) {
    if (seconds === null || seconds === undefined) { return ""; }
    var s = Math.round(seconds);
    if (s < 60) { return text(labels, "eta_s", "about %(n)s s left", { n: s }); }
    var m = Math.round(s / 60);
    if (m < 60) { return text(labels, "eta_min", "about %(n)s min left", { n: m }); }
    return text(labels, "eta_h", "about %(n)s h left", { n: Math.round(m / 60) });
  }

  function batchSummary(labels, s) {
    var line = text(labels, "done", "%(done)s of %(total)s done",
      { done: s.succeeded + s.failed + s.cancelled, total: s.total });
    if (s.failed) { line += text(labels, "n_failed", ", %(n)s failed", { n: s.failed }); }
    if (s.cancelled) { line += text(labels, "n_cancelled", ", %(n)s cancelled", { n: s.cancelled }); }
    return line;
  }

  function safeHref(value) {
    if (typeof value !== "string") { return null; }
    try {
      var url = new URL(value, window.location.href);
      return (url.protocol === "http:" || url.protocol === "https:") ? url.href : null;
    } catch (e) { return null; }
  }

  function socketUrl(path) {
    return (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + path;
  }

  /* The page's one shared socket: every bar watches its job through it. */
  var shared = {
    bars: {},
    socket: null,
    failures: 0,
    backoff: 500,
    disabled: false,

    key: function (kind, id) { return (kind || "job") + ":" + id; },

    add: function (bar) {
      this.bars[this.key(bar.kind, bar.id)] = bar;
      if (!this.socket || this.socket.readyState > 1) { this.open(bar.root.dataset.wsWatchPath); }
      else if (this.socket.readyState === 1) { this.watch([bar]); }
    },

    waiting: function () {
      var bars = [];
      for (var key in this.bars) { if (!this.bars[key].done) { bars.push(this.bars[key]); } }
      return bars;
    },

    watch: function (bars) {
      if (!bars.length) { return; }
      this.socket.send(JSON.stringify({ watch: bars.map(function (bar) {
        var entry = { kind: bar.kind, id: bar.id };
        if (bar.root.dataset.token) { entry.token = bar.root.dataset.token; }
        return entry;
      }) }));
    },

    open: function (path) {
      var self = this;
      var received = false;  // every watched bar is answered: silence means failure
      var socket = new WebSocket(socketUrl(path));
      this.path = path;
      this.socket = socket;
      socket.onopen = function () { self.watch(self.waiting()); };
      socket.onmessage = function (event) {
        var s = JSON.parse(event.data);
        received = true;
        self.failures = 0;
        self.backoff = 500;
        var key = self.key(s.kind, s.id);
        var bar = self.bars[key];
        if (!bar) { return; }  // (a message with no id says the request was malformed)
        if (s.forbidden) { bar.done = true; } else { bar.render(s); }
        if (bar.done) { delete self.bars[key]; }
        if (!self.waiting().length) { socket.close(1000); }
      };
      socket.onclose = function () {
        if (self.socket !== socket) { return; }  // an older socket, already replaced
        self.socket = null;
        var left = self.waiting();
        if (!left.length) { return; }
        if (!received) { self.failures += 1; }
        if (self.failures >= SOCKET_FAILURES_BEFORE_POLLING) {
          self.disabled = true;  // each bar on its own from now on
          self.bars = {};
          left.forEach(function (bar) { bar.connect(); });
          return;
        }
        setTimeout(function () { if (!self.socket) { self.open(self.path); } }, self.backoff);
        self.backoff = Math.min(self.backoff * 2, MAX_BACKOFF_MS);
      };
    }
  };

  function Bar(root) {
    this.root = root;
    this.kind = root.dataset.jobprogress || "job";
    this.id = root.dataset.jobId;
    this.labels = {};
    try { this.labels = JSON.parse(root.dataset.labels || "{}"); } catch (e) { /* English */ }
    this.last = null;
    this.socketFailures = 0;
    this.backoff = 500;
    this.polling = false;
    this.done = false;
    var initial = root.querySelector('script[type="application/json"]');
    if (initial) { this.render(JSON.parse(initial.textContent)); }
    var cancel = root.querySelector('[data-action="cancel"]');
    if (cancel) { cancel.addEventListener("click", this.cancel.bind(this)); }
    if (!this.done) { this.connect(); }
  }

  Bar.prototype.render = function (s) {
    if (this.last && s.updated && this.last.updated && s.updated < this.last.updated) { return; }
    this.last = s;
    var root = this.root;
    var percent = Math.floor((s.progress || 0) * 100);
    root.className = root.className.replace(/jobprogress--(pending|running|completed|failed|cancelled)/g, "").trim() +
      " jobprogress--" + s.status;
    var track = root.querySelector('[role="progressbar"]');
    track.setAttribute("aria-valuenow", String(percent));
    track.setAttribute("aria-valuetext", percent + "%" + (s.stage ? ", " + s.stage : ""));
    field(root, "fill").style.width = percent + "%";
    field(root, "percent").textContent = percent + "%";
    var status = s.cancel_requested && !FINISHED[s.status] ? "cancelling" : s.status;
    field(root, "status").textContent = this.labels[status] || status;
    field(root, "stage").textContent = s.stage || "";
    field(root, "eta").textContent = formatEta(this.labels, s.eta_seconds);
    field(root, "message").textContent = s.kind === "batch" ? batchSummary(this.labels, s) : (s.message || "");
    var error = field(root, "error");
    error.textContent = s.error || "";
    error.hidden = !s.error;
    this.renderResult(s);
    var cancel = root.querySelector('[data-action="cancel"]');
    if (cancel) { cancel.hidden = !!FINISHED[s.status] || !s.cancellable; }
    if (FINISHED[s.status]) { this.finish(); }
    root.dispatchEvent(new CustomEvent("jobprogress:update", { detail: s, bubbles: true }));
  };

  Bar.prototype.renderResult = function (s) {
    var box = field(this.root, "result");
    box.textContent = "";
    var result = s.result;
    var href = s.status === "completed" && result && typeof result === "object" ? safeHref(result.url) : null;
    if (!href) { box.hidden = true; return; }
    var link = document.createElement("a");
    link.href = href;
    link.textContent = typeof result.label === "string" ? result.label : (this.labels.download || "Download result");
    box.appendChild(link);
    box.hidden = false;
  };

  Bar.prototype.finish = function () {
    this.done = true;
    if (this.socket) { this.socket.close(); this.socket = null; }
    if (this.pollTimer) { clearTimeout(this.pollTimer); this.pollTimer = null; }
  };

  Bar.prototype.withToken = function (url) {
    var token = this.root.dataset.token;
    if (!token) { return url; }
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + "token=" + encodeURIComponent(token);
  };

  Bar.prototype.connect = function () {
    var self = this;
    if (!("WebSocket" in window)) { this.poll(); return; }
    if (this.root.dataset.wsWatchPath && !shared.disabled) { shared.add(this); return; }
    if (!this.root.dataset.wsPath) { this.poll(); return; }
    var opened = false;
    var received = false;  // the server always sends a snapshot first: none means failure
    var socket = new WebSocket(this.withToken(socketUrl(this.root.dataset.wsPath)));
    this.socket = socket;
    socket.onopen = function () { opened = true; self.backoff = 500; };
    socket.onmessage = function (event) { received = true; self.render(JSON.parse(event.data)); };
    socket.onclose = function (event) {
      self.socket = null;
      if (self.done || event.code === 1000) { return; }
      if (event.code === 4403) { self.done = true; return; }
      if (!opened || !received) { self.socketFailures += 1; } else { self.socketFailures = 0; }
      if (self.socketFailures >= SOCKET_FAILURES_BEFORE_POLLING) { self.poll(); return; }
      setTimeout(function () { if (!self.done) { self.connect(); } }, self.backoff);
      self.backoff = Math.min(self.backoff * 2, MAX_BACKOFF_MS);
    };
  };

  Bar.prototype.poll = function () {
    var self = this;
    var url = this.root.dataset.jsonUrl;
    if (!url || this.done) { return; }
    this.polling = true;
    fetch(this.withToken(url), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 404 || response.status === 403) { self.done = true; }  // gone or not ours
        return response.ok ? response.json() : null;
      })
      .then(function (snapshot) { if (snapshot) { self.render(snapshot); } })
      .catch(function () { /* keep polling */ })
      .then(function () {
        if (!self.done) { self.pollTimer = setTimeout(self.poll.bind(self), POLL_MS); }
      });
  };

  Bar.prototype.cancel = function () {
    var self = this;
    var url = this.root.dataset.cancelUrl;
    if (!url) { return; }
    var button = this.root.querySelector('[data-action="cancel"]');
    button.disabled = true;
    fetch(this.withToken(url), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": this.root.dataset.csrf || "", Accept: "application/json" }
    })
      .then(function (response) { return response.json(); })
      .then(function (body) { if (body && body.snapshot) { self.render(body.snapshot); } })
      .catch(function () { /* the socket or the poll will tell */ })
      .then(function () { button.disabled = false; });
  };

  function scan() {
    var nodes = document.querySelectorAll("[data-jobprogress]:not([data-jobprogress-bound])");
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].setAttribute("data-jobprogress-bound", "");
      new Bar(nodes[i]);
    }
  }

  window.djangoJobProgress = { scan: scan, Bar: Bar, shared: shared };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", scan);
  } else {
    scan();
  }
})();
