"""Receivers in driver threads, their supervisor, and the block generator."""
from .receiver import Receiver

__all__ = ["Receiver"]
