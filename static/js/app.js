/* Small behaviours every page shares. Pages work without this file; it only adds comfort:
 * dismissible toasts, times in the clock the user chose (UTC or local, always named), metric ages that keep counting,
 * and a visible note when a live refresh fails (instead of silently showing old numbers). */
(function () {
  "use strict";

  var pad = function (n) { return String(n).padStart(2, "0"); };

  // Every time on every screen is shown in one clock, named next to it: UTC, or the browser's own
  // zone when the user chose "Local" in the top bar (kept with the user: <html data-time-display>).
  function timeDisplay() {
    return document.documentElement.dataset.timeDisplay === "local" ? "local" : "utc";
  }

  function zoneName(date) {
    if (timeDisplay() === "utc") return "UTC";
    var part = new Intl.DateTimeFormat("en-GB", { timeZoneName: "short" }).formatToParts(date)
      .filter(function (p) { return p.type === "timeZoneName"; })[0];
    return part ? part.value : "local time";
  }

  function fields(date) {
    var utc = timeDisplay() === "utc";
    return {
      year: utc ? date.getUTCFullYear() : date.getFullYear(),
      month: utc ? date.getUTCMonth() : date.getMonth(),
      day: utc ? date.getUTCDate() : date.getDate(),
      weekday: utc ? date.getUTCDay() : date.getDay(),
      hours: utc ? date.getUTCHours() : date.getHours(),
      minutes: utc ? date.getUTCMinutes() : date.getMinutes(),
      seconds: utc ? date.getUTCSeconds() : date.getSeconds(),
    };
  }

  var DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // Styles (data-local="..."): "time" 14:05:09, "hm" 14:05, "datetime" Thu 3 Dec 14:05,
  // "datetime-year" Thu 3 Dec 2026 14:05, "seconds" 2026-12-03 14:05:09; each followed by the zone.
  function formatTime(date, style) {
    var f = fields(date);
    var hm = pad(f.hours) + ":" + pad(f.minutes);
    var text;
    if (style === "time") text = hm + ":" + pad(f.seconds);
    else if (style === "hm") text = hm;
    else if (style === "seconds") text = f.year + "-" + pad(f.month + 1) + "-" + pad(f.day) + " " + hm + ":" + pad(f.seconds);
    else if (style === "datetime-year") text = DAYS[f.weekday] + " " + f.day + " " + MONTHS[f.month] + " " + f.year + " " + hm;
    else text = DAYS[f.weekday] + " " + f.day + " " + MONTHS[f.month] + " " + hm;
    return text + " " + zoneName(date);
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
    return "data as of " + formatTime(date, "hm") + " (" + ago(age) + ")";
  }

  // Durations are written in the server's units (dashboards/charts.py DURATION_UNITS, which
  // base.html puts on <html data-duration-units> as [limit, size, name]: below `limit` seconds,
  // null for any, in units of `size` seconds). Without the attribute everything is in seconds.
  var durationUnitList = null;
  function durationUnits() {
    if (durationUnitList === null) {
      try {
        durationUnitList = JSON.parse(document.documentElement.dataset.durationUnits || "[]");
      } catch (e) { durationUnitList = []; }
      if (!Array.isArray(durationUnitList) || !durationUnitList.length) durationUnitList = [[null, 1, "s"]];
    }
    return durationUnitList;
  }

  function durationUnit(seconds) {
    var units = durationUnits(), abs = Math.abs(seconds);
    for (var i = 0; i < units.length; i++) if (units[i][0] == null || abs < units[i][0]) return units[i];
    return units[units.length - 1];
  }

  // As the server writes it (seconds_label): three significant digits, milliseconds whole.
  function formatDuration(seconds) {
    var unit = durationUnit(seconds), value = seconds / unit[1];
    return (unit[2] === "ms" ? Math.round(value) : +value.toPrecision(3)) + " " + unit[2];
  }

  // "49 s", "3 min", "1.5 h": the per-row age of the newest sample, counted here from its timestamp
  // so it keeps growing while refreshes fail (a number the server wrote would freeze and look fresh).
  // In the server's units, never below whole seconds, floored so an age never reads older than it
  // is; hours keep a tenth.
  function ageLabel(ms) {
    var seconds = Math.max(0, ms / 1000);
    var unit = durationUnit(Math.max(seconds, 1)), value = seconds / unit[1];
    value = unit[2] === "h" ? Math.floor(value * 10) / 10 : Math.floor(value);
    return value + " " + unit[2];
  }

  function refreshAges(root) {
    (root || document).querySelectorAll("[data-age-since]").forEach(function (el) {
      var date = new Date(el.dataset.ageSince);
      if (isNaN(date)) return;
      var age = Date.now() - date.getTime();
      el.textContent = "data " + ageLabel(age) + " old";
      el.classList.toggle("metric-age-stale", isStale(age));
    });
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (!isNaN(date)) el.textContent = formatTime(date, el.dataset.local);
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
    refreshAges(event.detail.elt);
    wireToasts(event.detail.elt);
  });
  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes(document);
    refreshAges(document);
    wireToasts(document);
    setInterval(function () { refreshTimes(document); }, 30000);
    setInterval(function () { refreshAges(document); }, 5000);
  });

  window.ControlPlane = {
    toast: toast, refreshTimes: refreshTimes, refreshAges: refreshAges, ageLabel: ageLabel,
    durationUnit: durationUnit, formatDuration: formatDuration,
    formatTime: formatTime, timeDisplay: timeDisplay, timeFields: fields, zoneName: zoneName,
    ago: ago, asOfText: asOfText, isStale: isStale,
  };
})();

