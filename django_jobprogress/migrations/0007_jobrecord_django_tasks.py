# The fields django.tasks' TaskResult reads: the exception class of a failure
# (TaskError.exception_class_path) and the worker of each attempt (worker_ids).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_jobprogress', '0006_admin_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='jobrecord',
            name='exception_class_path',
            field=models.CharField(blank=True, max_length=255, verbose_name='exception class'),
        ),
        migrations.AddField(
            model_name='jobrecord',
            name='worker_ids',
            field=models.JSONField(blank=True, default=list, verbose_name='workers'),
        ),
    ]
