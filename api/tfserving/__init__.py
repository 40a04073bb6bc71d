"""TF Serving's REST protocol: ``/v1/models/...`` (predict, classify, regress, metadata).
"""
