"""The generated protobuf messages (loaded by path) and the protocol's constants.

Part of the independent peer (``tests/interop/independent_peer.py``): it shares
no code with pyrpc.
"""

import importlib.util
import os

PROTOCOL_VERSION = 1
MAX_FRAME_LEN = 640 * 1024 * 1024
MAX_DEPTH = 1024  # what pyrpc accepts by default
NESTED_MAX = 32  # deeper values travel flat (PROTOCOL.md section 5)
PEER_NAME = "pyrpc-independent-peer/1"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _Messages:
    """The generated module ``rpc_pb2``, once ``load_messages`` has loaded it.

    The other modules import ``pb`` at their own import time, before the
    command line names the directory of the generated code, so ``pb`` stands
    in for the module and forwards every attribute to it.
    """

    module = None

    def __getattr__(self, name):
        if self.module is None:
            raise RuntimeError("load_messages(GEN) has not been called")
        return getattr(self.module, name)


pb = _Messages()


def load_messages(gen_dir):
    """Imports GEN/pyrpc/v1/rpc_pb2.py by path.

    Importing it as ``pyrpc.v1.rpc_pb2`` would collide with the ``pyrpc`` package
    installed in the same environment, and the generated module imports nothing
    but the protobuf runtime, so loading the file directly is enough.
    """
    path = os.path.join(gen_dir, "pyrpc", "v1", "rpc_pb2.py")
    spec = importlib.util.spec_from_file_location("independent_rpc_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _Messages.module = module