/* Live refreshes swap with hx-swap="morph" (idiomorph, static/vendor/idiomorph): the new HTML is
 * merged into the elements already on the page instead of replacing them, so the element with
 * keyboard focus stays focused and a screen reader keeps its place. Rows carry ids so a row that
 * moves keeps its own elements. A <details> someone opened stays open (the server renders them
 * closed and knows nothing of it): the morph never touches their `open` attribute, nor the
 * `hidden` of the charts' reset-zoom button. */
(function () {
  "use strict";
  if (!window.Idiomorph) return;
  Idiomorph.defaults.callbacks.beforeAttributeUpdated = function (name, element) {
    if (name === "open" && element.tagName === "DETAILS") return false;
    // The charts' zoom is the browser's (static/js/charts.js shows its reset button while zoomed).
    if (name === "hidden" && element.hasAttribute("data-chart-zoom-reset")) return false;
    return true;
  };
})();

/* The triage panel (replay or discard confirmation on the dead-letter messages screen) takes
 * keyboard focus when it opens, so the next Tab is inside it and a screen reader reads it; Esc or
 * its Cancel link closes it and puts focus back on the button that opened it. */
(function () {
  "use strict";

  var opener = null;

  function panel() { return document.getElementById("triage-panel"); }

  function focusPanel(target) {
    var heading = target.querySelector("h2");
    var where = heading || target.querySelector(".triage-panel") || target;
    if (!where.hasAttribute("tabindex")) where.setAttribute("tabindex", "-1");
    where.focus();
  }

  function closePanel() {
    var target = panel();
    if (!target || !target.firstElementChild) return false;
    target.innerHTML = "";
    if (opener && opener.isConnected) opener.focus();
    opener = null;
    return true;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "triage-panel") return;
    // Opened from outside the panel (the selection bar): remember where to return on close.
    var from = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (from && !target.contains(from)) opener = from;
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "triage-panel" || !target.firstElementChild) return;
    // Focus moves in when the panel opens, and whenever the swap took the focused element away
    // (a confirmed replay replaces its form), never away from a field being used.
    var active = document.activeElement;
    if (!active || active === document.body || !active.isConnected || !target.contains(active)) focusPanel(target);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    var target = panel();
    if (!target || !target.firstElementChild) return;
    var active = document.activeElement;
    if (active && active !== document.body && !target.contains(active)) return;
    if (closePanel()) event.preventDefault();
  });

  window.ControlPlaneTriagePanel = { close: closePanel };
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
    if (window.ControlPlaneTriagePanel) window.ControlPlaneTriagePanel.close();
    else panel.innerHTML = "";
  });

  document.addEventListener("htmx:load", function (event) {
    var form = event.detail.elt.querySelector ? event.detail.elt.querySelector("#selection-form") : null;
    if (form) update(form);
  });
})();
