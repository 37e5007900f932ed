(function () {
  // Follow the checks live; reload once the version leaves "checking" to show the results.
  const url = document.currentScript.dataset.statusUrl;
  function poll() {
    fetch(url, {credentials: "same-origin"}).then(r => r.json()).then(function (data) {
      data.checks.forEach(function (c) {
        const badge = document.querySelector("#check-" + c.kind + " [data-check-status]");
        if (badge && badge.dataset.checkStatus !== c.status) {
          badge.dataset.checkStatus = c.status;
          badge.textContent = c.status.charAt(0).toUpperCase() + c.status.slice(1);
          badge.className = "badge check-" + c.status;
        }
      });
      if (data.status !== "checking") { window.location.reload(); return; }
      setTimeout(poll, 2000);
    }).catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1500);
})();
