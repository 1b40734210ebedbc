// Live lists: when the server says a request changed, fetch this page again and swap in its
// list. The fetched page is the server's own escaped HTML; nothing else is inserted.
(function () {
  var list = document.getElementById("live");
  if (!list || !window.EventSource) return;
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.pathname + location.search, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) list.replaceChildren.apply(list, Array.prototype.slice.call(fresh.childNodes).map(function (n) { return document.importNode(n, true); }));
        list.setAttribute("data-version", String(Number(list.getAttribute("data-version") || "0") + 1));
      })
      .finally(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var events = new EventSource("/portal/events");
  events.addEventListener("open", function () { list.setAttribute("data-live", "open"); });
  events.addEventListener("change", refresh);
})();
