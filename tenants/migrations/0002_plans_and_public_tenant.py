from decimal import Decimal

from django.db import migrations

PLANS = [
    ("free", "Free", Decimal("0"), 2, 1),
    ("pro", "Pro", Decimal("199.00"), 10, 5),
    ("business", "Business", Decimal("599.00"), 50, 20),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("tenants", "Plan")
    Tenant = apps.get_model("tenants", "Tenant")
    for code, name, price, users, channels in PLANS:
        Plan.objects.update_or_create(
            code=code,
            defaults={"name": name, "price_monthly": price, "max_users": users, "max_channels": channels},
        )
    # The public schema's own row: the main domain resolves to it. Historical models do not create schemas.
    Tenant.objects.get_or_create(schema_name="public", defaults={"name": "Platform", "slug": "public"})


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
