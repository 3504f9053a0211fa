// Live progress for the Kalla console: polls the JSON of the page's runs
// every second and updates the cells marked data-f, without reloading.
// Values are set with textContent only, never as HTML. The page works
// without this script; it only saves reloads.
(function () {
  "use strict";
  var box = document.querySelector("[data-live]");
  if (!box) {
    return;
  }
  var single = box.hasAttribute("data-single");
  var url = box.getAttribute("data-live") + (single ? "" : location.search);
  var status = document.getElementById("live-status");
  var period = 1000;

  function say(msg) {
    if (status) {
      status.textContent = msg;
      status.hidden = !msg;
    }
  }

  // The user is reading: a text selection would be lost when cells change.
  function selecting() {
    var s = window.getSelection();
    return s !== null && !s.isCollapsed && s.toString() !== "";
  }

  function show(id) {
    var el = document.getElementById(id);
    if (el) {
      el.hidden = false;
    }
  }

  // apply updates the rows of the runs on the page; it reports whether to
  // keep polling.
  function apply(data) {
    var ended = false;
    data.order.forEach(function (id) {
      var run = data.runs[id];
      var el = document.querySelector('[data-run="' + CSS.escape(id) + '"]');
      if (!el) {
        show("live-new");
        return;
      }
      el.querySelectorAll("[data-f]").forEach(function (c) {
        var f = c.getAttribute("data-f");
        var v = run.cells[f];
        c.textContent = v === undefined ? "" : v;
        if (f === "state") {
          c.className = "state state-" + run.state;
        }
      });
      el.querySelectorAll("progress").forEach(function (p) {
        p.value = run.progress;
      });
      ended = run.final;
    });
    if (single && ended) {
      var cancel = document.getElementById("cancel");
      if (cancel) {
        cancel.hidden = true;
      }
      show("live-ended");
      return false;
    }
    return true;
  }

  function tick() {
    if (document.hidden || selecting()) {
      say(selecting() ? "Updates paused while text is selected." : "");
      setTimeout(tick, period);
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (resp.status === 401) {
          say("Your session has ended: reload the page to log in again.");
          return null;
        }
        if (!resp.ok) {
          throw new Error("HTTP " + resp.status);
        }
        return resp.json();
      })
      .then(function (data) {
        if (data === null) {
          return;
        }
        say("");
        if (apply(data)) {
          setTimeout(tick, period);
        }
      })
      .catch(function (err) {
        say("Live updates failed (" + err.message + "); retrying.");
        setTimeout(tick, period * 5);
      });
  }

  box.setAttribute("data-live-on", "");
  setTimeout(tick, period);
})();
