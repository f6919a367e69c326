"""The ``faceprint`` command: enrol, verify, identify and detect from the shell.

Every command prints for people by default and JSON with ``--json``. Batch commands carry on past
bad files, list them at the end and exit 1; nothing stored is lost if a run is killed mid-way,
because each enrolment is its own transaction.

One module per command group, each thin (parse, call the library, print): ``photos`` (detect,
verify, identify, enroll, reindex), ``analysis`` (analyze, landmarks), ``serve``, ``video`` (watch,
capture), ``cluster``, ``batch`` (embed), ``export``, and the groups ``models``, ``people``, ``keys`` and
``eval``; ``_common`` holds what they share.
"""

from __future__ import annotations

import typer

from . import analysis, batch, cluster, export, keys, models, people, photos, serve, video
from .eval import app as eval_app

app = typer.Typer(help="Face recognition: detect, align, embed, match.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
for commands in (photos, analysis, serve, video, cluster, batch, export):  # `faceprint --help` lists them in this order
    app.add_typer(commands.app)
app.add_typer(models.app, name="models")
app.add_typer(people.app, name="people")
app.add_typer(keys.app, name="keys")
app.add_typer(eval_app, name="eval")
app.add_typer(analysis.attribute_app, name="attribute")
