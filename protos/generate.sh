#!/usr/bin/env bash
# Generate the Python stubs (+ typed .pyi) for protos/targetd/v1 into the directory given (default: the
# targetd-api distribution's source tree, api/python/src, where they are committed). Used by `make protos`
# and `make check-protos`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../api/python/src"}
bin=${VENV_BIN:-"$here/../.venv/bin"}
wkt=$("$bin/python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
mkdir -p "$out/targetd/v1"
rm -f "$out"/targetd/v1/*_pb2*.py "$out"/targetd/v1/*_pb2*.pyi
export PATH="$bin:$PATH"   # protoc-gen-mypy / protoc-gen-mypy_grpc
cd "$here"
"$bin/python" -m grpc_tools.protoc -I . -I "$wkt" \
  --python_out="$out" --mypy_out=quiet:"$out" targetd/v1/*.proto
"$bin/python" -m grpc_tools.protoc -I . -I "$wkt" \
  --grpc_python_out="$out" --mypy_grpc_out=quiet:"$out" targetd/v1/decisioning_service.proto
for pkg in "$out/targetd" "$out/targetd/v1"; do
  [ -f "$pkg/__init__.py" ] || : > "$pkg/__init__.py"
done
[ -f "$out/targetd/py.typed" ] || : > "$out/targetd/py.typed"
