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
 *
 * Charts with the same zoom_group (a class's charts) share one crosshair (uPlot's cursor sync)
 * and one zoom: dragging across any of them narrows the time axis of all; the group's
 * [data-chart-zoom-reset] button, shown while zoomed, puts the whole range back. The zoom lives
 * here, not in the markup, so the minute-by-minute refresh keeps it.
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

  // Durations in the server's units and digits (app.js's formatDuration).
  function seconds(v) {
    return v === 0 ? "0 s" : window.ControlPlane.formatDuration(v);
  }

  // One unit for every tick of an axis, chosen from its largest tick: "0 s, 50 s, 100 s" or
  // "0 min, 2 min, 4 min", never "100 s, 3.3 min". The units are the server's (app.js).
  var COUNT_UNITS = [[1, ""], [1e3, "k"], [1e6, "M"], [1e9, "G"]];

  function secondsUnit(largest) {
    var unit = window.ControlPlane.durationUnit(largest);
    return [unit[1], unit[2]];
  }

  function countUnit(largest) {
    var unit = COUNT_UNITS[0];
    COUNT_UNITS.forEach(function (u) { if (largest >= u[0]) unit = u; });
    return unit;
  }

  function scaled(v, divisor) { return String(+(v / divisor).toFixed(2)); }

  function axisTicks(unit) {
    return function (u, splits) {
      var largest = splits.reduce(function (m, v) { return Math.max(m, Math.abs(v)); }, 0);
      if (unit === "s") {
        var su = secondsUnit(largest);
        // "30 s, 120 s" reads better than "0.5 min, 2 min": the unit below when it keeps ticks whole.
        var below = secondsUnit(su[0] * 0.999);
        var whole = function (u) {
          return splits.every(function (v) { return Math.abs(v / u[0] - Math.round(v / u[0])) < 1e-9; });
        };
        if (below[0] < su[0] && !whole(su) && whole(below) && largest / below[0] < 1000) su = below;
        return splits.map(function (v) { return scaled(v, su[0]) + " " + su[1]; });
      }
      if (unit === "count" || unit === "per_min") {
        var cu = countUnit(largest);
        return splits.map(function (v) { return scaled(v, cu[0]) + cu[1] + (unit === "per_min" ? "/min" : ""); });
      }
      return splits.map(function (v) { return format(v, unit); });
    };
  }

  // Tick steps an axis may use. Seconds step in whole units of the unit shown (ms, s, min, h, d);
  // instances in whole numbers only.
  var SECOND_INCRS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
    60, 120, 180, 240, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 432000, 864000];
  var INTEGER_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

  function format(v, unit) {
    if (v == null || isNaN(v)) return "–";
    switch (unit) {
      case "s": return seconds(v);
      case "count": return compact(v);
      case "per_min": return compact(v) + "/min";
      case "instances": return String(Math.round(v));
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
  // The SLO line's label and the markers' flags are laid out together: the threshold label first,
  // then each marker's label in the first of a few rows where it overlaps nothing drawn yet. A
  // label with no free row is left out (its line and dot stay; the marker list under the charts
  // names it). The boxes drawn are kept on the plot (labelBoxes) in CSS pixels of the canvas.
  var MARKER_ROWS = 3;

  function overlaps(a, b) {
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  }

  function drawThreshold(u, threshold, colors, boxes) {
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
    // Above the line, or below it when the line is too near the top for the label to fit.
    var width = ctx.measureText(threshold.label).width;
    var boxTop = y - 16 * px < u.bbox.top ? y + 2 * px : y - 16 * px;
    var box = { x: right - width - 7 * px, y: boxTop, w: width + 6 * px, h: 14 * px };
    // A backing box keeps the label readable where a series crosses it.
    ctx.fillStyle = colors.surface;
    ctx.globalAlpha = 0.85;
    ctx.fillRect(box.x, box.y, box.w, box.h);
    ctx.globalAlpha = 1;
    ctx.fillStyle = colors.threshold;
    ctx.fillText(threshold.label, right - 4 * px, box.y + 13 * px);
    ctx.restore();
    boxes.push({ kind: "threshold", label: threshold.label, x: box.x, y: box.y, w: box.w, h: box.h });
  }

  function drawMarkers(u, markers, colors, boxes) {
    if (!markers || !markers.length) return;
    var ctx = u.ctx, px = uPlot.pxRatio;
    var top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
    var min = u.scales.x.min, max = u.scales.x.max;
    ctx.save();
    ctx.font = Math.round(10 * px) + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    var flags = [];
    markers.forEach(function (marker) {
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
      ctx.fillStyle = colour;
      ctx.beginPath();
      ctx.arc(x, top, 3 * px, 0, 2 * Math.PI);
      ctx.fill();
      flags.push({ x: x, colour: colour, label: marker.label });
    });
    // Labels newest first: the latest change is the one most worth a readable label.
    flags.reverse().forEach(function (flag) {
      var label = flag.label.length > 28 ? flag.label.slice(0, 27) + "…" : flag.label;
      var width = ctx.measureText(label).width;
      var flipped = flag.x + width + 8 * px > u.bbox.left + u.bbox.width;
      var left = flipped ? flag.x - 4 * px - width : flag.x + 4 * px;
      for (var row = 0; row < MARKER_ROWS; row++) {
        var box = { x: left - 1 * px, y: top + 2 * px + row * 13 * px, w: width + 2 * px, h: 12 * px };
        if (boxes.some(function (other) { return overlaps(box, other); })) continue;
        ctx.fillStyle = flag.colour;
        ctx.textAlign = "left";
        ctx.fillText(label, left, box.y);
        boxes.push({ kind: "marker", label: label, x: box.x, y: box.y, w: box.w, h: box.h });
        break;
      }
    });
    ctx.restore();
  }

  function drawOverlays(payload, colors) {
    return function (u) {
      var boxes = [];
      drawThreshold(u, payload.threshold, colors, boxes);
      drawMarkers(u, payload.markers, colors, boxes);
      var px = uPlot.pxRatio;
      u.labelBoxes = boxes.map(function (b) {
        return { kind: b.kind, label: b.label, x: b.x / px, y: b.y / px, w: b.w / px, h: b.h / px };
      });
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

  // --- shared crosshair and zoom ------------------------------------------------------------------
  var zooms = {}; // zoom_group -> {min, max} while zoomed

  function groupPlots(group) {
    var plots = [];
    charts.forEach(function (entry) { if (entry.payload.zoom_group === group) plots.push(entry.plot); });
    return plots;
  }

  function fullRange(payload) { return [payload.start, payload.end]; }

  function stepOf(payload) { return payload.x.length > 1 ? payload.x[1] - payload.x[0] : 0; }

  // A zoom belongs to the range it was made in: another range (another step) starts unzoomed.
  function zoomFor(payload) {
    var group = payload.zoom_group || "";
    var zoom = zooms[group];
    if (zoom && (zoom.step !== stepOf(payload) || zoom.max <= payload.start || zoom.min >= payload.end)) {
      delete zooms[group];
      zoom = null;
    }
    return zoom || null;
  }

  function showResetControls(group) {
    var zoom = zooms[group];
    document.querySelectorAll("[data-chart-zoom-reset]").forEach(function (button) {
      if (button.dataset.chartZoomReset !== group) return;
      button.hidden = !zoom;
      var label = button.querySelector("[data-zoom-range]");
      if (label && zoom) {
        label.textContent = window.ControlPlane.formatTime(new Date(zoom.min * 1000), "hm") + "–" +
          window.ControlPlane.formatTime(new Date(zoom.max * 1000), "hm");
      }
    });
  }

  function setZoom(group, zoom) {
    if (zoom) zooms[group] = zoom; else delete zooms[group];
    groupPlots(group).forEach(function (plot) {
      var range = zoom ? [zoom.min, zoom.max] : fullRange(plot.payload);
      plot.setScale("x", { min: range[0], max: range[1] });
    });
    showResetControls(group);
  }

  // A drag leaves a selection on the plot: turn it into the group's zoom and clear it.
  function zoomToSelection(u) {
    var select = u.select;
    if (!select || select.width < 4) return;
    var min = u.posToVal(select.left, "x"), max = u.posToVal(select.left + select.width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (max - min >= 60) {
      setZoom(u.payload.zoom_group, { min: Math.round(min), max: Math.round(max), step: stepOf(u.payload) });
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-chart-zoom-reset]");
    if (button) setZoom(button.dataset.chartZoomReset, null);
  });

  // --- charts -------------------------------------------------------------------------------------
  function options(payload, width, colors) {
    var unit = payload.unit;
    var threshold = payload.threshold;
    var group = payload.zoom_group || "";
    var axis = {
      stroke: colors.text,
      grid: { stroke: colors.grid, width: 1 },
      ticks: { stroke: colors.grid, width: 1 },
      font: "11px system-ui, sans-serif",
    };
    var yAxis = Object.assign({}, axis, { size: 64, values: axisTicks(unit) });
    if (unit === "s") yAxis.incrs = SECOND_INCRS;
    if (unit === "instances") yAxis.incrs = INTEGER_INCRS;
    return {
      width: width,
      height: HEIGHT,
      scales: {
        x: {
          time: true,
          range: function () {
            var zoom = zoomFor(payload);
            return zoom ? [zoom.min, zoom.max] : fullRange(payload);
          },
        },
        y: {
          range: function (u, dataMin, dataMax) {
            var lo = Math.min(0, dataMin == null ? 0 : dataMin);
            var hi = dataMax == null ? 1 : dataMax;
            if (threshold && threshold.value != null) hi = Math.max(hi, threshold.value * 1.15);
            if (hi <= lo) hi = lo + 1;
            // Whole instances: the top is a count too, with room for the line at the peak.
            if (unit === "instances") return [lo, Math.max(1, Math.ceil(hi * 1.05))];
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
        yAxis,
      ],
      legend: { show: true, live: true },
      cursor: {
        // One crosshair for the group: uPlot moves every synced plot's cursor to the same time.
        sync: group ? { key: group, setSeries: false } : undefined,
        drag: { x: true, y: false, setScale: false },
      },
      hooks: {
        draw: [drawOverlays(payload, colors)],
        // Away from the cursor the legend shows the latest values rather than dashes.
        ready: [showLatest],
        setCursor: [function (u) { if (u.cursor.idx == null) showLatest(u); }],
        setSelect: [zoomToSelection],
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
    plot.payload = payload;
    zoomFor(payload);
    showResetControls(payload.zoom_group || "");
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
    labelBoxes: function (plot) { return plot.labelBoxes || []; },
    resetZoom: function (group) { setZoom(group, null); },
  };
})();
