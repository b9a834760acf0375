"""MP4 clips (ultrasound, endoscopy) -> Video Photographic Image (H.264 kept as it is) or multi-frame SC.

PS3.5 8.2.8: an H.264 stream is encapsulated as an Annex B byte stream, unchanged, under the MPEG-4
AVC/H.264 transfer syntax for its level; nothing is re-encoded (R-7.5c). A clip in another codec is
decoded frame by frame into a Multi-frame True Color Secondary Capture, which loses nothing more.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG4HP41,
    MPEG4HP422D,
    ExplicitVRLittleEndian,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    VideoPhotographicImageStorage,
)

from vetpacs.gateway.convert.attributes import ConversionError, StudyAttributes
from vetpacs.gateway.convert.common import CONVERSION_TYPE_DIGITIZED_VIDEO, new_dataset

# PS3.5 8.2.8: High Profile level 4.1 and 4.2 streams; anything beyond is decoded instead.
_H264_LEVEL_41 = 41
_H264_LEVEL_42 = 42
# A decoded fallback keeps at most this many frames (an ultrasound loop is seconds long; a long
# clip decoded to raw RGB would not fit a modest gateway's memory).
MAX_DECODED_FRAMES = 2000
# Encapsulated fragments of at most this many bytes (PS3.5 A.4: even lengths below 2^32).
FRAGMENT_BYTES = 1 << 24
# Frame Increment Pointer: Frame Time (0018,1063), PS3.3 C.7.6.6.
FRAME_TIME_TAG = 0x00181063


def _open(path: Path) -> Any:  # av's InputContainer
    import av

    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        raise ConversionError(f"{path.name}: the video cannot be read ({exc})") from exc


def convert_video(path: Path, attrs: StudyAttributes) -> Dataset:
    container = _open(path)
    try:
        if not container.streams.video:
            raise ConversionError(f"{path.name}: the file has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        level = ctx.level if ctx.level and ctx.level > 0 else None
        if ctx.name == "h264" and level is not None and level <= _H264_LEVEL_42 and ctx.pix_fmt == "yuv420p":
            return _encapsulate_h264(path, container, stream, attrs, level)
    finally:
        container.close()
    return _decode_to_multiframe(path, attrs)


def _frame_rate(stream: Any) -> Fraction:  # av's VideoStream
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise ConversionError("the video does not say its frame rate")
    return Fraction(rate)


def _cine(ds: Dataset, rate: Fraction, frames: int, duration_s: float) -> None:
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = FRAME_TIME_TAG
    ds.FrameTime = f"{1000 / float(rate):.4f}"[:16]
    ds.CineRate = round(float(rate))
    ds.RecommendedDisplayFrameRate = round(float(rate))
    ds.ActualFrameDuration = round(1000 / float(rate))
    ds.StartTrim = 1
    ds.StopTrim = frames
    ds.PreferredPlaybackSequencing = 0  # looping
    if duration_s:
        ds.EffectiveDuration = f"{duration_s:.3f}"


def _encapsulate_h264(path: Path, container: Any, stream: Any, attrs: StudyAttributes, level: int) -> Dataset:
    import av
    from av.bitstream import BitStreamFilterContext

    # MP4 stores H.264 with length prefixes (AVCC); DICOM wants the Annex B byte stream.
    bsf = BitStreamFilterContext("h264_mp4toannexb", stream)
    stream_bytes = bytearray()
    frames = 0
    try:
        for packet in container.demux(stream):
            for out in bsf.filter(packet if packet.size else None):
                stream_bytes += bytes(out)
                frames += 1
    except av.FFmpegError as exc:
        raise ConversionError(f"{path.name}: the video stream is damaged ({exc})") from exc
    if not stream_bytes or not frames:
        raise ConversionError(f"{path.name}: the video has no frames")
    rate = _frame_rate(stream)
    duration = float(stream.duration * stream.time_base) if stream.duration else frames / float(rate)
    ctx = stream.codec_context
    ts = MPEG4HP41 if level <= _H264_LEVEL_41 else MPEG4HP422D
    ds = new_dataset(sop_class_uid=VideoPhotographicImageStorage, transfer_syntax_uid=ts)
    attrs.apply(ds, default_modality="XC")
    del ds.Laterality  # PS3.3 A.32.7: a VL image's laterality is the image's, not the series'
    # PS3.3 C.8.12.1: an ORIGINAL image would need its Anatomic Region Sequence, which a clip
    # collected from a folder does not tell; the clip is recorded as derived from the device's file.
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PatientOrientation = ""
    ds.AcquisitionContextSequence = []
    # PS3.3 C.8.12.1: the VL Image module needs an Anatomic Region (type 1C, every modality but
    # SM). A folder clip does not say which region it shows, so it is recorded as the whole body.
    region = Dataset()
    region.CodeValue = "38266002"
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = "Entire body"
    ds.AnatomicRegionSequence = [region]
    ds.AcquisitionDateTime = ds.ContentDate + ds.ContentTime
    ds.BurnedInAnnotation = "NO"
    _cine(ds, rate, frames, duration)
    # PS3.5 8.2.8: the pixel description of an H.264 stream (8-bit 4:2:0).
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows = ctx.height
    ds.Columns = ctx.width
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_14496_10"
    data = bytes(stream_bytes)
    if len(data) % 2:
        data += b"\x00"
    # PS3.5 8.2.8: the Basic Offset Table is present but empty for an MPEG stream.
    ds.PixelData = encapsulate(
        [data], fragments_per_frame=max(1, -(-len(data) // FRAGMENT_BYTES)), has_bot=False
    )
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def _decode_to_multiframe(path: Path, attrs: StudyAttributes) -> Dataset:
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = _frame_rate(stream)
        frames: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                if len(frames) >= MAX_DECODED_FRAMES:
                    raise ConversionError(
                        f"{path.name}: more than {MAX_DECODED_FRAMES} frames in a clip that is not "
                        "H.264; shorten it or record it as H.264"
                    )
                frames.append(frame.to_ndarray(format="rgb24"))
        except av.FFmpegError as exc:
            raise ConversionError(f"{path.name}: the video stream is damaged ({exc})") from exc
    finally:
        container.close()
    if not frames:
        raise ConversionError(f"{path.name}: the video has no frames")
    pixels = np.stack(frames)
    ds = new_dataset(
        sop_class_uid=MultiFrameTrueColorSecondaryCaptureImageStorage,
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    attrs.apply(ds, default_modality="XC")
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ""
    ds.ConversionType = CONVERSION_TYPE_DIGITIZED_VIDEO
    ds.BurnedInAnnotation = "NO"
    _cine(ds, rate, len(frames), len(frames) / float(rate))
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(pixels.shape[1]), int(pixels.shape[2])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01"  # the clip was compressed before it reached us
    ds.PixelData = pixels.tobytes()
    return ds
