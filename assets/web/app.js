// incident-recorder's pages: draws /w/ID's charts with uPlot from the
// page's JSON block, and refreshes a page while a window records.
// No inline script, no eval, no network but a reload of the same page.
(function () {
  'use strict';
  var body = document.body;
  body.dataset.scriptStartMs = Math.round(performance.now());
  var REFRESH_MS = 10000;
  var zoomed = false;

  if (body.dataset.recording === '1') {
    // A recording window (or a listing with one) reloads as points come;
    // not while the reader zooms into a chart.
    setInterval(function () {
      if (!zoomed) location.reload();
    }, REFRESH_MS);
  }
  if (body.dataset.page !== 'window') return;

  var data = JSON.parse(document.getElementById('window-data').textContent);
  var root = document.getElementById('charts');
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf',
    '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
  var plots = [];
  var filter = document.getElementById('filter');
  function hiddenBy(q, name) {
    q = q.trim().toLowerCase();
    return q !== '' && name.toLowerCase().indexOf(q) < 0;
  }
  var syncing = false;
  var full = data.t.length ? [data.t[0], data.t[data.t.length - 1]] : null;

  var anomaliesOf = {};
  data.anomalies.forEach(function (a) {
    (anomaliesOf[a[0]] = anomaliesOf[a[0]] || []).push([a[1], a[2]]);
  });

  function px(u, t) {
    return u.valToPos(t, 'x', true);
  }

  function vline(u, t, color, dash) {
    var x = px(u, t);
    var b = u.bbox;
    if (x < b.left || x > b.left + b.width) return null;
    var ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2 * devicePixelRatio;
    if (dash) ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    ctx.beginPath();
    ctx.moveTo(x, b.top);
    ctx.lineTo(x, b.top + b.height);
    ctx.stroke();
    ctx.restore();
    return x / devicePixelRatio;
  }

  // Under the series: the pre-incident part, from the window's start to
  // the trigger.
  function shade(u) {
    var el = u.root.parentNode;
    if (!data.pre) return;
    var b = u.bbox;
    var l = Math.max(px(u, data.pre[0]), b.left);
    var r = Math.min(px(u, data.pre[1]), b.left + b.width);
    var w = Math.max(0, r - l);
    if (w > 0) {
      u.ctx.save();
      u.ctx.fillStyle = 'rgba(128,128,128,0.18)';
      u.ctx.fillRect(l, b.top, w, b.height);
      u.ctx.restore();
    }
    el.dataset.shadePx = Math.round(w / devicePixelRatio);
  }

  // Over the series: triggers, resolves, the deadline, the anomalies.
  function marks(u) {
    var el = u.root.parentNode;
    var first = null;
    data.triggers.forEach(function (t) {
      var x = vline(u, t, '#d00', false);
      if (first === null && x !== null) first = x;
    });
    data.resolves.forEach(function (t) { vline(u, t, '#090', false); });
    if (data.deadline !== null) vline(u, data.deadline, '#666', true);
    var ring = anomaliesOf[el.dataset.metric] || [];
    var ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = '#d00';
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ring.forEach(function (a) {
      var x = px(u, a[0]);
      var y = u.valToPos(a[1], 'y', true);
      ctx.beginPath();
      ctx.arc(x, y, 3.5 * devicePixelRatio, 0, 2 * Math.PI);
      ctx.stroke();
    });
    ctx.restore();
    el.dataset.triggerPx = first === null ? '' : Math.round(first);
    el.dataset.anomalies = ring.length;
    el.dataset.drawn = '1';
    if (!body.dataset.firstDrawMs) {
      body.dataset.firstDrawMs = Math.round(performance.now());
    }
  }

  // Zooming one chart zooms them all: one time axis.
  function follow(u, key) {
    if (key !== 'x' || syncing) return;
    syncing = true;
    var min = u.scales.x.min;
    var max = u.scales.x.max;
    zoomed = !!full && (min > full[0] || max < full[1]);
    plots.forEach(function (p) {
      if (p !== u) p.setScale('x', { min: min, max: max });
    });
    syncing = false;
  }

  function width() {
    return Math.max(300, root.clientWidth - 8);
  }

  // Times in UTC, as the rest of the page and the CLI print them.
  function utc(v, seconds) {
    return new Date(v * 1000).toISOString().slice(11, seconds ? 19 : 16);
  }

  var fmt = function (u, v) {
    if (v === null || v === undefined) return '–';
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(3) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(3) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    return Number.isInteger(v) ? String(v) : v.toFixed(3);
  };

  function make(s, i) {
    var box = document.createElement('div');
    box.className = 'chart';
    box.dataset.metric = s.name;
    var points = 0;
    for (var j = 0; j < s.v.length; j++) if (s.v[j] !== null) points++;
    box.dataset.points = points;
    box.hidden = hiddenBy(filter.value, s.name);
    var title = document.createElement('h3');
    title.textContent = s.name;
    box.appendChild(title);
    root.appendChild(box);
    var opts = {
      width: width(),
      height: 150,
      cursor: { sync: { key: 'incident' }, drag: { x: true, y: false } },
      scales: { x: { time: true } },
      legend: { live: true },
      series: [
        { value: function (u, v) { return v === null ? '–' : new Date(v * 1000).toISOString().slice(0, 19).replace('T', ' ') + 'Z'; } },
        { label: s.name, stroke: COLORS[i % COLORS.length], width: 1.25, value: fmt,
          points: { show: false } }
      ],
      axes: [{ space: 70, values: function (u, vals, axis, space, incr) {
        return vals.map(function (v) { return utc(v, incr < 60); });
      } }, { size: 70, values: function (u, vals) { return vals.map(function (v) { return fmt(u, v); }); } }],
      hooks: { drawClear: [shade], draw: [marks], setScale: [follow] }
    };
    var u = new uPlot(opts, [data.t, s.v], box);
    plots.push(u);
    if (zoomed) u.setScale('x', { min: plots[0].scales.x.min, max: plots[0].scales.x.max });
  }

  // The first charts now, the rest a few at a time after the browser has
  // drawn those: with 50 metrics the top of the page shows at once.
  var BATCH = 6;
  function build(from) {
    var to = Math.min(from + BATCH, data.series.length);
    for (var i = from; i < to; i++) make(data.series[i], i);
    body.dataset.charts = plots.length;
    if (to < data.series.length) setTimeout(function () { build(to); }, 0);
  }
  build(0);

  document.getElementById('reset').addEventListener('click', function () {
    if (full && plots.length) plots[0].setScale('x', { min: full[0], max: full[1] });
  });
  filter.addEventListener('input', function () {
    root.querySelectorAll('.chart').forEach(function (c) {
      c.hidden = hiddenBy(filter.value, c.dataset.metric);
    });
  });
  var resizing = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      plots.forEach(function (p) { p.setSize({ width: width(), height: 150 }); });
    }, 100);
  });
})();
