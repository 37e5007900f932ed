"""Readable evidence: the checks summary (failures first, metric names in words) and the
monitoring charts' axes, legend and intervals."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from core.metric_names import metric_label, with_labels
from monitoring.charts import metric_multiples, psi_multiples
from tests.governance.conftest import submit


def test_metric_identifiers_are_shown_as_names():
    assert metric_label("balanced_accuracy") == "Balanced accuracy"
    assert metric_label("roc_auc") == "ROC AUC"
    assert metric_label("some_new_metric") == "Some new metric"
    text = with_labels("accuracy 0.61 < 0.7; demographic_parity_difference 0.21 > 0.1")
    assert text == "Accuracy 0.61 < 0.7; Demographic parity difference 0.21 > 0.1"


def windows(n: int = 3) -> list[SimpleNamespace]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        SimpleNamespace(
            start=start + timedelta(days=i),
            drift={"age": {"psi": 0.05 * i}},
            prediction_drift={"psi": 0.3},
            performance={"metrics": {"roc_auc": 0.7 + 0.01 * i}, "intervals": {"roc_auc": [0.62, 0.79]}},
        )
        for i in range(n)
    ]


def test_psi_charts_have_labelled_axes_a_legend_and_say_prediction():
    age, prediction = psi_multiples(windows(), warn=0.1, alert=0.25)
    assert ">PSI</text>" in age and ">window start</text>" in age  # both axes
    assert ">warn 0.1</text>" in age and ">alert 0.25</text>" in age  # the dashed lines' legend
    assert "__prediction__" not in prediction and ">PSI prediction</text>" in prediction
    assert all(int(size) >= 10 for size in re.findall(r'font-size="(\d+)"', age))


def test_live_metric_charts_draw_each_windows_interval():
    (chart,) = metric_multiples(windows(), {"roc_auc": 0.65})
    assert ">live ROC AUC</text>" in chart and ">95% interval</text>" in chart
    assert chart.count("<title>95% interval 0.6200 to 0.7900</title>") == 3
    assert ">policy minimum 0.65</text>" in chart


def test_the_checks_summary_lists_failures_first_in_words(
    client, risk_officer, draft_version, data_scientist, django_capture_on_commit_callbacks, eager_tasks
):
    from governance.policies import active_policy, update_policy

    update_policy(active_policy().pk, actor=None, justification="Strict for this test.", changes={"min_accuracy": 0.99})
    version = submit(draft_version, data_scientist, django_capture_on_commit_callbacks)
    client.force_login(risk_officer)
    page = client.get(f"/admin/governance/versionreview/{version.pk}/change/").content.decode()
    summary = page[page.index('id="checks-summary"') : page.index("</table>", page.index('id="checks-summary"'))]
    statuses = re.findall(r'class="summary-(\w+)"', summary)
    assert statuses[0] == "failed" and statuses == sorted(statuses, key=lambda s: s != "failed")
    assert "Accuracy" in summary and "min_accuracy" not in summary
    assert '<td title="balanced_accuracy">Balanced accuracy</td>' in page
