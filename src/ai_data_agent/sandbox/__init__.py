"""Code that runs INSIDE the sandbox container.

Everything here is standard library only and Python >= 3.9 compatible: the
controller starts `bootstrap` with ``python3 -I -S -c`` in an unmodified image
and sends the rest as a bundle on stdin. Nothing here imports from the rest of
the package, and a unit test pins that rule.

A job meets, in order: `bootstrap` (pid 1: it forks the runner and only reaps
after that; the runner loads the bundle), `runner` (reads the job from
`channel`, makes the sandbox dir with `environment`), then by mode: a run
installs (`install`), verifies (`verify`), runs the code (`execute`) and
returns `outputs` (matplotlib figures through `figures`); the cache's jobs
use `envstore`; a session serves cells (`session`) from a kernel it starts
(`kernelproc` -> `kernel`, with `display`) and files (`files`).
"""
