"""Client scripts run in a side venv (``tests.support.side_venv``), one SDK a process: kserve's and
tritonclient's generated modules both define the ``inference`` proto package under other file names,
which protobuf's default pool refuses in one process."""
