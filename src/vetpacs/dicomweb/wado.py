"""WADO-RS (PS3.18 10.4): retrieve instances, metadata, frames, bulk data, rendered, thumbnails."""

from django.http import HttpRequest, HttpResponse

from vetpacs.dicomweb.responses import error_response


def _todo(*args, **kwargs) -> HttpResponse:
    return error_response(501, "not implemented yet")


retrieve_study = retrieve_series = retrieve_instance = _todo
retrieve_study_metadata = retrieve_series_metadata = retrieve_instance_metadata = _todo
retrieve_instance_frames = retrieve_bulkdata = _todo
retrieve_study_rendered = retrieve_series_rendered = retrieve_instance_rendered = _todo
retrieve_frames_rendered = _todo
retrieve_study_thumbnail = retrieve_series_thumbnail = retrieve_instance_thumbnail = _todo
retrieve_study_zip = _todo

__all__ = ["HttpRequest"]
