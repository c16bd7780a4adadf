"""Curve analysis: verdicts, checkpoint grades, early stopping, comparison and specimen diagnosis.

Pure domain code over plain values: it never imports grpc or protobuf.
"""
