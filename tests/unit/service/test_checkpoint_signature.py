"""A checkpoint record's MAC: a record stored before records named their modules still
verifies, and one that names them cannot lose or gain them unnoticed."""

from __future__ import annotations

import pytest

from ai_data_agent.errors import CheckpointFailed
from ai_data_agent.service.checkpoint_records import CheckpointRecord, Signer
from ai_data_agent.session_models import SessionRequest

FIELDS = {
    "session_id": "s",
    "tenant": "admin",
    "seq": 1,
    "created_at": 0.0,
    "execution_count": 2,
    "generation": 1,
    "namespace_digest": "0" * 64,
    "namespace_size": 10,
    "request": SessionRequest().model_dump(mode="json"),
}


def test_records_with_and_without_modules_verify_and_resist_changes() -> None:
    signer = Signer(lambda: b"k" * 32)
    old = CheckpointRecord.model_validate(FIELDS)  # stored before the field existed
    signer.check(
        CheckpointRecord.model_validate_json(signer.sign(old).model_dump_json(exclude={"modules"}))
    )
    new = signer.sign(CheckpointRecord.model_validate({**FIELDS, "modules": ["pandas"]}))
    signer.check(CheckpointRecord.model_validate_json(new.model_dump_json()))
    for changed in (
        new.model_copy(update={"modules": ["os"]}),
        new.model_dump_json(exclude={"modules"}),
    ):
        record = (
            changed
            if isinstance(changed, CheckpointRecord)
            else CheckpointRecord.model_validate_json(changed)
        )
        with pytest.raises(CheckpointFailed):
            signer.check(record)
