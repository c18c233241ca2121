
from django.db import migrations, models
from django.db.models import Count, Q, Sum
from django.utils import timezone

OUTCOMES = ("completed", "failed", "cancelled")


def count_from_now_on(apps, schema_editor):
    """The ends counted so far (``JobEnd`` rows) go into their minutes, and the new
    count starts now; on a new install it starts with the first end."""
    db = schema_editor.connection.alias
    JobEnd = apps.get_model("django_jobprogress", "JobEnd")
    JobMinute = apps.get_model("django_jobprogress", "JobMinute")
    EndsCounted = apps.get_model("django_jobprogress", "EndsCounted")
    ends = JobEnd.objects.using(db)
    counted = ends.exists() or JobMinute.objects.using(db).exists()
    per_key = ends.values("minute", "task_name", "bucket").annotate(
        seconds_sum=Sum("seconds"),
        **{f"{o}_count": Count("pk", filter=Q(outcome=o)) for o in OUTCOMES},
    )
    for row in per_key.order_by():
        key = {"minute": row["minute"], "task_name": row["task_name"], "bucket": row["bucket"]}
        minute, _ = JobMinute.objects.using(db).get_or_create(**key, shard=0)
        for outcome in OUTCOMES:
            setattr(minute, outcome, getattr(minute, outcome) + row[f"{outcome}_count"])
        minute.seconds += row["seconds_sum"] or 0.0
        minute.save(using=db)
    if counted:
        EndsCounted.objects.using(db).create(pk=1, before=timezone.now())


class Migration(migrations.Migration):

    dependencies = [
        ('django_jobprogress', '0010_partial_job_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='EndsCounted',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ('before', models.DateTimeField(null=True, verbose_name='counted before')),
                ('mark_at', models.DateTimeField(null=True)),
                ('mark_xid', models.BigIntegerField(null=True)),
            ],
            options={
                'verbose_name': 'job ends counted',
                'verbose_name_plural': 'job ends counted',
            },
        ),
        migrations.RunPython(count_from_now_on, migrations.RunPython.noop),
        migrations.DeleteModel(
            name='JobEnd',
        ),
    ]
