// Converts llama-tokenizer-js's embedded Llama 2 vocabulary and merges into a Hugging Face
// style tokenizer.json (BPE, byte fallback, the "▁" normalizer, <s>/</s>), the format
// LlamaTokenizer.load reads. Usage: node convert-llama-tokenizer.js llama-tokenizer.js out.json
//
// The package stores the vocab as base64 of the pieces joined by "\n" (row = id) and the
// merges as base64 of little-endian uint16 (left id, right id) pairs in priority order. We
// read those two string literals from the source text rather than importing the module, so
// the conversion depends only on the data and not on the package's internals.
'use strict';
const fs = require('fs');

const [source, out] = process.argv.slice(2);
if (!source || !out) {
  console.error('usage: convert-llama-tokenizer.js llama-tokenizer.js out.json');
  process.exit(2);
}
const text = fs.readFileSync(source, 'utf8');
function literal(name) {
  const match = text.match(new RegExp(`const ${name} = "([A-Za-z0-9+/=]+)"`));
  if (!match) throw new Error(`${source}: no ${name} string literal`);
  return Buffer.from(match[1], 'base64');
}

const pieces = literal('llama_vocab_base64').toString('utf8').split('\n');
const mergeBytes = literal('llama_merges_binary');
const mergeCount = mergeBytes.length / 4;
if (pieces.length !== 32000 || mergeCount !== 61249) {
  throw new Error(`${source}: expected 32000 pieces and 61249 merges, found ${pieces.length} and ${mergeCount}`);
}

// A null-prototype object: pieces such as "toString" must not collide with Object's members.
const vocab = Object.create(null);
pieces.forEach((piece, id) => {
  if (piece in vocab) throw new Error(`${source}: piece ${JSON.stringify(piece)} appears twice`);
  vocab[piece] = id;
});
// Merges as [left, right] arrays (the newer tokenizers format) because a piece could in
// principle contain a space, which would make "left right" strings ambiguous.
const merges = [];
for (let i = 0; i < mergeCount; i++) {
  const left = pieces[mergeBytes.readUInt16LE(4 * i)];
  const right = pieces[mergeBytes.readUInt16LE(4 * i + 2)];
  if (!((left + right) in vocab)) throw new Error(`${source}: merge ${i} makes ${left + right}, not in the vocab`);
  merges.push([left, right]);
}

const special = (id, content) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
});
const tokenizer = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
  normalizer: {
    type: 'Sequence',
    normalizers: [
      { type: 'Prepend', prepend: '\u2581' },
      { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
    ],
  },
  pre_tokenizer: null,
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  },
  decoder: {
    type: 'Sequence',
    decoders: [
      { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ],
  },
  model: {
    type: 'BPE',
    dropout: null,
    unk_token: '<unk>',
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    vocab,
    merges,
  },
};
fs.writeFileSync(out, JSON.stringify(tokenizer));
