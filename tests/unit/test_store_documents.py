"""The job's fields are declared once: the stored document, a new job's document and the
wire ``Job`` agree on every field's name, type and default."""

from __future__ import annotations

import msgspec
from msgspec import NODEFAULT

from backend.jobs import Job, JobStatus, JobSummary, utcnow
from backend.store.documents import JobDocument, new_document, to_job

# Beanie's own fields of every document; the job's id is MongoDB's ``_id``.
BEANIE_FIELDS = {"id", "revision_id"}


def _wire_fields() -> dict[str, msgspec.structs.FieldInfo]:
    return {field.name: field for field in msgspec.structs.fields(Job) if field.name != "id"}


def test_the_document_has_the_wire_jobs_fields_names_types_and_defaults() -> None:
    stored = {name: info for name, info in JobDocument.model_fields.items()
              if name not in BEANIE_FIELDS}
    wire = _wire_fields()
    assert list(stored) == list(wire)
    for name, field in wire.items():
        assert stored[name].annotation == field.type, name
        if field.default is NODEFAULT:
            assert stored[name].is_required(), name
        else:
            assert stored[name].default == field.default, name


def test_a_new_document_stores_every_field_and_reads_back_as_the_job() -> None:
    now = utcnow()
    document = new_document(now=now, job_id="a" * 24, name="echo", user_id="u1",
                            status=JobStatus.QUEUED, params={"n": 1}, run_at=now)
    assert set(document) == {"_id", *_wire_fields()}
    assert document["status"] == "queued" and type(document["status"]) is str
    assert to_job(document) == Job(id="a" * 24, name="echo", user_id="u1",
                                   status=JobStatus.QUEUED, params={"n": 1}, run_at=now,
                                   created_at=now, updated_at=now)


def test_a_summary_shows_fields_of_the_job_as_the_job_types_them() -> None:
    wire = {field.name: field.type for field in msgspec.structs.fields(Job)}
    for field in msgspec.structs.fields(JobSummary):
        assert field.name in wire, field.name
        if field.name != "id":
            assert field.type == wire[field.name], field.name
