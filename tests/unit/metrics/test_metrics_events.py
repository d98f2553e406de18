"""The event reader against TensorBoard's EventAccumulator, and its CRC / truncation handling."""

from __future__ import annotations

import logging
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from isaaclab_pipeline.metrics.events import (
    EventFileCorruptError,
    _may_hold_scalars,
    _simple_value_tag,
    first_wall_time,
    read_event_file,
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2, graph_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.plugins.histogram import summary_v2 as histogram_v2
from tensorboard.plugins.scalar import summary_v2 as scalar_v2
from tensorboard.plugins.text import summary_v2 as text_v2
from tensorboard.util import tensor_util

T0 = 1_700_000_000.0


def _mixed_events(tb) -> list[event_pb2.Event]:
    """Every scalar flavour the reader must keep, interleaved with events it must skip."""
    events: list[event_pb2.Event] = []
    events.append(event_pb2.Event(wall_time=T0, step=0, graph_def=graph_pb2.GraphDef().SerializeToString()))
    rng = np.random.default_rng(7)
    # steps cover 1-, 2-, 3-, 5- and 10-byte (negative) varints, and step 0 (omitted on the wire)
    steps = [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_152, 2**35 + 3, -5]
    for i, step in enumerate(steps):
        wall = T0 + i
        for tag in ("Train/mean_reward", "Train/mean_episode_length", "Loss/value_function", ""):
            events.append(tb.simple_event(tag, step, float(rng.normal()), wall))
        # TF1-style merged summary: several values in one event, one of them with metadata
        merged = summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag="Merged/a", simple_value=float(i) * 0.1),
            summary_pb2.Summary.Value(tag="Merged/b", simple_value=-float(i), metadata=tb.scalars_metadata()),
        ])
        events.append(event_pb2.Event(wall_time=wall, step=step, summary=merged))
        # tensor scalars: scalar_pb (float_val), C++-style tensor_content, double, int64, and TF2-style
        # values that carry metadata only on the first write
        events.append(event_pb2.Event(wall_time=wall, step=step, summary=scalar_v2.scalar_pb("Tensor/f32", i + 0.5)))
        events.append(tb.tensor_event("Tensor/content", step, wall, tb.content_tensor(i * 1.25),
                                      with_metadata=(i == 0)))
        events.append(tb.tensor_event("Tensor/f64", step, wall, tensor_pb2.TensorProto(
            dtype=2, tensor_shape=tensor_shape_pb2.TensorShapeProto(), double_val=[math.pi * i])))
        events.append(tb.tensor_event("Tensor/i64", step, wall, tensor_pb2.TensorProto(
            dtype=9, tensor_shape=tensor_shape_pb2.TensorShapeProto(), int64_val=[i * 1000])))
        # torch's add_scalar(new_style=True): no tensor_shape field, metadata on every event
        events.append(tb.tensor_event("Tensor/torch", step, wall, tensor_pb2.TensorProto(dtype=1, float_val=[i / 3])))
        events.append(tb.tensor_event("Tensor/half", step, wall, tensor_pb2.TensorProto(
            dtype=19, tensor_shape=tensor_shape_pb2.TensorShapeProto(),
            half_val=[struct.unpack("<H", struct.pack("<e", i * 0.5))[0]])))
        # not scalars: legacy histogram, v2 histogram tensor, text tensor, image, session log
        events.append(event_pb2.Event(wall_time=wall, step=step, summary=summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag="Hist/legacy", histo=summary_pb2.HistogramProto(min=0, max=1, num=3))])))
        events.append(event_pb2.Event(wall_time=wall, step=step,
                                      summary=histogram_v2.histogram_pb("Hist/v2", rng.normal(size=20))))
        events.append(event_pb2.Event(wall_time=wall, step=step, summary=text_v2.text_pb("Text", "hello")))
        events.append(event_pb2.Event(wall_time=wall, step=step, summary=summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag="Image", image=summary_pb2.Summary.Image(
                height=1, width=1, colorspace=1, encoded_image_string=b"\x89PNG" + bytes(40)))])))
    # non-finite values and a duplicate step survive as they are
    events.append(tb.simple_event("Train/mean_reward", 5, float("nan"), T0 + 50))
    events.append(tb.simple_event("Train/mean_reward", 5, float("inf"), T0 + 51))
    return events


