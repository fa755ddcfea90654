"""What the unit and integration suites and the benchmark share (never shipped: not under src/).

    from tests.support.daemon import Daemon      # the real daemon as a subprocess
    from tests.support.settings import ca_bundle  # the CA bundle installs need here
    from tests.support.wait import poll           # polling that fails with diagnostics

`tests` is a package so that these import the same way from a test (pytest puts
the repository root on ``sys.path``) and from ``python -m bench.run`` (run from
the repository root).
"""
