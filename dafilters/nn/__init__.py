"""Torch building blocks shared by learned filters: data sets, the training loop, networks.

Import the submodules directly (``dafilters.nn.training``, ``dafilters.nn.data``); importing
``dafilters`` itself never imports torch.
"""
