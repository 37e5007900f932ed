(function () {
  // Follow a batch job: rows done, rows per second and the time left, until it has its result.
  const box = document.getElementById("progress");
  if (!box) { return; }
  const url = box.dataset.statusUrl;
  function show(id, text) { const el = document.getElementById(id); if (el) { el.textContent = text; } }
  function n(value) { return Number(value).toLocaleString("en-US", {maximumFractionDigits: 0}); }
  function poll() {
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (job) {
      document.getElementById("job-progress").value = job.percent;
      show("job-percent", job.percent + "%");
      show("job-rows", n(job.rows_done));
      show("job-rate", n(job.rows_per_second));
      show("job-failed", n(job.rows_failed));
      show("job-chunks", n(job.chunks_done));
      show("facts-chunks", n(job.chunks_done));
      show("job-status", job.status.charAt(0).toUpperCase() + job.status.slice(1));
      document.getElementById("job-status").className = "badge batch-" + job.status;
      show("job-eta", job.seconds_left !== null ? "about " + Math.round(job.seconds_left) + " s left"
        : (job.result_url ? "finished" : "waiting for a worker"));
      if (job.reason) { show("job-reason", job.reason); document.getElementById("job-reason").hidden = false; }
      if (job.result_url) {
        show("result-sha", job.result_sha256);
        document.getElementById("job-result").hidden = false;
        return;
      }
      setTimeout(poll, 1000);
    }).catch(function () { setTimeout(poll, 3000); });
  }
  if (document.getElementById("job-result").hidden) { setTimeout(poll, 500); }
})();
