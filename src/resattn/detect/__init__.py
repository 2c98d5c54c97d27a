"""Continuous detection over ObsPy streams and archives (``resattn detect``), and resattn
waveform models as SeisBench models."""

from .archive import Station, component_map, expand_inputs, read_chunk, scan_inputs
from .job import DetectOptions, detect
from .runtime import RUNTIMES, choose_runtime
from .scan import ScanConfig, ScanTask, scan_task, trigger

__all__ = [
    "RUNTIMES", "DetectOptions", "ScanConfig", "ScanTask", "Station", "choose_runtime",
    "component_map", "detect", "expand_inputs", "read_chunk", "scan_inputs", "scan_task",
    "trigger",
]
