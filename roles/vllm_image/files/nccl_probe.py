# Managed by dgxspark.cluster (vllm_image role): run inside the image, with the engine's
# library environment (the image's own ENV, LD_PRELOAD and LD_LIBRARY_PATH included), before
# the image is labelled. Prints one JSON line: the NCCL the engine really loads, read the way
# the engine reads it, as raw values (plugins/module_utils/nccl.py interprets them).
#
# * torch: ``torch.cuda.nccl.version()`` -- the NCCL torch's own collectives call, resolved
#   by the dynamic loader (an LD_PRELOAD shim exporting NCCL's symbols wins here);
# * vllm: ``ncclGetVersion`` of the library vLLM's PyNccl opens (``VLLM_NCCL_SO_PATH`` or
#   ``libnccl.so.2``, vllm/utils/nccl.py find_nccl_library) through ctypes, as PyNccl does;
# * loaded: the NCCL files mapped into the process afterwards (/proc/self/maps).
import ctypes
import json
import os
import sys

out = {"ld_preload": os.environ.get("LD_PRELOAD", ""),
       "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""),
       "vllm_nccl_so_path": os.environ.get("VLLM_NCCL_SO_PATH", ""),
       "torch": None, "torch_error": None, "torch_cuda": None,
       "vllm": None, "vllm_library": None, "vllm_error": None, "loaded": []}
try:
    import torch
    out["torch_cuda"] = torch.version.cuda
    version = torch.cuda.nccl.version()
    out["torch"] = list(version) if isinstance(version, (tuple, list)) else version
except Exception as exc:  # a CPU build of torch has no NCCL
    out["torch_error"] = "%s: %s" % (type(exc).__name__, exc)
try:
    try:
        from vllm.utils.nccl import find_nccl_library
        library = find_nccl_library()
    except ImportError:
        library = os.environ.get("VLLM_NCCL_SO_PATH") or "libnccl.so.2"
    out["vllm_library"] = library
    handle = ctypes.CDLL(library)
    raw = ctypes.c_int()
    status = handle.ncclGetVersion(ctypes.byref(raw))
    if status != 0:
        raise RuntimeError("ncclGetVersion returned %d" % status)
    out["vllm"] = raw.value
except Exception as exc:  # no NCCL (the CPU engine), or none at that path
    out["vllm_error"] = "%s: %s" % (type(exc).__name__, exc)
try:
    with open("/proc/self/maps") as maps:
        paths = set(line.split()[-1] for line in maps if "nccl" in line.lower()
                    and line.split()[-1].startswith("/"))
    out["loaded"] = sorted(paths)
except OSError:
    pass
sys.stdout.write(json.dumps(out) + "\n")
