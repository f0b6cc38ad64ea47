"""Deployment: packaging a model as one file, serving it in batches, watching its inputs drift,
and shrinking it with int8 quantization and pruning (chapter 16)."""

from tinytorch.deploy.compression import (QuantizedLinear, QuantizedTensor, QuantizedWeight, model_nbytes,
                                          prune_magnitude, quantize, quantize_model, sparsity)
from tinytorch.deploy.mlops import Predictor
from tinytorch.deploy.monitoring import DriftMonitor, DriftReport, FeatureDrift, kolmogorov_sf, ks_2samp, psi
from tinytorch.deploy.onnx_export import export_onnx
from tinytorch.deploy.packaging import (ModelFormatError, build_model, load_model, model_info, register_builder,
                                        save_model)
