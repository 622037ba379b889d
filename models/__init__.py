"""World-model architectures and the data contracts they train on.

Tokenizers, shared transformer blocks, Flow-HWM, Masked-HWM, and `models.data` (the
`hwm-v1` format, the 1X v2.0 reader, training windows), which training and the envs
both read. `models` depends on no other package of this project.
"""
