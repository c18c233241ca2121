
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_jobprogress', '0011_ends_counted'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='batch',
            index=models.Index(condition=models.Q(('finished_at__isnull', False), models.Q(models.Q(models.Q(('on_complete', ''), _negated=True), ('on_complete_enqueued_at__isnull', True)), models.Q(models.Q(('on_success', ''), _negated=True), ('on_success_enqueued_at__isnull', True), ('status', 'completed')), models.Q(models.Q(('on_failure', ''), _negated=True), ('failed__gt', 0), ('on_failure_enqueued_at__isnull', True)), _connector='OR')), fields=['finished_at'], name='jobprogress_batch_lost'),
        ),
    ]
