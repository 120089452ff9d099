"""The exported model and the built index at run time.

ONNX Runtime encoders and FAISS search, shared by the index build and the service.
"""
