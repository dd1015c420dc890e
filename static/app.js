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
// The poll re-sends the low-balance alert (a live region) and, on the
// dashboard, the usage totals, chart and recent usage. Replacing a part that
// has not changed would make screen readers announce the alert again and
// redraw the chart under the pointer, so unchanged parts are left alone: the
// last HTML the server sent for each id is remembered and compared.
var served = {};
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[aria-live][id], [data-live][id]").forEach(function (el) {
    served[el.id] = el.innerHTML;
  });
});
document.addEventListener("htmx:oobBeforeSwap", function (event) {
  var incoming = event.detail.fragment && event.detail.fragment.firstElementChild;
  if (!incoming || !incoming.id) {
    return;
  }
  if (served[incoming.id] === incoming.innerHTML) {
    event.detail.shouldSwap = false;
  } else {
    served[incoming.id] = incoming.innerHTML;
  }
});
