// Thread V1 target model (`@ekairos/thread`, packages/thread/src/schema.ts @c703fe3,
// identical @18c81d4; published as 1.22.0): the six `thread_*` core entities, the three
// trace entities and `document_documents` (linked to the system `$files`), with their links.
// No link declares `onDelete`.
//
// `document_documents` is unchanged from the legacy model; its flags (all optional;
// name, ownerId, orgId, createdAt and processedAt indexed) follow the thread package.

import { i } from "@instantdb/core";

const _schema = i.schema({
  entities: {
    thread_threads: i.entity({
      createdAt: i.date(),
      updatedAt: i.date().optional(),
      key: i.string().unique().indexed().optional(),
      name: i.string().optional(),
      // open | streaming | closed | failed
      status: i.string().indexed().optional(),
    }),
    thread_contexts: i.entity({
      createdAt: i.date(),
      updatedAt: i.date().optional(),
      // indexed so `$like` prefix queries over keys work
      key: i.string().unique().indexed().optional(),
      // open | streaming | closed
      status: i.string().indexed().optional(),
      content: i.any().optional(),
    }),
    thread_items: i.entity({
      channel: i.string().indexed(),
      createdAt: i.date().indexed(),
      type: i.string().indexed().optional(),
      content: i.any().optional(),
      status: i.string().indexed().optional(),
    }),
    thread_executions: i.entity({
      createdAt: i.date(),
      updatedAt: i.date().optional(),
      // executing | completed | failed
      status: i.string().indexed().optional(),
      workflowRunId: i.string().indexed().optional(),
    }),
    thread_steps: i.entity({
      createdAt: i.date().indexed(),
      updatedAt: i.date().optional(),
      // running | completed | failed
      status: i.string().indexed().optional(),
      iteration: i.number().indexed(),
      executionId: i.string().indexed(),
      triggerEventId: i.string().indexed().optional(),
      reactionEventId: i.string().indexed().optional(),
      eventId: i.string().indexed(),
      toolCalls: i.any().optional(),
      toolExecutionResults: i.any().optional(),
      continueLoop: i.boolean().optional(),
      errorText: i.string().optional(),
    }),
    thread_parts: i.entity({
      // `<stepId>:<idx>`
      key: i.string().unique().indexed(),
      stepId: i.string().indexed(),
      idx: i.number().indexed(),
      type: i.string().indexed().optional(),
      part: i.any().optional(),
      updatedAt: i.date().optional(),
    }),
    thread_trace_events: i.entity({
      // `<workflowRunId>:<eventId>`
      key: i.string().unique().indexed(),
      workflowRunId: i.string().indexed(),
      seq: i.number().indexed(),
      eventId: i.string().indexed(),
      eventKind: i.string().indexed(),
      eventAt: i.date().optional(),
      ingestedAt: i.date().optional(),
      orgId: i.string().indexed().optional(),
      projectId: i.string().indexed().optional(),
      contextKey: i.string().indexed().optional(),
      contextId: i.string().indexed().optional(),
      executionId: i.string().indexed().optional(),
      stepId: i.string().indexed().optional(),
      contextEventId: i.string().indexed().optional(),
      toolCallId: i.string().indexed().optional(),
      partKey: i.string().indexed().optional(),
      spanId: i.string().indexed().optional(),
      parentSpanId: i.string().indexed().optional(),
      aiProvider: i.string().indexed().optional(),
      aiModel: i.string().indexed().optional(),
      partIdx: i.number().indexed().optional(),
      isDeleted: i.boolean().optional(),
      promptTokens: i.number().optional(),
      promptTokensCached: i.number().optional(),
      promptTokensUncached: i.number().optional(),
      completionTokens: i.number().optional(),
      totalTokens: i.number().optional(),
      latencyMs: i.number().optional(),
      cacheCostUsd: i.number().optional(),
      computeCostUsd: i.number().optional(),
      costUsd: i.number().optional(),
      payload: i.any().optional(),
    }),
    thread_trace_runs: i.entity({
      workflowRunId: i.string().unique().indexed(),
      orgId: i.string().indexed().optional(),
      projectId: i.string().indexed().optional(),
      firstEventAt: i.date().indexed().optional(),
      lastEventAt: i.date().indexed().optional(),
      lastIngestedAt: i.date().indexed().optional(),
      eventsCount: i.number().optional(),
      status: i.string().indexed().optional(),
      payload: i.any().optional(),
    }),
    thread_trace_spans: i.entity({
      spanId: i.string().unique().indexed(),
      parentSpanId: i.string().indexed().optional(),
      workflowRunId: i.string().indexed(),
      executionId: i.string().indexed().optional(),
      stepId: i.string().indexed().optional(),
      kind: i.string().indexed().optional(),
      name: i.string().indexed().optional(),
      status: i.string().indexed().optional(),
      startedAt: i.date().indexed().optional(),
      endedAt: i.date().indexed().optional(),
      durationMs: i.number().optional(),
      payload: i.any().optional(),
    }),
    document_documents: i.entity({
      name: i.string().indexed().optional(),
      mimeType: i.string().optional(),
      size: i.number().optional(),
      ownerId: i.string().indexed().optional(),
      orgId: i.string().indexed().optional(),
      createdAt: i.date().indexed().optional(),
      processedAt: i.date().indexed().optional(),
      updatedAt: i.date().optional(),
      lastJobId: i.string().optional(),
      content: i.json().optional(),
    }),
    // System namespace, declared without attributes (its `path`/`url` belong to Instant)
    // so that the `documentFile` link's reverse side names a declared entity.
    $files: i.entity({}),
  },
  links: {
    threadContextsThread: {
      forward: { on: "thread_contexts", has: "one", label: "thread" },
      reverse: { on: "thread_threads", has: "many", label: "contexts" },
    },
    threadItemsThread: {
      forward: { on: "thread_items", has: "one", label: "thread" },
      reverse: { on: "thread_threads", has: "many", label: "items" },
    },
    threadItemsContext: {
      forward: { on: "thread_items", has: "one", label: "context" },
      reverse: { on: "thread_contexts", has: "many", label: "items" },
    },
    threadExecutionsContext: {
      forward: { on: "thread_executions", has: "one", label: "context" },
      reverse: { on: "thread_contexts", has: "many", label: "executions" },
    },
    threadExecutionsThread: {
      forward: { on: "thread_executions", has: "one", label: "thread" },
      reverse: { on: "thread_threads", has: "many", label: "executions" },
    },
    threadContextsCurrentExecution: {
      forward: { on: "thread_contexts", has: "one", label: "currentExecution" },
      reverse: { on: "thread_executions", has: "one", label: "currentOf" },
    },
    threadExecutionsTrigger: {
      forward: { on: "thread_executions", has: "one", label: "trigger" },
      reverse: { on: "thread_items", has: "many", label: "executionsAsTrigger" },
    },
    threadExecutionsReaction: {
      forward: { on: "thread_executions", has: "one", label: "reaction" },
      reverse: { on: "thread_items", has: "many", label: "executionsAsReaction" },
    },
    threadStepsExecution: {
      forward: { on: "thread_steps", has: "one", label: "execution" },
      reverse: { on: "thread_executions", has: "many", label: "steps" },
    },
    threadExecutionItems: {
      forward: { on: "thread_items", has: "one", label: "execution" },
      reverse: { on: "thread_executions", has: "many", label: "items" },
    },
    threadPartsStep: {
      forward: { on: "thread_parts", has: "one", label: "step" },
      reverse: { on: "thread_steps", has: "many", label: "parts" },
    },
    documentFile: {
      forward: { on: "document_documents", has: "one", label: "file" },
      reverse: { on: "$files", has: "one", label: "document" },
    },
  },
  rooms: {},
});

// This helps TypeScript display nicer intellisense
type _AppSchema = typeof _schema;
interface AppSchema extends _AppSchema {}
const schema: AppSchema = _schema;

export type { AppSchema };
export default schema;
