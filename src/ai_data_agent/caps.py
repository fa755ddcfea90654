"""Input file caps, checked the same way by the daemon and by a client before it sends.

    check_input_files(request.files, max_files=32, max_file_bytes=32 << 20,
                      max_total_bytes=64 << 20)      # RequestTooLarge names the file

Plain numbers in, so a client checks against the caps the daemon announced
(``GET /v1/info``) without the server's settings.
"""

from __future__ import annotations

from ai_data_agent.errors import RequestTooLarge
from ai_data_agent.models import InputFile

__all__ = ["check_input_files"]


def check_input_files(
    files: list[InputFile], *, max_files: int, max_file_bytes: int, max_total_bytes: int
) -> None:
    """The input file caps.

    Raises:
        RequestTooLarge: too many files, one too large, or too many bytes in all.
    """
    if len(files) > max_files:
        raise RequestTooLarge("files", f"{len(files)} files, at most {max_files}")
    total = 0
    for item in files:
        if len(item.data) > max_file_bytes:
            raise RequestTooLarge(f"files.{item.path}", f"larger than {max_file_bytes} bytes")
        total += len(item.data)
    if total > max_total_bytes:
        raise RequestTooLarge("files", f"{total} bytes in all, at most {max_total_bytes}")
