"""A waiting request's job handed back to its client: ``202 Accepted`` where to poll for it.

A route that waits for its answer (``/recognize``, KServe's ``infer``, TF Serving's ``:predict`` and
``:classify``) and was asked ``Prefer: respond-async, wait=N`` (``api.queue.prefer``) answers as usual if
the answer comes within N seconds; else the queue raises :class:`HandedBack` and the request is
answered here, as ``POST /jobs`` answers: ``{"job_id", "status", "model", "priority", "images",
"location"}``, the ``Location`` of the job and the ``Preference-Applied`` it honoured. The job runs
on, and its record is polled (``GET /jobs/<id>``, ``?wait=`` to wait for its end).
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, url_for

from api.queue import prefer


class HandedBack(Exception):
    def __init__(self, job_id: str, model: str, priority: str, items: int, wait_s: float) -> None:
        super().__init__(f"job {job_id} handed back after {wait_s:g} s")
        self.job_id = job_id
        self.model = model
        self.priority = priority
        self.items = items
        self.wait_s = wait_s
        #: Its status as its record had it when the wait ended.
        self.status = "queued"


def accepted(handed_back: HandedBack) -> Response:
    location = url_for("images.get_job", job_id=handed_back.job_id)
    response = jsonify({"job_id": handed_back.job_id, "status": handed_back.status, "model": handed_back.model,
                        "priority": handed_back.priority, "images": handed_back.items, "location": location})
    response.status_code = 202
    response.headers["Location"] = location
    response.headers["Preference-Applied"] = prefer.applied(handed_back.wait_s)
    return response


def register(app: Flask) -> None:
    app.register_error_handler(HandedBack, accepted)
