#!/usr/bin/env bash
# Regenerates the committed protobuf/gRPC code from Sources/BoxcarAPI/Protos:
#   Sources/BoxcarAPI/Generated/*.swift   (swift-protobuf + grpc-swift-2 plugins)
#   Clients/python/boxcar/_proto/**       (grpcio-tools)
# Needs protoc and the well-known types (apt-get install protobuf-compiler libprotobuf-dev) and
# grpcio-tools (pip). The two Swift plugins are built from the package's own dependencies.
# No build runs this: run it by hand after editing a .proto, and commit what it writes.
set -euo pipefail
cd "$(dirname "$0")/.."

protos=Sources/BoxcarAPI/Protos
swift_out=Sources/BoxcarAPI/Generated
py_out=Clients/python/boxcar/_proto

swift build --product protoc-gen-swift
swift build --product protoc-gen-grpc-swift-2
bin=$(swift build --show-bin-path)

files=(modelbox/modelbox.proto boxcar/v1/agent.proto boxcar/v1/collector.proto)
# Prometheus' remote-write messages: the agent sends them; no client of ours reads them.
swift_only=(prometheus/remote.proto)

rm -rf "$swift_out" && mkdir -p "$swift_out"
protoc -I "$protos" -I /usr/include \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
  --swift_out="$swift_out" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
  --grpc-swift-2_out="$swift_out" \
  --grpc-swift-2_opt=Visibility=Public,Server=true,Client=true,FileNaming=PathToUnderscores \
  "${files[@]/#/$protos/}"
protoc -I "$protos" \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --swift_out="$swift_out" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
  "${swift_only[@]/#/$protos/}"

rm -rf "$py_out" && mkdir -p "$py_out"
python3 -m grpc_tools.protoc -I "$protos" \
  --python_out="$py_out" --pyi_out="$py_out" --grpc_python_out="$py_out" \
  "${files[@]/#/$protos/}"
# grpc_tools writes absolute imports ("from modelbox import ..."); make them package-relative so
# the stubs live inside the boxcar package without touching sys.path.
find "$py_out" -name '*.py' -exec sed -i -E \
  's/^from (modelbox|boxcar\.v1) import /from boxcar._proto.\1 import /' {} +
touch "$py_out/__init__.py" "$py_out/modelbox/__init__.py" "$py_out/boxcar/__init__.py" "$py_out/boxcar/v1/__init__.py"
echo "generated into $swift_out and $py_out"
