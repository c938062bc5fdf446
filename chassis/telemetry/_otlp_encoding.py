"""OTLP/HTTP span export with a faster encoder for the spans a service makes every request.

The SDK's encoder (`opentelemetry-exporter-otlp-proto-common`) builds a protobuf object per
span, attribute and value before serializing them, in the export thread, which holds the GIL
the event loop needs (the README's Observability section has the measured costs).
`encode_spans` writes the same `ExportTraceServiceRequest` bytes directly: trace and span ids,
parent, name, kind, times, status, flags, and attributes of one scalar type each, reusing the
bytes of an attribute (key and value) seen before. A span with events, links, dropped counts or
a sequence or bytes attribute is encoded by the SDK's own `_encode_span` instead, and so are
every resource and scope (once per batch), so the request stays the library's format: a test
holds the two encoders' output equal, message for message.

`FastOTLPSpanExporter` is the SDK's OTLP/HTTP exporter (transport, retries, timeouts, compression,
size limit, self-metrics) with only its encoding step replaced.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_instrumentation_scope,
    _encode_resource,
)
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_span
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

__all__ = ["FastOTLPSpanExporter", "encode_spans"]

# Field tags (field number << 3 | wire type) of opentelemetry/proto/trace/v1/trace.proto.
_TRACE_ID = b"\x0a\x10"  # Span.trace_id, 16 bytes
_SPAN_ID = b"\x12\x08"  # Span.span_id, 8 bytes
_TRACE_STATE = b"\x1a"
_PARENT_SPAN_ID = b"\x22\x08"
_NAME = b"\x2a"
_KIND = b"\x30"
_START_TIME = b"\x39"  # fixed64
_END_TIME = b"\x41"  # fixed64
_ATTRIBUTE = b"\x4a"  # Span.attributes, a KeyValue
_STATUS = b"\x7a"
_FLAGS = b"\x85\x01"  # field 16, fixed32
_STATUS_MESSAGE = b"\x12"
_STATUS_CODE = b"\x18"
_KEY = b"\x0a"  # KeyValue.key
_VALUE = b"\x12"  # KeyValue.value, an AnyValue
_STRING_VALUE = b"\x0a"
_BOOL_VALUE = b"\x10"
_INT_VALUE = b"\x18"
_DOUBLE_VALUE = b"\x21"
_RESOURCE_SPANS = b"\x0a"  # ExportTraceServiceRequest.resource_spans
_RESOURCE = b"\x0a"  # ResourceSpans.resource
_SCOPE_SPANS = b"\x12"  # ResourceSpans.scope_spans
_SCOPE = b"\x0a"  # ScopeSpans.scope
_SPANS = b"\x12"  # ScopeSpans.spans
_SCHEMA_URL = b"\x1a"  # ResourceSpans.schema_url and ScopeSpans.schema_url
# SpanFlags: the flags say whether the parent is remote.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_INT64 = range(-(2**63), 2**63)
# Attributes (key and value) encoded once and reused: methods, routes, schemes, statuses.
_ATTRIBUTE_CACHE_SIZE = 4096

_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_SMALL = [bytes((n,)) for n in range(0x80)]
_attributes: dict[tuple[str, type, Any], bytes | None] = {}


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized `ExportTraceServiceRequest` of `spans`, grouped by resource and scope."""
    # Grouped by object, not by equality: a Resource hashes by dumping its attributes to JSON,
    # once per span, and a tracer's spans share its resource and scope objects.
    objects: dict[int, Any] = {}
    grouped: defaultdict[int, defaultdict[int, list[bytes]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        objects[id(resource)], objects[id(scope)] = resource, scope
        body = _span(span)
        grouped[id(resource)][id(scope)] += (_SPANS, _varint(len(body)), body)
    request = []
    for resource_id, scopes in grouped.items():
        resource = objects[resource_id]
        resource_spans = [_field(_RESOURCE, _encode_resource(resource).SerializeToString())]
        for scope_id, encoded in scopes.items():
            scope = objects[scope_id]
            scope_spans = [_field(_SCOPE, _encode_instrumentation_scope(scope).SerializeToString())]
            scope_spans += encoded
            if scope is not None and scope.schema_url:
                scope_spans.append(_field(_SCHEMA_URL, scope.schema_url.encode()))
            resource_spans.append(_field(_SCOPE_SPANS, b"".join(scope_spans)))
        if resource.schema_url:
            resource_spans.append(_field(_SCHEMA_URL, resource.schema_url.encode()))
        request.append(_field(_RESOURCE_SPANS, b"".join(resource_spans)))
    return b"".join(request)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter, encoding with `encode_spans`."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        serialized = encode_spans(spans)
        if self._shutdown or 0 < self._max_request_size < len(serialized):
            return super().export(spans)  # the SDK's own warning and refusal
        # The SDK's steps after its encoding, on these bytes.
        with self._metrics.export_operation(len(spans)) as result:
            sent = self._client.export(serialized)
            if not sent.success:
                result.error = sent.error
                if sent.status_code is not None:
                    result.error_attrs = {HTTP_RESPONSE_STATUS_CODE: sent.status_code}
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def _span(span: ReadableSpan) -> bytes:
    """One serialized `Span`."""
    context = span.get_span_context()
    if (
        context is None
        or span.events
        or span.links
        or span.dropped_attributes
        or span.dropped_events
        or span.dropped_links
        or span.start_time is None
        or span.end_time is None
    ):
        return _encoded_by_the_sdk(span)
    parts = [
        _TRACE_ID,
        context.trace_id.to_bytes(16, "big"),
        _SPAN_ID,
        context.span_id.to_bytes(8, "big"),
    ]
    if span.attributes:
        encoded = _encode_attributes(span.attributes)
        if encoded is None:
            return _encoded_by_the_sdk(span)
        parts += encoded
    if context.trace_state:
        parts.append(_field(_TRACE_STATE, context.trace_state.to_header().encode()))
    parent = span.parent
    if parent is not None:
        parts += (_PARENT_SPAN_ID, parent.span_id.to_bytes(8, "big"))
    status = span.status
    status_fields = b""
    if status.description:
        status_fields += _field(_STATUS_MESSAGE, status.description.encode())
    if status.status_code.value:
        status_fields += _STATUS_CODE + _varint(status.status_code.value)
    parts += (
        _field(_NAME, span.name.encode()),
        _KIND,
        _varint(span.kind.value + 1),  # the protocol's SpanKind counts from UNSPECIFIED = 0
        _START_TIME,
        _fixed64(span.start_time),
        _END_TIME,
        _fixed64(span.end_time),
        _field(_STATUS, status_fields),
        _FLAGS,
        _fixed32(_HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)),
    )
    return b"".join(parts)


def _encoded_by_the_sdk(span: ReadableSpan) -> bytes:
    """One serialized `Span`, by the SDK's encoder."""
    serialized: bytes = _encode_span(span).SerializeToString()
    return serialized


def _encode_attributes(attributes: Mapping[str, Any]) -> list[bytes] | None:
    """Each attribute as a `Span.attributes` field; None if one is not a scalar."""
    encoded = []
    for key, value in attributes.items():
        cached = key, type(value), value  # True == 1 == 1.0, but each encodes differently
        try:
            field = _attributes[cached]
        except KeyError:
            field = _attributes[cached] = _encode_attribute(key, value)
            if len(_attributes) > _ATTRIBUTE_CACHE_SIZE:
                _attributes.clear()  # unique values (request ids) would only fill it
        except TypeError:  # an unhashable value
            return None
        if field is None:
            return None
        encoded.append(field)
    return encoded


def _encode_attribute(key: str, value: Any) -> bytes | None:
    """A `Span.attributes` field holding one `KeyValue`; None for sequences and bytes."""
    kind = type(value)
    if kind is str:
        any_value = _field(_STRING_VALUE, value.encode())
    elif kind is bool:
        any_value = _BOOL_VALUE + _SMALL[int(value)]
    elif kind is int and value in _INT64:
        any_value = _INT_VALUE + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)  # two's complement
    elif kind is float:
        any_value = _DOUBLE_VALUE + _double(value)
    else:
        return None
    return _field(_ATTRIBUTE, _field(_KEY, key.encode()) + _field(_VALUE, any_value))


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _varint(number: int) -> bytes:
    """`number` (not negative) as a protobuf varint."""
    if number < 0x80:
        return _SMALL[number]
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)
