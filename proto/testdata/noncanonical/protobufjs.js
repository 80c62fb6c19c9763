// Writes noncanonical/NAME--protobufjs.bin: each golden frame decoded and
// re-encoded by protobufjs with every scalar field set explicitly (its
// toObject({defaults: true}) -> fromObject -> encode), when that differs
// from the canonical bytes. Run from proto/testdata: node noncanonical/protobufjs.js
const fs = require("fs");
const path = require("path");
const protobuf = require("protobufjs");
const root = protobuf.loadSync(path.join("..", "pyrpc", "v1", "rpc.proto"));
for (const file of fs.readdirSync(".").filter((f) => f.endsWith(".bin")).sort()) {
  const name = file.slice(0, -4);
  const text = fs.readFileSync(name + ".txtpb", "utf8");
  const type = root.lookupType(/proto-message: pyrpc\.v1\.ClientFrame/.test(text) ? "pyrpc.v1.ClientFrame" : "pyrpc.v1.ServerFrame");
  const frame = fs.readFileSync(file);
  const decoded = type.decode(frame.subarray(4));
  const object = type.toObject(decoded, { defaults: true, oneofs: false, bytes: Buffer, longs: String });
  const body = Buffer.from(type.encode(type.fromObject(object)).finish());
  if (body.equals(frame.subarray(4))) continue;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  fs.writeFileSync(path.join("noncanonical", name + "--protobufjs.bin"), Buffer.concat([header, body]));
  console.log(name, "differs:", body.length, "bytes, canonical", frame.length - 4);
}
