"""The one kind of error the trainer reports to a person."""


class TrainerError(Exception):
    """Bad parameters or data, said in one line that names the key or the path at fault.

    ``python -m trainer`` prints it as ``error: <message>`` and exits with status 2.
    """
