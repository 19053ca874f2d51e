// The dashboard: reads the analytics API with the filters in the URL, draws Chart.js charts and
// tables, formats numbers for the page's language, and updates today's strip from the live socket.
(function () {
  "use strict";

  const root = document.getElementById("dashboard");
  if (!root) return;
  const labels = JSON.parse(document.getElementById("analytics-labels").textContent);
  const lang = (root.dataset.lang || "pt-br").replace(/-(\w+)$/, function (_m, r) { return "-" + r.toUpperCase(); });
  const tz = root.dataset.tz;
  const numbers = new Intl.NumberFormat(lang);
  const decimals = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 });
  const signedPercent = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1, signDisplay: "exceptZero" });
  const money = new Intl.NumberFormat(lang, { style: "currency", currency: "BRL" });
  const params = new URLSearchParams(location.search);
  const interval = params.get("interval") || "day";
  const charts = {};

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return decimals.format(seconds) + " s";
    if (seconds < 3600) return decimals.format(seconds / 60) + " min";
    return decimals.format(seconds / 3600) + " h";
  }

  function format(value, kind) {
    if (value === null || value === undefined) return "–";
    if (kind === "percent") return percent.format(value);
    if (kind === "duration") return duration(value);
    if (kind === "money") return money.format(value);
    return numbers.format(value);
  }

  function api(url) {
    return fetch(url + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.json();
      });
  }

  function failed() { if (window.toast) window.toast(labels.error, "error"); }

  function bucketLabel(iso) {
    const at = new Date(iso);
    const options = interval === "hour"
      ? { timeZone: tz, day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" }
      : { timeZone: tz, day: "2-digit", month: "2-digit" };
    return new Intl.DateTimeFormat(lang, options).format(at);
  }

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas || !window.Chart) return;
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({
      locale: lang,
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom" } },
    }, config.options || {});
    charts[id] = new window.Chart(canvas, config);
    canvas.dataset.drawn = "1";
  }

  function fillRows(tableId, rows, cells) {
    const body = document.querySelector("#" + tableId + " tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 9;
      td.className = "muted";
      td.textContent = labels.no_data;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    rows.forEach(function (row) {
      const tr = document.createElement("tr");
      cells(row).forEach(function (text) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function summary() {
    return api(root.dataset.api).then(function (data) {
      document.querySelectorAll("[data-kpi]").forEach(function (card) {
        const kpi = data.kpis[card.dataset.kpi];
        if (!kpi) return;
        card.querySelector(".value").textContent = format(kpi.value, card.dataset.format);
        const change = card.querySelector(".change");
        if (kpi.change === null) {
          change.textContent = "";
        } else {
          change.textContent = signedPercent.format(kpi.change) + " · " + format(kpi.previous, card.dataset.format);
          const worse = card.dataset.badUp ? kpi.change > 0 : kpi.change < 0;
          change.className = "change small " + (kpi.change === 0 ? "muted" : worse ? "down" : "up");
        }
      });
    });
  }

  function series() {
    return api(root.dataset.apiSeries).then(function (data) {
      const x = data.points.map(function (p) { return bucketLabel(p.t); });
      function line(field, color) {
        return { label: labels[field], data: data.points.map(function (p) { return p[field]; }), borderColor: color,
          backgroundColor: color, tension: 0.25, pointRadius: 0 };
      }
      draw("chart-messages", { type: "line", data: { labels: x, datasets: [
        line("received", "#0f766e"), line("sent", "#2563eb"), line("delivered", "#7c3aed"), line("read", "#16a34a"),
        line("failed", "#b91c1c")] } });
      function bar(field, color) {
        return { label: labels[field], data: data.points.map(function (p) { return p[field]; }), backgroundColor: color };
      }
      draw("chart-conversations", { type: "bar", data: { labels: x, datasets: [
        bar("opened", "#0f766e"), bar("resolved", "#16a34a"), bar("calls", "#f59e0b")] } });
    });
  }

  function funnel() {
    return api(root.dataset.apiFunnel).then(function (data) {
      document.getElementById("funnel-board").textContent = data.board ? data.board.name : "";
      const stages = data.stages;
      draw("chart-funnel", { type: "bar", data: { labels: stages.map(function (s) { return s.stage; }), datasets: [
        { label: labels.entered, data: stages.map(function (s) { return s.entered; }), backgroundColor: "#0f766e" },
        { label: labels.leads_now, data: stages.map(function (s) { return s.leads_now; }), backgroundColor: "#94a3b8" },
      ] }, options: { indexAxis: "y" } });
      fillRows("table-funnel", stages, function (s) {
        return [s.stage, numbers.format(s.leads_now), money.format(s.value_now), numbers.format(s.entered),
          s.conversion === null ? "–" : percent.format(s.conversion)];
      });
    });
  }

  function agents() {
    return api(root.dataset.apiAgents).then(function (rows) {
      fillRows("table-agents", rows, function (r) {
        return [r.agent, numbers.format(r.replies), numbers.format(r.conversations_handled), numbers.format(r.resolved),
          duration(r.first_response_avg_s), duration(r.response_avg_s), duration(r.response_median_s)];
      });
    });
  }

  function campaigns() {
    return api(root.dataset.apiCampaigns).then(function (rows) {
      fillRows("table-campaigns", rows, function (r) {
        return [r.name, labels[r.kind] || r.kind, numbers.format(r.sent), numbers.format(r.delivered),
          numbers.format(r.read), numbers.format(r.failed), format(r.read_rate, "percent")];
      });
    });
  }

  function calls() {
    return api(root.dataset.apiCalls).then(function (rows) {
      fillRows("table-calls", rows, function (r) {
        return [r.status_label || r.status, r.outcome || "–", numbers.format(r.calls), numbers.format(r.answered),
          duration(r.avg_duration_s), numbers.format(r.positive), numbers.format(r.negative)];
      });
    });
  }

  document.querySelectorAll("[data-export-link]").forEach(function (link) {
    link.href = root.dataset.export.replace("REPORT", link.dataset.exportLink) + "?" + params.toString();
  });

  function loadAll() {
    return Promise.all([summary(), series(), funnel(), agents(), campaigns(), calls()])
      .then(function () { root.dataset.loaded = "1"; })
      .catch(failed);
  }

  // Today's strip ticks live; the charts follow when the period includes today (at most every 10 s).
  let reloadTimer = null;
  document.addEventListener("live:analytics.today", function (event) {
    const today = event.detail || {};
    document.querySelectorAll("[data-today]").forEach(function (cell) {
      const value = today[cell.dataset.today];
      if (value !== undefined) cell.textContent = numbers.format(value);
    });
    const end = params.get("end");
    if ((!end || end >= today.date) && !reloadTimer) {
      reloadTimer = setTimeout(function () { reloadTimer = null; loadAll(); }, 10000);
    }
  });

  document.querySelectorAll("[data-today]").forEach(function (cell) {
    cell.textContent = numbers.format(Number(cell.textContent));
  });
  loadAll();
})();
