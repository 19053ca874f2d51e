// The inbox: three panes swapped in place by htmx, live list and timeline, composer, keyboard, presence.
// Everything is delegated from the document, so it keeps working after the panes are swapped.
(function () {
  "use strict";

  const $ = function (selector, root) { return (root || document).querySelector(selector); };
  const $$ = function (selector, root) { return Array.from((root || document).querySelectorAll(selector)); };
  // Back/forward asks the server again (a cached snapshot would show stale messages and ticks).
  if (window.htmx) window.htmx.config.historyCacheSize = 0;

  function inbox() { return document.getElementById("inbox"); }
  function pane() { return document.getElementById("pane"); }
  function currentId() {
    const p = pane();
    return p && p.dataset.paneConversation ? Number(p.dataset.paneConversation) : null;
  }
  function format(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key] == null ? "" : values[key]; });
  }

  // --- the list -----------------------------------------------------------------------------------
  function markCurrent() {
    const id = currentId();
    $$("#conversation-rows .conversation-row").forEach(function (row) {
      const on = Number(row.dataset.conversation) === id;
      row.classList.toggle("current", on);
      const link = $("a", row);
      if (link) { if (on) link.setAttribute("aria-current", "true"); else link.removeAttribute("aria-current"); }
    });
  }

  function listQuery() {
    const form = document.getElementById("inbox-filters");
    if (!form) return "";
    const params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) { if (value && !(key === "view" && value === "all")) params.set(key, value); });
    return params.toString();
  }

  let refreshTimer = null;
  function refreshList() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () {
      const list = document.getElementById("conversation-list");
      if (!list || !inbox()) return;
      const scroll = list.scrollTop;
      const query = listQuery();
      window.htmx.ajax("GET", inbox().dataset.listUrl + (query ? "?" + query : ""), {
        target: "#conversation-list", swap: "outerHTML", headers: {"HX-Target": "conversation-list"},
      }).then(function () {
        const fresh = document.getElementById("conversation-list");
        if (fresh) fresh.scrollTop = scroll;
        markCurrent();
      });
    }, 250);
  }

  // Filters change the list only; the address keeps the open conversation and gains the filters.
  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail.target;
    if (target && target.id === "conversation-list" || (event.detail.elt && event.detail.elt.id === "inbox-filters")) {
      const query = listQuery();
      history.replaceState(history.state, "", location.pathname + (query ? "?" + query : ""));
      markCurrent();
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.target && event.detail.target.id === "pane") paneReady();
    else if (document.getElementById("pane") && event.detail.elt === document.body) paneReady();
  });
  // A link inside the pane or the list names the list's filters; keep them in the pushed address.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.target && event.detail.target.id === "pane") event.detail.headers["HX-Target"] = "pane";
  });
  document.addEventListener("inbox:toast", function (event) { if (window.toast) window.toast(event.detail.value, "info"); });

  function go(step) {
    const rows = $$("#conversation-rows .conversation-row");
    if (!rows.length) return;
    const index = rows.findIndex(function (row) { return Number(row.dataset.conversation) === currentId(); });
    const next = rows[Math.min(rows.length - 1, Math.max(0, index < 0 ? 0 : index + step))];
    const link = next && $("a", next);
    if (link && Number(next.dataset.conversation) !== currentId()) {
      keepFilters(link);
      link.click();
      next.scrollIntoView({block: "nearest"});
    }
  }

  // A row pushed live over the socket was rendered without this agent's filters: its link gains them, so
  // the address (and back/forward) keep the list as the agent filtered it.
  function keepFilters(link) {
    const query = listQuery();
    const href = link.getAttribute("href") || "";
    if (!query || href.includes("?")) return;
    link.setAttribute("href", href + "?" + query);
    link.setAttribute("hx-get", href + "?" + query);
    window.htmx.process(link);
  }
  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("#conversation-rows .conversation-row a");
    if (link) keepFilters(link);
  }, true); // before htmx handles the click

  // --- the conversation pane -----------------------------------------------------------------------
  function scrollToEnd() {
    const timeline = document.getElementById("timeline");
    if (timeline) timeline.scrollTop = timeline.scrollHeight;
  }

  function paneReady() {
    markCurrent();
    scrollToEnd();
    countdown();
    const p = pane();
    if (p && inbox()) inbox().classList.toggle("has-conversation", !!p.dataset.paneConversation);
    if (inbox()) inbox().classList.remove("show-contact");
  }

  // One message (new, or changed: a tick, media stored, a reaction) or one line about the conversation
  // (assigned, lead moved...) fetched and put in place.
  function messageRefresh(payload, urlKey) {
    const p = pane();
    if (!p || Number(p.dataset.paneConversation) !== payload.conversation_id) return;
    fetch(p.dataset[urlKey || "messageUrl"] + payload.id + "/", {headers: {"HX-Request": "true"}, credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        if (!html) return;
        const holder = document.createElement("div");
        holder.innerHTML = html.trim();
        const fresh = holder.firstElementChild;
        const timeline = document.getElementById("timeline");
        if (!fresh || !timeline) return;
        const existing = document.getElementById(fresh.id);
        if (existing) { existing.replaceWith(fresh); return; }
        const empty = document.getElementById("timeline-empty");
        if (empty) empty.remove();
        const nearEnd = timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 120;
        timeline.appendChild(fresh);
        if (window.htmx) window.htmx.process(fresh);
        if (nearEnd || payload.direction !== "in") scrollToEnd();
      });
  }

  document.addEventListener("live:message.created", function (event) {
    messageRefresh(event.detail);
    if (event.detail.direction !== "note") refreshList();
  });
  document.addEventListener("live:message.status", function (event) { messageRefresh(event.detail); });
  document.addEventListener("live:conversation.event", function (event) { messageRefresh(event.detail, "eventUrl"); });
  document.addEventListener("live:conversation.updated", function (event) {
    refreshList();
    const p = pane();
    // someone else assigned or resolved the open conversation: its header and timeline follow
    if (p && Number(p.dataset.paneConversation) === event.detail.conversation_id && !document.activeElement.closest("#composer")) {
      window.htmx.ajax("GET", location.pathname + location.search, {target: "#pane", swap: "outerHTML", headers: {"HX-Target": "pane"}});
    }
  });
  document.addEventListener("live:hello", function () {
    // (re)connected: what may have changed while the socket was down is fetched again
    const id = currentId();
    if (id === null) return;
    $$('#timeline .msg[data-status="queued"], #timeline .msg[data-status="sending"], #timeline .msg[data-status="sent"], #timeline .msg[data-status="delivered"]').forEach(function (row) {
      messageRefresh({conversation_id: id, id: Number(row.id.replace("msg-", ""))});
    });
    refreshList();
  });

  // The 24-hour window: how long it stays open.
  let countdownTimer = null;
  function countdown() {
    clearInterval(countdownTimer);
    const box = $("[data-window-closes]");
    if (!box || !inbox()) return;
    const closes = new Date(box.dataset.windowCloses).getTime();
    function tick() {
      const left = closes - Date.now();
      if (left <= 0) { box.textContent = inbox().dataset.closedText; box.classList.add("closed"); clearInterval(countdownTimer); return; }
      const hours = Math.floor(left / 3600000);
      const minutes = Math.floor((left % 3600000) / 60000);
      box.textContent = format(inbox().dataset.closesText, {time: hours + "h " + String(minutes).padStart(2, "0") + "min"});
      box.classList.toggle("soon", left < 3600000);
    }
    tick();
    countdownTimer = setInterval(tick, 30000);
  }

  // --- presence: "someone else is replying" ----------------------------------------------------------
  const lastTyping = {};  // per conversation: at most one "typing" every 2.5 s
  function typingSend(note) {
    const id = currentId();
    const socket = window.liveSocket;
    if (id === null || !socket || socket.readyState !== 1 || Date.now() - (lastTyping[id] || 0) < 2500) return;
    lastTyping[id] = Date.now();
    socket.send(JSON.stringify({event: "typing", payload: {conversation_id: id, note: !!note}}));
  }
  const typingTimers = {};
  document.addEventListener("live:conversation.typing", function (event) {
    const data = event.detail;
    if (!inbox() || String(data.user_id) === inbox().dataset.userId) return;
    const row = $('#conversation-rows [data-conversation="' + data.conversation_id + '"] .typing-dot');
    if (row) row.hidden = false;
    const label = document.getElementById("typing");
    if (label && currentId() === data.conversation_id) label.textContent = format(inbox().dataset.typingText, {name: data.name});
    clearTimeout(typingTimers[data.conversation_id]);
    typingTimers[data.conversation_id] = setTimeout(function () {
      if (row) row.hidden = true;
      const still = document.getElementById("typing");
      if (still && currentId() === data.conversation_id) still.textContent = "";
    }, 5000);
  });

  // --- the composer ------------------------------------------------------------------------------------
  function composerMode(mode) {
    const box = document.getElementById("composer");
    if (!box) return null;
    box.dataset.mode = mode;
    $$("[data-composer-tab]", box).forEach(function (tab) { tab.setAttribute("aria-selected", String(tab.dataset.composerTab === mode)); });
    const field = mode === "note" ? $("[data-note-text]", box) : $("[data-composer-text]", box);
    if (field) field.focus();
    return field;
  }

  function canned() {
    const data = document.getElementById("canned-data");
    return data ? JSON.parse(data.textContent) : [];
  }

  function suggest(textarea) {
    const list = $("[data-suggestions]");
    if (!list) return;
    const match = textarea.value.match(/^\/(\S*)$/);
    const items = match ? canned().filter(function (c) { return c.shortcut.startsWith(match[1]); }).slice(0, 6) : [];
    list.replaceChildren();
    items.forEach(function (item, index) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.canned = String(index);
      if (index === 0) button.classList.add("active");
      const strong = document.createElement("strong");
      strong.textContent = "/" + item.shortcut;
      const title = document.createElement("span");
      title.textContent = " " + item.title;
      button.append(strong, title);
      button.addEventListener("click", function () { textarea.value = item.body; list.hidden = true; textarea.focus(); });
      li.appendChild(button);
      list.appendChild(li);
    });
    list.hidden = items.length === 0;
  }

  function attach(files) {
    const input = $("[data-attachment]");
    if (!input || !files || !files.length) return;
    const transfer = new DataTransfer();
    transfer.items.add(files[0]);
    input.files = transfer.files;
    const name = $("[data-attachment-name]");
    if (name) name.textContent = files[0].name;
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches("[data-composer-text]")) { suggest(event.target); typingSend(false); }
    if (event.target.matches("[data-note-text]")) typingSend(true);
  });
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-attachment]")) {
      const name = $("[data-attachment-name]");
      if (name) name.textContent = event.target.files.length ? event.target.files[0].name : "";
    }
  });
  document.addEventListener("click", function (event) {
    const tab = event.target.closest("[data-composer-tab]");
    if (tab) composerMode(tab.dataset.composerTab);
    if (event.target.closest("[data-emoji-toggle]")) {
      const palette = $("[data-emoji-palette]");
      if (palette) palette.hidden = !palette.hidden;
    }
    const emoji = event.target.closest("[data-emoji]");
    if (emoji) {
      const text = $("[data-composer-text]");
      if (text) {
        const at = text.selectionStart == null ? text.value.length : text.selectionStart;
        text.value = text.value.slice(0, at) + emoji.dataset.emoji + text.value.slice(text.selectionEnd || at);
        text.focus();
        text.selectionStart = text.selectionEnd = at + emoji.dataset.emoji.length;
      }
    }
    if (event.target.closest("[data-toggle-contact]") && inbox()) inbox().classList.toggle("show-contact");
    if (event.target.closest("[data-shortcuts-open]")) openSheet();
  });
  document.addEventListener("paste", function (event) {
    if (!event.target.closest || !event.target.closest("#composer")) return;
    const files = event.clipboardData && event.clipboardData.files;
    if (files && files.length) { event.preventDefault(); attach(files); }
  });
  document.addEventListener("dragover", function (event) {
    const zone = event.target.closest && event.target.closest("[data-drop-zone]");
    if (zone) { event.preventDefault(); zone.classList.add("dropping"); }
  });
  document.addEventListener("dragleave", function (event) {
    const zone = event.target.closest && event.target.closest("[data-drop-zone]");
    if (zone) zone.classList.remove("dropping");
  });
  document.addEventListener("drop", function (event) {
    const zone = event.target.closest && event.target.closest("[data-drop-zone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("dropping");
    attach(event.dataTransfer.files);
  });

  // --- keyboard ------------------------------------------------------------------------------------------
  function openSheet() {
    const sheet = document.getElementById("shortcuts");
    if (sheet && !sheet.open) sheet.showModal();
  }
  function press(shortcut) {
    const button = $('#pane [data-shortcut="' + shortcut + '"]');
    if (button) button.click();
  }
  document.addEventListener("keydown", function (event) {
    if (!inbox()) return;
    const typing = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
    if (typing) {
      if (event.key === "Escape") {
        const list = $("[data-suggestions]");
        if (list && !list.hidden) { list.hidden = true; return; }
        event.target.blur();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.form) {
        event.preventDefault();
        event.target.form.requestSubmit();
      } else if (event.key === "Tab" && event.target.matches("[data-composer-text]")) {
        const first = $("[data-suggestions]:not([hidden]) button");
        if (first) { event.preventDefault(); first.click(); }
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const keys = {
      j: function () { go(1); }, ArrowDown: function () { go(1); },
      k: function () { go(-1); }, ArrowUp: function () { go(-1); },
      r: function () { composerMode("reply"); },
      n: function () { composerMode("note"); },
      e: function () { press("resolve"); },
      a: function () { press("assign"); },
      s: function () { const search = document.getElementById("inbox-search"); if (search) search.focus(); },
      "?": openSheet,
    };
    const action = keys[event.key];
    if (action) { event.preventDefault(); action(); }
  });

  document.addEventListener("htmx:historyRestore", paneReady);
  document.addEventListener("DOMContentLoaded", paneReady);
})();
