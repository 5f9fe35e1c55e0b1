/* Small behaviours every page shares. Pages work without this file; it only adds comfort:
 * dismissible toasts, times shown in the browser's time zone, metric ages that keep counting,
 * and a visible note when a live refresh fails (instead of silently showing old numbers). */
(function () {
  "use strict";

  var pad = function (n) { return String(n).padStart(2, "0"); };

  function formatLocal(date, style) {
    var hm = pad(date.getHours()) + ":" + pad(date.getMinutes());
    if (style === "time") return hm + ":" + pad(date.getSeconds());
    var days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    return days[date.getDay()] + " " + date.getDate() + " " + months[date.getMonth()] + " " + hm;
  }

  function ago(ms) {
    var minutes = Math.max(0, Math.floor(ms / 60000));
    if (minutes < 1) return "just now";
    if (minutes < 120) return minutes + " min ago";
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h ago";
    return Math.floor(hours / 24) + " d ago";
  }

  // Metric data older than this is called out: the server's TELEMETRY_STALE_AFTER_SECONDS, which
  // base.html puts on <html data-stale-after-seconds> (one setting for the server and the browser).
  // Without the attribute nothing is called stale.
  function isStale(ageMs) {
    var limit = Number(document.documentElement.dataset.staleAfterSeconds) * 1000;
    return limit > 0 && ageMs > limit;
  }

  function asOfText(date, now) {
    var age = (now || Date.now()) - date.getTime();
    return "data as of " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + " (" + ago(age) + ")";
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (!isNaN(date)) el.textContent = formatLocal(date, el.dataset.local);
    });
    (root || document).querySelectorAll("[data-as-of]").forEach(function (el) {
      var date = new Date(el.dataset.asOf);
      if (isNaN(date)) return;
      el.textContent = asOfText(date);
      el.classList.toggle("metric-age-stale", isStale(Date.now() - date.getTime()));
    });
  }

  function wireToasts(root) {
    (root || document).querySelectorAll(".toast-close").forEach(function (button) {
      button.hidden = false;
      button.onclick = function () { button.closest(".toast").remove(); };
    });
  }

  function toast(text, level) {
    var region = document.getElementById("toasts");
    if (!region) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (level || "info");
    el.setAttribute("role", level === "error" ? "alert" : "status");
    var icon = document.createElement("span");
    icon.className = "toast-icon";
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = level === "error" ? "✕" : "i";
    var body = document.createElement("span");
    body.className = "toast-text";
    body.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss message");
    close.textContent = "×";
    el.append(icon, body, close);
    region.append(el);
    wireToasts(el.parentNode);
  }

  // One note per failing element, not one every 15 s while the server is down.
  var failing = new WeakSet();
  function refreshFailed(event, why) {
    var elt = event.detail.elt;
    if (failing.has(elt)) return;
    failing.add(elt);
    toast("Could not refresh live data (" + why + "). The numbers shown may be out of date; retrying.", "error");
  }

  document.addEventListener("htmx:responseError", function (event) {
    refreshFailed(event, "server answered " + event.detail.xhr.status);
  });
  document.addEventListener("htmx:sendError", function (event) {
    refreshFailed(event, "server unreachable");
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    failing.delete(event.detail.elt);
  });
  document.addEventListener("htmx:load", function (event) {
    refreshTimes(event.detail.elt);
    wireToasts(event.detail.elt);
  });
  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes(document);
    wireToasts(document);
    setInterval(function () { refreshTimes(document); }, 30000);
  });

  window.ControlPlane = { toast: toast, refreshTimes: refreshTimes, ago: ago, asOfText: asOfText, isStale: isStale };
})();

/* Dead-letter selection: "select the page" ticks every row, the count says how many are chosen,
 * and "all matching" stands for every row of the filter (the row boxes then say so). A Cancel
 * link in the triage panel just closes it. Without this file the boxes and links work as plain
 * form fields and links. */
(function () {
  "use strict";

  function update(form) {
    var rows = form.querySelectorAll("[data-select-row]");
    var checked = form.querySelectorAll("[data-select-row]:checked").length;
    var all = form.querySelector("[data-select-all-matching]");
    var page = form.querySelector("[data-select-page]");
    var count = form.querySelector("[data-selection-count]");
    rows.forEach(function (box) { box.disabled = !!(all && all.checked); });
    if (page) {
      page.checked = rows.length > 0 && checked === rows.length;
      page.indeterminate = checked > 0 && checked < rows.length;
      page.disabled = !!(all && all.checked);
    }
    if (count) {
      count.textContent = all && all.checked ? "all matching selected" : checked ? checked + " selected" : "";
    }
  }

  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("#selection-form");
    if (!form) return;
    if (event.target.matches("[data-select-page]")) {
      form.querySelectorAll("[data-select-row]").forEach(function (box) { box.checked = event.target.checked; });
    }
    update(form);
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-clear-panel]");
    if (!link) return;
    var panel = link.closest("#triage-panel");
    if (!panel) return;
    event.preventDefault();
    panel.innerHTML = "";
  });

  document.addEventListener("htmx:load", function (event) {
    var form = event.detail.elt.querySelector ? event.detail.elt.querySelector("#selection-form") : null;
    if (form) update(form);
  });
})();
