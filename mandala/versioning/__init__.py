"""Code versioning: every call's version comes from the code it actually ran."""

from mandala.versioning.tracing import DecTracer, SysTracer, track
from mandala.versioning.versioner import ChangePolicy, CodeChange, Decision, Versioner

__all__ = ["track", "DecTracer", "SysTracer", "Versioner", "ChangePolicy", "CodeChange", "Decision"]
