"""The wire protocol: every message type and its one encoding.

Nothing outside this package builds or parses raw frames.
"""
from .records import MAGIC, PROTOCOL_VERSION, ProtocolError, WireRecord, decode, encode, wire_record
from . import block_service, executor, plan

__all__ = ["MAGIC", "PROTOCOL_VERSION", "ProtocolError", "WireRecord", "decode", "encode",
           "wire_record", "block_service", "executor", "plan"]
