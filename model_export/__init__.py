"""Encoders, contrastive loss, training and ONNX export: the only package that imports torch.

`model_export.config` imports no torch, so the command line takes its defaults from it in a
serving install; the modules that train import torch themselves (a missing torch is a one-line
error naming the `train` extra, from the command line).
"""
