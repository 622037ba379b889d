"""World-model architectures: tokenizers, shared transformer blocks, Flow-HWM, Masked-HWM.

`models` depends on no other package of this project.
"""
