"""What every protocol hands its work to: dispatch to the workers' queues, the submitter, the
replies, model lookup and scheduling. It imports no protocol package (tests/unit/test_layers.py).
"""
