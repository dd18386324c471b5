// Legacy story model, generation G2 ("story v2", `@ekairos/story`, ≈Nov 2025–Feb 2026):
// `context_contexts`, `context_events`, `story_executions`, `story_steps`, `story_parts`
// and `document_documents`. The original packages/story/src/schema.ts is not public; this
// is the reconstruction (direct G2 usage, G1 history and the V1 rename). Link keys are
// camelCase names chosen here; the labels are the ones the legacy runtime used.
// `context_contexts.type` is a G1 leftover that may linger in some apps.
// The esolbay-only `context_events.emails` / `context_events.whatsappMessages` links are
// omitted: their target namespaces are app-specific.
// No link declares `onDelete`.

import { i } from "@instantdb/core";

const _schema = i.schema({
  entities: {
    context_contexts: i.entity({
      createdAt: i.date(),
      updatedAt: i.date().optional(),
      key: i.string().unique().indexed().optional(),
      // open | streaming | closed (G1: open | executing)
      status: i.string().indexed().optional(),
      content: i.any().optional(),
      type: i.string().optional(),
    }),
    context_events: i.entity({
      // web | whatsapp | email
      channel: i.string().indexed(),
      createdAt: i.date().indexed(),
      // user.message | assistant.message | system.message
      type: i.string().indexed().optional(),
      // { parts: [...] }
      content: i.any().optional(),
      // stored | pending | completed
      status: i.string().indexed().optional(),
    }),
    story_executions: i.entity({
      createdAt: i.date(),
      updatedAt: i.date().optional(),
      // executing | completed | failed
      status: i.string().indexed().optional(),
      workflowRunId: i.string().indexed().optional(),
    }),
    story_steps: i.entity({
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
    story_parts: i.entity({
      // `<stepId>:<idx>`
      key: i.string().unique().indexed(),
      stepId: i.string().indexed(),
      idx: i.number().indexed(),
      type: i.string().indexed().optional(),
      part: i.any().optional(),
      updatedAt: i.date().optional(),
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
    contextEventsContext: {
      forward: { on: "context_events", has: "one", label: "context" },
      reverse: { on: "context_contexts", has: "many", label: "events" },
    },
    storyExecutionsContext: {
      forward: { on: "story_executions", has: "one", label: "context" },
      reverse: { on: "context_contexts", has: "many", label: "executions" },
    },
    contextContextsCurrentExecution: {
      forward: { on: "context_contexts", has: "one", label: "currentExecution" },
      reverse: { on: "story_executions", has: "one", label: "currentOf" },
    },
    storyExecutionsTrigger: {
      forward: { on: "story_executions", has: "one", label: "trigger" },
      reverse: { on: "context_events", has: "many", label: "executionsAsTrigger" },
    },
    storyExecutionsReaction: {
      forward: { on: "story_executions", has: "one", label: "reaction" },
      reverse: { on: "context_events", has: "many", label: "executionsAsReaction" },
    },
    storyStepsExecution: {
      forward: { on: "story_steps", has: "one", label: "execution" },
      reverse: { on: "story_executions", has: "many", label: "steps" },
    },
    storyPartsStep: {
      forward: { on: "story_parts", has: "one", label: "step" },
      reverse: { on: "story_steps", has: "many", label: "parts" },
    },
    contextEventsExecution: {
      forward: { on: "context_events", has: "one", label: "execution" },
      reverse: { on: "story_executions", has: "many", label: "items" },
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
