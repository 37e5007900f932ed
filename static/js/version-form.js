// The version form: offers the evaluation data's columns as the label and sensitive features.
(function () {
  const text = document.getElementById("id_sensitive_features");
  const picker = document.getElementById("sensitive-picker");
  const list = document.getElementById("columns-list");
  const label = document.getElementById("id_label_column");
  label.setAttribute("list", "columns-list");
  const known = JSON.parse(document.getElementById("dataset-columns").textContent || "{}");
  let current = [];
  label.addEventListener("change", function () { if (current.length) show(current); });
  function show(columns) {
    current = columns;
    picker.textContent = "";
    list.textContent = "";
    picker.classList.remove("muted");
    const chosen = text.value.split(",").map(s => s.trim()).filter(Boolean);
    columns.forEach(function (c) {
      if (c === label.value.trim()) return;  // the label is never a sensitive feature
      const opt = document.createElement("option"); opt.value = c; list.appendChild(opt);
      const lab = document.createElement("label"); lab.className = "check";
      const box = document.createElement("input"); box.type = "checkbox"; box.value = c;
      box.checked = chosen.includes(c);
      box.addEventListener("change", sync);
      lab.appendChild(box); lab.appendChild(document.createTextNode(" " + c));
      picker.appendChild(lab);
    });
  }
  function sync() {
    const picked = Array.from(picker.querySelectorAll("input:checked")).map(b => b.value);
    text.value = picked.join(", ");
  }
  document.getElementById("id_evaluation_data").addEventListener("change", function (ev) {
    const f = ev.target.files[0]; if (!f) return;
    f.slice(0, 65536).text().then(function (t) {
      const header = t.replace(/^\ufeff/, "").split(/\r?\n/)[0];
      show(header.split(",").map(s => s.trim().replace(/^"|"$/g, "")).filter(Boolean));
    });
  });
  const picked = document.getElementById("id_evaluation_dataset");
  if (picked) {
    picked.addEventListener("change", function (ev) { if (known[ev.target.value]) show(known[ev.target.value]); });
  }
  // One control per dataset: the upload or the registry's list, as the radio says; the other is
  // emptied so that the server never receives both.
  function choose(which) {
    const radio = document.querySelector('input[name="' + which + '_source"]:checked');
    if (!radio) { return; }
    const upload = radio.value === "upload";
    const box = document.getElementById(which + "-choice");
    box.querySelector(".choice-upload").hidden = !upload;
    box.querySelector(".choice-registry").hidden = upload;
    if (upload) { box.querySelector("select").value = ""; } else { box.querySelector("input[type=file]").value = ""; }
  }
  document.querySelectorAll("input[data-choice]").forEach(function (radio) {
    radio.addEventListener("change", function () { choose(radio.dataset.choice); });
  });
  choose("training");
  choose("evaluation");
})();
