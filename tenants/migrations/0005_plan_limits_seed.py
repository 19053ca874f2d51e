from django.db import migrations

# Limits of the seeded plans (None: unlimited). The superadmin edits them in the Django admin.
LIMITS = {
    "free": {
        "max_users": 2,
        "max_channels": 1,
        "max_contacts": 1000,
        "messages_whatsapp_cloud": 1000,
        "messages_whatsapp_web": 1000,
        "messages_sms": 200,
        "ai_tokens": 200_000,
        "voice_minutes": 0,
        "feature_voice": False,
        "feature_api": False,
        "feature_webhooks": False,
        "is_default": True,
    },
    "pro": {
        "max_users": 10,
        "max_channels": 5,
        "max_contacts": 50_000,
        "messages_whatsapp_cloud": 50_000,
        "messages_whatsapp_web": 20_000,
        "messages_sms": 5_000,
        "ai_tokens": 5_000_000,
        "voice_minutes": 500,
    },
}


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    Plan = apps.get_model("tenants", "Plan")
    for code, values in LIMITS.items():
        Plan.objects.filter(code=code).update(**values)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_plan_limits_and_usage")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
