// Bar charts drawn with uPlot (static/vendor/) from each figure's data-chart
// attribute (templates/macros/charts.html): a dated x axis, a value axis, the
// exact figure of the hovered day in the legend. The server's SVG stays as the
// no-script fallback and is hidden once a chart is drawn. Charts swapped in by
// htmx (the dashboard's live poll) are drawn on arrival.
(function () {
  "use strict";
  var DAY = 86400;

  function when(label, index) {
    var t = Date.parse(label.length === 7 ? label + "-01T00:00:00Z" : label + "T00:00:00Z");
    return isNaN(t) ? index * DAY : t / 1000;
  }

  function draw(figure) {
    if (!window.uPlot || figure.dataset.drawn || !figure.querySelector("svg")) {
      return;
    }
    var data = JSON.parse(figure.dataset.chart);
    var xs = data.labels.map(when);
    var ys = data.values.map(function (v) { return v / data.scale; });
    var holder = document.createElement("div");
    holder.className = "chart-canvas";
    holder.setAttribute("role", "img");
    holder.setAttribute("aria-label", data.caption);
    figure.insertBefore(holder, figure.firstChild);
    var width = Math.max(figure.clientWidth, 200);
    var chart = new uPlot({
      width: width,
      height: 180,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: function (u, min, max) { return [min - DAY * 0.7, max + DAY * 0.7]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
      },
      axes: [
        { space: 60, values: [[DAY, "{D} {MMM}", null, null, null, null, null, null, 1]] },
        {
          // As wide as the longest tick label ("400,000"), so none is cut off.
          size: function (u, values) {
            var longest = (values || []).reduce(function (n, v) { return Math.max(n, String(v).length); }, 1);
            return Math.max(40, longest * 8 + 20);
          },
          values: function (u, ticks) { return ticks.map(function (t) { return t.toLocaleString("en-US"); }); },
        },
      ],
      series: [
        { value: function (u, v, si, i) { return i == null ? "" : data.labels[i]; } },
        {
          label: data.unit || data.caption,
          fill: "rgba(1, 114, 173, 0.6)",
          stroke: "rgb(1, 114, 173)",
          paths: uPlot.paths.bars({ size: [0.7, 40] }),
          points: { show: false },
          value: function (u, v, si, i) { return i == null ? "" : data.titles[i]; },
        },
      ],
    }, [xs, ys], holder);
    figure.dataset.drawn = "yes";
    figure.classList.add("has-chart");
    window.addEventListener("resize", function () {
      chart.setSize({ width: Math.max(figure.clientWidth, 200), height: 180 });
    });
  }

  function drawAll(root) {
    root.querySelectorAll("figure[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:load", function (event) {
    var el = event.detail.elt;
    if (el.matches && el.matches("figure[data-chart]")) {
      draw(el);
    } else if (el.querySelectorAll) {
      drawAll(el);
    }
  });
})();
