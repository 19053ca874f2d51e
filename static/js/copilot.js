// The composer's copilot: its answers (and its errors) are shown under the composer, and a suggested,
// improved, shortened or translated text replaces the draft. It never sends: the agent presses Send.
(function () {
  if (window.copilotReady) return;
  window.copilotReady = true;
  function isCopilot(target) { return target && target.id === "copilot-result"; }
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (isCopilot(event.detail.target) && event.detail.xhr.status >= 400) {
      event.detail.shouldSwap = true; // the fragment says what went wrong and what to do
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!isCopilot(event.detail.target)) return;
    const result = event.detail.target.querySelector("[data-fill]");
    const box = document.getElementById("id_body");
    if (!result || !box) return;
    box.value = result.dataset.text;
    box.dispatchEvent(new Event("input", {bubbles: true})); // the composer's Alpine state follows
    box.focus();
  });
})();
