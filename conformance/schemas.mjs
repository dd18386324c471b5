// The schemas the suite pushes: the thread V1 target model, loaded from the repository's own
// `instant.schema.ts` through tsx (so the SDK sees exactly what `i.schema(...)` builds), and a
// changed copy whose plan exercises every kind of plan step the platform SDK translates.

import path from 'node:path';
import { i } from '@instantdb/core';
import { tsImport } from 'tsx/esm/api';
import { repoRoot } from './server.mjs';

export const threadV1Path = path.join(repoRoot, 'crates', 'instant-schema', 'schemas', 'thread-v1.ts');

export async function loadThreadV1() {
  const mod = await tsImport(threadV1Path, import.meta.url);
  // tsx may hand a TypeScript default export back wrapped once more (CommonJS interop).
  const schema = mod.default?.entities ? mod.default : mod.default?.default;
  if (!schema?.entities || !schema?.links) {
    throw new Error(`${threadV1Path} has no default-exported i.schema(...)`);
  }
  return schema;
}

/** The DSL serialisation, `JSON.stringify(i.schema(...))`, as a plain object. */
export function toDsl(schema) {
  return JSON.parse(JSON.stringify(schema));
}

function attrJson(def) {
  return JSON.parse(JSON.stringify(def));
}

/**
 * Thread V1 with, relative to what was pushed:
 * - a new namespace `thread_tags` (`label`: string, unique, indexed, required),
 * - a new attribute `thread_threads.summary` (optional string),
 * - `thread_threads.name` now indexed, `thread_items.type` no longer indexed,
 * - `thread_threads.updatedAt` now required,
 * - `thread_steps.errorText` typed `number` instead of `string`,
 * - a new many-to-many link `thread_tags.threads <-> thread_threads.tags`.
 */
export function changedThreadV1(v1) {
  const dsl = toDsl(v1);
  const e = dsl.entities;
  e.thread_threads.attrs.summary = attrJson(i.string().optional());
  e.thread_threads.attrs.name = attrJson(i.string().indexed().optional());
  e.thread_threads.attrs.updatedAt = attrJson(i.date());
  e.thread_items.attrs.type = attrJson(i.string().optional());
  e.thread_steps.attrs.errorText = attrJson(i.number().optional());
  e.thread_tags = { attrs: { label: attrJson(i.string().unique().indexed()) }, links: {} };
  dsl.links.threadTagsThreads = {
    forward: { on: 'thread_tags', has: 'many', label: 'threads' },
    reverse: { on: 'thread_threads', has: 'many', label: 'tags' },
  };
  return dsl;
}
