"""Encode every artist with ONNX Runtime, fuse its modalities and write a FAISS index."""
