//! Every transform rule and every reject rule, on small hand-written datasets.

use expect_test::expect;
use migration::transform::Options;

use crate::support::{all_bytes, assert_accounting, render, transform};

// Ids: contexts c…, events e…, executions x…, steps s…, parts p… (valid v4 UUIDs).
const C1: &str = "c0000000-0000-4000-8000-000000000001";
const C2: &str = "c0000000-0000-4000-8000-000000000002";
const C3: &str = "c0000000-0000-4000-8000-000000000003";

fn fixture() -> String {
    let c2_upper = C2.to_uppercase();
    format!(
        r#"{{"payload": {{"data": {{
"thread_threads": [{{"id": "7a000000-0000-4000-8000-000000000007", "key": "existing"}}],
"thread_contexts": [{{"id": "7b000000-0000-4000-8000-000000000009", "key": "healed"}}],
"context_contexts": [
  {{"id": "{C1}", "key": "award_1", "status": "STREAMING", "createdAt": "2025-01-01T00:00:00.000Z",
    "content": {{"title": "Award 1", "parts": "x"}}, "currentExecution": [{{"id": "a0000000-0000-4000-8000-000000000001"}}]}},
  {{"id": "{c2_upper}", "status": "failed"}},
  {{"id": "{C3}", "key": "{C2}", "createdAt": 1735689600, "type": "chat"}},
  {{"id": "c0000000-0000-4000-8000-000000000004"}},
  {{"id": "c0000000-0000-4000-8000-000000000005", "key": "dup", "createdAt": 1735689600000, "status": "closed"}},
  {{"id": "c0000000-0000-4000-8000-000000000006", "key": "dup", "createdAt": 1735689600000, "status": "open"}},
  {{"id": "c0000000-0000-4000-8000-000000000007", "key": "existing", "createdAt": 1735689600000, "status": "weird"}},
  {{"id": "c0000000-0000-4000-8000-000000000008", "createdAt": 1735689600000}},
  {{"id": "c0000000-0000-4000-8000-000000000008", "createdAt": 1735689600000}},
  {{"id": "c0000000-0000-4000-8000-000000000009", "key": "healed", "createdAt": 1735689600000, "status": "open"}},
  "just a string",
  {{"key": "no id"}},
  {{"id": "not-a-uuid"}}
],
"context_events": [
  {{"id": "e0000000-0000-4000-8000-000000000001", "type": "user.message", "channel": "whatsapp", "createdAt": 1735689601000,
    "status": "stored", "content": {{"parts": [{{"type": "text", "text": "hola"}}]}}, "context": [{{"id": "{C1}"}}],
    "whatsappMessages": [{{"id": "f0000000-0000-4000-8000-000000000001"}}, {{"id": "not-a-uuid"}}], "emails": [{{"id": "f0000000-0000-4000-8000-000000000002"}}]}},
  {{"id": "e0000000-0000-4000-8000-000000000002", "type": "custom.thing", "createdAt": "2025-01-01T00:00:02Z"}},
  {{"id": "e0000000-0000-4000-8000-000000000003", "type": "system.message", "channel": "web", "createdAt": 1735689603000,
    "status": "Completed", "context": [{{"id": "c0000000-0000-4000-8000-000000000004"}}]}},
  {{"id": "e0000000-0000-4000-8000-000000000004", "type": "assistant.message", "channel": "web", "contextId": "{C2}"}},
  {{"id": "e0000000-0000-4000-8000-000000000005", "type": "assistant.message", "channel": "web", "context": [{{"id": "{C1}"}}]}},
  {{"id": "e0000000-0000-4000-8000-000000000006", "type": "input_text", "channel": "web", "createdAt": 1735689606000,
    "status": "stored", "context": [{{"id": "{C3}"}}, {{"id": "{C1}"}}], "execution": [{{"id": "a0000000-0000-4000-8000-000000000003"}}],
    "content": {{"parts": [{{"type": "text", "text": "roto \ud800 aquí"}}]}}}}
],
"story_executions": [
  {{"id": "a0000000-0000-4000-8000-000000000001", "status": "completed", "createdAt": 1735689601000, "updatedAt": "yesterday",
    "runId": "wf_1", "context": [{{"id": "{C1}"}}], "trigger": [{{"id": "e0000000-0000-4000-8000-000000000001"}}],
    "reaction": [{{"id": "e0000000-0000-4000-8000-0000000000ff"}}]}},
  {{"id": "a0000000-0000-4000-8000-000000000002", "createdAt": 1735689500000, "context": [{{"id": "{C2}"}}]}},
  {{"id": "a0000000-0000-4000-8000-000000000003", "status": "completed", "createdAt": 1735689500000}},
  {{"id": "a0000000-0000-4000-8000-000000000004", "status": "done", "createdAt": 1735689700000, "context": [{{"id": "{C1}"}}],
    "reaction": [{{"id": "e0000000-0000-4000-8000-000000000005"}}]}},
  {{"id": "a0000000-0000-4000-8000-000000000005", "status": "executing", "context_id": "{C3}",
    "trigger": [{{"id": "e0000000-0000-4000-8000-000000000006"}}]}},
  {{"id": "a0000000-0000-4000-8000-000000000006", "status": "running", "createdAt": 1735689800000, "updatedAt": 1735689900000,
    "context": [{{"id": "c0000000-0000-4000-8000-000000000006"}}]}}
],
"story_steps": [
  {{"id": "b0000000-0000-4000-8000-000000000001", "createdAt": 1735689602000, "executionId": "a0000000-0000-4000-8000-000000000004",
    "execution": [{{"id": "a0000000-0000-4000-8000-000000000001"}}], "tools": [{{"toolName": "search"}}], "continueLoop": "no"}},
  {{"id": "b0000000-0000-4000-8000-000000000002", "createdAt": 1735689501000, "status": "failed", "iteration": "1",
    "executionId": "A0000000-0000-4000-8000-000000000002 ", "eventId": "not-an-event-uuid", "error": "boom"}},
  {{"id": "b0000000-0000-4000-8000-000000000003", "createdAt": 1735689501000, "iteration": 0, "executionId": "a0000000-0000-4000-8000-000000000003", "eventId": "x"}},
  {{"id": "b0000000-0000-4000-8000-000000000004", "iteration": 2, "execution": [{{"id": "a0000000-0000-4000-8000-000000000002"}}]}},
  {{"id": "b0000000-0000-4000-8000-000000000005", "status": "RUNNING", "iteration": 0, "eventId": "y",
    "execution": [{{"id": "a0000000-0000-4000-8000-000000000006"}}]}}
],
"story_parts": [
  {{"id": "d0000000-0000-4000-8000-000000000001", "key": "old", "stepId": "b0000000-0000-4000-8000-000000000001", "idx": 0,
    "updatedAt": 1735689602000, "part": {{"type": "text", "text": "a"}}}},
  {{"id": "d0000000-0000-4000-8000-000000000002", "key": "b0000000-0000-4000-8000-000000000001:0", "idx": 0, "updatedAt": 1735689609000,
    "step": [{{"id": "b0000000-0000-4000-8000-000000000001"}}], "part": {{"type": "text", "text": "b"}}}},
  {{"id": "d0000000-0000-4000-8000-000000000003", "key": "b0000000-0000-4000-8000-000000000001:1", "idx": 1,
    "stepId": "b0000000-0000-4000-8000-000000000002", "step": [{{"id": "b0000000-0000-4000-8000-000000000001"}}], "type": "reasoning", "part": {{"type": "reasoning", "text": "c"}}}},
  {{"key": "b0000000-0000-4000-8000-000000000002:0", "idx": 0, "step": [{{"id": "b0000000-0000-4000-8000-000000000002"}}], "part": null}},
  {{"id": "d0000000-0000-4000-8000-000000000005", "idx": -1, "step": [{{"id": "b0000000-0000-4000-8000-000000000002"}}]}},
  {{"id": "d0000000-0000-4000-8000-000000000006", "idx": 0, "stepId": "b0000000-0000-4000-8000-0000000000ff"}},
  {{"id": "d0000000-0000-4000-8000-000000000007", "idx": "2", "stepId": "b0000000-0000-4000-8000-000000000001", "part": {{"type": "step-start"}}}}
],
"whatsapp_messages": [{{"id": "f0000000-0000-4000-8000-000000000001", "body": "hi"}}]
}}}}}}"#
    )
}

