// Creditline's page script: pause balance polling while the tab is hidden,
// and refresh at once when it becomes visible again. Kept out of hx-trigger
// filters so htmx needs no eval (a strict Content-Security-Policy works).
document.addEventListener("htmx:confirm", function (event) {
  if (document.hidden && event.target.hasAttribute("data-poll")) {
    event.preventDefault();
  }
});
document.addEventListener("visibilitychange", function () {
  if (!document.hidden && window.htmx) {
    document.querySelectorAll("[data-poll]").forEach(function (el) {
      htmx.trigger(el, "refresh");
    });
  }
});
// A live region (the low-balance alert) is re-sent with every poll; replacing it
// unchanged would make screen readers announce it again each time. Skip those swaps.
document.addEventListener("htmx:oobBeforeSwap", function (event) {
  var target = event.detail.target;
  var incoming = event.detail.fragment && event.detail.fragment.firstElementChild;
  if (target.hasAttribute("aria-live") && incoming && incoming.innerHTML === target.innerHTML) {
    event.detail.shouldSwap = false;
  }
});
