// The usage page: one line per metered metric over the last 30 days (Chart.js), from the page's data.
(function () {
  "use strict";

  const root = document.getElementById("usage");
  const data = document.getElementById("usage-chart");
  const canvas = document.getElementById("chart-usage");
  if (!root || !data || !canvas) return;
  const chart = JSON.parse(data.textContent);
  const lang = (root.dataset.lang || "pt-br").replace(/-(\w+)$/, function (_m, r) { return "-" + r.toUpperCase(); });
  const day = new Intl.DateTimeFormat(lang, { day: "2-digit", month: "2-digit", timeZone: "UTC" });
  const colors = ["#0f766e", "#2563eb", "#9333ea", "#ea580c", "#dc2626"];

  function draw() {
    if (!window.Chart) return;
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: chart.days.map(function (iso) { return day.format(new Date(iso + "T00:00:00Z")); }),
        datasets: chart.series.map(function (s, i) {
          return { label: s.label, data: s.values, borderColor: colors[i % colors.length], backgroundColor: colors[i % colors.length], tension: 0.2 };
        })
      },
      options: { locale: lang, responsive: true, maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true } } }
    });
    canvas.dataset.drawn = "true";
  }

  if (window.Chart) draw(); else window.addEventListener("load", draw);
})();
