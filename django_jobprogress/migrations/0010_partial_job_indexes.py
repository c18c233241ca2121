"""The batch-members index holds only batch members: a job enqueued outside a batch
(and each of its later non-HOT updates) no longer inserts an entry there. Every
query that reads it filters on ``batch_id =`` / ``IN``, which implies the condition
on PostgreSQL and SQLite alike."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_jobprogress", "0009_jobend"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="jobrecord",
            name="jobprogress_batch_members",
        ),
        migrations.AddIndex(
            model_name="jobrecord",
            index=models.Index(
                condition=models.Q(("batch__isnull", False)),
                fields=["batch", "status"],
                name="jobprogress_batch_members",
            ),
        ),
    ]
