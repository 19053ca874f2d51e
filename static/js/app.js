// Page shell behaviour: toasts, CSRF for htmx, the live socket, the service worker.
(function () {
  "use strict";

  function csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  window.csrfToken = csrfToken;

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // Toasts: server messages are rendered into #toasts; scripts call window.toast(text, level).
  window.toast = function (text, level) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const item = document.createElement("div");
    item.className = "toast " + (level || "info");
    item.setAttribute("role", "status");
    const span = document.createElement("span");
    span.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", "close");
    close.textContent = "×";
    close.onclick = function () { item.remove(); };
    item.append(span, close);
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 6000);
  };
  document.querySelectorAll("#toasts .toast").forEach(function (item) {
    setTimeout(function () { item.remove(); }, 6000);
  });

  // Behaviour declared in the markup (no inline handlers: the Content-Security-Policy forbids them).
  // data-confirm on a form or a button asks first; data-autosubmit submits its form on change;
  // data-dismiss removes its parent (a toast); data-reload reloads the page.
  // The question goes through the page's one <dialog> (components/confirm.html); OK replays the click or
  // the submit that asked. A page without the dialog (the sign-in cards) falls back to the browser's own.
  function ask(element, proceed) {
    const dialog = document.getElementById("confirm-dialog");
    const text = element.dataset.confirm;
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(text)) proceed();
      return;
    }
    dialog.querySelector("[data-confirm-text]").textContent = text;
    const ok = dialog.querySelector("[data-confirm-ok]");
    ok.classList.toggle("danger", element.classList.contains("danger"));
    dialog.returnValue = "";
    dialog.addEventListener("close", function done() {
      dialog.removeEventListener("close", done);
      if (dialog.returnValue === "ok") proceed();
    });
    dialog.showModal();
    ok.focus();
  }
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form.dataset || !form.dataset.confirm) return;
    if (form.dataset.confirmed) { delete form.dataset.confirmed; return; }
    event.preventDefault();
    const submitter = event.submitter;
    ask(form, function () { form.dataset.confirmed = "1"; form.requestSubmit(submitter || undefined); });
  });
  document.addEventListener("click", function (event) {
    const asking = event.target.closest("[data-confirm]");
    if (asking && asking.tagName !== "FORM") {
      if (asking.dataset.confirmed) {
        delete asking.dataset.confirmed;
      } else {
        event.preventDefault();
        event.stopImmediatePropagation();
        ask(asking, function () { asking.dataset.confirmed = "1"; asking.click(); });
        return;
      }
    }
    const dismiss = event.target.closest("[data-dismiss]");
    if (dismiss && dismiss.parentElement) dismiss.parentElement.remove();
    if (event.target.closest("[data-reload]")) location.reload();
  });
  document.addEventListener("change", function (event) {
    const field = event.target.closest("[data-autosubmit]");
    if (field && field.form) field.form.submit();
  });

  // Live socket: reconnects with backoff; each event is re-dispatched as a DOM event `live:<name>`.
  function connectLive() {
    const dot = document.getElementById("live-dot");
    if (!document.body.dataset.live) return;
    let attempt = 0;
    function open() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const socket = new WebSocket(scheme + location.host + "/ws/live/");
      socket.onopen = function () { attempt = 0; if (dot) dot.classList.add("on"); };
      socket.onmessage = function (msg) {
        const data = JSON.parse(msg.data);
        document.dispatchEvent(new CustomEvent("live:" + data.event, { detail: data.payload }));
      };
      socket.onclose = function (event) {
        if (dot) dot.classList.remove("on");
        if (event.code >= 4400 && event.code < 4500) return; // not allowed: do not hammer
        attempt += 1;
        setTimeout(open, Math.min(30000, 500 * 2 ** attempt));
      };
      window.liveSocket = socket;
    }
    open();
  }

  document.addEventListener("DOMContentLoaded", connectLive);

  // New customer messages while the tab is in the background: a count in the title, and a browser
  // notification when the user allowed them.
  const baseTitle = document.title;
  let unseen = 0;
  document.addEventListener("live:message.created", function (event) {
    const message = event.detail;
    if (message.direction !== "in" || !document.hidden) return;
    unseen += 1;
    document.title = "(" + unseen + ") " + baseTitle;
    if ("Notification" in window && Notification.permission === "granted") {
      const note = new Notification(message.contact || "", { body: message.body || "", tag: "conversation-" + message.conversation_id });
      note.onclick = function () { window.focus(); location.href = "/conversations/" + message.conversation_id + "/"; };
    }
  });
  // A QR-linked number logged out anywhere in the workspace: tell whoever is looking.
  document.addEventListener("live:waweb.logged_out", function (event) {
    if (!document.getElementById("qr-card")) window.toast(document.body.dataset.loggedOutText || "WhatsApp (QR) logged out", "warning");
  });
  // Alerts: the bell in the top bar counts the open ones; a new one also shows its title in a toast.
  function bellSet(open) {
    const count = document.querySelector("#alert-bell .bell-count");
    if (!count || typeof open !== "number") return;
    count.textContent = String(open);
    count.hidden = open === 0;
    count.parentElement.classList.toggle("on", open > 0);
  }
  document.addEventListener("live:alert.raised", function (event) {
    const alert = event.detail || {};
    bellSet(alert.open);
    if (document.getElementById("alert-bell")) window.toast(alert.title || "", alert.level === "error" ? "error" : "warning");
  });
  document.addEventListener("live:alert.count", function (event) { bellSet((event.detail || {}).open); });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { unseen = 0; document.title = baseTitle; }
  });

  if ("serviceWorker" in navigator) {
    window.addEventListener("load", function () {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {});
    });
  }
})();