fn options() -> Options {
    Options {
        // Execution a…06 was active at 1735689900000: live within 15 minutes of this "now".
        now_ms: Some(1_735_690_000_000),
        ..Options::default()
    }
}

#[test]
fn every_rule_on_one_dataset() {
    let outcome = transform(&fixture(), options(), 64 << 20);
    assert_accounting(&outcome.summary, &outcome.dir);
    let mut summary = outcome.summary.clone();
    summary.out = "<out>".into();
    expect![[r#"
        {
          "input": {
            "context_contexts": 13,
            "context_events": 6,
            "story_executions": 6,
            "story_parts": 7,
            "story_steps": 5,
            "thread_contexts": 1,
            "thread_threads": 1,
            "whatsapp_messages": 1
          },
          "output": {
            "thread_contexts": 9,
            "thread_executions": 5,
            "thread_items": 5,
            "thread_parts": 4,
            "thread_steps": 3,
            "thread_threads": 9
          },
          "links": 45,
          "rejected": 12,
          "rejectsByRule": {
            "attribute_from_link": 5,
            "attribute_ignored": 1,
            "channel_defaulted": 1,
            "context_status_failed": 1,
            "created_at_derived": 5,
            "created_at_missing": 1,
            "current_execution_derived": 3,
            "dangling_link": 2,
            "date_epoch_seconds": 1,
            "date_invalid": 1,
            "duplicate_id": 1,
            "event_id_derived": 1,
            "event_without_context": 1,
            "execution_id_mismatch": 1,
            "execution_without_context": 1,
            "existing_thread_reused": 1,
            "id_normalised": 2,
            "invalid_id": 1,
            "invalid_unicode_replaced": 1,
            "item_type_unknown": 1,
            "iteration_derived": 1,
            "key_conflict": 2,
            "link_from_attribute": 7,
            "link_invalid_id": 1,
            "link_many_targets": 1,
            "missing_id": 1,
            "part_id_derived": 1,
            "part_idx_invalid": 1,
            "part_key_duplicate": 1,
            "part_key_recomputed": 2,
            "part_payload_missing": 1,
            "part_without_step": 1,
            "row_not_object": 1,
            "status_inferred": 9,
            "status_mapped": 3,
            "status_stale": 3,
            "step_event_id_missing": 1,
            "step_id_mismatch": 1,
            "step_without_execution": 1,
            "thread_context_key_conflict": 1,
            "unknown_namespace": 1,
            "wrong_type": 3
          },
          "out": "<out>"
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&summary).unwrap());
    expect![[r##"
        == thread_contexts.ndjson
        {"id":"c0000000-0000-4000-8000-000000000001","createdAt":"2025-01-01T00:00:00.000Z","key":"award_1","status":"open","content":{"title":"Award 1","parts":"x"}}
        {"id":"c0000000-0000-4000-8000-000000000002","createdAt":1735689500000,"status":"open"}
        {"id":"c0000000-0000-4000-8000-000000000003","createdAt":1735689600000,"key":"c0000000-0000-4000-8000-000000000002","status":"open"}
        {"id":"c0000000-0000-4000-8000-000000000004","createdAt":1735689603000,"status":"open"}
        {"id":"c0000000-0000-4000-8000-000000000005","createdAt":1735689600000,"key":"dup","status":"closed"}
        {"id":"c0000000-0000-4000-8000-000000000006","createdAt":1735689600000,"status":"open"}
        {"id":"c0000000-0000-4000-8000-000000000007","createdAt":1735689600000,"key":"existing","status":"open"}
        {"id":"c0000000-0000-4000-8000-000000000008","createdAt":1735689600000,"status":"open"}
        {"id":"c0000000-0000-4000-8000-000000000009","createdAt":1735689600000,"status":"open"}
        == thread_executions.ndjson
        {"id":"a0000000-0000-4000-8000-000000000001","createdAt":1735689601000,"status":"completed","workflowRunId":"wf_1"}
        {"id":"a0000000-0000-4000-8000-000000000002","createdAt":1735689500000,"status":"failed"}
        {"id":"a0000000-0000-4000-8000-000000000004","createdAt":1735689700000,"status":"completed"}
        {"id":"a0000000-0000-4000-8000-000000000005","createdAt":1735689606000,"status":"failed"}
        {"id":"a0000000-0000-4000-8000-000000000006","createdAt":1735689800000,"updatedAt":1735689900000,"status":"executing"}
        == thread_items.ndjson
        {"id":"e0000000-0000-4000-8000-000000000001","channel":"whatsapp","createdAt":1735689601000,"type":"input_text","content":{"parts":[{"type":"text","text":"hola"}]},"status":"stored"}
        {"id":"e0000000-0000-4000-8000-000000000002","channel":"web","createdAt":"2025-01-01T00:00:02Z","type":"custom.thing","status":"stored"}
        {"id":"e0000000-0000-4000-8000-000000000003","channel":"web","createdAt":1735689603000,"type":"ekairos:system","status":"completed"}
        {"id":"e0000000-0000-4000-8000-000000000005","channel":"web","createdAt":1735689700000,"type":"output_text","status":"completed"}
        {"id":"e0000000-0000-4000-8000-000000000006","channel":"web","createdAt":1735689606000,"type":"input_text","content":{"parts":[{"type":"text","text":"roto \ufffd aquí"}]},"status":"stored"}
        == thread_parts.ndjson
        {"id":"ad46ef3c-1603-5251-a1c3-2485a455e4ee","key":"b0000000-0000-4000-8000-000000000002:0","stepId":"b0000000-0000-4000-8000-000000000002","idx":0}
        {"id":"d0000000-0000-4000-8000-000000000002","key":"b0000000-0000-4000-8000-000000000001:0","stepId":"b0000000-0000-4000-8000-000000000001","idx":0,"type":"text","part":{"type":"text","text":"b"},"updatedAt":1735689609000}
        {"id":"d0000000-0000-4000-8000-000000000003","key":"b0000000-0000-4000-8000-000000000001:1","stepId":"b0000000-0000-4000-8000-000000000001","idx":1,"type":"reasoning","part":{"type":"reasoning","text":"c"}}
        {"id":"d0000000-0000-4000-8000-000000000007","key":"b0000000-0000-4000-8000-000000000001:2","stepId":"b0000000-0000-4000-8000-000000000001","idx":2,"type":"step-start","part":{"type":"step-start"}}
        == thread_steps.ndjson
        {"id":"b0000000-0000-4000-8000-000000000001","createdAt":1735689602000,"status":"completed","iteration":0,"executionId":"a0000000-0000-4000-8000-000000000001","eventId":"e0000000-0000-4000-8000-0000000000ff","toolCalls":[{"toolName":"search"}]}
        {"id":"b0000000-0000-4000-8000-000000000002","createdAt":1735689501000,"status":"failed","iteration":1,"executionId":"a0000000-0000-4000-8000-000000000002","eventId":"not-an-event-uuid","errorText":"boom"}
        {"id":"b0000000-0000-4000-8000-000000000005","createdAt":1735689800000,"status":"failed","iteration":0,"executionId":"a0000000-0000-4000-8000-000000000006","eventId":"y"}
        == thread_threads.ndjson
        {"id":"3abf1c2f-b0bd-5c9b-8ffb-552d06888336","createdAt":1735689600000,"key":"dup","status":"closed"}
        {"id":"3c3467ee-c41a-5b83-a4e9-31afd8cf0498","createdAt":1735689603000,"key":"c0000000-0000-4000-8000-000000000004","status":"open"}
        {"id":"7a000000-0000-4000-8000-000000000007","createdAt":1735689600000,"key":"existing","status":"open"}
        {"id":"83adeccf-f741-51cb-ae23-e694f4ae5dc5","createdAt":"2025-01-01T00:00:00.000Z","key":"award_1","name":"Award 1","status":"open"}
        {"id":"898c1032-cf41-501e-b046-211e9ef3f8e8","createdAt":1735689500000,"status":"failed"}
        {"id":"a71a9e48-fe04-5860-8fca-4628e8f3c8fb","createdAt":1735689600000,"key":"c0000000-0000-4000-8000-000000000002","status":"failed"}
        {"id":"aaff06a7-f10b-5b55-881f-1185b8b6887a","createdAt":1735689600000,"status":"open"}
        {"id":"ae34544e-99af-5e3f-9df2-80cd50f5dbe5","createdAt":1735689600000,"key":"c0000000-0000-4000-8000-000000000008","status":"open"}
        {"id":"b6e8e45d-c550-59a2-8941-ba6a1a323974","createdAt":1735689600000,"status":"open"}
        == links.ndjson
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000001","label":"currentExecution","to_id":"a0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000001","label":"thread","to_id":"83adeccf-f741-51cb-ae23-e694f4ae5dc5"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000002","label":"currentExecution","to_id":"a0000000-0000-4000-8000-000000000002"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000002","label":"thread","to_id":"898c1032-cf41-501e-b046-211e9ef3f8e8"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000003","label":"currentExecution","to_id":"a0000000-0000-4000-8000-000000000005"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000003","label":"thread","to_id":"a71a9e48-fe04-5860-8fca-4628e8f3c8fb"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000004","label":"thread","to_id":"3c3467ee-c41a-5b83-a4e9-31afd8cf0498"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000005","label":"thread","to_id":"3abf1c2f-b0bd-5c9b-8ffb-552d06888336"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000006","label":"currentExecution","to_id":"a0000000-0000-4000-8000-000000000006"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000006","label":"thread","to_id":"aaff06a7-f10b-5b55-881f-1185b8b6887a"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000007","label":"thread","to_id":"7a000000-0000-4000-8000-000000000007"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000008","label":"thread","to_id":"ae34544e-99af-5e3f-9df2-80cd50f5dbe5"}
        {"from_ns":"thread_contexts","from_id":"c0000000-0000-4000-8000-000000000009","label":"thread","to_id":"b6e8e45d-c550-59a2-8941-ba6a1a323974"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000001","label":"context","to_id":"c0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000001","label":"thread","to_id":"83adeccf-f741-51cb-ae23-e694f4ae5dc5"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000001","label":"trigger","to_id":"e0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000002","label":"context","to_id":"c0000000-0000-4000-8000-000000000002"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000002","label":"thread","to_id":"898c1032-cf41-501e-b046-211e9ef3f8e8"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000004","label":"context","to_id":"c0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000004","label":"reaction","to_id":"e0000000-0000-4000-8000-000000000005"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000004","label":"thread","to_id":"83adeccf-f741-51cb-ae23-e694f4ae5dc5"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000005","label":"context","to_id":"c0000000-0000-4000-8000-000000000003"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000005","label":"thread","to_id":"a71a9e48-fe04-5860-8fca-4628e8f3c8fb"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000005","label":"trigger","to_id":"e0000000-0000-4000-8000-000000000006"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000006","label":"context","to_id":"c0000000-0000-4000-8000-000000000006"}
        {"from_ns":"thread_executions","from_id":"a0000000-0000-4000-8000-000000000006","label":"thread","to_id":"aaff06a7-f10b-5b55-881f-1185b8b6887a"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000001","label":"context","to_id":"c0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000001","label":"emails","to_id":"f0000000-0000-4000-8000-000000000002"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000001","label":"execution","to_id":"a0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000001","label":"thread","to_id":"83adeccf-f741-51cb-ae23-e694f4ae5dc5"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000001","label":"whatsappMessages","to_id":"f0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000003","label":"context","to_id":"c0000000-0000-4000-8000-000000000004"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000003","label":"thread","to_id":"3c3467ee-c41a-5b83-a4e9-31afd8cf0498"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000005","label":"context","to_id":"c0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000005","label":"execution","to_id":"a0000000-0000-4000-8000-000000000004"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000005","label":"thread","to_id":"83adeccf-f741-51cb-ae23-e694f4ae5dc5"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000006","label":"context","to_id":"c0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_items","from_id":"e0000000-0000-4000-8000-000000000006","label":"thread","to_id":"83adeccf-f741-51cb-ae23-e694f4ae5dc5"}
        {"from_ns":"thread_parts","from_id":"ad46ef3c-1603-5251-a1c3-2485a455e4ee","label":"step","to_id":"b0000000-0000-4000-8000-000000000002"}
        {"from_ns":"thread_parts","from_id":"d0000000-0000-4000-8000-000000000002","label":"step","to_id":"b0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_parts","from_id":"d0000000-0000-4000-8000-000000000003","label":"step","to_id":"b0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_parts","from_id":"d0000000-0000-4000-8000-000000000007","label":"step","to_id":"b0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_steps","from_id":"b0000000-0000-4000-8000-000000000001","label":"execution","to_id":"a0000000-0000-4000-8000-000000000001"}
        {"from_ns":"thread_steps","from_id":"b0000000-0000-4000-8000-000000000002","label":"execution","to_id":"a0000000-0000-4000-8000-000000000002"}
        {"from_ns":"thread_steps","from_id":"b0000000-0000-4000-8000-000000000005","label":"execution","to_id":"a0000000-0000-4000-8000-000000000006"}
        == rejects.ndjson
        {"namespace":"context_contexts","id":"#11","rule":"row_not_object","detail":"row 11 is a string, not an object"}
        {"namespace":"context_contexts","id":"#12","rule":"missing_id","detail":"row 12 has no id"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000001","rule":"status_stale","detail":"status \"STREAMING\" but no live current execution at now: open"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000002","rule":"context_status_failed","detail":"status \"failed\" is not a context status: open, thread failed"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000002","rule":"created_at_derived","detail":"createdAt missing; 2024-12-31T23:58:20.000Z from the earliest linked execution"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000002","rule":"current_execution_derived","detail":"no currentExecution; the latest execution a0000000-0000-4000-8000-000000000002 is used"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000002","rule":"id_normalised","detail":"id \"C0000000-0000-4000-8000-000000000002\" read as c0000000-0000-4000-8000-000000000002"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000002","rule":"key_conflict","detail":"thread key \"c0000000-0000-4000-8000-000000000002\" (the context id) is the key of context c0000000-0000-4000-8000-000000000003: the thread gets no key"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000003","rule":"attribute_ignored","detail":"not carried: type"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000003","rule":"current_execution_derived","detail":"no currentExecution; the latest execution a0000000-0000-4000-8000-000000000005 is used"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000003","rule":"date_epoch_seconds","detail":"createdAt 1735689600 (epoch seconds) read as 1735689600000 ms"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000003","rule":"status_inferred","detail":"status null: open"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000004","rule":"created_at_derived","detail":"createdAt missing; 2025-01-01T00:00:03.000Z from the earliest linked item"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000004","rule":"status_inferred","detail":"status null: open"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000006","rule":"current_execution_derived","detail":"no currentExecution; the latest execution a0000000-0000-4000-8000-000000000006 is used"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000006","rule":"key_conflict","detail":"key \"dup\" already belongs to context c0000000-0000-4000-8000-000000000005: omitted"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000007","rule":"existing_thread_reused","detail":"thread_threads 7a000000-0000-4000-8000-000000000007 already has key \"existing\": reused"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000007","rule":"status_inferred","detail":"status \"weird\" unknown: open"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000008","rule":"duplicate_id","detail":"another context_contexts row has id c0000000-0000-4000-8000-000000000008; the first by row text is kept"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000008","rule":"status_inferred","detail":"status null: open"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000008","rule":"status_inferred","detail":"status null: open"}
        {"namespace":"context_contexts","id":"c0000000-0000-4000-8000-000000000009","rule":"thread_context_key_conflict","detail":"key \"healed\" is held by the existing thread_contexts row 7b000000-0000-4000-8000-000000000009: the context and its thread are migrated without it"}
        {"namespace":"context_contexts","id":"not-a-uuid","rule":"invalid_id","detail":"id \"not-a-uuid\" is not a UUID"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000001","rule":"link_invalid_id","detail":"whatsappMessages \"not-a-uuid\" is not a UUID; link dropped"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000002","rule":"channel_defaulted","detail":"channel missing: web"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000002","rule":"event_without_context","detail":"no context: migrated without context and thread links"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000002","rule":"item_type_unknown","detail":"type \"custom.thing\" unknown: kept"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000002","rule":"status_inferred","detail":"status null inferred stored"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000003","rule":"status_mapped","detail":"status \"Completed\" mapped to completed"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000004","rule":"created_at_missing","detail":"createdAt missing and nothing to derive it from"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000004","rule":"link_from_attribute","detail":"no context link; context c0000000-0000-4000-8000-000000000002 taken from the attribute"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000005","rule":"created_at_derived","detail":"createdAt missing; 2025-01-01T00:01:40.000Z from execution a0000000-0000-4000-8000-000000000004's createdAt"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000005","rule":"status_inferred","detail":"status null inferred completed"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000006","rule":"dangling_link","detail":"execution a0000000-0000-4000-8000-000000000003: not a migrated execution; link dropped"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000006","rule":"invalid_unicode_replaced","detail":"content held the lone surrogate escape \\ud800 (not Unicode): replaced by U+FFFD"}
        {"namespace":"context_events","id":"e0000000-0000-4000-8000-000000000006","rule":"link_many_targets","detail":"context holds 2 ids; c0000000-0000-4000-8000-000000000001 kept, c0000000-0000-4000-8000-000000000003 dropped"}
        {"namespace":"story_executions","id":"a0000000-0000-4000-8000-000000000001","rule":"dangling_link","detail":"reaction e0000000-0000-4000-8000-0000000000ff: no such context_events row; link dropped"}
        {"namespace":"story_executions","id":"a0000000-0000-4000-8000-000000000001","rule":"date_invalid","detail":"updatedAt \"yesterday\" is not a date: omitted"}
        {"namespace":"story_executions","id":"a0000000-0000-4000-8000-000000000002","rule":"status_inferred","detail":"status null inferred failed: a step failed"}
        {"namespace":"story_executions","id":"a0000000-0000-4000-8000-000000000003","rule":"execution_without_context","detail":"no context"}
        {"namespace":"story_executions","id":"a0000000-0000-4000-8000-000000000004","rule":"status_mapped","detail":"status \"done\" mapped to completed"}
        {"namespace":"story_executions","id":"a0000000-0000-4000-8000-000000000005","rule":"created_at_derived","detail":"createdAt missing; 2025-01-01T00:00:06.000Z from the trigger item's createdAt"}
        {"namespace":"story_executions","id":"a0000000-0000-4000-8000-000000000005","rule":"link_from_attribute","detail":"no context link; context c0000000-0000-4000-8000-000000000003 taken from the attribute"}
        {"namespace":"story_executions","id":"a0000000-0000-4000-8000-000000000005","rule":"status_stale","detail":"status \"executing\" not live at now: failed"}
        {"namespace":"story_executions","id":"a0000000-0000-4000-8000-000000000006","rule":"status_mapped","detail":"status \"running\" mapped to executing"}
        {"namespace":"story_parts","id":"#4","rule":"attribute_from_link","detail":"stepId missing; b0000000-0000-4000-8000-000000000002 from the step link"}
        {"namespace":"story_parts","id":"#4","rule":"part_id_derived","detail":"no id; ad46ef3c-1603-5251-a1c3-2485a455e4ee derived from the key"}
        {"namespace":"story_parts","id":"#4","rule":"part_payload_missing","detail":"part missing: the row is migrated without it"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000001","rule":"link_from_attribute","detail":"no step link; step b0000000-0000-4000-8000-000000000001 taken from stepId"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000001","rule":"part_key_duplicate","detail":"key b0000000-0000-4000-8000-000000000001:0 is also part d0000000-0000-4000-8000-000000000002's (newer or smaller id): not migrated"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000001","rule":"part_key_recomputed","detail":"key \"old\" recomputed as b0000000-0000-4000-8000-000000000001:0"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000002","rule":"attribute_from_link","detail":"stepId missing; b0000000-0000-4000-8000-000000000001 from the step link"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000003","rule":"step_id_mismatch","detail":"stepId b0000000-0000-4000-8000-000000000002 differs from the step link b0000000-0000-4000-8000-000000000001; the link wins"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000005","rule":"attribute_from_link","detail":"stepId missing; b0000000-0000-4000-8000-000000000002 from the step link"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000005","rule":"part_idx_invalid","detail":"idx -1 is negative"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000006","rule":"link_from_attribute","detail":"no step link; step b0000000-0000-4000-8000-0000000000ff taken from stepId"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000006","rule":"part_without_step","detail":"step b0000000-0000-4000-8000-0000000000ff is not a migrated step"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000007","rule":"link_from_attribute","detail":"no step link; step b0000000-0000-4000-8000-000000000001 taken from stepId"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000007","rule":"part_key_recomputed","detail":"no key; b0000000-0000-4000-8000-000000000001:2"}
        {"namespace":"story_parts","id":"d0000000-0000-4000-8000-000000000007","rule":"wrong_type","detail":"idx \"2\" read as the number 2"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000001","rule":"event_id_derived","detail":"eventId missing; the execution's reaction id e0000000-0000-4000-8000-0000000000ff is used"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000001","rule":"execution_id_mismatch","detail":"executionId a0000000-0000-4000-8000-000000000004 differs from the execution link a0000000-0000-4000-8000-000000000001; the link wins"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000001","rule":"iteration_derived","detail":"iteration missing; 0 (rank by createdAt within the execution)"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000001","rule":"status_inferred","detail":"status null inferred completed: the execution is completed"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000001","rule":"wrong_type","detail":"continueLoop \"no\" is not a boolean: omitted"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000002","rule":"id_normalised","detail":"executionId \"A0000000-0000-4000-8000-000000000002\" read as a0000000-0000-4000-8000-000000000002"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000002","rule":"link_from_attribute","detail":"no execution link; execution a0000000-0000-4000-8000-000000000002 taken from executionId"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000002","rule":"wrong_type","detail":"iteration \"1\" read as the number 1"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000003","rule":"link_from_attribute","detail":"no execution link; execution a0000000-0000-4000-8000-000000000003 taken from executionId"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000003","rule":"step_without_execution","detail":"execution a0000000-0000-4000-8000-000000000003 is not a migrated execution"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000004","rule":"attribute_from_link","detail":"executionId missing; a0000000-0000-4000-8000-000000000002 from the execution link"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000004","rule":"step_event_id_missing","detail":"eventId missing and the execution has no reaction or trigger id"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000005","rule":"attribute_from_link","detail":"executionId missing; a0000000-0000-4000-8000-000000000006 from the execution link"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000005","rule":"created_at_derived","detail":"createdAt missing; 2025-01-01T00:03:20.000Z from the execution's createdAt"}
        {"namespace":"story_steps","id":"b0000000-0000-4000-8000-000000000005","rule":"status_stale","detail":"status \"RUNNING\" not live at now: failed"}
        {"namespace":"whatsapp_messages","id":"f0000000-0000-4000-8000-000000000001","rule":"unknown_namespace","detail":"namespace whatsapp_messages is not a legacy story namespace"}
    "##]].assert_eq(&render(&outcome.dir));
}

#[test]
fn every_reject_rule_is_exercised() {
    let outcome = transform(&fixture(), options(), 64 << 20);
    let missing: Vec<&str> = migration::Rule::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|id| !outcome.summary.rejects_by_rule.contains_key(*id))
        .collect();
    assert_eq!(
        missing,
        Vec::<&str>::new(),
        "rules not covered by the fixture"
    );
}

#[test]
fn deterministic_whatever_the_row_order_and_memory() {
    let a = transform(&fixture(), options(), 64 << 20);
    let b = transform(&fixture(), options(), 64 << 20);
    assert_eq!(all_bytes(&a.dir), all_bytes(&b.dir));
    // A tiny sort budget spills runs to disk and merges them: same bytes.
    let c = transform(&fixture(), options(), 1024);
    assert_eq!(all_bytes(&a.dir), all_bytes(&c.dir));
    // Rows in reverse order within each namespace: same bytes (no duplicate ids involved).
    let reversed = reverse_rows(&fixture());
    let d = transform(&reversed, options(), 64 << 20);
    let (ra, rd) = (render(&a.dir), render(&d.dir));
    if ra != rd {
        for (x, y) in ra.lines().zip(rd.lines()).filter(|(x, y)| x != y).take(3) {
            eprintln!("A: {x}\nD: {y}");
        }
        panic!("reversed input gives different output");
    }
}

#[test]
fn liveness_needs_an_explicit_now() {
    // Without `now` nothing is live: the running execution and step become failed.
    let outcome = transform(&fixture(), Options::default(), 64 << 20);
    let executions = std::fs::read_to_string(outcome.dir.join("thread_executions.ndjson")).unwrap();
    assert!(executions.contains(r#""id":"a0000000-0000-4000-8000-000000000006","createdAt":1735689800000,"updatedAt":1735689900000,"status":"failed""#));
}

fn reverse_rows(dataset: &str) -> String {
    // The lone surrogate escape is valid JSON but not a string serde_json can hold: carried
    // through as a marker.
    const LONE: &str = "<lone surrogate>";
    let mut value: serde_json::Value =
        serde_json::from_str(&dataset.replace("\\ud800", LONE)).unwrap();
    let data = value["payload"]["data"].as_object_mut().unwrap();
    for (name, rows) in data.iter_mut() {
        if name != "context_contexts" {
            rows.as_array_mut().unwrap().reverse();
        }
    }
    value.to_string().replace(LONE, "\\ud800")
}

// ---- Regression tests: the transform against the generator's manifest --------------------

const CTX: &str = "c1000000-0000-4000-8000-000000000001";
const EXEC: &str = "a1000000-0000-4000-8000-000000000001";
const STEP: &str = "b1000000-0000-4000-8000-000000000001";

/// One context with one execution (a reaction item e1…01) and `extra` rows.
fn small(extra: &str) -> String {
    format!(
        r#"{{"context_contexts": [{{"id": "{CTX}", "key": "k1", "createdAt": 1735689600000, "status": "open",
  "currentExecution": [{{"id": "{EXEC}"}}]}}],
"story_executions": [{{"id": "{EXEC}", "createdAt": 1735689601000, "status": "completed", "context": [{{"id": "{CTX}"}}],
  "reaction": [{{"id": "e1000000-0000-4000-8000-000000000001"}}]}}],
"context_events": [{{"id": "e1000000-0000-4000-8000-000000000001", "channel": "web", "type": "assistant.message",
  "createdAt": 1735689602000, "status": "completed", "context": [{{"id": "{CTX}"}}]}}]{extra}}}"#
    )
}

fn rejects(outcome: &crate::support::Outcome) -> Vec<migration::Reject> {
    std::fs::read_to_string(outcome.dir.join("rejects.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rows(outcome: &crate::support::Outcome, ns: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(outcome.dir.join(format!("{ns}.ndjson")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn reported(outcome: &crate::support::Outcome, id: &str) -> Vec<(String, String)> {
    rejects(outcome)
        .into_iter()
        .filter(|r| r.id == id)
        .map(|r| (r.rule.as_str().to_string(), r.detail))
        .collect()
}

#[test]
fn non_uuid_execution_id_is_reported_not_silently_replaced() {
    let dataset = small(&format!(
        r#", "story_steps": [{{"id": "{STEP}", "createdAt": 1735689601500, "status": "completed", "iteration": 0,
  "eventId": "x", "executionId": "exec_41b9926e6cac", "execution": [{{"id": "{EXEC}"}}]}}]"#
    ));
    let outcome = transform(&dataset, Options::default(), 1 << 20);
    assert_accounting(&outcome.summary, &outcome.dir);
    assert_eq!(rows(&outcome, "thread_steps")[0]["executionId"], EXEC);
    assert_eq!(
        reported(&outcome, STEP),
        vec![(
            "execution_id_mismatch".to_string(),
            format!(
                "executionId \"exec_41b9926e6cac\" is not a UUID; the execution link {EXEC} wins"
            )
        )]
    );
}

#[test]
fn attribute_filled_from_a_link_is_reported_as_a_repair() {
    let part = "d1000000-0000-4000-8000-000000000001";
    let dataset = small(&format!(
        r#", "story_steps": [{{"id": "{STEP}", "createdAt": 1735689601500, "status": "completed", "iteration": 0,
  "eventId": "x", "execution": [{{"id": "{EXEC}"}}]}}],
"story_parts": [{{"id": "{part}", "key": "{STEP}:0", "idx": 0, "step": [{{"id": "{STEP}"}}], "part": {{"type": "step-start"}}}}]"#
    ));
    let outcome = transform(&dataset, Options::default(), 1 << 20);
    assert_accounting(&outcome.summary, &outcome.dir);
    assert_eq!(rows(&outcome, "thread_steps")[0]["executionId"], EXEC);
    assert_eq!(rows(&outcome, "thread_parts")[0]["stepId"], STEP);
    let repairs = |id: &str| -> Vec<(String, String)> { reported(&outcome, id) };
    assert_eq!(
        repairs(STEP),
        vec![(
            "attribute_from_link".to_string(),
            format!("executionId missing; {EXEC} from the execution link")
        )]
    );
    assert_eq!(
        repairs(part),
        vec![(
            "attribute_from_link".to_string(),
            format!("stepId missing; {STEP} from the step link")
        )]
    );
    assert_eq!(
        migration::Rule::AttributeFromLink.effect(),
        migration::Effect::Repaired
    );
}

