/* loadharness charts: the one chart code of the live dashboard and of report.html (inlined
   there), on the vendored uPlot (uPlot.LICENSE). Drag across a chart to zoom in, double-click
   to zoom out. No network: everything this needs is in the page. */
(function (global) {
  "use strict";
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  function color(i) { return PALETTE[i % PALETTE.length]; }

  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "-";
    return Number(v).toLocaleString("en-US", {maximumFractionDigits: digits === undefined ? 2 : digits});
  }

  /* One way per column: counts as integers with separators (fixed = 0), rates and times
     with exactly `fixed` decimals; a missing value is a dash, never "undefined". */
  function num(v, fixed) {
    if (v === null || v === undefined || Number.isNaN(v)) return "-";
    return Number(v).toLocaleString("en-US", {minimumFractionDigits: fixed,
                                              maximumFractionDigits: fixed});
  }

  /* A line chart. opts: title, x (array), series [{label, values, dash?, color?}], yLabel,
     xLabel, logX, logY, width, height, xTicks ([[value, text]]). Returns the uPlot. */
  function lineChart(el, opts) {
    var width = opts.width || Math.max(320, (el.clientWidth || 600) - 8);
    var series = [{label: opts.xLabel || "second"}];
    var data = [opts.x];
    opts.series.forEach(function (s, i) {
      series.push({label: s.label, stroke: s.color || color(i), width: 1.5,
                   dash: s.dash || undefined, spanGaps: false,
                   value: function (u, v) { return fmt(v); }});
      data.push(s.values);
    });
    var xAxis = {label: opts.xLabel || "second"};
    if (opts.xTicks) {
      xAxis.splits = function () { return opts.xTicks.map(function (t) { return t[0]; }); };
      xAxis.values = function () { return opts.xTicks.map(function (t) { return t[1]; }); };
    }
    return new uPlot({
      title: opts.title, width: width, height: opts.height || 240,
      scales: {x: {time: false, distr: opts.logX ? 3 : 1},
               y: {distr: opts.logY ? 3 : 1}},
      axes: [xAxis, {label: opts.yLabel || "", size: 60}],
      series: series,
      cursor: {drag: {x: true, y: false}},
      legend: {live: true},
    }, data, el);
  }

  /* Columns from points [second, rps, failures/s, p50, p95, p99]. */
  function columns(points) {
    var cols = [[], [], [], [], [], []];
    points.forEach(function (p) { for (var i = 0; i < 6; i++) cols[i].push(p[i]); });
    return cols;
  }

  function throughput(el, title, points) {
    var c = columns(points);
    return lineChart(el, {title: title, x: c[0], yLabel: "per second",
      series: [{label: "requests/s", values: c[1]},
               {label: "failures/s", values: c[2], color: "#d62728"}]});
  }

  function latency(el, title, points) {
    var c = columns(points);
    return lineChart(el, {title: title, x: c[0], yLabel: "ms",
      series: [{label: "p50", values: c[3], color: "#2ca02c"},
               {label: "p95", values: c[4], color: "#ff7f0e"},
               {label: "p99", values: c[5], color: "#d62728"}]});
  }

  /* A chart made by throughput() or latency() given all its points again. */
  function update(chart, points) {
    var c = columns(points);
    var data = chart.series.length === 3 ? [c[0], c[1], c[2]] : [c[0], c[3], c[4], c[5]];
    chart.setData(data);
  }

  function cell(row, text, tag) {
    var td = document.createElement(tag || "td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  /* A table of plain text cells (never HTML from data). */
  function table(columnsList, rows, className) {
    var t = document.createElement("table");
    t.className = className || "grid";
    var head = t.createTHead().insertRow();
    columnsList.forEach(function (c) { cell(head, c, "th"); });
    var body = t.createTBody();
    rows.forEach(function (r) {
      var tr = body.insertRow();
      r.forEach(function (v) {
        cell(tr, typeof v === "number" ? fmt(v) : (v === null || v === undefined ? "-" : String(v)));
      });
    });
    return t;
  }

  /* The latency-throughput curve of a capacity search (reports/curves.py's data): p99 (solid)
     and p50 (dashed) against achieved req/s, a line per model; each SLO latency limit as a
     grey line; each model's capacity (a ring) and knee (a square) on its p99 curve. The
     models' points share one x (the union of what they achieved; gaps are spanned). */
  function capacity(el, curve) {
    var xs = [];
    curve.models.forEach(function (m) {
      m.points.forEach(function (p) { if (p[0] !== null) xs.push(p[0]); });
    });
    xs = xs.filter(function (v, i, a) { return a.indexOf(v) === i; })
           .sort(function (a, b) { return a - b; });
    if (!xs.length) return null;
    function at(points, col) {
      var byX = {};
      points.forEach(function (p) { if (p[0] !== null) byX[p[0]] = p[col]; });
      return xs.map(function (x) { return x in byX ? byX[x] : null; });
    }
    function nearest(points, x) {    // the p99 on the curve at a marked rate
      var best = null;
      points.forEach(function (p) {
        if (p[0] !== null && (best === null || Math.abs(p[0] - x) < Math.abs(best[0] - x))) best = p;
      });
      return best;
    }
    function marker(m, key) {
      var vals = xs.map(function () { return null; });
      if (m[key] === null || m[key] === undefined) return vals;
      var p = nearest(m.points, m[key]);
      if (p) vals[xs.indexOf(p[0])] = p[2];
      return vals;
    }
    var series = [{label: "achieved req/s"}];
    var data = [xs];
    function add(label, values, stroke, extra) {
      var s = {label: label, stroke: stroke, width: 1.5, spanGaps: true,
               value: function (u, v) { return fmt(v); }};
      Object.keys(extra || {}).forEach(function (k) { s[k] = extra[k]; });
      series.push(s);
      data.push(values);
    }
    var dot = function () { return null; };   // markers: points only, no line
    curve.models.forEach(function (m, i) {
      add(m.label + " p99", at(m.points, 2), color(i));
      add(m.label + " p50", at(m.points, 1), color(i), {dash: [6, 4]});
      add(m.label + " capacity", marker(m, "capacity_rps"), color(i),
          {paths: dot, points: {show: true, size: 12, width: 2, fill: "#fff"}});
      add(m.label + " knee", marker(m, "knee"), color(i),
          {paths: dot, points: {show: true, size: 9, fill: color(i)}});
    });
    Object.keys(curve.slo_ms || {}).forEach(function (metric) {
      var limit = curve.slo_ms[metric];
      add("SLO " + metric + " " + fmt(limit), xs.map(function () { return limit; }), "#888",
          {dash: [2, 3]});
    });
    var width = Math.max(320, (el.clientWidth || 800) - 8);
    return new uPlot({
      title: "latency against achieved throughput (each step of the search)",
      width: width, height: 320,
      scales: {x: {time: false}, y: {distr: 3}},
      axes: [{label: "achieved requests/s"}, {label: "ms (log)", size: 60}],
      series: series, cursor: {drag: {x: true, y: false}}, legend: {live: true},
    }, data, el);
  }

  /* The search's answers and steps as a table: one row per model. */
  function capacityTable(curve) {
    var rows = curve.models.map(function (m) {
      var last = m.points.length;
      return [m.label, m.capacity_rps === null || m.capacity_rps === undefined ?
                (m.limited_by === "client" ? "client-bound" : "-") : fmt(m.capacity_rps, 0),
              fmt(m.low, 0) + " - " + fmt(m.high, 0), m.knee ? fmt(m.knee, 0) : "-",
              m.limited_by || "-", last];
    });
    return table(["model", "capacity req/s", "bracket (pass - fail)", "knee req/s",
                  "limited by", "steps"], rows, "grid capacity");
  }

  global.LH = {lineChart: lineChart, throughput: throughput, latency: latency,
               update: update, table: table, fmt: fmt, num: num, color: color,
               capacity: capacity, capacityTable: capacityTable};
})(window);
