"""Low-precision number formats and quantized matrix multiplication."""
