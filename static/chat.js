// The chat page: stream each answer in from its turn's event stream
// (data-events-url), show refusals (402: too few credits) in place, and
// refresh the balance badge when an answer ends. Event data is HTML-escaped
// text from the server. No inline script or eval: a strict CSP holds.
(function () {
  "use strict";

  function refreshBalance() {
    var badge = document.getElementById("balance-badge");
    if (badge && window.htmx) {
      htmx.trigger(badge, "refresh");
    }
  }

  function setBusy(busy) {
    var send = document.getElementById("chat-send");
    if (send) {
      send.disabled = busy;
      send.setAttribute("aria-busy", busy ? "true" : "false");
    }
  }

  function connect(answer) {
    if (answer.dataset.connected) {
      return;
    }
    answer.dataset.connected = "1";
    var text = answer.querySelector(".chat-text");
    var step = answer.querySelector(".chat-step");
    var failure = answer.querySelector(".chat-error");
    var source = new EventSource(answer.dataset.eventsUrl);
    answer.classList.add("is-streaming");
    setBusy(true);

    function done() {
      source.close();
      answer.classList.remove("is-streaming");
      answer.removeAttribute("data-events-url");
      var stop = answer.querySelector(".chat-stop");
      if (stop) {
        stop.remove();
      }
      step.hidden = true;
      setBusy(false);
      refreshBalance();
    }

    source.addEventListener("delta", function (event) {
      text.insertAdjacentHTML("beforeend", event.data);
    });
    source.addEventListener("replace", function (event) {
      text.innerHTML = event.data;
    });
    source.addEventListener("step", function (event) {
      step.innerHTML = event.data;
      step.hidden = false;
    });
    source.addEventListener("end", function (event) {
      text.innerHTML = event.data;
      done();
    });
    source.addEventListener("error", function (event) {
      // The server's own "error" event carries data; a dropped connection does
      // not, and EventSource reconnects (the server replays the turn).
      if (typeof event.data === "string") {
        failure.innerHTML = event.data;
        done();
      }
    });
  }

  function connectAll(root) {
    var scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("[data-events-url]")) {
      connect(scope);
    }
    scope.querySelectorAll("[data-events-url]").forEach(connect);
  }

  document.addEventListener("DOMContentLoaded", function () {
    connectAll(document);
    if (window.htmx) {
      htmx.onLoad(connectAll);
    }
  });

  // A refused message (400 / 402 / 404 / 422 / 429) answers a fragment saying
  // why: show it in the notice above the form instead of dropping it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!form || form.id !== "chat-form") {
      return;
    }
    var status = event.detail.xhr.status;
    if (status >= 400 && status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      event.detail.target = document.getElementById("chat-notice");
      event.detail.swapOverride = "innerHTML";
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form && form.id === "chat-form" && event.detail.successful) {
      var box = document.getElementById("chat-query");
      box.value = "";
      box.focus();
    }
  });
})();
