// Conformance of `threadmig serve` with the official InstantDB clients (`@instantdb/platform`,
// `@instantdb/admin`, versions pinned in the root package-lock.json).
//
// Every expected body here is derived from the InstantDB server source (github:instantdb/instant,
// paths cited per case) and from ../shared/reference/instant-api.md, never from this engine's
// output. Server-generated values (ids, tx ids) are placeholders; everything else is compared
// whole with deepStrictEqual.
//
// The cases run in order and share one server and one temporary app: the schema pushed first
// is what the transact and query cases write against.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { init, lookup } from '@instantdb/admin';
import { PlatformApi } from '@instantdb/platform';
import { ANY_INT, ANY_UUID, assertApiError, assertShape, byId, echoedSecret, isUuid } from './expect.mjs';
import { changedThreadV1, loadThreadV1, toDsl } from './schemas.mjs';
import { startServer } from './server.mjs';

const DAY_MS = 24 * 60 * 60 * 1000;

// `model/schema.clj` `defs->schema`: only these value types become `checked-data-type`.
const CHECKED_TYPES = new Set(['string', 'number', 'boolean', 'date']);

let server;
let apiURI;
let threadV1;
/** `{id, adminToken, ...}` of the temporary app everything below writes to. */
let app;
let platform;
let db;

async function rawSchema(appId, token) {
  // `GET /superadmin/apps/:id/schema` (the route `schemaPush` itself reads) keeps attr ids,
  // which the SDK's converted schema drops.
  const res = await fetch(`${apiURI}/superadmin/apps/${appId}/schema`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200, `GET /superadmin/apps/${appId}/schema`);
  const body = await res.json();
  return body.schema;
}

function describeStep(step) {
  return step.friendlyDescription;
}

function sortSteps(steps) {
  return [...steps].sort((a, b) => describeStep(a).localeCompare(describeStep(b)));
}

// Plan step groups in the order `schemas->ops` emits them: new-namespace ids, blobs, refs.
function stepGroup(step) {
  if (step.type === 'add-attr' && step.attr['forward-identity'][2] === 'id' && step.attr['value-type'] === 'blob') {
    return 0;
  }
  if (step.type === 'add-attr' && step.attr['value-type'] === 'ref') {
    return 2;
  }
  return 1;
}

function assertGroupOrder(steps) {
  const groups = steps.map(stepGroup);
  assert.deepStrictEqual(groups, [...groups].sort(), `steps grouped ids, blobs, refs: ${steps.map(describeStep).join(' | ')}`);
}

/** The `add-attr` steps the server plans for a schema pushed onto an app without it. */
function expectedAddAttrSteps(dsl) {
  const steps = [];
  for (const [etype, entity] of Object.entries(dsl.entities)) {
    const attrs = Object.entries(entity.attrs);
    // An entity with no attributes is dropped from `blobs`, so it gets no `id` attribute.
    if (attrs.length === 0) {
      continue;
    }
    steps.push({
      type: 'add-attr',
      friendlyDescription: `Create new entity ${etype}.id.`,
      attr: {
        'value-type': 'blob',
        cardinality: 'one',
        id: ANY_UUID,
        'forward-identity': [ANY_UUID, etype, 'id'],
        'unique?': true,
        'index?': false,
      },
    });
    for (const [label, def] of attrs) {
      steps.push({
        type: 'add-attr',
        friendlyDescription: `Add attribute ${etype}.${label}.`,
        attr: {
          'value-type': 'blob',
          cardinality: 'one',
          id: ANY_UUID,
          'forward-identity': [ANY_UUID, etype, label],
          'unique?': Boolean(def.config.unique),
          'index?': Boolean(def.config.indexed),
          'required?': def.required === true,
          ...(CHECKED_TYPES.has(def.valueType) ? { 'checked-data-type': def.valueType } : {}),
        },
      });
    }
  }
  for (const { forward, reverse } of Object.values(dsl.links)) {
    steps.push({
      type: 'add-attr',
      friendlyDescription: `Link ${forward.on}.${forward.label} to ${reverse.on}.${reverse.label}.`,
      attr: {
        'value-type': 'ref',
        id: ANY_UUID,
        'forward-identity': [ANY_UUID, forward.on, forward.label],
        'reverse-identity': [ANY_UUID, reverse.on, reverse.label],
        cardinality: forward.has,
        'unique?': reverse.has === 'one',
        'index?': false,
        'required?': forward.required === true,
        'on-delete': forward.onDelete ?? null,
        'on-delete-reverse': reverse.onDelete ?? null,
      },
    });
  }
  return steps;
}

