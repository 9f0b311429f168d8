"""ftjax: fine-tuning ImageNet AlexNet for medical imaging, in JAX.

A reproduction of Tajbakhsh et al., IEEE TMI 2016 (full training or fine tuning?).
"""

__version__ = "0.1.0"
