"""Background work of the archive (django.tasks; arguments are ids, handlers idempotent)."""

from django_tasks import task

from vetpacs.apps.archive import services


@task()
def compress_instance(instance_id: int) -> bool:
    """archive.compress_instance: JPEG-LS lossless re-encoding of an uncompressed instance."""
    return services.compress(instance_id)


@task()
def compress_instances(instance_ids: list[int]) -> int:
    """archive.compress_instances: the same for the instances of one ingest batch."""
    return sum(services.compress(i) for i in instance_ids)


@task()
def sweep_orphans() -> int:
    """archive.sweep_orphans: remove blobs left by interrupted writes."""
    return services.sweep_orphans()
