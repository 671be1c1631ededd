/* The live dashboard (harness --web): one server-sent event a second carries the run's state
   and the chart points not yet sent; charts and tables are drawn with charts.js. */
(function () {
  "use strict";
  var token = new URLSearchParams(location.search).get("token");
  var q = token ? "?token=" + encodeURIComponent(token) : "";
  var board = document.getElementById("board");
  var status = document.getElementById("status");
  var stop = document.getElementById("stop");
  var models = {};     // label -> {points, section, charts}
  var sections = {};   // fixed parts of the page, made once
  var live = false;    // an event has arrived

  function part(id, heading) {
    if (!sections[id]) {
      var s = document.createElement("section");
      s.id = id;
      var h = document.createElement("h2");
      h.textContent = heading;
      var body = document.createElement("div");
      s.appendChild(h);
      s.appendChild(body);
      board.appendChild(s);
      sections[id] = body;
    }
    return sections[id];
  }

  function fill(el, child) {
    el.replaceChildren(child);
  }

  function seconds(v) { return v === null || v === undefined ? "-" : LH.fmt(v, 1) + " s"; }

  function summary(state) {
    var crossed = state.crossed_by || {};
    var rows = state.models.map(function (m) {
      var t = m.totals || {};
      var mine = crossed[m.label] || [];
      // strings, formatted one way per column: counts 0 decimals, rates and ms 2
      return [m.label, m.state, LH.num(t.requests, 0), LH.num(t.failures, 0),
              LH.num(t.rps, 2), LH.num(t.p50_ms, 2), LH.num(t.p95_ms, 2),
              LH.num(t.p99_ms, 2), LH.num(t.max_ms, 2), LH.num(m.sent, 0),
              mine.length ? "crossed: " + mine.length : "-"];
    });
    var table = LH.table(["model", "state", "requests", "failures", "req/s", "p50 ms",
      "p95 ms", "p99 ms", "max ms", "sent", "thresholds"], rows);
    var invalid = [];
    Array.prototype.forEach.call(table.tBodies[0].rows, function (tr, i) {
      var m = state.models[i];
      var mine = crossed[m.label] || [];
      if (mine.length) {     // the row a crossed threshold concerns is marked
        tr.className = "crossed";
        tr.title = mine.join("\n");
      }
      if (m.client) {        // it measured its own client: its numbers are not the target's
        tr.className += " invalid";
        tr.cells[1].textContent = m.state + " (invalid: client-bound)";
        invalid.push(m.client);
      }
    });
    var notes = invalid.map(function (text) {
      var p = document.createElement("p");
      p.className = "warn";
      p.textContent = text;
      return p;
    });
    part("models", "Models").replaceChildren.apply(part("models", "Models"), [table].concat(notes));
  }

  function charts(state) {
    var holder = part("charts", "Over time (drag to zoom, double-click to zoom out)");
    state.models.forEach(function (m) {
      var mine = models[m.label];
      if (!mine) {
        mine = models[m.label] = {points: [], charts: null};
      }
      if (m.first === mine.points.length) {
        mine.points = mine.points.concat(m.points);
      } else if (m.first === 0) {
        mine.points = m.points.slice();
      }
      if (!mine.points.length) return;
      if (!mine.charts) {
        var row = document.createElement("div");
        row.className = "model";
        row.dataset.model = m.label;
        var h = document.createElement("h3");
        h.textContent = m.label;
        var a = document.createElement("div");
        var b = document.createElement("div");
        a.className = b.className = "chart";
        row.appendChild(h);
        row.appendChild(a);
        row.appendChild(b);
        holder.appendChild(row);
        mine.charts = [LH.throughput(a, m.label + ": requests/s", mine.points),
                       LH.latency(b, m.label + ": latency (ms)", mine.points)];
      } else if (m.points.length) {
        mine.charts.forEach(function (c) { LH.update(c, mine.points); });
      }
    });
  }

  function errors(state) {
    var rows = [];
    state.models.forEach(function (m) {
      (m.errors || []).forEach(function (e) {   // [kind, status, count]
        rows.push([m.label, e[0], e[1] ? String(e[1]) : "-", LH.num(e[2], 0)]);
      });
    });
    var el = part("errors", "Errors by kind");
    if (!rows.length) {
      var p = document.createElement("p");
      p.textContent = "No errors so far.";
      fill(el, p);
    } else {
      fill(el, LH.table(["model", "kind", "status", "count"], rows));
    }
  }

  function workers(state) {
    var rows = state.workers.map(function (w) {
      return [w.name, w.host, w.alive ? "alive" : "lost", w.sent];
    });
    var el = part("workers", "Workers");
    var t = LH.table(["worker", "host", "state", "sent (this model)"], rows);
    var p = document.createElement("p");
    p.textContent = state.workers.length + " of " + state.expect_workers + " joined";
    el.replaceChildren(p, t);
  }

  function thresholds(state) {
    var el = part("thresholds", "Thresholds crossed so far");
    var p = document.createElement("p");
    if (!state.thresholds.length) {
      p.textContent = "None.";
      fill(el, p);
      return;
    }
    var ul = document.createElement("ul");
    state.thresholds.forEach(function (line) {
      var li = document.createElement("li");
      li.textContent = line;
      ul.appendChild(li);
    });
    fill(el, ul);
  }

  function verdict(state) {
    if (!state.verdict) return;
    var el = part("verdict", "Verdict");
    var p = document.createElement("p");
    p.textContent = state.verdict.line;
    el.replaceChildren(LH.table(state.verdict.columns, state.verdict.rows), p);
  }

  /* A capacity run: the search so far -- its curve (charts.js, the report's own) and one
     row per model with the bracket -- redrawn when a step ends. */
  var searched = "";
  function capacity(state) {
    if (!state.capacity) return;
    var key = JSON.stringify(state.capacity);
    if (key === searched) return;
    searched = key;
    var el = part("capacity", "Capacity search (each step: achieved req/s against latency)");
    var chart = document.createElement("div");
    chart.className = "wide";
    el.replaceChildren(chart, LH.capacityTable(state.capacity));
    LH.capacity(chart, state.capacity);
  }

  function headline(state) {
    var text = state.state;
    var running = state.models.filter(function (m) { return m.state === "running"; })[0];
    if (running) {
      text = "running " + running.label + ": " + seconds(running.elapsed_s) + " elapsed, " +
        (running.remaining_s === null ? "until its requests are done" : seconds(running.remaining_s) + " left");
    } else if (state.state === "waiting") {
      text = "waiting for workers (" + state.workers.length + " of " + state.expect_workers + ")";
    } else if (state.state === "done") {
      text = "finished (" + state.ending + "): results in " + state.run_dir;
    } else if (state.state === "writing") {
      text = "writing the results";
    }
    if (state.stop_requested && state.state !== "done") text += " - stopping";
    status.textContent = text;
    status.className = state.state;
    stop.disabled = state.state === "done" || state.stop_requested;
  }

  function draw(state) {
    headline(state);
    capacity(state);
    summary(state);
    charts(state);
    errors(state);
    workers(state);
    thresholds(state);
    verdict(state);
  }

  stop.addEventListener("click", function () {
    stop.disabled = true;
    stop.textContent = "Stopping...";
    fetch("/api/stop" + q, {method: "POST"});
  });

  // draw the page at once from the state, not blank until the first event
  fetch("/api/state" + q).then(function (r) { return r.ok ? r.json() : null; })
    .then(function (state) { if (state && !live) draw(state); })
    .catch(function () {});

  var events = new EventSource("/api/events" + q);
  events.onmessage = function (e) {
    live = true;   // the events now carry the page: a late /api/state answer is stale
    var state = JSON.parse(e.data);
    draw(state);
    if (state.state === "done") events.close();
  };
  events.onerror = function () {
    if (status.className !== "done") status.textContent = "connection to the run lost";
    events.close();
  };
})();
