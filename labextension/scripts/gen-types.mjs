// Compile a JSON Schema (read from stdin) into TypeScript declarations (written to stdout).
// Called by scripts/gen_wire_types.py, which builds the schema from batchnb's wire models;
// don't run it by hand, run `python scripts/gen_wire_types.py` from the repository root.
import { compile } from 'json-schema-to-typescript';

const chunks = [];
for await (const chunk of process.stdin) {
  chunks.push(chunk);
}
const schema = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const banner = process.argv[2] || '';

const ts = await compile(schema, schema.title || 'Wire', {
  bannerComment: banner,
  additionalProperties: false,
  declareExternallyReferenced: true,
  enableConstEnums: false,
  strictIndexSignatures: false,
  format: true,
  style: { singleQuote: true, trailingComma: 'none', printWidth: 100 },
  unknownAny: true
});
process.stdout.write(ts);
