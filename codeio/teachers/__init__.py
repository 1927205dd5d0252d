"""Teachers that write chain-of-thought answers. The offline teacher needs no
endpoint: it explains real, sandboxed executions of the function."""

from codeio.teachers.offline import OFFLINE_BANNER, TEACHER_NAME, OfflineAnswer, OfflineTeacher, TraceError

__all__ = ["OFFLINE_BANNER", "OfflineAnswer", "OfflineTeacher", "TEACHER_NAME", "TraceError"]
