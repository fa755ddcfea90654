"""Code that runs INSIDE the sandbox container.

Everything here is standard library only and Python >= 3.9 compatible: the
controller ships `runner.py`'s source into an unmodified image and runs it
with ``python3 -I -c``. Nothing here imports from the rest of the package, and
a unit test pins that rule.
"""
