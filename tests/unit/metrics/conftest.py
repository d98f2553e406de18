"""Helpers that write real event files with TensorBoard's own writer (no TensorFlow, no torch)."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def simple_event(tag: str, step: int, value: float, wall_time: float) -> event_pb2.Event:
    """One scalar the way torch's SummaryWriter.add_scalar (rsl_rl, skrl) writes it."""
    return event_pb2.Event(
        wall_time=wall_time,
        step=step,
        summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]),
    )


def scalars_metadata() -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


def tensor_event(tag: str, step: int, wall_time: float, tensor: tensor_pb2.TensorProto,
                 with_metadata: bool = True) -> event_pb2.Event:
    """A scalar as a rank-0 tensor (tf.summary.scalar, torch's new_style=True)."""
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
    if with_metadata:
        value.metadata.CopyFrom(scalars_metadata())
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[value]))


def float_tensor(x: float) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(dtype=1, tensor_shape=tensor_shape_pb2.TensorShapeProto(), float_val=[x])


def content_tensor(x: float) -> tensor_pb2.TensorProto:
    """float32 in tensor_content, as TensorFlow's C++ writer emits it."""
    return tensor_pb2.TensorProto(dtype=1, tensor_shape=tensor_shape_pb2.TensorShapeProto(),
                                  tensor_content=struct.pack("<f", x))


def write_event_file(logdir: Path, events: Iterable[event_pb2.Event], suffix: str = "") -> Path:
    """Write ``events`` with TensorBoard's EventFileWriter (which first writes its file_version event)."""
    logdir.mkdir(parents=True, exist_ok=True)
    before = set(logdir.glob("events.out.tfevents.*"))
    writer = EventFileWriter(str(logdir), max_queue_size=1000, flush_secs=3600, filename_suffix=suffix)
    for event in events:
        writer.add_event(event)
    writer.close()
    (path,) = set(logdir.glob("events.out.tfevents.*")) - before
    time.sleep(0.01)  # the next file's file_version event gets a strictly later wall_time
    return path


def record_offsets(path: Path) -> list[tuple[int, int]]:
    """(record offset, payload length) of every record, walked independently of the code under test."""
    data = path.read_bytes()
    out = []
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, length))
        pos += 16 + length
    assert pos == len(data)
    return out


@pytest.fixture
def tb():
    """The helpers above, as a namespace."""

    class _Helpers:
        simple_event = staticmethod(simple_event)
        tensor_event = staticmethod(tensor_event)
        float_tensor = staticmethod(float_tensor)
        content_tensor = staticmethod(content_tensor)
        write_event_file = staticmethod(write_event_file)
        record_offsets = staticmethod(record_offsets)
        scalars_metadata = staticmethod(scalars_metadata)

    return _Helpers
