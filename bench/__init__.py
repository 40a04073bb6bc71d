"""``make bench``: what the queue and the batching buy, measured on this machine in one run."""
