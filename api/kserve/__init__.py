"""KServe's Open Inference Protocol (v2) and Triton's model configuration and repository index.
"""
