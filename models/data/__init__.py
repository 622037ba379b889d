"""Data contracts shared by training and the envs: the hwm-v1 format, the 1X v2.0 reader, training windows."""
