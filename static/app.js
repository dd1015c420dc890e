// Creditline's only script: pause balance polling while the tab is hidden,
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
