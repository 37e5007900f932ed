(function () {
  // Follow a report job (verification, period or version report) until a worker has finished
  // it, then reload: the page shows the result and its download link.
  const box = document.getElementById("job");
  if (!box || box.dataset.status === "done" || box.dataset.status === "failed") { return; }
  const url = box.dataset.statusUrl;
  function show(id, text) { const el = document.getElementById(id); if (el) { el.textContent = text; } }
  function poll() {
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (job) {
      if (job.finished) { window.location.reload(); return; }
      show("job-progress", job.progress);
      show("job-status", job.status.charAt(0).toUpperCase() + job.status.slice(1));
      document.getElementById("job-status").className = "badge job-" + job.status;
      setTimeout(poll, 1000);
    }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();
