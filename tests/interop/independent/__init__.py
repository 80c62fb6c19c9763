"""The independent pyrpc peer, one module per job; ``independent_peer.py`` runs it.

It shares no code with pyrpc: the Python standard library, the official
``protobuf`` runtime and messages generated from ``proto/pyrpc/v1/rpc.proto``.
"""
