"""The README's "Serving your own model", as a user follows it: its Keras lines run as written, and
the model they export is served, with its class names, through the calls the README shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.support.waiting import wait_for

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_export_snippet() -> str:
    section = README.read_text().split("## Serving your own model", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readmes_keras_export_is_served_through_the_calls_it_shows(tmp_path, start_worker, make_client):
    exported = subprocess.run([sys.executable, "-c", readme_export_snippet()], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-3000:]
    repository = tmp_path / "models"
    assert [entry.name for entry in (repository / "iris").iterdir()] == ["1"], "only the finished version is left"
    (repository / "iris" / "config.json").write_text(json.dumps({"labels": ["setosa", "versicolor", "virginica"]}))
    start_worker(repository)
    client = make_client(model_repository=str(repository))
    wait_for(lambda: client.get("/models/iris").status_code == 200, 10, "the model in the catalog")

    described = client.get("/models/iris").get_json()
    assert described["versions"] == [1] and described["labels"] == ["setosa", "versicolor", "virginica"]
    assert [(tensor["name"], tensor["dtype"], tensor["shape"]) for tensor in described["inputs"]] == [
        ("features", "float32", [-1, 4])]

    row = [5.1, 3.5, 1.4, 0.2]
    predicted = client.post("/v1/models/iris:predict", data=json.dumps({"instances": [row]}))
    assert predicted.status_code == 200, predicted.get_json()
    (scores,) = predicted.get_json()["predictions"]
    assert len(scores) == 3 and abs(sum(scores) - 1) < 1e-5

    classified = client.post("/v1/models/iris:classify", data=json.dumps({"examples": [{"features": row}]}))
    assert classified.status_code == 200, classified.get_json()
    (ranked,) = classified.get_json()["results"]
    names = ["setosa", "versicolor", "virginica"]
    assert [name for name, _ in ranked] == [names[index] for index in sorted(range(3), key=lambda k: -scores[k])]

    inferred = client.post("/v2/models/iris/infer", data=json.dumps(
        {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": row}]}))
    assert inferred.status_code == 200, inferred.get_json()
    (output,) = inferred.get_json()["outputs"]
    assert output["shape"] == [1, 3] and output["data"] == scores

    refused = client.post("/models/iris/recognize", data={})
    assert refused.status_code == 400 and "does not take images" in refused.get_json()["error"]
