"""Benchmark: contact import. A 100,000-row CSV with 5% bad rows and 5% duplicate phones, imported by the
same code the worker runs (crm.imports.import_run), into a tenant of a benchmark database of its own.
Target: under 60 s on the 2-core machine.

    make bench-contact_import
    python bench/contact_import.py --rows 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from _support import bench_env, bench_tenant, database_ensure, free_port

TARGET_S = 60.0


def make_csv(rows: int) -> bytes:
    rng = random.Random(7)
    lines = ["Nome;Telefone;E-mail;Cidade"]
    phones: list[str] = []
    for i in range(rows):
        kind = rng.random()
        if kind < 0.05:
            phone = rng.choice(["abc", "123", "", "(11) 1234"])  # bad
        elif kind < 0.10 and phones:
            phone = rng.choice(phones)  # duplicate of an earlier row
        else:
            number = 900000000 + i
            phone = rng.choice([f"(11) {str(number)[:5]}-{str(number)[5:]}", f"+55 11 {number}", f"011{number}"])
            phones.append(phone)
        lines.append(f"Cliente {i};{phone};cliente{i}@example.com;Cidade {i % 50}")
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    env = bench_env("import", free_port())
    database_ensure(env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.db import connection

    from crm.imports import import_configure, import_run, import_start
    from crm.models import Contact

    tenant = bench_tenant("bench", "Bench")
    connection.set_tenant(tenant)
    Contact.objects.all().delete()
    data = make_csv(args.rows)
    started = time.perf_counter()
    upload = import_start(file=ContentFile(data), original_name="bench.csv")
    import_configure(
        upload=upload,
        mapping={"Nome": "name", "Telefone": "phone", "E-mail": "email", "Cidade": ""},
        update_existing=True,
        tag_ids=[],
    )
    done = import_run(import_id=upload.pk)
    wall = time.perf_counter() - started
    stored = Contact.objects.count()
    expected_unique = done.created_count
    result = {
        "bench": "contact_import",
        "rows": done.total_rows,
        "per_s": round(done.total_rows / wall, 1),
        "wall_s": round(wall, 2),
        "created": done.created_count,
        "updated": done.updated_count,
        "failed_rows": done.failed_count,
        "errors": 0 if done.status == "done" else 1,
        "lost": expected_unique - stored,
        "target": f"{args.rows} rows in < {TARGET_S:.0f} s",
        "target_met": done.status == "done" and wall < TARGET_S and stored == expected_unique,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