def _accumulator_scalars(path: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar as TensorBoard sees it: EventAccumulator keeping everything."""
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    out: dict[str, list[tuple[int, float, float]]] = {}
    for tag in acc.Tags()["scalars"]:
        out[tag] = [(e.step, e.wall_time, e.value) for e in acc.Scalars(tag)]
    try:
        scalar_plugin_tags = acc.PluginTagToContent("scalars")
    except KeyError:  # a file with simple_value scalars only (rsl_rl's) has no scalars-plugin tensors
        scalar_plugin_tags = {}
    for tag in scalar_plugin_tags:
        if tag in acc.Tags()["tensors"]:
            out[tag] = [(e.step, e.wall_time, float(tensor_util.make_ndarray(e.tensor_proto).item()))
                        for e in acc.Tensors(tag)]
    return out


def _ours(path: Path, **kwargs) -> dict[str, list[tuple[int, float, float]]]:
    fs = read_event_file(path, **kwargs)
    return {tag: list(zip(s.steps.tolist(), s.wall_times.tolist(), s.values.tolist(), strict=True))
            for tag, s in fs.series.items()}


def _same(a: dict, b: dict) -> bool:
    """Equal, with NaN equal to NaN."""
    if a.keys() != b.keys():
        return False
    for tag in a:
        if len(a[tag]) != len(b[tag]):
            return False
        for x, y in zip(a[tag], b[tag], strict=True):
            if x[:2] != y[:2] or not (x[2] == y[2] or (math.isnan(x[2]) and math.isnan(y[2]))):
                return False
    return True


# TensorBoard's make_ndarray (the reference side) sets ndarray.dtype for half floats, deprecated in numpy 2.5
@pytest.mark.filterwarnings("ignore:Setting the dtype on a NumPy array:DeprecationWarning")
@pytest.mark.parametrize("chunk_size", [16 * 1024 * 1024, 1000, 37], ids=["one-chunk", "1000B", "37B"])
def test_every_scalar_matches_event_accumulator(tmp_path: Path, tb, chunk_size: int) -> None:
    path = tb.write_event_file(tmp_path, _mixed_events(tb))
    expected = _accumulator_scalars(path)
    ours = _ours(path, chunk_size=chunk_size)

    assert {"Train/mean_reward", "", "Merged/b", "Tensor/f32", "Tensor/content", "Tensor/f64", "Tensor/i64",
            "Tensor/half", "Tensor/torch"} <= set(expected)
    assert not {"Hist/legacy", "Hist/v2", "Text", "Image"} & set(ours)
    assert sum(len(v) for v in ours.values()) == sum(len(v) for v in expected.values()) == 10 * 12 + 2
    assert _same(ours, expected)


def test_first_wall_time_and_record_count(tmp_path: Path, tb) -> None:
    events = [tb.simple_event("a", s, float(s), T0 + s) for s in range(5)]
    path = tb.write_event_file(tmp_path, events)
    fs = read_event_file(path)
    assert fs.records == 6  # file_version + 5
    assert fs.first_wall_time == first_wall_time(path)
    assert fs.first_wall_time is not None and fs.first_wall_time > T0  # the writer's own clock


def test_record_larger_than_chunk(tmp_path: Path, tb) -> None:
    big = event_pb2.Event(wall_time=T0, step=1, graph_def=bytes(50_000))
    path = tb.write_event_file(tmp_path, [tb.simple_event("a", 0, 1.0, T0), big, tb.simple_event("a", 2, 2.0, T0)])
    assert _ours(path, chunk_size=4096) == {"a": [(0, T0, 1.0), (2, T0, 2.0)]}


def test_payload_crc_mismatch_names_file_and_offset(tmp_path: Path, tb) -> None:
    path = tb.write_event_file(tmp_path, [tb.simple_event("a", s, float(s), T0 + s) for s in range(10)])
    offset, length = tb.record_offsets(path)[5]
    data = bytearray(path.read_bytes())
    data[offset + 12 + length - 2] ^= 0x01  # one bit of the float of a mid-file record
    path.write_bytes(bytes(data))

    with pytest.raises(EventFileCorruptError) as info:
        read_event_file(path, chunk_size=100)  # also when the bad record is not in the first chunk
    assert info.value.path == path
    assert info.value.offset == offset
    assert str(path) in str(info.value) and f"byte offset {offset}" in str(info.value)
    assert "payload CRC" in str(info.value)


def test_length_crc_mismatch_is_an_error(tmp_path: Path, tb) -> None:
    path = tb.write_event_file(tmp_path, [tb.simple_event("a", s, float(s), T0 + s) for s in range(10)])
    offset, _ = tb.record_offsets(path)[3]
    data = bytearray(path.read_bytes())
    data[offset + 9] ^= 0x10  # the length's CRC
    path.write_bytes(bytes(data))

    with pytest.raises(EventFileCorruptError, match=rf"byte offset {offset}: length CRC"):
        read_event_file(path)


def test_crc_checked_on_records_the_fast_path_skips(tmp_path: Path, tb) -> None:
    path = tb.write_event_file(tmp_path, [tb.simple_event("a", 1, 1.0, T0)])
    offset, length = tb.record_offsets(path)[0]  # the file_version event
    data = bytearray(path.read_bytes())
    data[offset + 12 + length - 1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EventFileCorruptError, match="byte offset 0: payload CRC"):
        read_event_file(path)


@pytest.mark.parametrize("cut", [1, 4, 8, -12, -5], ids=["crc-byte", "whole-crc", "into-payload", "header-only",
                                                          "into-header"])
def test_truncated_final_record_warns_and_keeps_the_rest(tmp_path: Path, tb, caplog, cut: int) -> None:
    path = tb.write_event_file(tmp_path, [tb.simple_event("a", s, float(s), T0 + s) for s in range(10)])
    data = path.read_bytes()
    last, _ = tb.record_offsets(path)[-1]
    # a job killed mid-write: cut > 0 drops that many bytes, cut < 0 keeps only -cut bytes of the last record
    path.write_bytes(data[:-cut] if cut > 0 else data[: last - cut])

    with caplog.at_level(logging.WARNING, logger="isaaclab_pipeline.metrics.events"):
        fs = read_event_file(path)

    assert fs.truncated
    assert fs.series["a"].steps.tolist() == list(range(9))
    assert fs.series["a"].values.tolist() == [float(s) for s in range(9)]
    assert any("truncated" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    assert fs.warnings and "truncated" in fs.warnings[0]


def test_intact_file_has_no_warning(tmp_path: Path, tb, caplog) -> None:
    path = tb.write_event_file(tmp_path, [tb.simple_event("a", 1, 1.0, T0)])
    with caplog.at_level(logging.WARNING):
        fs = read_event_file(path)
    assert not fs.truncated and fs.warnings == [] and caplog.records == []


def test_empty_file_reads_as_no_scalars(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.0.host"
    path.write_bytes(b"")
    fs = read_event_file(path)
    assert fs.series == {} and fs.records == 0 and fs.first_wall_time is None


def test_tensor_scalars_need_the_scalars_plugin(tmp_path: Path, tb) -> None:
    rank0 = tb.float_tensor(3.0)
    other_plugin = summary_pb2.Summary.Value(tag="hp", tensor=rank0, metadata=summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="hparams")))
    no_metadata = summary_pb2.Summary.Value(tag="bare", tensor=rank0)
    vector = tb.tensor_event("vec", 1, T0, tensor_pb2.TensorProto(
        dtype=1, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2)]),
        float_val=[1.0, 2.0]))
    path = tb.write_event_file(tmp_path, [
        event_pb2.Event(wall_time=T0, step=1, summary=summary_pb2.Summary(value=[other_plugin, no_metadata])),
        vector,
        tb.tensor_event("ok", 1, T0, rank0),
    ])
    fs = read_event_file(path)
    assert set(fs.series) == {"ok"}
    assert fs.skipped_values == 1  # the rank-1 'scalars' tensor
    assert "not rank-0" in fs.warnings[0]


def test_prefilter_skips_non_scalar_events_without_decoding() -> None:
    def scan(event: event_pb2.Event) -> bool:
        data = event.SerializeToString()
        return _may_hold_scalars(data, 0, len(data))

    assert not scan(event_pb2.Event(wall_time=T0, file_version="brain.Event:2"))
    assert not scan(event_pb2.Event(wall_time=T0, step=3, graph_def=b"\x00" * 100))
    assert not scan(event_pb2.Event(wall_time=T0, step=3, summary=summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag="h", histo=summary_pb2.HistogramProto(num=1, bucket=[1.0]))])))
    assert scan(event_pb2.Event(wall_time=T0, step=3, summary=summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag="h", histo=summary_pb2.HistogramProto(num=1)),
        summary_pb2.Summary.Value(tag="s", simple_value=0.0)])))
    assert scan(event_pb2.Event(wall_time=T0, step=3, summary=scalar_v2.scalar_pb("t", 1.0)))


def test_fast_path_accepts_only_the_canonical_single_value_shape() -> None:
    def key(summary: summary_pb2.Summary) -> bytes:
        data = event_pb2.Event(wall_time=T0, step=1, summary=summary).SerializeToString()
        return data[11:-4]  # after 0x09 + 8 bytes + 0x10 0x01, before the float

    value = summary_pb2.Summary.Value(tag="Train/mean_reward", simple_value=1.0)
    assert _simple_value_tag(key(summary_pb2.Summary(value=[value]))) == "Train/mean_reward"
    assert _simple_value_tag(key(summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag="Train/mean_reward", simple_value=1.0, metadata=summary_pb2.SummaryMetadata(display_name="x"))]))) is None
    assert _simple_value_tag(key(summary_pb2.Summary(value=[value, value]))) is None
    long_tag = "t" * 300  # multi-byte length varints
    assert _simple_value_tag(key(summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=long_tag, simple_value=2.0)]))) == long_tag
    assert _simple_value_tag(b"\x2a\x0a\x0a\x08\x0a\x01a\x15") == "a"  # hand-built, lengths consistent
    assert _simple_value_tag(b"\x2a\x0a\x0a\x08\x0a\x01\xff\x15") is None  # same shape, invalid UTF-8
    assert _simple_value_tag(b"\x2a\x0b\x0a\x08\x0a\x01a\x15") is None  # summary length off by one


def test_tensor_scalars_learn_their_wire_shape(tmp_path: Path, tb, monkeypatch) -> None:
    from isaaclab_pipeline.metrics import events as events_module

    calls: list[int] = []
    original = events_module._FileReader._slow

    def counting(self, buf, start, end, index, offset):
        calls.append(index)
        return original(self, buf, start, end, index, offset)

    monkeypatch.setattr(events_module._FileReader, "_slow", counting)
    path = tb.write_event_file(tmp_path, [
        event_pb2.Event(wall_time=T0 + s, step=s, summary=scalar_v2.scalar_pb("t", s * 0.5)) for s in range(200)])

    fs = read_event_file(path)

    assert fs.series["t"].values.tolist() == [s * 0.5 for s in range(200)]
    assert fs.series["t"].steps.tolist() == list(range(200))
    assert calls == [0, 1]  # the file_version event and the first tensor; the other 199 matched the shape


REAL_RUN = Path(__file__).resolve().parents[2] / "fixtures" / "isaaclab_events"


def test_real_isaaclab_event_file_matches_event_accumulator() -> None:
    """The event file of the demo's training (Isaac Lab 3.0 + rsl_rl 5.5.1, 64 envs, 150 iterations)."""
    [path] = sorted(REAL_RUN.glob("events.out.tfevents.*"))
    expected = _accumulator_scalars(path)
    ours = _ours(path)
    assert {"Train/mean_reward", "Train/mean_episode_length", "Perf/total_fps"} <= set(ours)
    assert [step for step, _, _ in ours["Perf/total_fps"]] == list(range(150))
    assert sum(len(v) for v in ours.values()) == sum(len(v) for v in expected.values()) > 1500
    assert _same(ours, expected)
