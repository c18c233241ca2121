"""``python -m bench.push_worker JOB_ID``: run one job in this process through
``django_jobprogress.execution.run_job``, as a django-q2 worker would, then
wait until its last snapshot has been pushed. Exits 1 if the job did not complete."""

import sys

import django


def main(job_id: str) -> int:
    django.setup()
    from django_jobprogress.adapters import get_push_adapter
    from django_jobprogress.execution import run_job
    from django_jobprogress.models import JobRecord

    run_job(job_id)
    get_push_adapter().flush(5.0)
    record = JobRecord.objects.filter(pk=job_id).first()
    if record is None or record.status != JobRecord.Status.COMPLETED:
        state = "missing" if record is None else f"{record.status}: {record.error}"
        print(f"job {job_id} did not complete ({state})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
