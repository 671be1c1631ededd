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

  global.LH = {lineChart: lineChart, throughput: throughput, latency: latency,
               update: update, table: table, fmt: fmt, num: num, color: color};
})(window);
