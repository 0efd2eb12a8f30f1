from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction
from tqdm import tqdm

from crm.fields import EncryptedTextField

BATCH_SIZE = 500


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted field under the newest key in ENCRYPTION_KEYS. Run it "
        "after putting a new key first; then the old key can be dropped from the list."
    )

    def handle(self, *args, **options) -> None:
        total = 0
        for model in apps.get_models():
            fields = [f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            total += self._rotate(model, fields)
        self.stdout.write(f"Re-encrypted {total} row(s) under the newest key.")

    def _rotate(self, model, fields: list[str]) -> int:
        # Keyset batches by primary key: memory stays flat and each batch is one UPDATE.
        manager = model._base_manager
        last_pk = None
        done = 0
        with tqdm(desc=model._meta.label, unit="row", disable=None) as progress:
            while True:
                batch = manager.order_by("pk")
                if last_pk is not None:
                    batch = batch.filter(pk__gt=last_pk)
                rows = list(batch.only("pk", *fields)[:BATCH_SIZE])
                if not rows:
                    return done
                with transaction.atomic():
                    # Reading decrypted with any key, writing encrypts with the newest.
                    manager.bulk_update(rows, fields)
                last_pk = rows[-1].pk
                done += len(rows)
                progress.update(len(rows))