before(async () => {
  threadV1 = await loadThreadV1();
  server = await startServer();
  apiURI = server.apiURI;
});

after(async () => {
  await server?.stop();
});

describe('threadmig serve with @instantdb/platform and @instantdb/admin', { concurrency: 1 }, () => {
  // ---------------------------------------------------------------------------------------
  // Temporary apps (dash/ephemeral_app.clj http-post-handler; platform api.ts createTemporaryApp)

  test('createTemporaryApp without auth returns the app, its admin token and a 14-day expiry', async () => {
    const res = await new PlatformApi({ apiURI }).createTemporaryApp({ title: 'threadmig conformance' });
    app = res.app;
    platform = new PlatformApi({ auth: { token: app.adminToken }, apiURI });
    db = init({ appId: app.id, adminToken: app.adminToken, apiURI });

    const createdAt = res.app.createdAt.getTime();
    assert.ok(Number.isInteger(createdAt), 'createdAt is a valid date');
    // `app-expires-ms` adds 14 days to the stored created_at, while the response writes
    // created_at through cheshire's default date format (whole seconds): the expiry is
    // created_at + 14 days plus the sub-second part the ISO string drops.
    const expiryOffset = res.expiresMs - (createdAt + 14 * DAY_MS);
    assert.ok(
      Number.isInteger(res.expiresMs) && expiryOffset >= 0 && expiryOffset < 1000,
      `expiresMs ${res.expiresMs} is created_at ${createdAt} + 14 days (+ <1 s)`,
    );
    assertShape(
      { ...res, app: { ...res.app, createdAt } },
      {
        app: { id: ANY_UUID, title: 'threadmig conformance', createdAt, orgId: null, adminToken: ANY_UUID },
        expiresMs: res.expiresMs,
      },
    );
    assert.notEqual(res.app.id, res.app.adminToken);
  });

  test('createTemporaryApp without a title is param-missing', async () => {
    // `ex/get-param!` on [:body :title] -> `throw-missing-param!`.
    await assertApiError(new PlatformApi({ apiURI }).createTemporaryApp({}), 400, {
      type: 'param-missing',
      message: 'Missing parameter: ["body" "title"]',
      hint: { in: ['body', 'title'] },
    });
  });

  // ---------------------------------------------------------------------------------------
  // Schema push and plan (model/schema.clj schemas->ops, apply-plan!; platform api.ts schemaPush)

  test('schemaPush applies thread V1: one add-attr per namespace, attribute and link, no jobs', async () => {
    const dsl = toDsl(threadV1);
    const result = await platform.schemaPush(app.id, { schema: threadV1 });
    const expected = expectedAddAttrSteps(dsl);
    assertShape(sortSteps(result.steps), sortSteps(expected));
    assertGroupOrder(result.steps);
    const n = expected.length;
    assert.deepStrictEqual(
      {
        friendlyDescription: result.summary.friendlyDescription,
        totalCount: result.summary.totalCount,
        inProgressCount: result.summary.inProgressCount,
        completedCount: result.summary.completedCount,
        errorCount: result.summary.errorCount,
      },
      {
        friendlyDescription: `Finished ${n} schema operations.`,
        totalCount: n,
        inProgressCount: 0,
        completedCount: n,
        errorCount: 0,
      },
    );

    // The schema read back (`GET /superadmin/apps/:id/schema`) holds every attribute with the
    // pushed flags; an untyped attribute comes back as `i.any()`, whose valueType is `json`.
    const pulled = toDsl(result.newSchema);
    for (const [etype, entity] of Object.entries(dsl.entities)) {
      for (const [label, def] of Object.entries(entity.attrs)) {
        const got = pulled.entities[etype]?.attrs?.[label];
        assert.ok(got, `pulled schema has ${etype}.${label}`);
        assert.deepStrictEqual(
          { valueType: got.valueType, required: got.required, config: got.config },
          {
            valueType: CHECKED_TYPES.has(def.valueType) ? def.valueType : 'json',
            required: def.required,
            config: { indexed: def.config.indexed, unique: def.config.unique },
          },
          `${etype}.${label}`,
        );
      }
    }
    const pulledLinks = Object.values(pulled.links).map(({ forward, reverse }) => ({
      forward: { on: forward.on, label: forward.label, has: forward.has },
      reverse: { on: reverse.on, label: reverse.label, has: reverse.has },
    }));
    for (const { forward, reverse } of Object.values(dsl.links)) {
      const want = {
        forward: { on: forward.on, label: forward.label, has: forward.has },
        reverse: { on: reverse.on, label: reverse.label, has: reverse.has },
      };
      assert.ok(
        pulledLinks.some((l) => JSON.stringify(l) === JSON.stringify(want)),
        `pulled schema has link ${JSON.stringify(want)}`,
      );
    }
  });

  test('schemaPush of the same schema again plans nothing', async () => {
    const result = await platform.schemaPush(app.id, { schema: threadV1 });
    assert.deepStrictEqual(result.steps, []);
    assert.equal(result.summary.friendlyDescription, 'Finished 0 schema operations.');
  });

  test('planSchemaPush on a changed schema plans add, index, remove-index, required, type and link steps, and applies nothing', async () => {
    const before = await rawSchema(app.id, app.adminToken);
    const attr = (etype, label) => before.blobs[etype][label];
    const jobStep = (type, description, etype, label, extra = {}) => ({
      type,
      friendlyDescription: description,
      attrId: attr(etype, label).id,
      forwardIdentity: attr(etype, label)['forward-identity'],
      ...extra,
    });

    const plan = await platform.planSchemaPush(app.id, { schema: changedThreadV1(threadV1) });
    const expected = [
      {
        type: 'add-attr',
        friendlyDescription: 'Create new entity thread_tags.id.',
        attr: {
          'value-type': 'blob',
          cardinality: 'one',
          id: ANY_UUID,
          'forward-identity': [ANY_UUID, 'thread_tags', 'id'],
          'unique?': true,
          'index?': false,
        },
      },
      {
        type: 'add-attr',
        friendlyDescription: 'Add attribute thread_tags.label.',
        attr: {
          'value-type': 'blob',
          cardinality: 'one',
          id: ANY_UUID,
          'forward-identity': [ANY_UUID, 'thread_tags', 'label'],
          'unique?': true,
          'index?': true,
          'required?': true,
          'checked-data-type': 'string',
        },
      },
      {
        type: 'add-attr',
        friendlyDescription: 'Add attribute thread_threads.summary.',
        attr: {
          'value-type': 'blob',
          cardinality: 'one',
          id: ANY_UUID,
          'forward-identity': [ANY_UUID, 'thread_threads', 'summary'],
          'unique?': false,
          'index?': false,
          'required?': false,
          'checked-data-type': 'string',
        },
      },
      jobStep('index', 'Add index to thread_threads.name.', 'thread_threads', 'name'),
      jobStep('required', 'Make thread_threads.updatedAt a required attribute.', 'thread_threads', 'updatedAt'),
      jobStep('remove-index', 'Remove index from thread_items.type.', 'thread_items', 'type'),
      jobStep(
        'check-data-type',
        'Enforce data type of thread_steps.errorText as type number.',
        'thread_steps',
        'errorText',
        { checkedDataType: 'number' },
      ),
      {
        type: 'add-attr',
        friendlyDescription: 'Link thread_tags.threads to thread_threads.tags.',
        attr: {
          'value-type': 'ref',
          id: ANY_UUID,
          'forward-identity': [ANY_UUID, 'thread_tags', 'threads'],
          'reverse-identity': [ANY_UUID, 'thread_threads', 'tags'],
          cardinality: 'many',
          'unique?': false,
          'index?': false,
          'required?': false,
          'on-delete': null,
          'on-delete-reverse': null,
        },
      },
    ];
    assertShape(sortSteps(plan.steps), sortSteps(expected));
    assertGroupOrder(plan.steps);

    // A plan writes nothing.
    const afterPlan = await rawSchema(app.id, app.adminToken);
    assert.equal(afterPlan.blobs.thread_tags, undefined, 'thread_tags not created');
    assert.equal(afterPlan.blobs.thread_threads.summary, undefined, 'summary not created');
    assert.equal(afterPlan.blobs.thread_threads.name['index?'], false, 'name still unindexed');
  });

  test("planSchemaPush with another app's admin token is refused", async () => {
    // superadmin/routes.clj req->superadmin-app!: admin token bound to a single app.
    const other = await new PlatformApi({ apiURI }).createTemporaryApp({ title: 'other app' });
    await assertApiError(platform.planSchemaPush(other.app.id, { schema: threadV1 }), 400, {
      type: 'validation-failed',
      message:
        `This admin token does not belong to app ${other.app.id}. Admin tokens are bound to a single app.` +
        ' Use a personal access token to manage other apps.',
      hint: { reason: 'admin-token-mismatch' },
    });
  });

  // ---------------------------------------------------------------------------------------
  // Transact (admin/model.clj, db/transaction.clj, db/model/triple.clj) and read-back.
  //
  // Query rows hold every cardinality-one attribute with a triple (util/instaql.clj obj-node,
  // db/model/entity.clj triples->map, attr.clj ea-ids-for-etype). Creating an entity writes a
  // null triple for each *indexed* blob attribute it does not set (triple.clj insert-multi!
  // indexed-null-triples), so those come back as `null`; unset non-indexed ones are absent. A
  // forward has-one link is a cardinality-one attribute too: unless requested as a child, it
  // comes back as the linked id.

  const threads = {
    alpha: { id: randomUUID(), createdAt: 1_700_000_000_000, key: 'alpha', name: 'Alpha', status: 'open' },
    beta: { id: randomUUID(), createdAt: 1_700_000_001_000, key: 'beta', name: 'Beta', status: 'closed' },
    gamma: { id: randomUUID(), createdAt: 1_700_000_002_000, key: 'gamma' },
  };

  test('update creates entities and returns {"tx-id"}; query reads them back with indexed nulls', async () => {
    const res = await db.transact(
      Object.values(threads).map(({ id, ...attrs }) => db.tx.thread_threads[id].update(attrs)),
    );
    assertShape(res, { 'tx-id': ANY_INT });

    const got = await db.query({
      thread_threads: { $: { where: { key: { $in: ['alpha', 'beta', 'gamma'] } } } },
    });
    assert.deepStrictEqual(got, {
      thread_threads: byId([
        threads.alpha,
        threads.beta,
        { ...threads.gamma, status: null },
      ]),
    });
  });

  test('update replaces values, merge deep-merges json (null removes a key)', async () => {
    const ctx = randomUUID();
    await db.transact(
      db.tx.thread_contexts[ctx].update({
        createdAt: 5,
        key: 'ctx-merge',
        content: { a: 1, nested: { x: 1, y: 2 }, list: [1, 2] },
      }),
    );
    await db.transact(
      db.tx.thread_contexts[ctx].merge({ content: { nested: { y: null, z: 3 }, list: [3], b: 'two' } }),
    );
    await db.transact(db.tx.thread_contexts[ctx].update({ status: 'open', createdAt: 6 }));

    const got = await db.query({ thread_contexts: { $: { where: { key: 'ctx-merge' } } } });
    assert.deepStrictEqual(got, {
      thread_contexts: [
        {
          id: ctx,
          createdAt: 6,
          key: 'ctx-merge',
          status: 'open',
          content: { a: 1, nested: { x: 1, z: 3 }, list: [3], b: 'two' },
        },
      ],
    });
  });

  test('lookup: update through a unique attribute creates, then updates the same entity; link values take lookups', async () => {
    await db.transact(db.tx.thread_threads[lookup('key', 'lk')].update({ createdAt: 10, name: 'first' }));
    await db.transact(db.tx.thread_threads[lookup('key', 'lk')].update({ name: 'second' }));
    const first = await db.query({ thread_threads: { $: { where: { key: 'lk' } } } });
    assertShape(first, {
      thread_threads: [{ id: ANY_UUID, createdAt: 10, key: 'lk', name: 'second', status: null }],
    });
    const lk = first.thread_threads[0];

    const ctx = randomUUID();
    await db.transact(
      db.tx.thread_contexts[ctx].update({ createdAt: 11, key: 'ctx-lk' }).link({ thread: lookup('key', 'lk') }),
    );
    const withoutChild = await db.query({ thread_contexts: { $: { where: { key: 'ctx-lk' } } } });
    assert.deepStrictEqual(withoutChild, {
      thread_contexts: [{ id: ctx, createdAt: 11, key: 'ctx-lk', status: null, thread: lk.id }],
    });
    const withChild = await db.query({ thread_contexts: { $: { where: { key: 'ctx-lk' } }, thread: {} } });
    assert.deepStrictEqual(withChild, {
      thread_contexts: [{ id: ctx, createdAt: 11, key: 'ctx-lk', status: null, thread: [lk] }],
    });
  });

  const nest = {
    thread: { id: randomUUID(), createdAt: 20, key: 'nest-thread', name: 'Nest' },
    ctx: { id: randomUUID(), createdAt: 21, key: 'nest-ctx' },
    items: [
      { id: randomUUID(), channel: 'web', createdAt: 22, type: 'message' },
      { id: randomUUID(), channel: 'web', createdAt: 23, type: 'message' },
    ],
  };
  const nestThreadRow = () => ({ ...nest.thread, status: null });
  const nestCtxRow = () => ({ ...nest.ctx, status: null });
  const nestItemRow = (item) => ({ ...item, status: null });

  test('link from the forward and the reverse side; nested queries follow links both ways', async () => {
    const { id: threadId, ...threadAttrs } = nest.thread;
    const { id: ctxId, ...ctxAttrs } = nest.ctx;
    await db.transact([
      // `contexts` is the reverse label of thread_contexts.thread.
      db.tx.thread_threads[threadId].update(threadAttrs).link({ contexts: ctxId }),
      db.tx.thread_contexts[ctxId].update(ctxAttrs),
      ...nest.items.map(({ id, ...attrs }) =>
        db.tx.thread_items[id].update(attrs).link({ thread: threadId, context: ctxId }),
      ),
    ]);

    const forward = await db.query({
      thread_items: {
        $: { where: { 'thread.key': 'nest-thread' } },
        thread: {},
        context: { thread: {} },
      },
    });
    assert.deepStrictEqual(forward, {
      thread_items: byId(
        nest.items.map((item) => ({
          ...nestItemRow(item),
          thread: [nestThreadRow()],
          context: [{ ...nestCtxRow(), thread: [nestThreadRow()] }],
        })),
      ),
    });

    const reverse = await db.query({
      thread_threads: { $: { where: { key: 'nest-thread' } }, contexts: { items: {} }, items: {} },
    });
    const itemRow = (item) => ({ ...nestItemRow(item), thread: threadId, context: ctxId });
    assert.deepStrictEqual(reverse, {
      thread_threads: [
        {
          ...nestThreadRow(),
          contexts: [{ ...nestCtxRow(), thread: threadId, items: byId(nest.items.map(itemRow)) }],
          items: byId(nest.items.map(itemRow)),
        },
      ],
    });
  });

  test('delete removes the entity and the links to it; delete through a lookup; a missing lookup is a no-op', async () => {
    const [kept, removed] = nest.items;
    assertShape(await db.transact(db.tx.thread_items[removed.id].delete()), { 'tx-id': ANY_INT });
    const got = await db.query({ thread_threads: { $: { where: { key: 'nest-thread' } }, items: {} } });
    assert.deepStrictEqual(got, {
      thread_threads: [
        { ...nestThreadRow(), items: [{ ...nestItemRow(kept), thread: nest.thread.id, context: nest.ctx.id }] },
      ],
    });
    assert.deepStrictEqual(await db.query({ thread_items: { $: { where: { id: removed.id } } } }), {
      thread_items: [],
    });

    await db.transact(db.tx.thread_threads[lookup('key', 'gamma')].delete());
    assert.deepStrictEqual(await db.query({ thread_threads: { $: { where: { key: 'gamma' } } } }), {
      thread_threads: [],
    });
    assertShape(await db.transact(db.tx.thread_threads[lookup('key', 'no-such-key')].delete()), {
      'tx-id': ANY_INT,
    });
  });

  // ---------------------------------------------------------------------------------------
  // InstaQL (db/instaql.clj, db/datalog.clj, util/instaql.clj). Fixtures written in one
  // transaction share serverCreatedAt, so the default order is by id.

  const exec = { id: randomUUID(), createdAt: 100, status: 'executing', workflowRunId: 'wf-q' };
  const otherExec = { id: randomUUID(), createdAt: 101, status: 'completed', workflowRunId: 'wf-other' };
  const stepStatus = ['completed', 'completed', 'completed', 'failed', undefined];
  const steps = stepStatus.map((status, idx) => ({
    id: randomUUID(),
    createdAt: 200 + idx,
    iteration: idx + 1,
    executionId: 'exec-q',
    eventId: `e${idx + 1}`,
    ...(status ? { status } : {}),
    ...(idx === 3 ? { errorText: 'boom' } : {}),
  }));
  const otherStep = {
    id: randomUUID(),
    createdAt: 206,
    iteration: 3,
    executionId: 'exec-other',
    eventId: 'e6',
    status: 'completed',
  };
  const parts = [
    { id: randomUUID(), key: 's1:0', stepId: 's1', idx: 0, type: 'text', step: 0 },
    { id: randomUUID(), key: 's1:1', stepId: 's1', idx: 1, step: 0 },
    { id: randomUUID(), key: 's4:0', stepId: 's4', idx: 0, type: 'tool', step: 3 },
  ];
  // Rows as queried without children: indexed unset attributes are null, and the has-one
  // `execution` / `step` links come back as ids.
  const execRow = () => ({ ...exec });
  const stepRow = (s, execId = exec.id) => ({
    status: null,
    triggerEventId: null,
    reactionEventId: null,
    ...s,
    execution: execId,
  });
  const partRow = ({ step, ...p }) => ({ type: null, ...p, step: steps[step].id });
  const S = (n) => stepRow(steps[n - 1]);

  test('seed query fixtures in one transaction', async () => {
    const { id: execId, ...execAttrs } = exec;
    const { id: otherExecId, ...otherExecAttrs } = otherExec;
    const { id: otherStepId, ...otherStepAttrs } = otherStep;
    const res = await db.transact([
      db.tx.thread_executions[execId].update(execAttrs),
      db.tx.thread_executions[otherExecId].update(otherExecAttrs),
      ...steps.map(({ id, ...attrs }) => db.tx.thread_steps[id].update(attrs).link({ execution: execId })),
      db.tx.thread_steps[otherStepId].update(otherStepAttrs).link({ execution: otherExecId }),
      ...parts.map(({ id, step, ...attrs }) => db.tx.thread_parts[id].update(attrs).link({ step: steps[step].id })),
    ]);
    assertShape(res, { 'tx-id': ANY_INT });
  });

  test('where: equality on an attribute', async () => {
    assert.deepStrictEqual(await db.query({ thread_steps: { $: { where: { eventId: 'e2' } } } }), {
      thread_steps: [S(2)],
    });
  });

  test('where: dotted paths through one and two links', async () => {
    assert.deepStrictEqual(await db.query({ thread_parts: { $: { where: { 'step.status': 'failed' } } } }), {
      thread_parts: [partRow(parts[2])],
    });
    assert.deepStrictEqual(
      await db.query({ thread_parts: { $: { where: { 'step.execution.workflowRunId': 'wf-q' } } } }),
      { thread_parts: byId(parts.map(partRow)) },
    );
  });

  test('where: $in', async () => {
    assert.deepStrictEqual(
      await db.query({ thread_steps: { $: { where: { eventId: { $in: ['e2', 'e4', 'missing'] } } } } }),
      { thread_steps: byId([S(2), S(4)]) },
    );
  });

  test('where: $isNull true (indexed null) and false (non-indexed, set)', async () => {
    assert.deepStrictEqual(
      await db.query({ thread_steps: { $: { where: { executionId: 'exec-q', status: { $isNull: true } } } } }),
      { thread_steps: [S(5)] },
    );
    assert.deepStrictEqual(
      await db.query({ thread_steps: { $: { where: { executionId: 'exec-q', errorText: { $isNull: false } } } } }),
      { thread_steps: [S(4)] },
    );
  });

  test('where: $not also matches a missing value', async () => {
    assert.deepStrictEqual(
      await db.query({ thread_steps: { $: { where: { executionId: 'exec-q', status: { $not: 'completed' } } } } }),
      { thread_steps: byId([S(4), S(5)]) },
    );
  });

  test('where: $gt on an indexed, typed attribute', async () => {
    assert.deepStrictEqual(
      await db.query({ thread_steps: { $: { where: { executionId: 'exec-q', iteration: { $gt: 3 } } } } }),
      { thread_steps: byId([S(4), S(5)]) },
    );
  });

  test('where: $like on an indexed string attribute', async () => {
    assert.deepStrictEqual(await db.query({ thread_parts: { $: { where: { key: { $like: 's1:%' } } } } }), {
      thread_parts: byId([partRow(parts[0]), partRow(parts[1])]),
    });
  });

  test('order: asc and desc on an indexed typed number, desc on an indexed date', async () => {
    const q = (order) => db.query({ thread_steps: { $: { where: { executionId: 'exec-q' }, order } } });
    assert.deepStrictEqual(await q({ iteration: 'asc' }), { thread_steps: [S(1), S(2), S(3), S(4), S(5)] });
    assert.deepStrictEqual(await q({ iteration: 'desc' }), { thread_steps: [S(5), S(4), S(3), S(2), S(1)] });
    assert.deepStrictEqual(await q({ createdAt: 'desc' }), { thread_steps: [S(5), S(4), S(3), S(2), S(1)] });
  });

  test('limit and offset', async () => {
    assert.deepStrictEqual(
      await db.query({
        thread_steps: { $: { where: { executionId: 'exec-q' }, order: { iteration: 'asc' }, limit: 2, offset: 1 } },
      }),
      { thread_steps: [S(2), S(3)] },
    );
  });

  test('nested links: reverse labels two levels down (child order in memory) and forward labels up', async () => {
    const down = await db.query({
      thread_executions: {
        $: { where: { workflowRunId: 'wf-q' } },
        steps: { $: { order: { iteration: 'desc' } }, parts: {} },
      },
    });
    const partsOf = (n) => byId(parts.filter((p) => p.step === n - 1).map(partRow));
    assert.deepStrictEqual(down, {
      thread_executions: [
        { ...execRow(), steps: [5, 4, 3, 2, 1].map((n) => ({ ...S(n), parts: partsOf(n) })) },
      ],
    });

    const up = await db.query({ thread_parts: { $: { where: { key: 's4:0' } }, step: { execution: {} } } });
    const { step: _step, ...p3 } = partRow(parts[2]);
    assert.deepStrictEqual(up, {
      thread_parts: [{ ...p3, step: [{ ...S(4), execution: [execRow()] }] }],
    });
  });

  test('unknown namespace returns [], unknown child label returns []', async () => {
    assert.deepStrictEqual(
      await db.query({ no_such_namespace: {}, thread_steps: { $: { where: { eventId: 'e1' } }, noSuchLink: {} } }),
      { no_such_namespace: [], thread_steps: [{ ...S(1), noSuchLink: [] }] },
    );
  });

  // ---------------------------------------------------------------------------------------
  // Error cases: the exact status and envelope (util/http.clj wrap-errors,
  // util/exception.clj constructors).

  test('order by a typed but non-indexed attribute is validation-failed', async () => {
    // db/instaql.clj page-info-of-form.
    const query = { thread_threads: { $: { order: { name: 'asc' } } } };
    const message =
      'The `thread_threads.name` attribute is not indexed. Only indexed and typed attributes can be used to order by.';
    await assertApiError(db.query(query), 400, {
      type: 'validation-failed',
      message: `Validation failed for query: ${message}`,
      hint: {
        'data-type': 'query',
        input: query,
        errors: [{ expected: 'supported-order?', in: ['thread_threads', '$', 'order'], message }],
      },
    });
  });

  test('order by an untyped, non-indexed attribute reports both problems', async () => {
    const query = { thread_steps: { $: { where: { executionId: 'exec-q' }, order: { toolCalls: 'desc' } } } };
    const messages = [
      'The `thread_steps.toolCalls` attribute is not indexed. Only indexed and typed attributes can be used to order by.',
      'The `thread_steps.toolCalls` attribute is not typed. Only typed and indexed attributes can be used to order by.',
    ];
    await assertApiError(db.query(query), 400, {
      type: 'validation-failed',
      message: `Validation failed for query: ${messages.join(', ')}`,
      hint: {
        'data-type': 'query',
        input: query,
        errors: messages.map((message) => ({
          expected: 'supported-order?',
          in: ['thread_steps', '$', 'order'],
          message,
        })),
      },
    });
  });

  test('order by a missing attribute is validation-failed', async () => {
    const query = { thread_threads: { $: { order: { nope: 'asc' } } } };
    const message = 'There is no `nope` attribute for thread_threads.';
    await assertApiError(db.query(query), 400, {
      type: 'validation-failed',
      message: `Validation failed for query: ${message}`,
      hint: {
        'data-type': 'query',
        input: query,
        errors: [{ expected: 'supported-order?', in: ['thread_threads', '$', 'order'], message }],
      },
    });
  });

  test('order with a direction other than asc/desc is validation-failed', async () => {
    // db/instaql.clj coerce-order.
    const query = { thread_steps: { $: { order: { iteration: 'up' } } } };
    const message = 'We only support "asc" or "desc" in the `order` clause. Got "up".';
    await assertApiError(db.query(query), 400, {
      type: 'validation-failed',
      message: `Validation failed for query: ${message}`,
      hint: {
        'data-type': 'query',
        input: query,
        errors: [{ expected: 'valid-direction?', in: ['thread_steps', '$', 'order', 'iteration'], message }],
      },
    });
  });

  test('a wrong admin token is a 400 record-not-found, on query and transact', async () => {
    // admin/routes.clj req->app-id-authed! -> model/app_admin_token.clj fetch!.
    const token = randomUUID();
    const bad = init({ appId: app.id, adminToken: token, apiURI });
    const body = {
      type: 'record-not-found',
      message: 'Record not found: app-admin-token',
      hint: {
        args: [{ 'app-id': app.id, token: echoedSecret(token) }],
        message: 'This admin token may be expired or invalid. Or you may have provided an incorrect app ID.',
        'record-type': 'app-admin-token',
      },
    };
    await assertApiError(bad.query({ thread_threads: {} }), 400, body);
    await assertApiError(bad.transact(bad.tx.thread_threads[randomUUID()].update({ name: 'x' })), 400, body);
  });

  test('an admin token that is not a uuid is param-malformed', async () => {
    // util/http.clj req->bearer-token! -> util/token.clj coerce-token-from-string.
    const bad = init({ appId: app.id, adminToken: 'not-a-token', apiURI });
    await assertApiError(bad.query({ thread_threads: {} }), 400, {
      type: 'param-malformed',
      message: 'Malformed parameter: ["headers" "authorization"]',
      hint: { in: ['headers', 'authorization'], 'original-input': echoedSecret('Bearer not-a-token') },
    });
  });

  test('a non-UUID entity id is validation-failed with the step position', async () => {
    // admin/model.clj check-for-invalid-entity-ids!.
    const message =
      "Invalid entity ID 'not-a-uuid'. Entity IDs must be UUIDs or lookup references.";
    await assertApiError(db.transact(db.tx.thread_threads['not-a-uuid'].update({ name: 'x' })), 400, {
      type: 'validation-failed',
      message: `Validation failed for steps: ${message}`,
      hint: {
        'data-type': 'steps',
        input: [['update', 'thread_threads', 'not-a-uuid', { name: 'x' }]],
        errors: [{ message, in: [0, 2] }],
      },
    });
  });

  test('a duplicate value of a unique attribute is record-not-unique, and nothing is written', async () => {
    // util/exception.clj extract-unique-triple-data (av_index violation on triples).
    const schema = await rawSchema(app.id, app.adminToken);
    const keyAttrId = schema.blobs.thread_threads.key.id;
    assert.ok(isUuid(keyAttrId));
    const id = randomUUID();
    await assertApiError(
      db.transact(db.tx.thread_threads[id].update({ createdAt: 30, key: 'alpha', name: 'duplicate' })),
      400,
      {
        type: 'record-not-unique',
        message:
          '`key` is a unique attribute on `thread_threads` and an entity already exists with `thread_threads.key` = "alpha"',
        hint: {
          'record-type': 'triple',
          'attr-id': keyAttrId,
          etype: 'thread_threads',
          label: 'key',
          value: '"alpha"',
        },
      },
    );
    assert.deepStrictEqual(await db.query({ thread_threads: { $: { where: { id } } } }), { thread_threads: [] });
  });
});
