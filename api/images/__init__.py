"""The image protocol: ``POST /recognize`` and ``/jobs`` (uploads, decoding, the job's stream).
"""
