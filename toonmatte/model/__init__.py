"""The model: BiRefNet with its Swin backbone and deformable convolutions, the inference rewrites and
CUDA graphs that make it fast, the checkpoint loading and the zoo of Hub weights, and its ONNX export."""
