"""The exit codes of every ``citywatch`` command, so a supervisor or a script can tell
why a run ended without reading its log (BSD ``sysexits.h`` where one fits).

- 0: done.
- 1: failed (a private server would not start, a run ended with failures).
- 2: usage: a flag, file or setting is wrong (typer's own code; the message names it).
- 69 (``EX_UNAVAILABLE``): something the command needs is not there — the broker cannot
  be reached, a port to serve on is taken, the store does not answer. Retrying later,
  or elsewhere, may work; changing the command line does not.
- 130: stopped by a second Ctrl-C (128 + SIGINT).
"""

FAILED = 1
USAGE = 2
UNAVAILABLE = 69
INTERRUPTED = 130
