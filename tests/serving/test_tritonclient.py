"""An existing Open Inference Protocol client (tritonclient's HTTP client, from PyPI) reads the
metadata and gets predictions equal to the skops model's."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient

from lifecycle import demo_data

pytestmark = pytest.mark.django_db(transaction=True)

DTYPES = {"INT64": np.int64, "FP64": np.float64, "BYTES": object, "BOOL": np.bool_}


def test_tritonclient_reads_metadata_and_infers(live_server, production, client_key, german, logreg):
    url = live_server.url.removeprefix("http://")
    headers = {"Authorization": f"Bearer {client_key}"}
    client = httpclient.InferenceServerClient(url=url)
    assert client.is_server_live()
    assert client.is_model_ready("credit-risk", headers=headers)
    metadata = client.get_model_metadata("credit-risk", headers=headers)
    assert [i["name"] for i in metadata["inputs"]] == demo_data.NUMERIC + demo_data.CATEGORICAL

    frame = german[1][demo_data.NUMERIC + demo_data.CATEGORICAL].head(25)
    inputs = []
    for spec in metadata["inputs"]:
        tensor = httpclient.InferInput(spec["name"], [len(frame)], spec["datatype"])
        tensor.set_data_from_numpy(frame[spec["name"]].to_numpy().astype(DTYPES[spec["datatype"]]), binary_data=False)
        inputs.append(tensor)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=False),
        httpclient.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    result = client.infer("credit-risk", inputs, outputs=outputs, headers=headers, request_id="triton-1")

    assert result.as_numpy("predict").tolist() == logreg.predict(frame).tolist()
    assert np.allclose(result.as_numpy("predict_proba"), logreg.predict_proba(frame), atol=1e-12)
    response = result.get_response()
    assert response["id"] == "triton-1" and len(response["parameters"]["prediction_ids"].split(",")) == 25
    client.close()
