"""Low-precision number formats and quantized matrix multiplication.

FP8 (DeepSeek-V3 §3.3, chapter 04c): the formats and rounding (:mod:`.fp8`), a tensor-core-like GEMM with
limited accumulation (:mod:`.fp8_gemm`), an FP8 linear layer (:mod:`.fp8_linear`) and the outlier study
(:mod:`.fp8_study`).
"""

from course_lib.quant.fp8 import (
    BF16,
    E4M3,
    E5M2,
    FORMATS,
    FloatFormat,
    dequantize,
    fake_quantize,
    quantize,
    quantize_blocks,
    quantize_per_tensor,
    quantize_tiles,
    representable_values,
    round_to_bits,
    round_to_format,
)
from course_lib.quant.fp8_gemm import FP8_DTYPES, fp8_gemm, relative_error, tensor_core_dot
from course_lib.quant.fp8_linear import FP8Linear, convert_to_fp8, fp8_linear
from course_lib.quant.fp8_study import LayerError, outlier_error_study, real_activation_study

__all__ = ["BF16", "E4M3", "E5M2", "FORMATS", "FP8Linear", "FP8_DTYPES", "FloatFormat", "LayerError",
           "convert_to_fp8", "dequantize", "fake_quantize", "fp8_gemm", "fp8_linear", "outlier_error_study",
           "quantize", "quantize_blocks", "quantize_per_tensor", "quantize_tiles", "real_activation_study",
           "relative_error", "representable_values", "round_to_bits", "round_to_format", "tensor_core_dot"]
