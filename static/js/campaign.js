// The campaign page: live progress from the staff socket (`live:campaign.progress`, pushed at most once a
// second), and one refresh of the partial after the events stop, so the last numbers are always shown.
(function () {
  "use strict";
  let settle = null;

  function duration(seconds) {
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    return Math.round(seconds / 3600) + " h";
  }

  function apply(box, data) {
    Object.keys(data.counts || {}).forEach(function (state) {
      const cell = box.querySelector('[data-count="' + state + '"]');
      if (cell) cell.textContent = data.counts[state];
    });
    const bar = box.querySelector('[data-live="progress"]');
    if (bar) bar.value = data.progress;
    const label = box.querySelector('[data-live="status_label"]');
    if (label) label.textContent = data.status_label;
    const rate = box.querySelector('[data-live="rate"]');
    if (rate) rate.textContent = data.rate_per_s ? box.dataset.rateText.replace("{rate}", data.rate_per_s) : "";
    const eta = box.querySelector('[data-live="eta"]');
    if (eta) eta.textContent = data.eta_s ? "· " + box.dataset.etaText.replace("{time}", duration(data.eta_s)) : "";
    box.dataset.status = data.status;
    box.dataset.liveUpdates = String(Number(box.dataset.liveUpdates || 0) + 1);
  }

  document.addEventListener("live:campaign.progress", function (event) {
    const box = document.getElementById("campaign-progress");
    const data = event.detail || {};
    if (!box || String(data.campaign_id) !== box.dataset.campaign) return;
    apply(box, data);
    clearTimeout(settle);
    settle = setTimeout(function () {
      if (window.htmx) window.htmx.ajax("GET", box.dataset.refreshUrl, { target: "#campaign-progress", swap: "outerHTML" });
    }, 2500);
  });

  document.addEventListener("live:campaign.auto_paused", function (event) {
    const data = event.detail || {};
    if (window.toast) window.toast(data.name + ": " + data.reason, "warning");
  });
})();
