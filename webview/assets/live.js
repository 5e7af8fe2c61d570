// Live updates: the server sends an "app" event when an app's status file changes. The list
// replaces that app's row; an app's page reads itself again. Without JavaScript, a reload.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var app = document.body.dataset.app || "";
  var live = document.getElementById("live");
  var es = new EventSource("/events" + (app ? "?app=" + encodeURIComponent(app) : ""));
  var say = function (t) { if (live) live.textContent = t; };
  es.addEventListener("open", function () {
    // What changed before the stream was open (since the page was rendered, or while the
    // stream was down) reaches no event: read the page once more.
    reloadMain();
    say("Live: this page follows the status files as they change.");
  });
  es.addEventListener("error", function () { say("Live updates interrupted; reconnecting. Reload for the latest."); });
  es.addEventListener("app", function (e) {
    var u = JSON.parse(e.data);
    if (loading) { again = true; return; } // the read under way may predate it: read again after
    if (app) { if (u.app === app) reloadMain(); } else { updateList(u); }
  });

  var loading = false, again = false;
  function reloadMain() {
    if (loading) { again = true; return; }
    loading = true;
    fetch(location.href, { headers: { Accept: "text/html" } }).then(function (r) { return r.text(); }).then(function (t) {
      var next = new DOMParser().parseFromString(t, "text/html").getElementById("main");
      var cur = document.getElementById("main");
      if (next && cur) { cur.replaceWith(next); live = document.getElementById("live"); say("Live: updated at " + new Date().toISOString()); }
    }).catch(function () {}).then(function () {
      loading = false;
      if (again) { again = false; reloadMain(); }
    });
  }

  function updateList(u) {
    var params = new URLSearchParams(location.search);
    var phase = params.get("phase") || "", q = (params.get("q") || "").trim().toLowerCase();
    var tbody = document.querySelector("#apps tbody");
    var old = document.getElementById("app-" + u.app);
    var keep = u.row && (!phase || u.phase === phase) && u.app.toLowerCase().indexOf(q) >= 0;
    if (keep) {
      var holder = document.createElement("tbody");
      holder.innerHTML = u.row;
      var tr = holder.firstElementChild;
      if (old) {
        old.replaceWith(tr);
      } else {
        var empty = tbody.querySelector("tr.empty");
        if (empty) empty.remove();
        var after = null;
        tbody.querySelectorAll("tr[data-app]").forEach(function (r) { if (!after && r.dataset.app > u.app) after = r; });
        tbody.insertBefore(tr, after);
      }
    } else if (old) {
      old.remove();
    }
    var counts = document.getElementById("counts");
    var all = counts.firstElementChild;
    counts.innerHTML = u.counts;
    counts.insertBefore(all, counts.firstChild);
    counts.querySelectorAll("a[data-phase]").forEach(function (a) {
      if (a.dataset.phase === phase) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    document.getElementById("total").textContent = u.total;
    document.getElementById("of").textContent = u.total;
    document.getElementById("shown").textContent = tbody.querySelectorAll("tr[data-app]").length;
    say("Live: " + u.app + " is " + (u.phase || "gone") + " (" + new Date().toISOString() + ")");
  }
})();