#[test]
fn whatsapp_item_without_created_at_takes_its_message_date_never_now() {
    // Two human WhatsApp items with no execution and no createdAt: one whose message is in the
    // input (dated by it), one whose message is not (nothing to date it by: not migrated).
    let dataset = small(
        r#", "whatsapp_messages": [{"id": "f1000000-0000-4000-8000-000000000001", "createdAt": "2025-01-01T00:00:05.250Z", "body": "hola"}],
"context_events": [
  {"id": "e1000000-0000-4000-8000-000000000002", "channel": "whatsapp", "type": "user.message", "status": "stored",
   "context": [{"id": "c1000000-0000-4000-8000-000000000001"}], "whatsappMessages": [{"id": "f1000000-0000-4000-8000-000000000001"}]},
  {"id": "e1000000-0000-4000-8000-000000000003", "channel": "whatsapp", "type": "user.message", "status": "stored",
   "context": [{"id": "c1000000-0000-4000-8000-000000000001"}], "whatsappMessages": [{"id": "f1000000-0000-4000-8000-000000000009"}]}]"#,
    );
    let outcome = transform(&dataset, Options::default(), 1 << 20);
    assert_accounting(&outcome.summary, &outcome.dir);
    let items = rows(&outcome, "thread_items");
    let dated = items
        .iter()
        .find(|row| row["id"] == "e1000000-0000-4000-8000-000000000002")
        .expect("migrated");
    assert_eq!(dated["createdAt"], 1_735_689_605_250i64);
    assert_eq!(
        reported(&outcome, "e1000000-0000-4000-8000-000000000002"),
        vec![(
            "created_at_derived".to_string(),
            "createdAt missing; 2025-01-01T00:00:05.250Z from whatsapp_messages f1000000-0000-4000-8000-000000000001's createdAt".to_string()
        )]
    );
    assert!(items
        .iter()
        .all(|row| row["id"] != "e1000000-0000-4000-8000-000000000003"));
    assert_eq!(
        reported(&outcome, "e1000000-0000-4000-8000-000000000003"),
        vec![(
            "created_at_missing".to_string(),
            "createdAt missing and nothing to derive it from".to_string()
        )]
    );
}

