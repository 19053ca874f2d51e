// "Connect WhatsApp": Meta's Embedded Signup (v4). FB.login opens Meta's window; that window posts a
// session-info message (type WA_EMBEDDED_SIGNUP: the event and the WABA / phone number ids) and FB.login's
// callback gets the code. Both go to our endpoint, which exchanges the code server side and checks every id
// with Meta: nothing here is trusted, and messages from any origin but Meta's are ignored.
(function () {
  const form = document.getElementById("wa-signup");
  if (!form) return;
  const button = document.getElementById("wa-signup-start");
  const status = document.getElementById("wa-signup-status");
  const cfg = form.dataset;
  const origins = (cfg.origins || "").split(" ").filter(Boolean);
  let session = null; // the last WA_EMBEDDED_SIGNUP message of this attempt
  let code = null; // FB.login's code
  let loginDone = false; // FB.login's callback has run
  let sent = false;

  function say(text, level) {
    status.textContent = text;
    status.className = level === "error" ? "errorlist" : "muted";
    if (level === "error" && window.toast) window.toast(text, "error");
  }

  window.addEventListener("message", function (event) {
    if (origins.indexOf(event.origin) === -1) return; // only Meta's window (the emulator's, locally)
    let data = event.data;
    if (typeof data === "string") {
      try { data = JSON.parse(data); } catch (e) { return; } // the SDK's own messages are not JSON
    }
    if (!data || data.type !== "WA_EMBEDDED_SIGNUP") return;
    session = data;
    settle();
  });

  function settle() {
    if (sent || !session) return;
    const event = String(session.event || "");
    const info = session.data || {};
    if (event === "CANCEL") {
      say(cfg.textCancelled, "error");
      reset();
      return;
    }
    if (event === "ERROR") {
      say(cfg.textError + " " + String(info.error_message || ""), "error");
      reset();
      return;
    }
    if (event.indexOf("FINISH") !== 0) return;
    if (!code) {
      if (loginDone) { say(cfg.textCancelled, "error"); reset(); }
      return; // the code comes with FB.login's callback, just after
    }
    sent = true;
    const body = new FormData(form);
    body.set("code", code);
    body.set("event", event);
    body.set("waba_id", String(info.waba_id || ""));
    body.set("phone_number_id", String(info.phone_number_id || ""));
    body.set("business_id", String(info.business_id || ""));
    say(cfg.textWorking, "info");
    fetch(form.action, { method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json().then(function (answer) { return [response.ok, answer]; }); })
      .then(function (result) {
        if (result[0] && result[1].redirect) { location.href = result[1].redirect; return; }
        say(result[1].error || cfg.textFailed, "error");
        reset();
      })
      .catch(function () { say(cfg.textFailed, "error"); reset(); });
  }

  function reset() {
    session = null; code = null; loginDone = false; sent = false;
    button.disabled = false;
  }

  function onLogin(response) {
    loginDone = true;
    code = response && response.authResponse ? response.authResponse.code || null : null;
    if (!code && !session) { say(cfg.textCancelled, "error"); reset(); return; }
    settle();
  }

  window.fbAsyncInit = function () {
    window.FB.init({ appId: cfg.appId, autoLogAppEvents: true, xfbml: true, version: cfg.graphVersion });
    button.disabled = false;
  };
  if (window.FB) window.fbAsyncInit(); // the SDK was faster than this file

  button.addEventListener("click", function () {
    if (!window.FB) { say(cfg.textSdk, "error"); return; }
    reset();
    button.disabled = true;
    say("", "info");
    const extras = { setup: {}, sessionInfoVersion: "3", version: cfg.esVersion };
    if (cfg.featureType) extras.featureType = cfg.featureType;
    window.FB.login(onLogin, {
      config_id: cfg.configId,
      response_type: "code", // a code our server exchanges; never a token in the browser
      override_default_response_type: true,
      extras: extras,
    });
  });
})();
