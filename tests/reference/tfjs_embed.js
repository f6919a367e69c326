#!/usr/bin/env node
// Independent reference for faceprint's TF.js -> ONNX converter: run a TF.js graph model on
// TensorFlow.js' pure-JS CPU backend (no native code, nothing shared with the converter).
//
//   node tfjs_embed.js MODEL.json INPUT.npy OUTPUT.npy [OUTPUT_NAME]
//
// INPUT is a float32 .npy (or a raw little-endian float32 file, then its shape comes from the
// model's input signature with the batch inferred); OUTPUT is written as a float32 .npy.
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function readNpy(file, signatureShape) {
  const buf = fs.readFileSync(file);
  if (buf.slice(0, 6).toString('latin1') !== '\x93NUMPY') {
    const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    const rest = signatureShape.slice(1).reduce((a, b) => a * b, 1);
    return { data, shape: [data.length / rest, ...signatureShape.slice(1)] };
  }
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.slice(start, start + hlen).toString('latin1');
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(`expected little-endian float32 .npy, got ${header}`);
  if (/'fortran_order':\s*True/.test(header)) throw new Error('Fortran-order .npy is not supported');
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const off = start + hlen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length));
  return { data, shape };
}

function writeNpy(file, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(new Float32Array(data).buffer);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
}

// An IOHandler that reads model.json and its shards from disk, so no fetch/http is involved.
function fileHandler(modelPath) {
  return {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      const dir = path.dirname(modelPath);
      const weightSpecs = [];
      const shards = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) shards.push(fs.readFileSync(path.join(dir, p)));
      }
      const all = Buffer.concat(shards);
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        signature: json.signature,
        userDefinedMetadata: json.userDefinedMetadata,
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length),
      };
    },
  };
}

async function main() {
  const [modelPath, inputPath, outputPath, outputName] = process.argv.slice(2);
  if (!outputPath) {
    console.error('usage: node tfjs_embed.js MODEL.json INPUT.npy OUTPUT.npy [OUTPUT_NAME]');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  await tf.ready();
  const model = await tf.loadGraphModel(fileHandler(modelPath));
  const inputInfo = model.inputs[0];
  const sigShape = (inputInfo.shape || []).map((d) => (d == null ? -1 : d));
  const { data, shape } = readNpy(inputPath, sigShape);
  const x = tf.tensor(data, shape, 'float32');
  const out = outputName || model.outputs[0].name;
  const y = model.execute({ [inputInfo.name]: x }, out);
  writeNpy(outputPath, await y.data(), y.shape);
  console.log(JSON.stringify({ backend: tf.getBackend(), version: tf.version.tfjs, input: inputInfo.name, output: out, shape: y.shape }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