#[test]
fn lone_surrogates_are_replaced_by_u_fffd_and_reported_not_copied_verbatim() {
    // A lone high and a lone low surrogate in content, a valid pair (kept as written), and a
    // lone surrogate in a plain attribute (the key), which used to be read as null.
    let dataset = format!(
        r#"{{"context_contexts": [{{"id": "{CTX}", "key": "clave \ud800", "createdAt": 1735689600000, "status": "open",
  "content": {{"a": "x\udc00y", "b": "\ud83d\ude00", "c": "\\ud800 is text"}}}}]}}"#
    );
    let outcome = transform(&dataset, Options::default(), 1 << 20);
    assert_accounting(&outcome.summary, &outcome.dir);
    let text = std::fs::read_to_string(outcome.dir.join("thread_contexts.ndjson")).unwrap();
    assert_eq!(
        text.trim_end(),
        format!(
            r#"{{"id":"{CTX}","createdAt":1735689600000,"key":"clave �","status":"open","content":{{"a":"x\ufffdy","b":"\ud83d\ude00","c":"\\ud800 is text"}}}}"#
        )
    );
    let mut found = reported(&outcome, CTX);
    found.sort();
    assert_eq!(
        found,
        vec![
            (
                "invalid_unicode_replaced".to_string(),
                r"content held the lone surrogate escape \udc00 (not Unicode): replaced by U+FFFD"
                    .to_string()
            ),
            (
                "invalid_unicode_replaced".to_string(),
                r"key held the lone surrogate escape \ud800 (not Unicode): replaced by U+FFFD"
                    .to_string()
            ),
        ]
    );
}

