#!/usr/bin/env node
// Run face-api's FaceExpressionNet in its own runtime (tfjs in node) on raw input images and
// write the probabilities and logits it computes, for scripts/convert_peers.py (`reference`).
//
//   npm install --prefix /tmp/faceapi @vladmandic/face-api@1.7.15 @tensorflow/tfjs @tensorflow/tfjs-backend-wasm
//   node scripts/face_api_reference.mjs --node-modules /tmp/faceapi/node_modules \
//        --input faces.f32 --count N --output out.json [--backend wasm|cpu] [--model-dir DIR]
//
// --input: N x 112 x 112 x 3 float32 little-endian RGB values on the 0..255 scale (NHWC), the
// tensors face-api's toBatchTensor(112) would produce from 112 px face crops.
// The model is loaded by face-api itself (nets.faceExpressionNet.loadFromDisk), from
// <face-api>/model unless --model-dir says otherwise. No network access is needed.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';

const SIZE = 112;

const { values: args } = parseArgs({
  options: {
    'node-modules': { type: 'string' },
    'model-dir': { type: 'string' },
    input: { type: 'string' },
    count: { type: 'string' },
    output: { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
  },
});
for (const name of ['node-modules', 'input', 'count', 'output']) {
  if (!args[name]) throw new Error(`--${name} is required`);
}

// Resolve face-api and tfjs from the scratch install, not from this repository.
const require = createRequire(path.join(path.resolve(args['node-modules']), 'noop.js'));
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const { tf } = faceapi;
const faceApiDir = path.dirname(require.resolve('@vladmandic/face-api/package.json'));
const modelDir = args['model-dir'] ?? path.join(faceApiDir, 'model');

await tf.setBackend(args.backend);
await tf.ready();
await faceapi.nets.faceExpressionNet.loadFromDisk(modelDir);
const net = faceapi.nets.faceExpressionNet;

const count = Number(args.count);
const raw = readFileSync(args.input);
const expected = count * SIZE * SIZE * 3 * 4;
if (raw.byteLength !== expected) throw new Error(`${args.input}: ${raw.byteLength} bytes, expected ${expected}`);
const pixels = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);

const probabilities = [];
const logits = [];
for (let i = 0; i < count; i += 1) {
  const face = tf.tensor3d(pixels.subarray(i * SIZE * SIZE * 3, (i + 1) * SIZE * SIZE * 3), [SIZE, SIZE, 3], 'float32');
  const input = await faceapi.toNetInput(face);
  const scores = net.runNet(input); // (1, 7) logits: FaceProcessor.runNet
  const probs = net.forwardInput(input); // (1, 7) softmax: what predictExpressions reports
  logits.push(Array.from(scores.dataSync()));
  probabilities.push(Array.from(probs.dataSync()));
  tf.dispose([face, scores, probs]);
}

writeFileSync(args.output, JSON.stringify({
  runtime: `tfjs ${tf.version_core} (${tf.getBackend()} backend), @vladmandic/face-api ${faceapi.version}`,
  labels: ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'],
  probabilities,
  logits,
}));
console.log(`wrote ${count} results to ${args.output} (${tf.getBackend()})`);
