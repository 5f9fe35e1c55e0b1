/* Time-series charts drawn with the vendored uPlot (static/vendor/uplot), no build step.
 *
 * Markup (dashboards/partials/chart.html):
 *   <figure class="chart"> ... <span class="metric-age"></span>
 *     <div class="chart-plot" data-chart="chart-data-queue-age"></div>
 *     <script type="application/json" id="chart-data-queue-age">{...}</script>
 *   </figure>
 * JSON: {title, unit, start, end, x: [epoch s], series: [{label, values}], threshold: {value, label} | null,
 *        markers: [{t, label, kind: "action" | "change" | "deploy"}], fetched_at, newest_sample_at}   (see dashboards/charts.py)
 *
 * Draws every [data-chart] on load and in content htmx swaps in, follows the container's width,
 * redraws in the other palette when the system switches between light and dark, and writes
 * "data as of HH:MM (N min ago)" from newest_sample_at (or fetched_at) next to the chart.
 */
(function () {
  "use strict";

  var HEIGHT = 200;
  var charts = new Map(); // container element -> {plot, observer, payload}

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function palette() {
    return {
      text: cssVar("--muted", "#5b6472"),
      surface: cssVar("--surface", "#ffffff"),
      grid: cssVar("--grid", "rgba(127,127,127,.18)"),
      threshold: cssVar("--bad", "#c0262d"),
      marker: cssVar("--marker", "#7a5af8"),
      change: cssVar("--change", "#0f766e"),
      deploy: cssVar("--deploy", "#b54708"),
      series: [1, 2, 3, 4].map(function (i) { return cssVar("--chart-" + i, "#2457c5"); }),
    };
  }

  // --- value formatting: every axis tick and legend value carries its unit -----------------------
  function compact(v) {
    var abs = Math.abs(v);
    if (abs >= 1e9) return +(v / 1e9).toFixed(1) + "G";
    if (abs >= 1e6) return +(v / 1e6).toFixed(1) + "M";
    if (abs >= 1e3) return +(v / 1e3).toFixed(1) + "k";
    return String(+v.toFixed(abs < 10 ? 2 : 1));
  }

  function seconds(v) {
    var abs = Math.abs(v);
    if (abs === 0) return "0 s";
    if (abs < 1) return Math.round(v * 1000) + " ms";
    if (abs < 120) return +v.toFixed(abs < 10 ? 1 : 0) + " s";
    if (abs < 7200) return +(v / 60).toFixed(1) + " min";
    if (abs < 172800) return +(v / 3600).toFixed(1) + " h";
    return +(v / 86400).toFixed(1) + " d";
  }

  function format(v, unit) {
    if (v == null || isNaN(v)) return "–";
    switch (unit) {
      case "s": return seconds(v);
      case "count": return compact(v);
      case "per_min": return compact(v) + "/min";
      case "instances": return String(+v.toFixed(1));
      default:
        if (/^[A-Z]{3}$/.test(unit || "")) {
          try {
            return new Intl.NumberFormat(undefined, {
              style: "currency", currency: unit, maximumSignificantDigits: 3,
            }).format(v);
          } catch (e) { /* unknown currency code: fall through */ }
        }
        return compact(v) + (unit ? " " + unit : "");
    }
  }

  // --- "data as of" ----------------------------------------------------------------------------
  function pad(n) { return String(n).padStart(2, "0"); }

  // The text and the staleness threshold are app.js's (the threshold is the server's setting),
  // which also keeps the "N min ago" counting.
  function showAge(container, payload) {
    var iso = payload.newest_sample_at || payload.fetched_at;
    var figure = container.closest("figure") || container.parentNode;
    var el = figure && figure.querySelector(".metric-age");
    if (!el || !iso) return;
    el.dataset.asOf = iso;
    window.ControlPlane.refreshTimes(figure);
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // 24-hour clock times for short ranges, dates (with the time when not midnight) for long ones,
  // in the clock the user chose (app.js: UTC or the browser's zone; the legend names it).
  function timeTicks(span) {
    return function (u, splits) {
      return splits.map(function (ts) {
        var d = window.ControlPlane.timeFields(new Date(ts * 1000));
        var hm = pad(d.hours) + ":" + pad(d.minutes);
        if (span <= 36 * 3600) return hm;
        var day = d.day + " " + MONTHS[d.month];
        return d.hours === 0 && d.minutes === 0 ? day : day + " " + hm;
      });
    };
  }

  // uPlot places its time ticks on the hours and days of this zone.
  function tzDate(ts) {
    var date = new Date(ts * 1000);
    return window.ControlPlane.timeDisplay() === "utc" ? uPlot.tzDate(date, "Etc/UTC") : date;
  }

  // --- drawing hooks ------------------------------------------------------------------------------
  function drawThreshold(threshold, colors) {
    return function (u) {
      if (!threshold || threshold.value == null) return;
      var ctx = u.ctx, px = uPlot.pxRatio;
      var y = Math.round(u.valToPos(threshold.value, "y", true));
      var left = u.bbox.left, right = u.bbox.left + u.bbox.width;
      ctx.save();
      ctx.strokeStyle = colors.threshold;
      ctx.lineWidth = 1.5 * px;
      ctx.setLineDash([6 * px, 4 * px]);
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(right, y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.font = "600 " + Math.round(11 * px) + "px system-ui, sans-serif";
      ctx.textAlign = "right";
      ctx.textBaseline = "bottom";
      // A backing box keeps the label readable where a series crosses it.
      var width = ctx.measureText(threshold.label).width;
      ctx.fillStyle = colors.surface;
      ctx.globalAlpha = 0.85;
      ctx.fillRect(right - width - 7 * px, y - 16 * px, width + 6 * px, 14 * px);
      ctx.globalAlpha = 1;
      ctx.fillStyle = colors.threshold;
      ctx.fillText(threshold.label, right - 4 * px, y - 3 * px);
      ctx.restore();
    };
  }

  function drawMarkers(markers, colors) {
    return function (u) {
      if (!markers || !markers.length) return;
      var ctx = u.ctx, px = uPlot.pxRatio;
      var top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
      var min = u.scales.x.min, max = u.scales.x.max;
      ctx.save();
      ctx.font = Math.round(10 * px) + "px system-ui, sans-serif";
      ctx.textBaseline = "top";
      markers.forEach(function (marker, i) {
        if (marker.t < min || marker.t > max) return;
        var x = Math.round(u.valToPos(marker.t, "x", true));
        // Actions dashed in one colour, configuration changes solid in another, deployments
        // solid and thicker in a third: the line to look for when behaviour changed.
        var colour = marker.kind === "change" ? colors.change : marker.kind === "deploy" ? colors.deploy : colors.marker;
        ctx.strokeStyle = colour;
        ctx.lineWidth = (marker.kind === "deploy" ? 2 : 1) * px;
        ctx.setLineDash(marker.kind === "action" ? [2 * px, 3 * px] : []);
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, bottom);
        ctx.stroke();
        ctx.setLineDash([]);
        // A flag at the top; labels alternate rows so neighbouring markers stay readable.
        var label = marker.label.length > 28 ? marker.label.slice(0, 27) + "…" : marker.label;
        var y = top + 2 * px + (i % 3) * 13 * px;
        var flipped = x + ctx.measureText(label).width + 8 * px > u.bbox.left + u.bbox.width;
        ctx.fillStyle = colour;
        ctx.beginPath();
        ctx.arc(x, top, 3 * px, 0, 2 * Math.PI);
        ctx.fill();
        ctx.textAlign = flipped ? "right" : "left";
        ctx.fillText(label, flipped ? x - 4 * px : x + 4 * px, y);
      });
      ctx.restore();
    };
  }

  function latestIndex(data) {
    for (var i = data[0].length - 1; i >= 0; i--) {
      for (var s = 1; s < data.length; s++) if (data[s][i] != null) return i;
    }
    return null;
  }

  function showLatest(u) {
    var idx = latestIndex(u.data);
    if (idx != null) u.setLegend({ idx: idx }, false);
  }

  // --- charts -------------------------------------------------------------------------------------
  function options(payload, width, colors) {
    var unit = payload.unit;
    var threshold = payload.threshold;
    var axis = {
      stroke: colors.text,
      grid: { stroke: colors.grid, width: 1 },
      ticks: { stroke: colors.grid, width: 1 },
      font: "11px system-ui, sans-serif",
    };
    return {
      width: width,
      height: HEIGHT,
      scales: {
        x: { time: true, range: function () { return [payload.start, payload.end]; } },
        y: {
          range: function (u, dataMin, dataMax) {
            var lo = Math.min(0, dataMin == null ? 0 : dataMin);
            var hi = dataMax == null ? 1 : dataMax;
            if (threshold && threshold.value != null) hi = Math.max(hi, threshold.value * 1.15);
            if (hi <= lo) hi = lo + 1;
            return [lo, hi * 1.05];
          },
        },
      },
      tzDate: tzDate,
      series: [{ value: function (u, ts) { return ts == null ? "" : window.ControlPlane.formatTime(new Date(ts * 1000), "datetime"); } }].concat(
        payload.series.map(function (s, i) {
          return {
            label: s.label,
            stroke: colors.series[i % colors.series.length],
            width: 1.5,
            points: { show: false },
            spanGaps: false, // a step without data is a gap, never a zero
            value: function (u, v) { return format(v, unit); },
          };
        })
      ),
      axes: [
        Object.assign({}, axis, {
          values: timeTicks(payload.end - payload.start),
          space: payload.end - payload.start > 36 * 3600 ? 90 : 50,
        }),
        Object.assign({}, axis, {
          size: 64,
          values: function (u, splits) { return splits.map(function (v) { return format(v, unit); }); },
        }),
      ],
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      hooks: {
        draw: [drawThreshold(threshold, colors), drawMarkers(payload.markers, colors)],
        // Away from the cursor the legend shows the latest values rather than dashes.
        ready: [showLatest],
        setCursor: [function (u) { if (u.cursor.idx == null) showLatest(u); }],
      },
    };
  }

  function destroy(container) {
    var entry = charts.get(container);
    if (!entry) return;
    entry.observer.disconnect();
    entry.plot.destroy();
    charts.delete(container);
  }

  function render(container, payload) {
    destroy(container);
    if (!window.uPlot) return null;
    showAge(container, payload);
    if (!payload.x || !payload.x.length) return null; // the server renders the empty state instead
    var data = [payload.x].concat(payload.series.map(function (s) { return s.values; }));
    var width = Math.max(240, container.clientWidth || 600);
    var plot = new uPlot(options(payload, width, palette()), data, container);
    var observer = new ResizeObserver(function () {
      var w = Math.max(240, container.clientWidth);
      if (w && Math.abs(w - plot.width) > 1) plot.setSize({ width: w, height: HEIGHT });
    });
    observer.observe(container);
    charts.set(container, { plot: plot, observer: observer, payload: payload });
    return plot;
  }

  function initAll(root) {
    // Charts whose markup htmx swapped out are gone: release them.
    Array.from(charts.keys()).forEach(function (container) { if (!container.isConnected) destroy(container); });
    (root || document).querySelectorAll("[data-chart]").forEach(function (container) {
      // A live refresh morphs the figure in place (hx-swap="morph"), which empties the container
      // of the plot drawn before: draw it again from the new data.
      var entry = charts.get(container);
      if (entry && container.contains(entry.plot.root)) return;
      var source = document.getElementById(container.dataset.chart);
      if (!source) return;
      try {
        render(container, JSON.parse(source.textContent));
      } catch (error) {
        container.textContent = "This chart could not be drawn: " + error.message;
        container.classList.add("chart-error");
      }
    });
  }

  function redrawAll() {
    // A snapshot: render() replaces each entry, and a live Map iteration would visit it again.
    Array.from(charts.entries()).forEach(function (pair) { render(pair[0], pair[1].payload); });
  }

  document.addEventListener("DOMContentLoaded", function () { initAll(document); });
  document.addEventListener("htmx:load", function (event) { initAll(event.detail.elt); });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawAll);

  window.ControlPlaneCharts = {
    render: render, initAll: initAll, redrawAll: redrawAll, format: format,
    count: function () { return charts.size; },
    plotFor: function (container) { var entry = charts.get(container); return entry ? entry.plot : null; },
  };
})();
