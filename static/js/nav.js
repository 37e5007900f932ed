(function () {
  // Mark the current page in the top navigation (aria-current): the link whose path is the
  // longest prefix of this page's ("/" only on the home page itself).
  const here = window.location.pathname;
  let best = null;
  let length = -1;
  document.querySelectorAll("header.top nav a[href]").forEach(function (link) {
    const path = new URL(link.href, window.location.href).pathname;
    const matches = path === "/" ? here === "/" : here.startsWith(path);
    if (matches && path.length > length) { best = link; length = path.length; }
  });
  if (best) { best.setAttribute("aria-current", "page"); }
})();
