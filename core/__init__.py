"""The facts every part of cmar shares: modalities, artifact manifests and vector maths."""