#[test]
fn existing_thread_context_key_is_reported_not_overwritten() {
    // The runtime healed key k1 with a context of its own (another id): the legacy context
    // and its thread are migrated without the key. A row with the context's own id (an
    // earlier run of this migration) is not a clash.
    let ours = small(&format!(
        r#", "thread_contexts": [{{"id": "{CTX}", "key": "k1"}}]"#
    ));
    let outcome = transform(&ours, Options::default(), 1 << 20);
    assert_eq!(rows(&outcome, "thread_contexts")[0]["key"], "k1");
    assert_eq!(reported(&outcome, CTX), vec![]);

    let healed = small(
        r#", "thread_contexts": [{"id": "7c000000-0000-4000-8000-000000000001", "key": "k1", "createdAt": 1735689700000}]"#,
    );
    let outcome = transform(&healed, Options::default(), 1 << 20);
    assert_accounting(&outcome.summary, &outcome.dir);
    let contexts = rows(&outcome, "thread_contexts");
    assert_eq!(contexts.len(), 1, "the existing row is not rewritten");
    assert_eq!(contexts[0]["id"], CTX);
    assert_eq!(contexts[0].get("key"), None);
    assert_eq!(rows(&outcome, "thread_threads")[0].get("key"), None);
    assert_eq!(
        reported(&outcome, CTX),
        vec![(
            "thread_context_key_conflict".to_string(),
            "key \"k1\" is held by the existing thread_contexts row 7c000000-0000-4000-8000-000000000001: the context and its thread are migrated without it".to_string()
        )]
    );
    assert_eq!(outcome.summary.input["thread_contexts"], 1);
    assert_eq!(outcome.summary.rejected, 0);
}
