"""What the tools and their arguments say to a model (MCP tool and schema descriptions).

A model chooses and calls tools from these words alone, so they say what the
tool does, what comes back, and the limits that change how to call it.
"""

from __future__ import annotations

_RUN = (
    "Run Python 3 code in a locked-down sandbox: a throwaway container with no network, "
    "limited memory and CPU. Install packages with `requirements` (e.g. ['pandas', "
    "'matplotlib']); put input files with `files`. The result starts with the status, then "
    "the end of stdout and stderr, the value of the last expression (as in a notebook), the "
    "traceback when the code fails (the result is then an error), matplotlib figures as PNG "
    "images, and links to files the code wrote under `outputs/`. Print what you need to see; "
    "save files to show under `outputs/`. Keep each call short (`timeout_s`, default 45 s): "
    "split long work into several calls. "
)
RUN_PYTHON_STDIO = _RUN + (
    "Without `session_id` the code runs in this server's default session, so variables, "
    "imports and files persist from one call to the next, like notebook cells."
)
RUN_PYTHON_HTTP = _RUN + (
    "Without `session_id` each call is a fresh sandbox (nothing persists); with a "
    "`session_id` from create_session the code runs as a cell there and variables persist."
)
CREATE_SESSION = (
    "Start a session: a sandbox with a live Python kernel whose variables, imports and files "
    "persist across run_python calls that pass its `session_id`. Optional `requirements` are "
    "installed first, `files` placed in its working directory, and `datasets` mounted "
    "read-only at /data/<name>. Sessions expire when idle; close them with close_session "
    "when done."
)
LIST_DATASETS = (
    "List the datasets you can mount (uploaded once by a person, kept across sessions): "
    "name, latest version and size. Mount one with `datasets` in run_python or "
    "create_session; describe_dataset tells what is inside before you load it."
)
DESCRIBE_DATASET = (
    "What a dataset holds, without loading it: its CSV, TSV, JSON lines and parquet files "
    "with their columns, types, row counts and first rows. Read it before writing code "
    "against /data/<name>/<file>. The first call for a version may take seconds."
)
DATASET_NAME = "The dataset's name, as list_datasets shows it."
DATASET_VERSION = "A version number; omit it for the latest."
DATASETS = (
    "Datasets to mount read-only, at /data/<name>: e.g. ['sales'] (latest) or "
    "['sales@2']. For a session, only when it starts (create_session, or the first call)."
)
INSTALL = (
    "Install more packages into a session (PEP 508 requirements, e.g. 'scikit-learn' or "
    "'pandas>=2'). The sandbox keeps no network: packages are installed outside it and "
    "added to its path. If an already imported package changes version, restart_session."
)
UPLOAD = (
    "Write a file into a session's working directory, from `text` (UTF-8) or `base64` "
    "(binary). Code in that session then opens it by the same relative path. Replaces a "
    "file at that path."
)
LIST_FILES = "List the files under a session's working directory, with their sizes."
READ_FILE = (
    "Read a file from a session's working directory (e.g. 'outputs/summary.csv'): text "
    "comes back as text, PNG and JPEG images as images, other binary files as a link."
)
RESTART = (
    "Give a session a fresh Python kernel: every variable and import is lost; files and "
    "installed packages stay. Use it after installing a new version of an imported package "
    "or when the kernel is stuck."
)
CLOSE = "Close a session: its sandbox and files are removed."
FORK = (
    "Start a new session from a session's state now (its variables and files, from a "
    "checkpoint), to try another approach without touching the first. Returns the new "
    "session's id; what could not be carried over is listed."
)

CODE = "Python source. The value of the last expression is returned, as in a notebook."
REQUIREMENTS = "PEP 508 requirements to install from the package index, e.g. ['pandas']."
FILES = "Input files: each {path, text} or {path, base64}, placed under the working directory."
TIMEOUT = "Seconds the code may run (default 45; the server caps it)."
SESSION_ID = "A session from create_session; omit it to use the default described above."
PATH = "Relative path under the working directory, e.g. 'data/sales.csv'."
TEXT_CONTENT = "The file's content as UTF-8 text."
BASE64_CONTENT = "The file's content as base64, for binary files."
