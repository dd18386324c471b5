// Serialises InstantDB schema files with the real `@instantdb/core`, for conformance
// tests of the native TypeScript loader.
//
// Usage (from the repository root, after `npm ci`):
//
//   node --import tsx tools/node/serialize-schema.mjs <schema.ts> [<schema.ts> ...]
//
// For every path, in argument order, prints exactly one line: `JSON.stringify` of the
// first defined export among `default`, `schema`, `appSchema`, `instantSchema`.
// If a file cannot be imported or has none of those exports, the line is
// `{"$serializeError": "<message>"}`, the message also goes to stderr, and the process
// exits with status 1 after all paths have been handled.

import path from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";

const EXPORT_NAMES = ["default", "schema", "appSchema", "instantSchema"];

function pickSchema(namespace) {
  for (const name of EXPORT_NAMES) {
    if (namespace[name] !== undefined) {
      return namespace[name];
    }
  }
  return undefined;
}

async function serialize(file) {
  const url = pathToFileURL(path.resolve(file)).href;
  const namespace = await import(url);
  const schema = pickSchema(namespace);
  if (schema === undefined) {
    throw new Error(`no export named ${EXPORT_NAMES.join(", ")} is defined`);
  }
  const json = JSON.stringify(schema);
  if (typeof json !== "string") {
    throw new Error("the schema export does not serialise to JSON");
  }
  return json;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write(
    "usage: node --import tsx tools/node/serialize-schema.mjs <schema.ts> [...]\n",
  );
  process.exit(2);
}

let failed = false;
const lines = [];
for (const file of files) {
  try {
    lines.push(await serialize(file));
  } catch (error) {
    failed = true;
    const message = `${file}: ${error instanceof Error ? error.message : String(error)}`;
    process.stderr.write(`serialize-schema: ${message}\n`);
    lines.push(JSON.stringify({ $serializeError: message }));
  }
}

process.stdout.write(lines.map((line) => `${line}\n`).join(""));
process.exitCode = failed ? 1 : 0;
