"""The cadence data migration (campaigns 0004): existing cadences, steps and enrollments survive. Each
step gets its key, an enrollment points at the step of its old position, the steps it went through
become runs linked to the messages sent under the old position keys, and a free-text reason becomes the
code `other` with its words kept. Run on a schema of its own, migrated to 0003 and then to 0004."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("campaigns", "0003_campaign_rails_media_and_retry_rounds")]
AFTER = [("campaigns", "0004_cadence_steps_identity")]


def test_existing_cadences_survive_the_step_identity_migration(committed: Any) -> None:
    schema = f"mig_cad_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema}"')
    try:
        connection.set_schema(schema)
        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)
        old = executor.loader.project_state(BEFORE).apps
        channel = old.get_model("inbox", "Channel").objects.create(
            kind="sms_twilio", name="Old SMS", phone_number="+5511900000001"
        )
        contacts = [
            old.get_model("crm", "Contact").objects.create(phone=f"+55119000001{i:02d}", name=f"Old {i}")
            for i in range(2)
        ]
        cadence = old.get_model("campaigns", "Cadence").objects.create(name="Antiga", channel=channel)
        step_model = old.get_model("campaigns", "CadenceStep")
        steps = [step_model.objects.create(cadence=cadence, position=i, body=f"passo {i}") for i in range(3)]
        enrollment_model = old.get_model("campaigns", "Enrollment")
        going = enrollment_model.objects.create(
            cadence=cadence, contact=contacts[0], status="active", next_position=1, steps_sent=1
        )
        stopped = enrollment_model.objects.create(
            cadence=cadence,
            contact=contacts[1],
            status="stopped",
            next_position=2,
            steps_sent=2,
            reason="The contact replied.",
            finished_at=timezone.now(),
        )
        conversation = old.get_model("inbox", "Conversation").objects.create(contact=contacts[0], channel=channel)
        sent = old.get_model("inbox", "Message").objects.create(
            conversation=conversation,
            channel=channel,
            direction="out",
            body="passo 0",
            idempotency_key=f"cadence:{going.pk}:0",
        )

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps
        step_model = new.get_model("campaigns", "CadenceStep")
        keys = list(step_model.objects.order_by("position").values_list("key", flat=True))
        assert len(keys) == 3 and len(set(keys)) == 3 and all(keys)
        enrollment_model = new.get_model("campaigns", "Enrollment")
        going_now = enrollment_model.objects.get(pk=going.pk)
        assert going_now.next_step_id == steps[1].pk and going_now.last_step_id == steps[0].pk
        assert going_now.exit_reason == "" and going_now.exit_detail == ""
        stopped_now = enrollment_model.objects.get(pk=stopped.pk)
        assert stopped_now.next_step_id == steps[2].pk
        assert (stopped_now.exit_reason, stopped_now.exit_detail) == ("other", "The contact replied.")
        runs = new.get_model("campaigns", "StepRun").objects
        assert set(runs.filter(enrollment_id=going.pk).values_list("step_id", "message_id", "code")) == {
            (steps[0].pk, sent.pk, "migrated")
        }
        assert set(runs.filter(enrollment_id=stopped.pk).values_list("step_id", flat=True)) == {
            steps[0].pk,
            steps[1].pk,
        }
    finally:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
