// Runs llama-tokenizer-js (the independent reference encoder) for our tests and benchmark.
//   node llama-tokenizer-js.mjs PACKAGE_DIR encode TEXTS.json IDS.json
//       TEXTS.json is a JSON array of strings; writes a JSON array of id arrays, each encoded
//       with the package's defaults (BOS and the leading space).
//   node llama-tokenizer-js.mjs PACKAGE_DIR bench TEXT.jsonl
//       encodes every {"text": ...} line, once to warm up and then timed, and prints one JSON
//       line {"bytes": UTF-8 bytes, "tokens": n, "seconds": s}.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [packageDir, mode, input, output] = process.argv.slice(2);
const { default: tokenizer } = await import(pathToFileURL(path.join(packageDir, 'llama-tokenizer.js')).href);

if (mode === 'encode') {
  const texts = JSON.parse(fs.readFileSync(input, 'utf8'));
  fs.writeFileSync(output, JSON.stringify(texts.map((text) => tokenizer.encode(text))));
} else if (mode === 'bench') {
  const texts = fs.readFileSync(input, 'utf8').split('\n').filter((line) => line).map((line) => JSON.parse(line).text);
  const bytes = texts.reduce((sum, text) => sum + Buffer.byteLength(text, 'utf8'), 0);
  const run = () => texts.reduce((sum, text) => sum + tokenizer.encode(text).length, 0);
  run();
  const start = process.hrtime.bigint();
  const tokens = run();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ bytes, tokens, seconds }));
} else {
  console.error('usage: llama-tokenizer-js.mjs PACKAGE_DIR (encode TEXTS.json IDS.json | bench TEXT.jsonl)');
  process.exit(2);
}
